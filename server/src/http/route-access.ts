/**
 * What a route declares about access, in its options: the permission it needs and the audit action a
 * request to it is recorded as, together, e.g.
 *
 *     const requires = routeAccess('dicomweb');
 *     app.get('/studies/:study', requires('read', { audit: 'retrieve' }), handler);
 *
 * `routeAccess(interface)` fixes where the requests come in (the audit record's `interface`) once per
 * routes file. Access control (auth/access-control.ts) enforces the permission; the audit hook
 * (audit/audit-http.ts) reads the action from here, never from the URL. The server refuses to start
 * when a route declares no permission, or a permission other than `public` without an audit action.
 *
 * This module and the two leaves it names (auth/permissions.ts, audit/audit-vocabulary.ts) are all a
 * routes file needs to import about access and audit.
 */
import type { RoutePermission } from '../auth/permissions.js';
import type { AuditAction, AuditActionCode, AuditInterface, AuditObject, LiveAuditEvent } from '../audit/audit-vocabulary.js';

export type { AuditObject, LiveAuditEvent } from '../audit/audit-vocabulary.js';
export { storedObjects } from '../audit/audit-vocabulary.js';

/** How a request to the route is audited. */
export interface RouteAudit {
  action: AuditAction;
  interface: AuditInterface;
  /** Searches (`query`): the level the record names (`study`, `series`, `instance`). */
  queryLevel?: string;
  /** Actions whose ATNA EventActionCode depends on the route (`order-record`: C, R, U, D): recorded as `detail.eventActionCode`. */
  actionCode?: AuditActionCode;
  /**
   * The route records its own events (the live WebSocket: start and end of a session, since an upgraded
   * connection has no HTTP response); the hook then hands it `request.recordLive` and records nothing.
   */
  selfRecorded?: boolean;
}

/**
 * Whether a share link's principal (auth/principal.ts `scope`) may call the route. DICOMweb reads are
 * confined by access control from their `:study` / `:series` parameters and, for searches, a forced
 * filter, without declaring anything; every other route refuses a link unless it declares `link:
 * 'self'`: it serves the link itself (what it shares, its report, the consult it was made for) and its
 * handler reads `request.principal.scope`.
 */
export type LinkUse = 'self';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Every route declares what it needs; the server refuses to start if one does not. */
    permission?: RoutePermission;
    /** Every non-public route declares how it is audited; the server refuses to start if one does not. */
    audit?: RouteAudit;
    /**
     * The token may come as `?access_token=` (RFC 6750 §2.3) because browsers cannot set headers on
     * this route's transport (WebSocket, EventSource). Never on routes a header can reach.
     */
    tokenInQuery?: boolean;
    /** A share link's principal may call this route (see LinkUse). */
    link?: LinkUse;
  }
  interface FastifyRequest {
    /** Studies, series, instances the handler touched beyond those its URL names (STOW-RS: each stored instance). */
    auditObjects?: AuditObject[];
    /** Small facts for the audit record (no patient data). */
    auditDetail?: Record<string, string | number | boolean>;
    /** Routes declared `selfRecorded`: records one of their events (set by the audit hook when auditing is on). */
    recordLive?: (event: LiveAuditEvent) => void;
  }
}

export interface AccessOptions {
  /** The audit action; required unless the permission is `public`. */
  audit?: AuditAction;
  queryLevel?: string;
  /** The ATNA EventActionCode of this route's records, for actions where it varies (`order-record`, `patient-record`). */
  actionCode?: AuditActionCode;
  selfRecorded?: boolean;
  tokenInQuery?: boolean;
  /** A share link's principal may call the route, which then confines it itself (LinkUse). */
  link?: LinkUse;
}

export interface RouteAccessConfig {
  config: { permission: RoutePermission; audit?: RouteAudit; tokenInQuery?: boolean; link?: LinkUse };
}

/** Route options declaring a route's permission and audit action (see the module comment). */
export type Requires = (permission: RoutePermission, options?: AccessOptions) => RouteAccessConfig;

/** The `requires` of the routes of one interface (`dicomweb`, `ai`, `live`, `admin`). */
export function routeAccess(via: AuditInterface): Requires {
  return (permission, options = {}) => {
    const { audit, queryLevel, actionCode, selfRecorded, tokenInQuery, link } = options;
    return {
      config: {
        permission,
        ...(audit === undefined
          ? {}
          : {
              audit: {
                action: audit,
                interface: via,
                ...(queryLevel === undefined ? {} : { queryLevel }),
                ...(actionCode === undefined ? {} : { actionCode }),
                ...(selfRecorded === true ? { selfRecorded } : {}),
              },
            }),
        ...(tokenInQuery === undefined ? {} : { tokenInQuery }),
        ...(link === undefined ? {} : { link }),
      },
    };
  };
}

/** Public routes (health, the viewer's files, the service description): no token, no audit record. */
export const PUBLIC: RouteAccessConfig = Object.freeze({ config: Object.freeze({ permission: 'public' as const }) });

/** Why a route's declaration is incomplete, or undefined when it is complete. */
export function declarationProblem(config: { permission?: unknown; audit?: RouteAudit } | undefined): string | undefined {
  const permission = config?.permission;
  if (permission === undefined) return 'no permission';
  if (permission !== 'public' && config?.audit === undefined) return 'no audit action';
  return undefined;
}
