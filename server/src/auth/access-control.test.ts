/**
 * Sign-in and roles over real HTTP semantics: a real issuer (keys, discovery, JWKS on loopback), the
 * whole app with AI, live and slide-analysis routes, and the route table walked route by route.
 */
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ROLE_PERMISSIONS } from '../config.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';
import type { Permission } from './principal.js';

let issuer: TestIssuer;
let t: TestApp;
const study = newUid();
const series = newUid();
const sop = newUid();

/** A role that grants exactly `permission` (and, for a wrong-role check, one that does not). */
const ROLE_FOR: Record<Permission, string> = { read: 'reader', store: 'uploader', ai: 'ai-only', admin: 'admin-only', his: 'his-only', report: 'report-only', sign: 'sign-only', share: 'share-only', delete: 'delete-only' };
const ROLES = { ...DEFAULT_ROLE_PERMISSIONS, 'ai-only': ['ai'], 'admin-only': ['admin'], 'his-only': ['his'], 'report-only': ['report'], 'sign-only': ['sign'], 'share-only': ['share'], 'delete-only': ['delete'] } as const;
const roleEnv = Object.entries(ROLES).map(([role, permissions]) => `${role}=${permissions.join(',')}`).join(';');

const SAMPLE_PARAMS: Record<string, string> = { study, series, instance: sop, frames: '1', frame: '1', tag: '7FE00010', id: 'polyp-unknown-job', issuer: '-', version: '1', '*': '', sop, note: '9.9.9.9', item: '1-0' };

function concreteUrl(url: string): string {
  // A wildcard route (bulkdata/*: TAG[/ITEM/TAG...]) gets the pixel data tag.
  const sample = (url.startsWith('/ai/models/') ? url.replace(':id', url.endsWith('/classify') ? 'dark-tissue' : 'bright-spot') : url).replace(/\/\*$/, `/${SAMPLE_PARAMS['tag']}`);
  const query = url.endsWith('/frames/:frame/detections') ? '?model=bright-spot' : url === '/his/orders' || url === '/share/links' ? `?study=${study}` : url === '/reports/quality' || url === '/ai/usage' ? '?from=20240101&to=20241231' : '';
  return sample.replace(/:([A-Za-z]+)/g, (_match, name: string) => {
    const value = SAMPLE_PARAMS[name];
    if (value === undefined) throw new Error(`the route-table test has no sample value for :${name} in ${url}: add one`);
    return value;
  }) + query;
}

async function jpeg(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 40, b: 40 } } }).jpeg().toBuffer();
}

