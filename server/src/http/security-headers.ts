/**
 * Response headers that make the archive safe to expose to people outside the hospital network (share
 * links, docs/security.md "Share links"), set once at the root for every response:
 *
 * - `X-Content-Type-Options: nosniff` on every response, data and errors alike (a DICOM JSON body, a
 *   frame, a 404 JSON, a static file): a browser never guesses a type the server did not send.
 * - `Referrer-Policy: no-referrer` on every response: a page opened from a share link (`/s/{token}`)
 *   never sends its URL, with the token, to another site.
 * - A Content-Security-Policy on every HTML page (the viewer, the patient page, the pages of expired
 *   links): scripts only from this origin and never inline (`'wasm-unsafe-eval'` lets the viewer's
 *   WebAssembly codecs compile, it allows no JavaScript eval), images from this origin, `blob:` and
 *   `data:`, requests to this origin (and the sign-in provider when sign-in is on), and no framing by
 *   any page (`frame-ancestors 'none'`; the viewer's own silent sign-in renewal page may be framed by
 *   the viewer, `'self'`).
 *
 * The first two are set on the raw response in the first `onRequest` hook, so responses written past
 * Fastify's reply (streamed multipart bodies) carry them too.
 */
import type { FastifyInstance } from 'fastify';

export interface SecurityHeaderOptions {
  /** The OpenID provider's origin when sign-in is on: the viewer fetches its metadata and tokens, and renews in an iframe. */
  signInOrigin?: string;
}

/** The Content-Security-Policy of the HTML pages (`framedBySelf`: the silent renewal page, framed by the viewer). */
export function contentSecurityPolicy(options: SecurityHeaderOptions, framedBySelf = false): string {
  const provider = options.signInOrigin === undefined || options.signInOrigin === '' ? '' : ` ${options.signInOrigin}`;
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    // Inline style attributes of third-party widgets; never scripts.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "font-src 'self' data:",
    `connect-src 'self'${provider}`,
    "worker-src 'self' blob:",
    `frame-src 'self'${provider}`,
    `frame-ancestors ${framedBySelf ? "'self'" : "'none'"}`,
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
  ].join('; ');
}

/** Installs the hooks; call first, on the root instance, before any other hook or route. */
export function installSecurityHeaders(app: FastifyInstance, options: SecurityHeaderOptions = {}): void {
  const policy = contentSecurityPolicy(options);
  const selfFramedPolicy = contentSecurityPolicy(options, true);
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.setHeader('X-Content-Type-Options', 'nosniff');
    reply.raw.setHeader('Referrer-Policy', 'no-referrer');
    void request;
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.toLowerCase().startsWith('text/html')) {
      const path = request.url.split('?')[0] ?? '';
      void reply.header('Content-Security-Policy', path === '/silent-renew.html' ? selfFramedPolicy : policy);
    }
    return payload;
  });
}
