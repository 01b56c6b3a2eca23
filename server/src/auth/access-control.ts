/**
 * Authentication and authorization, enforced in one place for every HTTP route and the WebSocket:
 * each route declares the permission it needs and its audit action (`requires(...)` in its options,
 * http/route-access.ts); the server refuses to start if one does not. With auth off (embedded
 * default, loopback only) every caller is ANONYMOUS and may do everything; with auth on, a bearer token (RFC 6750) is verified and its roles checked.
 *
 * A share link's credential (`Authorization: Bearer share.<credential>`, or the share cookie on GET and
 * HEAD) gives a link principal whatever the sign-in setting, confined to what the link shares
 * (link-scope.ts): an embedded archive without sign-in still gives a link nothing else.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { AppError } from '../errors.js';
import { declarationProblem, type RouteAudit } from '../http/route-access.js';
import { confineToLink } from './link-scope.js';
import { PERMISSIONS, type RoutePermission } from './permissions.js';
import { ANONYMOUS, SHARE_BEARER_PREFIX, SHARE_COOKIE, type LinkCredentials, type Principal } from './principal.js';
import type { TokenVerifier } from './token-verifier.js';

const ROUTE_PERMISSIONS: readonly string[] = [...PERMISSIONS, 'public'];

export interface DeclaredRoute {
  method: string;
  url: string;
  permission: RoutePermission;
  /** Absent only on public routes. */
  audit?: RouteAudit;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with the permission it declared (for the route-table test and administrators). */
    declaredRoutes(): DeclaredRoute[];
  }
}

/**
 * Installs the hooks on the root instance, before any route is registered. `verifier` undefined: auth
 * is off (every request is ANONYMOUS, allowed everything). `links`: share links (sharing/); without it
 * a share credential is refused.
 */
export function installAccessControl(app: FastifyInstance, verifier: TokenVerifier | undefined, links?: LinkCredentials): void {
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (route) => {
    // CORS preflight carries no credentials (Fetch standard, CORS protocol): always public.
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.config?.permission === undefined && methods.every((method) => method === 'OPTIONS')) {
      route.config = { ...route.config, permission: 'public' };
    }
    routes.push(route);
  });
  app.addHook('onReady', async () => {
    // Every route says what it needs and, unless public, how it is audited (http/route-access.ts).
    const problems = routes.flatMap((route) => {
      const config = route.config as { permission?: unknown; audit?: RouteAudit } | undefined;
      const problem = ROUTE_PERMISSIONS.includes(config?.permission as string) || config?.permission === undefined ? declarationProblem(config) : `unknown permission "${String(config.permission)}"`;
      return problem === undefined ? [] : [`${String(route.method)} ${route.url} (${problem})`];
    });
    if (problems.length > 0) {
      throw new AppError('CONFIG_INVALID', `Routes without a complete access declaration: ${problems.join(', ')}`);
    }
  });
  app.addHook('onRequest', async (request, reply) => {
    const credential = linkCredentialOf(request);
    if (credential !== undefined) {
      if (request.routeOptions.config.permission === 'public') return;
      if (links === undefined) throw new AppError('UNAUTHENTICATED', 'This archive has no share links');
      let principal: Principal;
      try {
        principal = await links.principalOf(credential);
      } catch (err) {
        // An expired, revoked or locked link is still named in the audit record of its refusal.
        const refused = (err as { linkPrincipal?: Principal }).linkPrincipal;
        if (refused !== undefined) request.principal = refused;
        throw err;
      }
      request.principal = principal;
      if (principal.scope === undefined || confineToLink(request, principal.scope).kind === 'serve') return;
      // A search for something the link does not share: an empty result, as for any UID nobody stored.
      return reply.code(200).type('application/dicom+json').send([]);
    }
    request.principal = await authorize(request, verifier);
  });
  app.decorate('declaredRoutes', () =>
    routes.flatMap((route) =>
      (Array.isArray(route.method) ? route.method : [route.method]).map((method) => ({
        method,
        url: route.url,
        permission: route.config!.permission!,
        ...(route.config?.audit === undefined ? {} : { audit: route.config.audit }),
      })),
    ),
  );
}

async function authorize(request: FastifyRequest, verifier: TokenVerifier | undefined): Promise<Principal> {
  // Unknown URLs (404) have no declared permission: they still need a signed-in caller, so that
  // probing the URL space tells an anonymous client nothing.
  const permission = request.routeOptions.config.permission;
  if (verifier === undefined || permission === 'public') return ANONYMOUS;
  const token = bearerToken(request);
  if (token === undefined) throw new AppError('UNAUTHENTICATED', 'Sign-in required: send an access token as "Authorization: Bearer <token>"');
  const principal = await verifier.verify(token);
  if (permission !== undefined && !principal.permissions.has(permission)) {
    const roles = principal.roles.length > 0 ? `roles ${principal.roles.join(', ')}` : 'no roles';
    throw new AppError('FORBIDDEN', `This request needs the "${permission}" permission, which the token's ${roles} do not grant`);
  }
  return principal;
}

/**
 * A share link's credential: `Authorization: Bearer share.<credential>`, or the share session cookie on
 * GET and HEAD only (what a phone browser sends for an image or a download; never on a write, so a page
 * of another site cannot act with it). An Authorization header of any other kind wins over the cookie.
 */
function linkCredentialOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer[ ]+share\.([A-Za-z0-9_-]{16,128})\s*$/i.exec(header);
    if (match !== null) return match[1];
    if (header.toLowerCase().startsWith(`bearer ${SHARE_BEARER_PREFIX}`)) throw new AppError('UNAUTHENTICATED', 'The share link credential is malformed');
    return undefined;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
  const cookies = request.headers.cookie;
  if (cookies === undefined) return undefined;
  for (const part of cookies.split(';')) {
    const [name, value] = part.split('=', 2).map((s) => s.trim());
    if (name === SHARE_COOKIE && value !== undefined && /^[A-Za-z0-9_-]{16,128}$/.test(value)) return value;
  }
  return undefined;
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header);
    if (match === null) throw new AppError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>"');
    return match[1];
  }
  if (request.routeOptions.config.tokenInQuery === true) {
    const value = (request.query as Record<string, unknown> | undefined)?.['access_token'];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}
