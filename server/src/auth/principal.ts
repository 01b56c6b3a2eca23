/**
 * Who is making a request, once authenticated. One per HTTP request / WebSocket session / DIMSE
 * association; the audit trail records it, authorization checks its permissions.
 */
import type { FastifyRequest } from 'fastify';
import { PERMISSIONS, type Permission } from './permissions.js';

export { PERMISSIONS, type Permission, type RoutePermission } from './permissions.js';

export interface Principal {
  /** The token's `sub`, or a fixed name when auth is off ("anonymous") or for DIMSE ("AE:<title>"). */
  readonly subject: string;
  /** A display name for the audit trail (`preferred_username`/`name` claim), never a patient's. */
  readonly name?: string;
  readonly roles: readonly string[];
  readonly permissions: ReadonlySet<Permission>;
  /** How the principal was established. */
  readonly kind: 'anonymous' | 'token' | 'dimse';
}

/** Auth off (embedded default on loopback): every caller may do everything. */
export const ANONYMOUS: Principal = Object.freeze({
  subject: 'anonymous',
  roles: [],
  permissions: new Set<Permission>(PERMISSIONS),
  kind: 'anonymous',
});

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook before any handler runs (ANONYMOUS when auth is off). */
    principal?: Principal;
  }
}

export function principalOf(request: FastifyRequest): Principal {
  return request.principal ?? ANONYMOUS;
}
