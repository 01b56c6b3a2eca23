/**
 * The web viewer (viewer/, built by Vite into viewer/dist) served as static files at `/`. The viewer
 * talks to the server only through DICOMweb and `/ai`, so nothing here knows about it beyond files.
 * When the build is missing (tests that do not build it, a checkout before `npm run build`), `/` says
 * so and everything else works as before.
 *
 * The build writes a brotli (`.br`) and a gzip (`.gz`) copy next to every compressible file
 * (viewer/vite.config.ts, `precompress`): the file sent is chosen by the request's Accept-Encoding
 * (brotli preferred, then gzip, else the file itself), always with `Vary: Accept-Encoding`, and the
 * compressed copies are not routes of their own. Nothing is compressed per request.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** viewer/dist of this checkout (server/src/http or server/dist/http → repository root). */
export const DEFAULT_VIEWER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../viewer/dist');

/** Extensions of the precompressed copies the build writes beside each file. */
export const PRECOMPRESSED_EXTENSIONS = ['.br', '.gz'] as const;

export async function registerViewer(app: FastifyInstance, root = process.env['PACS_VIEWER_DIR'] ?? DEFAULT_VIEWER_DIR): Promise<void> {
  if (!existsSync(path.join(root, 'index.html'))) {
    app.log.warn('viewer not built (viewer/dist missing): run `npm run build`; DICOMweb and /ai work without it');
    app.get('/', async (_request, reply) =>
      reply
        .code(503)
        .type('text/html; charset=utf-8')
        .send('<!doctype html><title>filmless-pacs</title><p>The viewer is not built. Run <code>npm run build</code>. The DICOMweb API is at <a href="/dicomweb/studies">/dicomweb</a>, the service description at <a href="/api">/api</a>.</p>'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    // One route per built file (fixed at build time) instead of a catch-all: unknown paths stay 404 JSON.
    wildcard: false,
    // The .br / .gz copies are chosen by content negotiation, never asked for by name.
    globIgnore: PRECOMPRESSED_EXTENSIONS.map((ext) => `**/*${ext}`),
    // `name.br` for `Accept-Encoding: br`, else `name.gz` for gzip, else the file; Vary: Accept-Encoding.
    preCompressed: true,
    index: ['index.html'],
    setHeaders(res, filePath) {
      // Vite content-hashes everything under assets/; index.html must be revalidated to pick up a new build.
      res.header('Cache-Control', filePath.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
}