/** A request body the route's handler can use, so "right role" means success, not a 4xx on the body. */
async function requestFor(method: string, url: string): Promise<{ payload?: Buffer | string; headers: Record<string, string> }> {
  if (method === 'POST' && url.startsWith('/dicomweb/studies')) {
    return { payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series }) }]), headers: { 'content-type': STOW_CONTENT_TYPE() } };
  }
  if (method === 'POST' && (url.endsWith('/detect') || url.endsWith('/classify'))) return { payload: await jpeg(), headers: { 'content-type': 'image/jpeg' } };
  if (method === 'POST' && url.endsWith('/analyses')) return { payload: JSON.stringify({ model: 'dark-spot' }), headers: { 'content-type': 'application/json' } };
  const json = (body: unknown) => ({ payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const order = { patient: { patientId: 'WALK-1', issuer: '' }, accessionNumber: 'WALK-ACC-1', modality: 'ES', scheduledStart: '20260105' };
  if ((method === 'POST' && url.split('?')[0] === '/his/orders') || (method === 'PUT' && url.startsWith('/his/orders/'))) return json(order);
  if (method === 'PUT' && url.startsWith('/his/patients/')) return json({ name: 'Walk^Route' });
  if (method === 'POST' && url === '/his/patients/merge') return json({ prior: { patientId: 'WALK-UNKNOWN', issuer: '' }, surviving: order.patient });
  if (method === 'POST' && url.replace(/\/$/, '') === '/reports') return json({ studyInstanceUid: study, kind: 'radiology' });
  if (method === 'PUT' && url.startsWith('/reports/')) return json({ content: { kind: 'radiology' } });
  if (method === 'POST' && url.endsWith('/amend')) return json({ reason: 'route walk' });
  if (method === 'POST' && url.split('?')[0] === '/share/links') return json({ studyInstanceUid: study });
  if (method === 'POST' && url.endsWith('/slip.pdf')) return json({ token: 'A'.repeat(43) });
  if (method === 'POST' && url === '/consults') return json({ studyInstanceUid: study, specialist: { name: 'Route Walk' }, message: 'route walk' });
  if (method === 'POST' && url.endsWith('/answer')) return json({ text: 'route walk' });
  if (method === 'POST' && url.endsWith('/verdict')) return json({ verdict: 'right' });
  // Curation: about a study nobody stored, so the walk changes nothing (the handler answers 404).
  if (method === 'POST' && url === '/curation/rejections') return json({ studyInstanceUid: '9.9.9', reason: '113001' });
  if (method === 'POST' && url === '/curation/move') return json({ from: { studyInstanceUid: '9.9.9' }, to: { studyInstanceUid: '9.9.8' } });
  if (method === 'POST' && url.endsWith('/split')) return json({ seriesInstanceUids: ['9.9.9.1'] });
  if (method === 'POST' && url.endsWith('/merge')) return json({ into: '9.9.8' });
  return { headers: {} };
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer, { PACS_AUTH_ROLE_PERMISSIONS: roleEnv }));
  const stored = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: `Bearer ${await issuer.token({ roles: ['uploader'] })}` },
    payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 64, columns: 64 }) }]),
  });
  expect(stored.statusCode).toBe(200);
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
});

