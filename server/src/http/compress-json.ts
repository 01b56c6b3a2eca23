/**
 * Content coding of JSON responses (RFC 9110 §8.4, §12.5.3): QIDO-RS results, the AI, slide analysis,
 * orders, audit and FHIR APIs, OpenAPI. A JSON body of at least `minBytes` is sent brotli-compressed
 * when the client accepts `br`, else gzip when it accepts `gzip`, else as it is; every JSON response
 * says `Vary: Accept-Encoding`, compressed or not, and a strong ETag gets the coding as a suffix (a
 * compressed body is another representation).
 *
 * Only JSON (`application/json`, `application/*+json`) built in memory is touched: pixel data (frames,
 * tiles, rendered images, bulk data) is compressed already or large and streamed, the viewer's files
 * are precompressed at build time (viewer-static.ts), streamed JSON (GeoJSON exports, Server-Sent
 * Events) is left as it is, and a route that negotiates its own coding (it varies on Accept-Encoding
 * already: WADO-RS metadata, which keeps its gzip'ed bodies cached) is not compressed again.
 *
 * Why not @fastify/compress: it compresses by a list of compressible types that includes
 * text/event-stream and would need opting out of streams and multipart bodies route by route; the JSON
 * bodies here are strings in memory, so one onSend hook over node:zlib is all that is needed.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply } from 'fastify';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** Below this, compression saves less than it costs. */
export const JSON_COMPRESS_MIN_BYTES = 1024;
/** Brotli quality for responses built per request: 5 is faster than gzip -6 and smaller. */
const BROTLI_QUALITY = 5;

export type ContentCoding = 'br' | 'gzip';

/**
 * The coding to use for a request's Accept-Encoding: `br` when accepted (q > 0, by name or `*`) at
 * least as much as gzip, else `gzip`, else none (identity).
 */
export function negotiateContentCoding(header: string | string[] | undefined): ContentCoding | undefined {
  if (header === undefined) return undefined;
  const q: Record<string, number> = {};
  for (const item of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [name = '', ...params] = item.split(';').map((part) => part.trim());
    if (name === '') continue;
    let quality = 1;
    for (const param of params) {
      const match = /^q=([0-9.]+)$/i.exec(param);
      if (match) quality = Number(match[1]);
    }
    const coding = name.toLowerCase() === 'x-gzip' ? 'gzip' : name.toLowerCase();
    q[coding] = Math.max(q[coding] ?? 0, quality);
  }
  const of = (coding: ContentCoding) => q[coding] ?? q['*'] ?? 0;
  const br = of('br');
  const gz = of('gzip');
  if (br > 0 && br >= gz) return 'br';
  if (gz > 0) return 'gzip';
  return undefined;
}

const isJson = (contentType: string) => /^application\/(?:[\w.+-]+\+)?json(?:\s*;|$)/i.test(contentType.trim());

function varyNames(reply: FastifyReply): string[] {
  const current = reply.getHeader('vary');
  return (Array.isArray(current) ? current.join(',') : String(current ?? ''))
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
}

export function installJsonCompression(app: FastifyInstance, minBytes = JSON_COMPRESS_MIN_BYTES): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if (!isJson(String(reply.getHeader('content-type') ?? ''))) return payload;
    const vary = varyNames(reply);
    // A route that already varies on Accept-Encoding chose its coding itself (WADO-RS metadata, whose
    // gzip'ed bodies are cached by ETag): left as it is.
    if (vary.some((n) => n === '*' || n.toLowerCase() === 'accept-encoding')) return payload;
    void reply.header('vary', [...vary, 'Accept-Encoding'].join(', '));
    if (reply.getHeader('content-encoding') !== undefined) return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    if (body.length < minBytes) return payload;
    const coding = negotiateContentCoding(request.headers['accept-encoding']);
    if (coding === undefined) return payload;
    const compressed =
      coding === 'br'
        ? await brotli(body, { params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } })
        : await gzipAsync(body, { level: 6 });
    void reply.header('content-encoding', coding);
    void reply.removeHeader('content-length');
    const etag = reply.getHeader('etag');
    if (typeof etag === 'string' && etag.endsWith('"')) void reply.header('etag', `${etag.slice(0, -1)}-${coding}"`);
    return compressed;
  });
}
