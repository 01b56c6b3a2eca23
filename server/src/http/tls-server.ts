/**
 * HTTPS, and HTTP/2 over it (PACS_TLS_CERT_FILE / PACS_TLS_KEY_FILE, PACS_HTTP2). On a link with 100–150
 * ms of round trip, HTTP/1.1's six connections per origin queue the viewer's frame and tile requests
 * behind each other; HTTP/2 multiplexes them all over one connection (and one TLS handshake). Browsers
 * speak HTTP/2 over TLS only, so it is offered with TLS, chosen by ALPN, with HTTP/1.1 still served on
 * the same port (`allowHTTP1`) for clients without HTTP/2 and for WebSocket upgrades (`/live`; RFC 8441
 * WebSockets over HTTP/2 are not offered, so browsers open them over HTTP/1.1).
 *
 * The hostile-input bounds of hardening.ts carry over: HTTP/1.1 connections of the HTTP/2 server get
 * the same header size, header deadline and no total request deadline (Node's HTTP/2 server takes
 * them as properties, not options); HTTP/2 header lists are bounded by the same size (advertised as
 * SETTINGS_MAX_HEADER_LIST_SIZE, answered 431 beyond) and idle sessions are closed after the idle
 * time-out (Fastify's http2SessionTimeout). The header deadline has no HTTP/2 counterpart: a stream
 * whose headers never complete is not a request yet, and its session is closed when idle.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { LimitsConfig, TlsConfig } from '../config.js';
import { nodeServerOptions } from './hardening.js';

/** Fastify options for plain HTTP (null), HTTPS with HTTP/1.1 only, or HTTPS with HTTP/2 and HTTP/1.1. */
export function tlsServerOptions(tls: TlsConfig | null, limits: LimitsConfig['http']): Record<string, unknown> {
  if (tls === null) return {};
  const credentials = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  if (!tls.http2) return { https: { ...nodeServerOptions(limits), ...credentials } };
  return {
    http2: true,
    http2SessionTimeout: limits.idleTimeoutMs > 0 ? limits.idleTimeoutMs : 72_000,
    https: { ...credentials, allowHTTP1: true, settings: { maxHeaderListSize: limits.maxHeaderBytes } },
  };
}

/**
 * On an HTTP/2 server (with TLS and PACS_HTTP2), before listen: its HTTP/1.1 connections get the bounds
 * of nodeServerOptions and Fastify's keep-alive time-out (Node's HTTP/2 server takes them as properties,
 * read when a connection arrives; the header deadline check starts at listen). Closing it ends idle
 * HTTP/1.1 connections (Node) and HTTP/2 sessions (Fastify) as for the HTTP/1.1 server.
 */
export function prepareHttp2Server(app: FastifyInstance, tls: TlsConfig | null, limits: LimitsConfig['http']): void {
  if (tls === null || !tls.http2) return;
  const options = nodeServerOptions(limits);
  Object.assign(app.server, {
    maxHeaderSize: options.maxHeaderSize,
    headersTimeout: options.headersTimeout,
    requestTimeout: options.requestTimeout,
    connectionsCheckingInterval: options.connectionsCheckingInterval,
    keepAliveTimeout: 72_000,
  });
  // HTTP/2 header lists: Node's HTTP/2 server advertises SETTINGS_MAX_HEADER_LIST_SIZE but does not refuse
  // a larger list (its own hard limit is 64 KiB), so the bound is checked here, first of all hooks.
  app.addHook('onRequest', async (request, reply) => {
    if (request.raw.httpVersionMajor < 2) return;
    let size = 0;
    const raw = request.raw.rawHeaders;
    for (const entry of raw) size += entry.length + 2;
    if (size > limits.maxHeaderBytes) {
      void reply.code(431).send({ error: { code: 'BAD_REQUEST', message: `Request headers are larger than ${limits.maxHeaderBytes} bytes (PACS_HTTP_MAX_HEADER_BYTES)` } });
    }
  });
}
