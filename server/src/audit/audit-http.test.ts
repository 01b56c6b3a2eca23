/**
 * The audit record of an HTTP request names what the route declared (http/route-access.ts): its action,
 * interface and query level, whatever its URL looks like. A DELETE or a route outside /dicomweb is never
 * recorded as a DICOMweb retrieve because of where it sits.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installAccessControl } from '../auth/access-control.js';
import { PUBLIC, routeAccess } from '../http/route-access.js';
import { installAuditHook } from './audit-http.js';
import { KyselyAuditStore } from './audit-store.js';
import { AuditTrail } from './audit-trail.js';

let app: FastifyInstance;
let trail: AuditTrail;

beforeAll(async () => {
  trail = new AuditTrail(await KyselyAuditStore.open({ kind: 'sqlite', file: ':memory:' }), pino({ level: 'silent' }));
  app = Fastify();
  installAccessControl(app, undefined);
  installAuditHook(app, trail, undefined);
  // URLs chosen to mislead a guess from the path: the declaration decides.
  app.get('/dicomweb/studies/:study/models', routeAccess('ai')('ai', { audit: 'ai-read' }), async () => ({ ok: true }));
  app.delete('/dicomweb/studies/:study', routeAccess('ai')('ai', { audit: 'ai-cancel' }), async () => ({ ok: true }));
  app.get('/elsewhere/studies', routeAccess('dicomweb')('read', { audit: 'query', queryLevel: 'study' }), async () => []);
  app.get('/open', PUBLIC, async () => 'ok');
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await trail.close();
});

async function lastRecord() {
  await trail.flush();
  return (await trail.store.list({ limit: 1 }))[0]!;
}

describe('audit records of HTTP requests', () => {
  it('take the action and interface the route declared, not what its URL suggests', async () => {
    expect((await app.inject({ url: '/dicomweb/studies/1.2.3/models' })).statusCode).toBe(200);
    expect(await lastRecord()).toMatchObject({ action: 'ai-read', interface: 'ai', route: 'GET /dicomweb/studies/:study/models', objects: [{ study: '1.2.3' }] });
    expect((await app.inject({ method: 'DELETE', url: '/dicomweb/studies/1.2.3' })).statusCode).toBe(200);
    expect(await lastRecord()).toMatchObject({ action: 'ai-cancel', interface: 'ai', route: 'DELETE /dicomweb/studies/:study' });
  });

  it('record a search with its declared level and keys, under any prefix', async () => {
    expect((await app.inject({ url: '/elsewhere/studies?PatientID=X1&limit=3' })).statusCode).toBe(200);
    expect(await lastRecord()).toMatchObject({ action: 'query', interface: 'dicomweb', query: { level: 'study', keys: { PatientID: 'X1', limit: '3' } } });
  });

  it('leave public routes out', async () => {
    const before = (await lastRecord()).id;
    expect((await app.inject({ url: '/open' })).statusCode).toBe(200);
    expect((await lastRecord()).id).toBe(before);
  });
});
