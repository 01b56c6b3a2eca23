/**
 * Where HTTP requests become audit records: one onResponse hook on the root instance records every
 * request to a route whose declared permission is not `public`, exactly once, refused ones (401, 403)
 * included. What a record names comes from the route (pattern, method, permission) and its URL
 * parameters; a handler that knows more (STOW-RS: each stored instance) puts it on
 * `request.auditObjects`. The live WebSocket records its session start and end itself
 * (`liveAuditRecorder`): an upgraded connection has no HTTP response.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import type { Principal, RoutePermission } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/token-verifier.js';
import { AppError } from '../errors.js';
import { outcomeOfHttpStatus, whoOf, type AuditAction, type AuditInterface, type AuditObject, type AuditOutcome, type AuditRecord, type AuditWho } from './audit-record.js';
import type { AuditTrail } from './audit-trail.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Studies, series, instances the handler touched beyond those its URL names (STOW-RS: each stored instance). */
    auditObjects?: AuditObject[];
    /** Small facts for the audit record (no patient data). */
    auditDetail?: Record<string, string | number | boolean>;
    /** Set when the route records itself (the live WebSocket): the hook then leaves it alone. */
    auditHandled?: boolean;
  }
}

const QIDO_ROUTE = /^\/dicomweb(?:\/studies\/:study(?:\/series\/:series)?)?\/(studies|series|instances)$/;
const QIDO_LEVEL: Record<string, string> = { studies: 'study', series: 'series', instances: 'instance' };

/** What a route does, from its declaration (docs/architecture.md, "Audit trail"). */
export function actionOf(method: string, url: string, permission: RoutePermission): AuditAction {
  if (permission === 'admin') return 'audit-read';
  if (url === '/live') return 'live-session-start';
  if (permission === 'store') return 'store';
  if (permission === 'ai') return method === 'POST' ? 'ai-run' : method === 'DELETE' ? 'ai-cancel' : 'ai-read';
  return QIDO_ROUTE.test(url) ? 'query' : 'retrieve';
}

function interfaceOf(url: string): AuditInterface {
  if (url.startsWith('/ai')) return 'ai';
  if (url.startsWith('/live')) return 'live';
  if (url.startsWith('/admin')) return 'admin';
  return 'dicomweb';
}

/**
 * Installs the recording hook (and, failing closed, the refusal while the audit store cannot be
 * written). Call right after installAccessControl, before any route. `verifier`: to name the user of
 * a 403 (the token was valid, its roles not enough); undefined when auth is off.
 */
export function installAuditHook(app: FastifyInstance, trail: AuditTrail, verifier: TokenVerifier | undefined): void {
  const recorded = new WeakSet<FastifyRequest>();
  const recordOnce = (request: FastifyRequest, reply: FastifyReply, permission: RoutePermission) => {
    if (recorded.has(request) || request.auditHandled === true) return;
    recorded.add(request);
    try {
      trail.record(httpRecord(request, reply, permission, verifier));
    } catch (err) {
      request.log.error({ err: { type: (err as Error).name } }, 'audit record could not be built');
    }
  };
  app.addHook('onRequest', async (request, reply) => {
    const permission = request.routeOptions.config.permission;
    if (permission === undefined || permission === 'public') return;
    // Fastify runs onResponse on 'finish' (or 'error') only: a response the client abandoned halfway
    // ends with 'close' alone, and is recorded from here (after any onResponse that did run).
    reply.raw.once('close', () => setImmediate(() => recordOnce(request, reply, permission)));
    if (trail.failClosed && !trail.available()) {
      throw new AppError('AUDIT_UNAVAILABLE', 'The audit trail cannot be written at the moment: patient data is not served until it can');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const permission = request.routeOptions.config.permission;
    if (permission === undefined || permission === 'public') return;
    recordOnce(request, reply, permission);
  });
}

function httpRecord(request: FastifyRequest, reply: FastifyReply, permission: RoutePermission, verifier: TokenVerifier | undefined): AuditRecord {
  const url = request.routeOptions.url ?? request.url.split('?')[0]!;
  const action = actionOf(request.method, url, permission);
  const status = reply.statusCode;
  let outcome: AuditOutcome = outcomeOfHttpStatus(status);
  const detail: Record<string, string | number | boolean> = { ...request.auditDetail };
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
    interface: interfaceOf(url),
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
    record.query = { level: QIDO_LEVEL[QIDO_ROUTE.exec(url)![1]!]!, keys };
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

/** One event of a live endoscopy session. */
export interface LiveAuditEvent {
  phase: 'start' | 'end';
  /** 0 started / ended with its recording stored; 4 start refused; 8 recording not stored. */
  outcome: AuditOutcome;
  /** Status-like number for the record: 101 started, 400/403 refused, 200 ended, 500 recording lost. */
  status: number;
  objects: AuditObject[];
  detail?: Record<string, string | number | boolean>;
}

/** The live WebSocket's own recorder (the route has no HTTP response to hook): start and end. */
export function liveAuditRecorder(trail: AuditTrail | undefined, request: FastifyRequest, principal: Principal): ((event: LiveAuditEvent) => void) | undefined {
  if (trail === undefined) return undefined;
  request.auditHandled = true;
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
