/**
 * The server side of the viewer: `/` serves the built viewer (index.html revalidated, hashed assets
 * immutable), `/api` the service description, and a missing build still lets the server start.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../server/src/test-support/build-test-app.js';

const apps: TestApp[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const a of apps) await a.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function appWithViewerDir(dir: string): Promise<TestApp> {
  const before = process.env['PACS_VIEWER_DIR'];
  process.env['PACS_VIEWER_DIR'] = dir;
  try {
    const t = await buildTestApp({ PACS_AI_ENABLED: 'false' });
    apps.push(t);
    return t;
  } finally {
    if (before === undefined) delete process.env['PACS_VIEWER_DIR'];
    else process.env['PACS_VIEWER_DIR'] = before;
  }
}

describe('viewer static files', () => {
  it('serves index.html at / and hashed assets as immutable', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'viewer-dist-'));
    dirs.push(dir);
    await mkdir(path.join(dir, 'assets'));
    await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>viewer</title>');
    await writeFile(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    const t = await appWithViewerDir(dir);
    const index = await t.app.inject({ url: '/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    const asset = await t.app.inject({ url: '/assets/index-abc123.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    // Unknown paths stay the JSON 404 of the API; DICOMweb and /api are untouched.
    const missing = await t.app.inject({ url: '/assets/nope.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('NOT_FOUND');
    // `auth` tells the viewer whether and where to sign in (sign-in is off here).
    expect((await t.app.inject({ url: '/api' })).json()).toEqual({ name: 'filmless-pacs', dicomweb: '/dicomweb', viewer: '/', auth: { enabled: false } });
    expect((await t.app.inject({ url: '/dicomweb/studies' })).statusCode).toBe(200);
  });

  it('sends the precompressed copy the client accepts (brotli, else gzip, else the file), always with Vary: Accept-Encoding', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'viewer-dist-'));
    dirs.push(dir);
    await mkdir(path.join(dir, 'assets'));
    const js = 'export const viewer = 1;\n'.repeat(200);
    // The copies differ in content, so the test sees which one was sent.
    await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>viewer</title>');
    await writeFile(path.join(dir, 'index.html.br'), brotliCompressSync('<!doctype html><title>viewer (br)</title>'));
    await writeFile(path.join(dir, 'assets', 'main-abc123.js'), js);
    await writeFile(path.join(dir, 'assets', 'main-abc123.js.br'), brotliCompressSync(`${js}// br`));
    await writeFile(path.join(dir, 'assets', 'main-abc123.js.gz'), gzipSync(`${js}// gz`));
    await writeFile(path.join(dir, 'assets', 'codec-abc123.wasm'), Buffer.alloc(4000, 1));
    await writeFile(path.join(dir, 'assets', 'codec-abc123.wasm.br'), brotliCompressSync(Buffer.alloc(4000, 1)));
    const t = await appWithViewerDir(dir);
    const asset = (acceptEncoding?: string) => t.app.inject({ url: '/assets/main-abc123.js', headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });

    for (const [acceptEncoding, coding, body] of [
      ['gzip, deflate, br', 'br', `${js}// br`],
      ['br', 'br', `${js}// br`],
      ['gzip, deflate', 'gzip', `${js}// gz`],
      ['br;q=0, gzip', 'gzip', `${js}// gz`],
      ['identity', undefined, js],
      [undefined, undefined, js],
    ] as const) {
      const res = await asset(acceptEncoding);
      expect(res.statusCode, String(acceptEncoding)).toBe(200);
      expect(res.headers['content-encoding'], String(acceptEncoding)).toBe(coding);
      expect(String(res.headers['vary']).toLowerCase(), String(acceptEncoding)).toContain('accept-encoding');
      expect(res.headers['content-type']).toMatch(/^(text|application)\/javascript/);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      const decoded = coding === 'br' ? brotliDecompressSync(res.rawPayload) : coding === 'gzip' ? gunzipSync(res.rawPayload) : res.rawPayload;
      expect(decoded.toString(), String(acceptEncoding)).toBe(body);
    }
    // A file with a brotli copy only: gzip clients get the file itself.
    const wasm = await t.app.inject({ url: '/assets/codec-abc123.wasm', headers: { 'accept-encoding': 'gzip' } });
    expect(wasm.headers['content-encoding']).toBeUndefined();
    expect(wasm.headers['content-type']).toBe('application/wasm');
    expect(String(wasm.headers['vary']).toLowerCase()).toContain('accept-encoding');
    const wasmBr = await t.app.inject({ url: '/assets/codec-abc123.wasm', headers: { 'accept-encoding': 'br' } });
    expect(wasmBr.headers['content-encoding']).toBe('br');
    expect(wasmBr.headers['content-type']).toBe('application/wasm');
    // index.html too, still revalidated.
    const index = await t.app.inject({ url: '/', headers: { 'accept-encoding': 'br' } });
    expect(index.headers['content-encoding']).toBe('br');
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(brotliDecompressSync(index.rawPayload).toString()).toContain('viewer (br)');
    // The copies are chosen by negotiation, not routes of their own.
    expect((await t.app.inject({ url: '/assets/main-abc123.js.br' })).statusCode).toBe(404);
    expect((await t.app.inject({ url: '/assets/main-abc123.js.gz' })).statusCode).toBe(404);
  });

  it('starts without a viewer build and says how to build it at /', async () => {
    const t = await appWithViewerDir(path.join(os.tmpdir(), 'no-such-viewer-build'));
    const res = await t.app.inject({ url: '/' });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('npm run build');
    expect((await t.app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});