describe('every route declares who may use it', () => {
  it('lists each DICOMweb, AI, live and service route with a permission', () => {
    const table = t.app.declaredRoutes();
    const permissionOf = (method: string, url: string) => table.find((route) => route.method === method && route.url === url)?.permission;
    expect(permissionOf('GET', '/dicomweb/studies')).toBe('read');
    expect(permissionOf('POST', '/dicomweb/studies')).toBe('store');
    expect(permissionOf('GET', '/dicomweb/studies/:study/series/:series/instances/:instance/frames/:frames')).toBe('read');
    expect(permissionOf('POST', '/ai/models/:id/detect')).toBe('ai');
    expect(permissionOf('POST', '/ai/models/:id/classify')).toBe('ai');
    expect(permissionOf('POST', '/ai/studies/:study/series/:series/analyses')).toBe('ai');
    expect(permissionOf('GET', '/live')).toBe('ai');
    expect(permissionOf('POST', '/his/orders')).toBe('his');
    expect(permissionOf('GET', '/his/worklist')).toBe('read');
    expect(permissionOf('GET', '/healthz')).toBe('public');
    expect(permissionOf('GET', '/api')).toBe('public');
    expect(table.length).toBeGreaterThan(40);
  });

  it('declares an audit action with every non-public route, taken from the route and not its URL', () => {
    const table = t.app.declaredRoutes();
    const undeclared = table.filter((route) => route.permission !== 'public' && route.audit === undefined);
    expect(undeclared.map((route) => `${route.method} ${route.url}`)).toEqual([]);
    const auditOf = (method: string, url: string) => table.find((route) => route.method === method && route.url === url)?.audit;
    expect(auditOf('GET', '/dicomweb/studies')).toEqual({ action: 'query', interface: 'dicomweb', queryLevel: 'study' });
    expect(auditOf('GET', '/dicomweb/studies/:study/series/:series/instances')).toEqual({ action: 'query', interface: 'dicomweb', queryLevel: 'instance' });
    expect(auditOf('GET', '/dicomweb/studies/:study')).toEqual({ action: 'retrieve', interface: 'dicomweb' });
    expect(auditOf('POST', '/dicomweb/studies')).toEqual({ action: 'store', interface: 'dicomweb' });
    expect(auditOf('POST', '/ai/models/:id/detect')).toEqual({ action: 'ai-run', interface: 'ai' });
    expect(auditOf('DELETE', '/ai/analyses/:id')).toEqual({ action: 'ai-cancel', interface: 'ai' });
    expect(auditOf('GET', '/ai/analyses/:id')).toEqual({ action: 'retrieve', interface: 'ai' });
    expect(auditOf('GET', '/live')).toEqual({ action: 'live-session-start', interface: 'live', selfRecorded: true });
    expect(auditOf('GET', '/admin/audit')).toEqual({ action: 'audit-read', interface: 'admin' });
    expect(auditOf('POST', '/his/orders')).toEqual({ action: 'order-record', interface: 'his', actionCode: 'C' });
    expect(auditOf('GET', '/his/worklist')).toEqual({ action: 'query', interface: 'his', queryLevel: 'worklist' });
    expect(auditOf('GET', '/healthz')).toBeUndefined();
  });

  it('refuses to start when a route forgets to declare its permission', async () => {
    const { default: Fastify } = await import('fastify');
    const { installAccessControl } = await import('./access-control.js');
    const app = Fastify();
    installAccessControl(app, undefined);
    app.get('/forgotten', async () => 'patient data');
    await expect(app.ready()).rejects.toThrow(/Routes without a complete access declaration: GET \/forgotten \(no permission\)/);
  });

  it('refuses to start when a protected route declares no audit action, and starts when it is public', async () => {
    const { default: Fastify } = await import('fastify');
    const { installAccessControl } = await import('./access-control.js');
    const { PUBLIC, routeAccess } = await import('../http/route-access.js');
    const unaudited = Fastify();
    installAccessControl(unaudited, undefined);
    unaudited.get('/unaudited', routeAccess('dicomweb')('read'), async () => 'patient data');
    await expect(unaudited.ready()).rejects.toThrow(/GET \/unaudited \(no audit action\)/);
    const fine = Fastify();
    installAccessControl(fine, undefined);
    fine.get('/health', PUBLIC, async () => 'ok');
    fine.get('/audited', routeAccess('dicomweb')('read', { audit: 'retrieve' }), async () => 'patient data');
    await expect(fine.ready()).resolves.toBeDefined();
    await fine.close();
  });
});

