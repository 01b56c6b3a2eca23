/**
 * HTTP-level bounds against hostile or broken clients (docs/architecture.md, "Hostile input limits"):
 * header size and header time-out (slow-loris), an idle time-out instead of a total request deadline, and
 * per-client rate limiting. Body-level bounds (STOW size and part count, frame lists, DICOM nesting, decode
 * and render sizes) live with the code that reads those bodies.
 */
import type { ServerOptions } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { isLoopbackHost, type LimitsConfig } from '../config.js';
import { AppError } from '../errors.js';

/**
 * Options for Node's HTTP(S) server (Fastify's `http` option, merged into `https`).
 *  - maxHeaderSize: request line + headers; beyond, Node answers 431 (RFC 6585 §5) and closes.
 *  - headersTimeout: a total deadline for the request line and headers only. A slow-loris client that
 *    trickles a header byte now and then keeps the connection "active", so an idle time-out alone never
 *    fires; this does (Node answers 408 and closes). Checked every `connectionsCheckingInterval`.
 *  - requestTimeout 0: no total deadline for the body. A gigabyte STOW-RS over a thin hospital link may take
 *    an hour and must not be cut while its bytes still flow; the idle time-out (Fastify `connectionTimeout`,
 *    see `idleTimeoutMs`) closes connections on which nothing moves instead.
 */
export function nodeServerOptions(http: LimitsConfig['http']): ServerOptions {
  return {
    maxHeaderSize: http.maxHeaderBytes,
    headersTimeout: http.headersTimeoutMs,
    requestTimeout: 0,
    // Node's default (30 s) would let a slow header block live up to 30 s past its deadline.
    connectionsCheckingInterval: http.headersTimeoutMs > 0 ? Math.min(30_000, Math.max(100, Math.floor(http.headersTimeoutMs / 4))) : 30_000,
  };
}

/** A client sent more requests than PACS_RATE_LIMIT_MAX in the window: 429 + Retry-After (RFC 6585 §4). */
export class TooManyRequestsError extends AppError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('TOO_MANY_REQUESTS', message);
    this.name = 'TooManyRequestsError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Per-client rate limiting (@fastify/rate-limit, in memory, keyed by the client address): every request
 * counts, from a root onRequest hook that must be installed before access control, so requests refused
 * with 401 (e.g. guessing tokens) and unknown URLs count too. Off when `max` is 0. Loopback clients are exempt by default: the embedded
 * deployment serves its own viewer and tools there, and a viewer scrolling a stack or panning a slide
 * legitimately sends hundreds of frame requests a second. Behind a reverse proxy on the same host every
 * client looks like loopback: limit there, or set PACS_RATE_LIMIT_EXEMPT_LOOPBACK=false.
 * The 429 carries Retry-After (set by the plugin) and the project's JSON error body (error-handler.ts).
 */
export async function registerRateLimit(app: FastifyInstance, limits: LimitsConfig['rateLimit']): Promise<void> {
  if (limits.max === 0) return;
  await app.register(rateLimit, {
    // Not per route: route hooks run after the root's access control, which would let 401s go uncounted.
    global: false,
    max: limits.max,
    timeWindow: limits.windowSeconds * 1000,
    ...(limits.exemptLoopback ? { allowList: (request: { ip: string }) => isLoopbackHost(request.ip) } : {}),
    errorResponseBuilder: (_request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new TooManyRequestsError(`Too many requests from this client (more than ${context.max} in ${limits.windowSeconds} s); retry in ${seconds} s`, seconds);
    },
  });
  app.addHook('onRequest', app.rateLimit());
}
