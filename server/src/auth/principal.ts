/**
 * Who is making a request, once authenticated. One per HTTP request / WebSocket session / DIMSE
 * association; the audit trail records it, authorization checks its permissions.
 */
import type { FastifyRequest } from 'fastify';

/** What a route may require (issue "Security and reliability"): enforced in one place, auth/authorize.ts. */
export const PERMISSIONS = ['read', 'store', 'ai', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];
/** A route's declared requirement: `public` routes (health, viewer files, /api) need no token. */
export type RoutePermission = Permission | 'public';

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
  interface FastifyContextConfig {
    /** Every route declares what it needs; the server refuses to start if one does not. */
    permission?: RoutePermission;
    /**
     * The token may come as `?access_token=` (RFC 6750 §2.3) because browsers cannot set headers on
     * this route's transport (WebSocket, EventSource). Never on routes a header can reach.
     */
    tokenInQuery?: boolean;
  }
}

export function principalOf(request: FastifyRequest): Principal {
  return request.principal ?? ANONYMOUS;
}

/** Route options declaring a route's permission: `app.get(url, requires('read'), handler)`. */
export function requires(permission: RoutePermission, options: { tokenInQuery?: boolean } = {}): { config: { permission: RoutePermission; tokenInQuery?: boolean } } {
  return { config: { permission, ...options } };
}
