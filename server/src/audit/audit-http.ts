/**
 * Where HTTP requests become audit records: one onResponse hook on the root instance records every
 * request to a route whose declared permission is not `public`, exactly once, refused ones (401, 403)
 * included. The action, the interface and (for searches) the query level are what the route declared
 * with its permission (http/route-access.ts), never guessed from the URL; the objects come from the URL
 * parameters, and a handler that knows more (STOW-RS: each stored instance) puts them on
 * `request.auditObjects`. A route declared `selfRecorded` (the live WebSocket: an upgraded connection
 * has no HTTP response) gets `request.recordLive` and records its session start and end itself.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import type { Principal } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/token-verifier.js';
import { AppError } from '../errors.js';
import type { RouteAudit } from '../http/route-access.js';
import { outcomeOfHttpStatus, whoOf, type AuditObject, type AuditOutcome, type AuditRecord, type AuditWho } from './audit-record.js';
import type { AuditTrail } from './audit-trail.js';
import type { LiveAuditEvent } from './audit-vocabulary.js';

/**
 * Installs the recording hook (and, failing closed, the refusal while the audit store cannot be
 * written). Call right after installAccessControl, before any route. `verifier`: to name the user of
 * a 403 (the token was valid, its roles not enough); undefined when auth is off.
 */
export function installAuditHook(app: FastifyInstance, trail: AuditTrail, verifier: TokenVerifier | undefined): void {
  const recorded = new WeakSet<FastifyRequest>();
  const recordOnce = (request: FastifyRequest, reply: FastifyReply, audit: RouteAudit) => {
    if (recorded.has(request) || (audit.selfRecorded === true && request.recordLive !== undefined)) return;
    recorded.add(request);
    try {
      trail.record(httpRecord(request, reply, audit, verifier));
    } catch (err) {
      request.log.error({ err: { type: (err as Error).name } }, 'audit record could not be built');
    }
  };
  app.addHook('onRequest', async (request, reply) => {
    const audit = auditOf(request);
    if (audit === undefined) return;
    // Fastify runs onResponse on 'finish' (or 'error') only: a response the client abandoned halfway
    // ends with 'close' alone, and is recorded from here (after any onResponse that did run).
    reply.raw.once('close', () => setImmediate(() => recordOnce(request, reply, audit)));
    if (trail.failClosed && !trail.available()) {
      throw new AppError('AUDIT_UNAVAILABLE', 'The audit trail cannot be written at the moment: patient data is not served until it can');
    }
  });
  // Access control has run (onRequest): a self-recording route records its events under the principal.
  app.addHook('preHandler', async (request) => {
    const audit = auditOf(request);
    if (audit?.selfRecorded === true && request.principal !== undefined) request.recordLive = liveRecorder(trail, request, request.principal);
  });
  app.addHook('onResponse', async (request, reply) => {
    const audit = auditOf(request);
    if (audit !== undefined) recordOnce(request, reply, audit);
  });
}

/** The route's audit declaration; undefined for public routes and unknown URLs (nothing to record). */
function auditOf(request: FastifyRequest): RouteAudit | undefined {
  const config = request.routeOptions.config;
  return config.permission === undefined || config.permission === 'public' ? undefined : config.audit;
}

function httpRecord(request: FastifyRequest, reply: FastifyReply, audit: RouteAudit, verifier: TokenVerifier | undefined): AuditRecord {
  const url = request.routeOptions.url ?? request.url.split('?')[0]!;
  const action = audit.action;
  const status = reply.statusCode;
  let outcome: AuditOutcome = outcomeOfHttpStatus(status);
  const detail: Record<string, string | number | boolean> = { ...(audit.actionCode === undefined ? {} : { eventActionCode: audit.actionCode }), ...request.auditDetail };
  if (!reply.raw.writableEnded && outcome < 8) {
    outcome = 8; // the client went away before the whole response was sent
    detail['incomplete'] = true;
  }
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  const frames = params['frames'] ?? params['frame'];
  if (frames !== undefined) detail['frames'] = frames.slice(0, 256);
  const fromUrl: AuditObject = {
    ...(params['study'] === undefined ? {} : { study: params['study'] }),
    ...(params['series'] === undefined ? {} : { series: params['series'] }),
    ...(params['instance'] === undefined ? {} : { instance: params['instance'] }),
  };
  const objects = mergeObjects(fromUrl, request.auditObjects ?? []);
  const record: AuditRecord = {
    time: Date.now(),
    action,
    outcome,
    status,
    who: whoOfRequest(request, status, verifier),
    clientAddress: request.ip ?? '',
    interface: audit.interface,
    route: `${request.method} ${url}`,
    objects,
    ...(Object.keys(detail).length === 0 ? {} : { detail }),
  };
  if (action === 'query') {
    const keys: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
      if (key === 'access_token') continue; // never a credential in the audit trail
      if (typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))) keys[key] = value as string | string[];
    }
    record.query = { level: audit.queryLevel ?? 'unknown', keys };
  }
  return record;
}

/** The URL's object unless a handler's object is more specific about the same study and series. */
function mergeObjects(fromUrl: AuditObject, fromHandler: AuditObject[]): AuditObject[] {
  if (fromUrl.study === undefined && fromUrl.instance === undefined) return [...fromHandler];
  const covered = fromUrl.instance === undefined && fromHandler.some((object) => object.study === fromUrl.study && (fromUrl.series === undefined || object.series === fromUrl.series));
  return covered ? [...fromHandler] : [fromUrl, ...fromHandler];
}

function whoOfRequest(request: FastifyRequest, status: number, verifier: TokenVerifier | undefined): AuditWho {
  if (request.principal !== undefined) return whoOf(request.principal);
  // Refused before a principal was set. A 403 means the token was verified but its roles were not
  // enough: its claims name the user. Anything else (401, sign-in provider down) has no verified user.
  if (status === 403 && verifier !== undefined) {
    const token = bearerTokenOf(request);
    if (token !== undefined) {
      try {
        return whoOf(verifier.principalOf(decodeJwt(token)));
      } catch {
        // fall through
      }
    }
  }
  return { subject: 'unauthenticated', kind: 'unauthenticated' };
}

function bearerTokenOf(request: FastifyRequest): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  if (match !== null) return match[1];
  if (request.routeOptions.config.tokenInQuery === true) {
    const value = (request.query as Record<string, unknown> | undefined)?.['access_token'];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

/** The recorder a self-recording route (the live WebSocket) gets: its session start and end. */
function liveRecorder(trail: AuditTrail, request: FastifyRequest, principal: Principal): (event: LiveAuditEvent) => void {
  const clientAddress = request.ip ?? '';
  const route = `${request.method} ${request.routeOptions.url ?? '/live'}`;
  return (event) =>
    trail.record({
      time: Date.now(),
      action: event.phase === 'start' ? 'live-session-start' : 'live-session-end',
      outcome: event.outcome,
      status: event.status,
      who: whoOf(principal),
      clientAddress,
      interface: 'live',
      route,
      objects: event.objects,
      ...(event.detail === undefined ? {} : { detail: event.detail }),
    });
}
