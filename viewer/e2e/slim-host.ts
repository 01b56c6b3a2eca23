/**
 * A minimal stand-in for Slim (the IDC slide microscopy viewer): a loopback static server that serves
 * `slim-page/` (a page that drives dicom-microscopy-viewer the way Slim does), the published, unmodified
 * dicom-microscopy-viewer build (its `dist/dynamic-import/`: the UMD library, its data-loader worker and
 * WASM codecs) under /dicom-microscopy-viewer/, and dicomweb-client's UMD build. It runs on its own
 * origin, so the page calls our DICOMweb server cross-origin, as Slim deployed beside a PACS does.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DICOM_MICROSCOPY_VIEWER, unpackedBundle } from '../../server/src/test-support/npm-bundle.js';
import { repoRoot } from '../../server/src/test-support/shared-data.js';

const PAGE_DIR = fileURLToPath(new URL('./slim-page/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

export interface SlimHost {
  /** Origin of the static server, e.g. http://127.0.0.1:40123 (no trailing slash). */
  origin: string;
  close(): Promise<void>;
}

export async function startSlimHost(): Promise<SlimHost> {
  const dmv = path.join(unpackedBundle(DICOM_MICROSCOPY_VIEWER), 'dist', 'dynamic-import');
  const roots: Array<[string, string]> = [
    ['/dicom-microscopy-viewer/', dmv],
    ['/dicomweb-client/', path.join(repoRoot, 'node_modules', 'dicomweb-client', 'build')],
    ['/', PAGE_DIR],
  ];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://host');
      let pathname = decodeURIComponent(url.pathname);
      if (pathname === '/') pathname = '/index.html';
      // Chromium asks for a favicon; answering it keeps a 404 out of the page's console.
      if (pathname === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      const root = roots.find(([prefix]) => pathname.startsWith(prefix));
      const file = root === undefined ? undefined : path.join(root[1], pathname.slice(root[0].length));
      if (req.method !== 'GET' || file === undefined || !file.startsWith(root![1])) {
        res.writeHead(404).end();
        return;
      }
      try {
        const info = await stat(file);
        if (!info.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': info.size, 'cache-control': 'no-store' });
        createReadStream(file).pipe(res);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
