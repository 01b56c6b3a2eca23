/**
 * Shared by the Chromium end-to-end test and scripts/bench-viewer.ts: builds the viewer, starts a test
 * server (embedded storage in a temp folder, the bright-spot test model) on a loopback port, stores
 * DICOM files through STOW-RS, launches Debian's headless Chromium, and reads pixels of screenshots.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import sharp from 'sharp';
import { buildTestApp, type TestApp } from '../../server/src/test-support/build-test-app.js';
import { repoRoot } from '../../server/src/test-support/shared-data.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../../server/src/test-support/make-dicom.js';

export const CHROMIUM = process.env['PACS_CHROMIUM'] ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(repoRoot, '.artifacts', 'viewer');

/**
 * `vite build viewer` into a fresh temporary folder, which servers started afterwards in this process
 * serve (PACS_VIEWER_DIR): test files running in parallel never rebuild under each other's feet, and
 * viewer/dist is left alone. Removed when the process exits. Returns the folder. The brotli copies are
 * made at quality 5 unless `brotliQuality` says otherwise (the benchmark builds with 11, as users get it).
 */
export function buildViewer(options: { brotliQuality?: number } = {}): string {
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'viewer-build-'));
  process.on('exit', () => rmSync(outDir, { recursive: true, force: true }));
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', 'viewer', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], {
    cwd: repoRoot,
    stdio: 'inherit',
    env: { ...process.env, VIEWER_BROTLI_QUALITY: String(options.brotliQuality ?? 5) },
  });
  process.env['PACS_VIEWER_DIR'] = outDir;
  return outDir;
}

/** Removes the folder of buildViewer (call from afterAll: test workers may be ended without 'exit'). */
export function removeViewerBuild(): void {
  const dir = process.env['PACS_VIEWER_DIR'];
  if (dir !== undefined && path.basename(dir).startsWith('viewer-build-')) rmSync(dir, { recursive: true, force: true });
}

export interface RunningServer {
  t: TestApp;
  url: string;
}

export async function startServer(env: Record<string, string> = {}): Promise<RunningServer> {
  const t = await buildTestApp(env);
  const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  return { t, url };
}

/** STOW-RS over HTTP, in batches (multipart bodies of at most ~32 MB); `headers` e.g. an Authorization. */
export async function stowAll(url: string, files: Buffer[], headers: Record<string, string> = {}): Promise<void> {
  let batch: Buffer[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const res = await fetch(`${url}/dicomweb/studies`, { method: 'POST', headers: { ...headers, 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(multipartBody(batch.map((body) => ({ body })))) });
    if (res.status !== 200) throw new Error(`STOW-RS answered ${res.status}: ${await res.text()}`);
    batch = [];
    bytes = 0;
  };
  for (const f of files) {
    batch.push(f);
    bytes += f.length;
    if (bytes > 32 << 20 || batch.length >= 200) await flush();
  }
  await flush();
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--disable-gpu', '--disable-quic'] });
}

/** Collects page errors and console errors; tests fail on them unless expected. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // HTTP failures are logged by the browser without their URL: see watchFailedResponses for those.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

export interface Pixels {
  width: number;
  height: number;
  channels: number;
  data: Buffer;
  at(x: number, y: number): [number, number, number];
}

/** A screenshot of the element, decoded to RGB, saved under .artifacts/viewer/{name}.png. */
export async function shoot(target: Locator | Page, name: string): Promise<Pixels> {
  await mkdir(ARTIFACTS, { recursive: true });
  const png = await target.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    channels: info.channels,
    data,
    at(x, y) {
      const i = (Math.round(y) * info.width + Math.round(x)) * info.channels;
      return [data[i] ?? 0, data[i + 1] ?? 0, data[i + 2] ?? 0];
    },
  };
}

/** Mean colour and the share of pixels that are not near-black, over a rectangle (default: all). */
export function stats(p: Pixels, rect = { x: 0, y: 0, width: p.width, height: p.height }) {
  let r = 0;
  let g = 0;
  let b = 0;
  let lit = 0;
  let saturated = 0;
  let n = 0;
  const levels = new Set<number>();
  for (let y = rect.y; y < rect.y + rect.height; y += 1) {
    for (let x = rect.x; x < rect.x + rect.width; x += 1) {
      const [pr, pg, pb] = p.at(x, y);
      r += pr;
      g += pg;
      b += pb;
      if (pr + pg + pb > 30) lit += 1;
      if (Math.max(pr, pg, pb) - Math.min(pr, pg, pb) > 40) saturated += 1;
      levels.add(((pr >> 3) << 10) | ((pg >> 3) << 5) | (pb >> 3));
      n += 1;
    }
  }
  return { mean: [r / n, g / n, b / n] as const, litFraction: lit / n, saturatedFraction: saturated / n, distinctColours: levels.size };
}

/** Logs failed responses (status ≥ 400) with their URL, for diagnosing console 404s. */
export function watchFailedResponses(page: Page): string[] {
  const failed: string[] = [];
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
  });
  return failed;
}
