/**
 * Hosts the published, unmodified OHIF Viewer v3 build (`@ohif/app`'s `dist/`, see
 * server/src/test-support/npm-bundle.ts) on its own loopback origin for interoperability tests:
 * every file as shipped, except `/app-config.js`, which is replaced by a configuration whose only data
 * source is our DICOMweb server; unknown paths answer index.html (OHIF is a single-page app with
 * client-side routes such as /viewer, like the package's own serve.json / _redirects rewrites).
 *
 * No COOP/COEP headers: the package's `_headers` sets none, and the basic viewer (stack viewports)
 * does not need SharedArrayBuffer; so our server needs CORS only, no Cross-Origin-Resource-Policy.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { OHIF_APP, unpackedBundle } from '../../server/src/test-support/npm-bundle.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.xml': 'application/xml',
  '.onnx': 'application/octet-stream',
};

/** OHIF's `window.config` with one DICOMweb data source: our server's `/dicomweb` at `pacsUrl`. */
export function ohifAppConfig(pacsUrl: string): string {
  const root = `${pacsUrl}/dicomweb`;
  const config = {
    name: 'pacs-interop-test',
    routerBasename: '/',
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    // The "investigational use only" banner would cover part of the page.
    investigationalUseDialog: { option: 'never' },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
    showErrorDetails: 'always',
    defaultDataSourceName: 'dicomweb',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'dicomweb',
        configuration: {
          friendlyName: 'PACS under test',
          name: 'pacs',
          qidoRoot: root,
          wadoRoot: root,
          wadoUriRoot: root,
          // QIDO-RS includefield=: we answer it (PS3.18 §8.3.4.1), so OHIF may ask for the attributes it shows.
          qidoSupportsIncludeField: true,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: true,
          supportsWildcard: true,
          // A real archive, not a static file tree: full QIDO-RS query support.
          staticWado: false,
          singlepart: 'bulkdata,video',
          bulkDataURI: { enabled: true, relativeResolution: 'studies' },
          omitQuotationForMultipartRequest: true,
        },
      },
    ],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

export interface OhifHost {
  url: string;
  /** Points the served app-config.js at our server (its origin must know this host's URL for CORS first). */
  configure(pacsUrl: string): void;
  /** The OHIF version served (from the package). */
  version: string;
  close(): Promise<void>;
}

/** Starts the static host on 127.0.0.1 (random port); app-config.js answers 503 until `configure`. */
export async function startOhifHost(): Promise<OhifHost> {
  const dist = path.join(unpackedBundle(OHIF_APP), 'dist');
  let appConfig: string | undefined;
  const server = http.createServer((req, res) => {
    void (async () => {
      const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://host').pathname);
      if (pathname === '/app-config.js') {
        if (appConfig === undefined) {
          res.writeHead(503).end('not configured');
          return;
        }
        res.writeHead(200, { 'content-type': TYPES['.js']!, 'cache-control': 'no-store' });
        res.end(appConfig);
        return;
      }
      let file = path.join(dist, path.normalize(pathname));
      if (!file.startsWith(dist + path.sep)) file = path.join(dist, 'index.html');
      let info = await stat(file).catch(() => undefined);
      // SPA routes (/, /viewer, ...) and unknown paths: index.html, as OHIF's serve.json rewrites.
      if (info === undefined || !info.isFile()) {
        file = path.join(dist, 'index.html');
        info = await stat(file);
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': info.size });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      createReadStream(file).pipe(res);
    })().catch((err: Error) => {
      res.writeHead(500).end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    version: OHIF_APP.version,
    configure(pacsUrl) {
      appConfig = ohifAppConfig(pacsUrl);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
