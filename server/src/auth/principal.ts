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
  /** How the principal was established: `link` is a share link's credential (sharing/), confined by `scope`. */
  readonly kind: 'anonymous' | 'token' | 'dimse' | 'link';
  /**
   * Present on a share link's principal (subject `link:<id>`, no permissions): what the link shares.
   * Access control (access-control.ts, link-scope.ts) confines every request made with it to this.
   */
  readonly scope?: LinkScope;
}

/**
 * What one share link opens: one study, optionally only some of its series; read-only. A consult link
 * (sharing/consult-service.ts) also names its consult.
 */
export interface LinkScope {
  readonly kind: 'link';
  readonly linkId: string;
  readonly purpose: 'patient' | 'consult';
  readonly study: string;
  /** Only these series of the study; undefined: the whole study. */
  readonly series?: readonly string[];
  /** Whether the study's signed report (its PDF) is shared too. */
  readonly includeReport: boolean;
  /** The consult this link was made for (purpose `consult`). */
  readonly consultId?: string;
}

/**
 * The port through which access control turns a share link's credential (`Authorization: Bearer
 * share.<credential>`, or the share cookie on GET/HEAD) into its principal; implemented by sharing/
 * and wired by app.ts, so auth/ knows nothing of how links are stored. Throws an AppError (401 unknown
 * credential or PIN needed, 410 expired or revoked) when the credential opens nothing; one about a known
 * link carries it as `linkPrincipal` (no scope), so the audit record of the refusal names the link.
 */
export interface LinkCredentials {
  principalOf(credential: string): Promise<Principal>;
}

/** The name of the HttpOnly cookie a share session is also set in (sharing routes; read here on GET/HEAD). */
export const SHARE_COOKIE = 'pacs_share';
/** The prefix of a share credential in an Authorization header: `Bearer share.<credential>`. */
export const SHARE_BEARER_PREFIX = 'share.';

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