describe('the route table, walked: no token → 401, wrong role → 403, right role → served', () => {
  it('answers every protected route accordingly', async () => {
    const routes = t.app.declaredRoutes().filter((route) => route.permission !== 'public' && route.method !== 'HEAD' && route.url !== '/live');
    expect(routes.length).toBeGreaterThan(30);
    const failures: string[] = [];
    for (const route of routes) {
      const permission = route.permission as Permission;
      const url = concreteUrl(route.url);
      const wrongRole = Object.entries(ROLES).find(([, permissions]) => !(permissions as readonly string[]).includes(permission))![0];
      const right = await issuer.token({ roles: [ROLE_FOR[permission]] });
      const wrong = await issuer.token({ roles: [wrongRole] });
      const send = async (token: string | undefined) => {
        const { payload, headers } = await requestFor(route.method, url);
        return t.app.inject({ method: route.method as 'GET', url, ...(payload === undefined ? {} : { payload }), headers: { ...headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) } });
      };
      const anonymous = await send(undefined);
      const forbidden = await send(wrong);
      const allowed = await send(right);
      const label = `${route.method} ${route.url} (${permission})`;
      if (anonymous.statusCode !== 401 || anonymous.headers['www-authenticate'] !== 'Bearer realm="filmless-pacs"') failures.push(`${label}: no token gave ${anonymous.statusCode}`);
      if (forbidden.statusCode !== 403 || !String(forbidden.headers['www-authenticate']).includes('insufficient_scope')) failures.push(`${label}: role ${wrongRole} gave ${forbidden.statusCode}`);
      // Served: the handler ran and succeeded. Two exceptions where the handler itself answers about
      // the sample data: no job, audit record or order with the sample id, no prior patient to merge (404), and the sample series is not a slide (400).
      const handlerNotFound =
        allowed.statusCode === 404 &&
        (((route.url.includes('/analyses/:id') || route.url === '/admin/audit/:id') && allowed.json().error.code === 'NOT_FOUND') ||
          (route.url.startsWith('/his/') && /^HIS_UNKNOWN_/.test(allowed.json().error.code)) ||
          (route.url.startsWith('/reports/:id') && allowed.json().error.code === 'NOT_FOUND') ||
          (route.url === '/admin/fhir-outbox/:id/retry' && allowed.json().error.code === 'NOT_FOUND') ||
          // Share links and consults: no link or consult with the sample id; a signed-in user is not a share link.
          ((route.url.startsWith('/share/') || route.url.startsWith('/consults/')) && allowed.json().error.code === 'NOT_FOUND') ||
          // Curation: nothing rejected or stored under the sample UIDs the walk names; DELETE removed the
          // sample instance with the first of its routes, so the series and study are gone after it.
          ((route.url.startsWith('/curation/') || route.method === 'DELETE') && allowed.json().error.code === 'NOT_FOUND') ||
          // Storage usage of the sample study, which a DELETE of the walk may have removed.
          (route.url.startsWith('/api/storage/usage/studies/') && allowed.json().error.code === 'NOT_FOUND') ||
          // A verdict on an AI finding: the sample instance is not a stored AI result.
          (route.url.endsWith('/verdict') && allowed.json().error.code === 'NOT_FOUND'));
      // Storage lifecycle: every rule is off by default, so a housekeeping run has nothing to do (409).
      const lifecycleOff = allowed.statusCode === 409 && route.url === '/api/storage/housekeeping' && allowed.json().error.code === 'CONFLICT';
      // Backup: no backup store in the test app, so taking an index backup or verifying the copies has nothing to work on (409).
      const backupOff = allowed.statusCode === 409 && route.url.startsWith('/api/backup/') && allowed.json().error.code === 'CONFLICT';
      // FHIR answers about the sample data with an OperationOutcome: unknown ids (404), a search without
      // the parameter it needs (400), a write to the read-only API (400).
      const fhirAnswered = route.url.startsWith('/fhir/') && allowed.statusCode >= 400 && allowed.statusCode < 500 && allowed.json().resourceType === 'OperationOutcome';
      const notASlide = allowed.statusCode === 400 && route.url.endsWith('/analyses') && /no VL Whole Slide Microscopy/.test(allowed.json().error.message);
      if (!(allowed.statusCode < 300 || handlerNotFound || notASlide || fhirAnswered || lifecycleOff || backupOff)) failures.push(`${label}: role ${ROLE_FOR[permission]} gave ${allowed.statusCode} ${allowed.body.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('serves the public routes without a token, and tells the viewer where to sign in', async () => {
    expect((await t.app.inject('/healthz')).statusCode).toBe(200);
    const api = await t.app.inject('/api');
    expect(api.json().auth).toEqual({ enabled: true, issuer: issuer.issuer, clientId: '', scope: 'openid profile' });
  });

  it('needs sign-in for unknown URLs too, so probing them tells an anonymous client nothing', async () => {
    expect((await t.app.inject('/dicomweb/nothing-here')).statusCode).toBe(401);
    const signedIn = await t.app.inject({ url: '/dicomweb/nothing-here', headers: { authorization: `Bearer ${await issuer.token({ roles: ['reader'] })}` } });
    expect(signedIn.statusCode).toBe(404);
  });
});

describe('tokens that are refused', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    ['expired', () => issuer.token({ roles: ['reader'], expiresIn: -120 }), /expired/],
    ['for another audience', () => issuer.token({ roles: ['reader'], audience: 'someone-else' }), /claim "aud"/],
    ['from another issuer', () => issuer.token({ roles: ['reader'], issuer: 'https://evil.example' }), /claim "iss"/],
    ['signed with a key the issuer does not publish', () => issuer.token({ roles: ['reader'], foreignKey: true }), /signature is not valid/],
    ['unsigned (alg "none")', async () => `${b64({ alg: 'none' })}.${b64({ sub: 'x', roles: ['admin'], iss: issuer.issuer, aud: issuer.audience, exp: 9e9 })}.`, /malformed|algorithm/],
    ['not a JWT at all', async () => 'abc.def', /malformed/],
  ];
  for (const [what, make, message] of cases) {
    it(`refuses a token ${what} with 401 and says why`, async () => {
      const response = await t.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${await make()}` } });
      expect(response.statusCode).toBe(401);
      expect(response.json().error.message).toMatch(message);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="filmless-pacs", error="invalid_token"/);
    });
  }

  it('refuses an Authorization header that is not a bearer token', async () => {
    const response = await t.app.inject({ url: '/dicomweb/studies', headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.message).toContain('"Bearer <token>"');
  });

  it('does not take a token from the query string on ordinary routes (it would end up in logs and history)', async () => {
    const token = await issuer.token({ roles: ['reader'] });
    expect((await t.app.inject(`/dicomweb/studies?access_token=${token}`)).statusCode).toBe(401);
  });

  it('reads roles from a nested claim when configured (Keycloak realm roles)', async () => {
    const nested = await buildTestApp(authEnv(issuer, { PACS_AUTH_ROLES_CLAIM: 'realm_access.roles' }));
    try {
      const token = await issuer.token({ extraClaims: { realm_access: { roles: ['reader'] } } });
      expect((await nested.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    } finally {
      await nested.close();
    }
  });

  it('answers 503 (not 401, not 500) while the sign-in provider cannot be reached', async () => {
    const down = await buildTestApp({ ...authEnv(issuer), PACS_AUTH_ISSUER: 'http://127.0.0.1:9' });
    try {
      const response = await down.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${await issuer.token({ roles: ['reader'] })}` } });
      expect(response.statusCode).toBe(503);
      expect(response.json().error.code).toBe('AUTH_UNAVAILABLE');
    } finally {
      await down.close();
    }
  });

  it('fetches the signing keys once, not per request', () => {
    expect(issuer.hits.get('/.well-known/openid-configuration')).toBeLessThanOrEqual(3);
    expect(issuer.hits.get('/jwks')).toBeLessThanOrEqual(3);
  });
});

describe('the live WebSocket', () => {
  let url: string;
  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    url = `ws://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/live`;
  });

  const open = (address: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; socket?: WebSocket }>((resolve) => {
      const socket = new WebSocket(address, { headers });
      socket.once('open', () => resolve({ status: 101, socket }));
      socket.once('unexpected-response', (request, response) => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0 });
      });
      socket.once('error', () => resolve({ status: 0 }));
    });

  it('refuses the upgrade without a token (401) and for a role without AI (403)', async () => {
    expect((await open(url)).status).toBe(401);
    expect((await open(`${url}?access_token=${await issuer.token({ roles: ['reader'] })}`)).status).toBe(403);
  });

  it('opens with a token in the query (browsers cannot set headers on WebSocket) or in the header', async () => {
    for (const attempt of [await open(`${url}?access_token=${await issuer.token({ roles: ['ai-only'] })}`), await open(url, { authorization: `Bearer ${await issuer.token({ roles: ['ai-only'] })}` })]) {
      expect(attempt.status).toBe(101);
      attempt.socket!.close();
    }
  });

  it('refuses to record a session for a user who may run AI but not store', async () => {
    const { socket } = await open(`${url}?access_token=${await issuer.token({ roles: ['ai-only'] })}`);
    const reply = new Promise<Record<string, unknown>>((resolve) => socket!.once('message', (data) => resolve(JSON.parse(String(data)))));
    socket!.send(JSON.stringify({ type: 'start', model: 'bright-spot', record: true, study: { patientId: 'LIVE-AUTH', patientName: 'Test^Auth' } }));
    expect(await reply).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
    socket!.close();
  });
});

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
