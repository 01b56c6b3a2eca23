/**
 * Viewer benchmark on thin links: Debian's headless Chromium with the network throttled, cold and warm
 * browser cache, HTTP/1.1 and HTTP/2 side by side.
 *
 *   npm run bench:viewer                              # build the viewer, 3 rounds, both links
 *   npm run bench:viewer -- --rounds 5 --baseline 2e47108   # also the viewer of that commit, as it was served
 *   npm run bench:viewer -- --smoke                   # one quick round on one link (checks the script)
 *   npm run bench:viewer -- --only phone              # only the patient's phone page of a share link
 *
 * Options: --rounds N, --instances N (CT slices, default 500), --links 4m,1.6m, --no-build,
 * --baseline REF (a git commit whose viewer/ is built and served uncompressed from the same archive, over
 * HTTP/1.1, cold cache: the "before" column), --smoke, --only phone (store and measure only the patient
 * phone scenario below).
 *
 * One archive (buildTestApp, embedded storage in a temp folder, AI off) serves HTTPS with HTTP/2 and
 * HTTP/1.1 on one port (a throw-away openssl certificate; Chromium told to ignore it). It holds, stored by
 * STOW-RS: a CT-like series of 500 slices (512×512, 16 bit, Explicit VR LE, soft-tissue noise so it
 * compresses like a real CT), a Kvasir endoscopy still (JPEG Baseline, 720×576), and the two CMU-1
 * whole-slide pyramids. Two Chromium instances: one speaks HTTP/2 (ALPN), one is started with
 * --disable-http2. The link is emulated per page with the DevTools protocol
 * (Network.emulateNetworkConditions: throughput both ways, and `latency` added to every request; TCP and
 * TLS handshakes are not delayed, so the connection set-up of a real 100 ms link is missing from every
 * figure).
 *
 * Per link, protocol and round: a fresh browser context (cold cache) opens each scenario, then opens it
 * again in the same context (warm cache: index.html revalidated, hashed assets and frames from the
 * cache, QIDO and metadata asked again). Times are the page's own marks (ms from navigation start):
 *   - study list: data-first-list-ms (the first page of studies on screen)
 *   - endoscopy / CT first image: data-first-image-ms (the stored JPEG, or the labelled lossy preview);
 *     full quality: data-full-quality-ms (Cornerstone's rendering of the full-fidelity frame)
 *   - slide: data-first-screen-ms (every tile of the fitted view drawn)
 *   - patient phone first image: the share link's page (`/s/{token}`, viewer/share.html) on a phone
 *     (390×844 CSS pixels at 3×, touch, mobile), cold cache only: data-first-image-ms on <body> (the
 *     first rendered JPEG on screen). Its study (viewer/e2e/share-phone-study.ts): endoscopy stills
 *     960×768 RGB and CT slices, a signed report; the issue's target is ≤ 3 s at 1.6 Mbit/s + 150 ms.
 *   - pan: at full resolution on the TILED_SPARSE slide, the time from panning one screen down to every
 *     tile of the new screen drawn; once after a 2 s look at the screen (the viewer prefetches the tiles
 *     around it meanwhile), once straight after the previous pan completed.
 * Bytes are what crossed the (emulated) wire until the mark: the sum of encodedDataLength (headers and
 * bodies, after content coding) of the responses finished by then (DevTools protocol).
 * Output: markdown on stdout and in .bench/viewer-results.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import dcmjs from 'dcmjs';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { buildViewer, CHROMIUM, removeViewerBuild } from '../viewer/e2e/harness.js';
import { phoneStudy, shareLink, signReport, type Call } from '../viewer/e2e/share-phone-study.js';
import { buildTestApp, type TestApp } from '../server/src/test-support/build-test-app.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../server/src/test-support/make-dicom.js';
import { sharedDataDir, repoRoot } from '../server/src/test-support/shared-data.js';
import { writePart10 } from '../server/src/dicom/write-part10.js';

const { DicomMetaDictionary } = dcmjs.data;
dcmjs.log.setLevel('silent');

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const SMOKE = args.includes('--smoke');
const ROUNDS = Number(opt('rounds', SMOKE ? '1' : '3'));
const INSTANCES = Number(opt('instances', SMOKE ? '40' : '500'));
const BASELINE = opt('baseline', '');
/** `phone`: only the patient phone scenario (nothing else stored or measured). */
const ONLY = opt('only', '');
if (ONLY !== '' && ONLY !== 'phone') throw new Error(`--only ${ONLY}: the only scenario that can be run alone is "phone"`);
const log = (m: string) => process.stderr.write(`${m}\n`);

interface Link {
  name: string;
  mbps: number;
  latencyMs: number;
}
const LINKS: Link[] = [
  { name: '4m', mbps: 4, latencyMs: 100 },
  { name: '1.6m', mbps: 1.6, latencyMs: 150 },
].filter((l) => opt('links', SMOKE ? '4m' : '4m,1.6m').split(',').includes(l.name));
const linkLabel = (l: Link) => `${l.mbps} Mbit/s + ${l.latencyMs} ms`;

// ---------------------------------------------------------------------------------------------------
// Data

/** Deterministic pseudo-random numbers (the same series in every run). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** One 512×512 16-bit CT-like slice: a disc of soft tissue with noise and a brighter ring, varying with z. */
function ctSlice(study: string, series: string, index: number): Buffer {
  const size = 512;
  const pixels = new Int16Array(size * size);
  const random = lcg(index + 1);
  const r0 = 200 + 30 * Math.sin(index / 40);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const d = Math.hypot(x - 256, y - 256);
      // Soft tissue 1024 + 16..56 (HU 16..56) with ±12 of noise; a bone ring; air with a little noise.
      const noise = Math.round((random() + random() + random() - 1.5) * 8);
      pixels[y * size + x] = d < r0 - 12 ? 1040 + ((x * 7 + y * 13 + index) % 40) + noise : d < r0 ? 1900 + noise * 4 : Math.max(0, 10 + noise);
    }
  }
  return writePart10({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    SOPInstanceUID: DicomMetaDictionary.uid() as string,
    StudyInstanceUID: study,
    SeriesInstanceUID: series,
    PatientName: 'BENCH^VIEWER',
    PatientID: 'BENCH-1',
    StudyDate: '20260101',
    Modality: 'CT',
    SeriesNumber: '1',
    InstanceNumber: String(index + 1),
    ImagePositionPatient: [-256, -256, index * 1.25],
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
    PixelSpacing: [0.7, 0.7],
    SliceThickness: '1.25',
    FrameOfReferenceUID: study + '.1',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: size,
    Columns: size,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 1,
    RescaleIntercept: '-1024',
    RescaleSlope: '1',
    WindowCenter: '40',
    WindowWidth: '400',
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OW' },
  });
}

/** STOW-RS in process (the server speaks TLS with a throw-away certificate), ~32 MB per request. */
async function stow(t: TestApp, files: Buffer[]): Promise<void> {
  for (let i = 0; i < files.length; ) {
    const batch: Buffer[] = [];
    let bytes = 0;
    while (i < files.length && bytes < 32 << 20) {
      batch.push(files[i]!);
      bytes += files[i]!.length;
      i += 1;
    }
    const res = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody(batch.map((body) => ({ body }))), headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' } });
    if (res.statusCode !== 200) throw new Error(`STOW-RS answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
  }
}

function uidsOf(bytes: Buffer): { study: string; series: string } {
  const parsed = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  return { study: String(parsed.dict['0020000D']?.Value?.[0]), series: String(parsed.dict['0020000E']?.Value?.[0]) };
}

// ---------------------------------------------------------------------------------------------------
// Builds

/** The viewer of a git commit, built into a temp folder as it was (no precompressed copies). */
function buildBaseline(ref: string): string {
  const work = mkdtempSync(path.join(os.tmpdir(), 'viewer-baseline-'));
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
  // git archive reads the commit without touching the working tree, index or refs.
  const tar = execFileSync('git', ['archive', ref, 'viewer', 'server/src/contracts'], { cwd: repoRoot, maxBuffer: 256 << 20 });
  execFileSync('tar', ['-x', '-C', work], { input: tar });
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(work, 'node_modules'));
  const out = path.join(work, 'dist');
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', path.join(work, 'viewer'), '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], { cwd: work, stdio: 'inherit' });
  for (const file of readdirSync(path.join(out, 'assets'))) if (/\.(br|gz)$/.test(file)) rmSync(path.join(out, 'assets', file));
  return out;
}

interface AssetSize {
  name: string;
  raw: number;
  gzip: number;
  brotli: number;
}

/** Sizes of the built JavaScript, CSS and WebAssembly files (compressed as the build or the server would). */
function assetSizes(dir: string): AssetSize[] {
  const assets = path.join(dir, 'assets');
  return readdirSync(assets)
    .filter((f) => /\.(js|css|wasm)$/.test(f))
    .map((name) => {
      const file = path.join(assets, name);
      const raw = statSync(file).size;
      const bytes = readFileSync(file);
      const br = existsSync(`${file}.br`) ? statSync(`${file}.br`).size : brotliCompressSync(bytes, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11 } }).length;
      const gz = existsSync(`${file}.gz`) ? statSync(`${file}.gz`).size : gzipSync(bytes, { level: 9 }).length;
      return { name, raw, gzip: Math.min(gz, raw), brotli: Math.min(br, raw) };
    })
    .sort((a, b) => b.raw - a.raw);
}

// ---------------------------------------------------------------------------------------------------
// Browser side

interface Throttled {
  page: Page;
  context: BrowserContext;
  /** Bytes of the responses finished up to `ms` after the last navigation's start (undefined: all so far). */
  bytesUntil(ms?: number): number;
  /** Bytes received since the counter was last reset. */
  reset(): void;
}

async function throttledPage(browser: Browser, link: Link, context?: BrowserContext): Promise<Throttled> {
  const ctx = context ?? (await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true }));
  const page = await ctx.newPage();
  const cdp: CDPSession = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: link.latencyMs,
    downloadThroughput: (link.mbps * 1e6) / 8,
    uploadThroughput: (link.mbps * 1e6) / 8,
  });
  let finished: Array<{ at: number; bytes: number }> = [];
  let navigationAt = 0;
  cdp.on('Network.requestWillBeSent', (e: { type?: string; timestamp: number }) => {
    if (e.type === 'Document') navigationAt = e.timestamp;
  });
  cdp.on('Network.loadingFinished', (e: { timestamp: number; encodedDataLength: number }) => finished.push({ at: e.timestamp, bytes: e.encodedDataLength }));
  return {
    page,
    context: ctx,
    bytesUntil(ms) {
      const limit = ms === undefined ? Infinity : navigationAt + ms / 1000;
      return finished.filter((f) => f.at <= limit).reduce((s, f) => s + f.bytes, 0);
    },
    reset() {
      finished = [];
    },
  };
}

interface Mark {
  ms: number;
  bytes: number;
}

/**
 * Opens `url` and waits for the page's marks (attribute names on `selector`). A page without a mark (an
 * older viewer) is timed by `fallback`: the moment that element appears (polled every animation frame).
 */
async function visit(t: Throttled, url: string, selector: string, attributes: string[], fallback?: string): Promise<Record<string, Mark>> {
  const errors: string[] = [];
  const onError = (e: Error) => errors.push(e.message);
  t.page.on('pageerror', onError);
  await t.page.goto('about:blank');
  t.reset();
  await t.page.goto(url, { waitUntil: 'commit' });
  const out: Record<string, Mark> = {};
  for (const attribute of attributes) {
    let ms: number;
    if (fallback !== undefined) {
      const handle = await t.page.waitForFunction((sel) => (document.querySelector(sel) === null ? false : performance.now()), fallback, { timeout: 180_000, polling: 'raf' });
      ms = Number(await handle.jsonValue());
    } else {
      const handle = await t.page.waitForSelector(`${selector}[${attribute}]`, { timeout: 180_000 });
      ms = Number(await handle.getAttribute(attribute));
    }
    out[attribute] = { ms, bytes: t.bytesUntil(ms) };
  }
  t.page.off('pageerror', onError);
  if (errors.length > 0) throw new Error(`page errors at ${url}: ${errors.join('; ')}`);
  return out;
}

interface PanResult {
  afterLook: Mark;
  straightAfter: Mark;
}

/** At full resolution on a slide: one screen down after a 2 s look, then one more straight away. */
async function pans(t: Throttled, url: string): Promise<PanResult> {
  await t.page.goto('about:blank');
  t.reset();
  await t.page.goto(url, { waitUntil: 'commit' });
  await t.page.waitForSelector('.viewport.wsi[data-first-screen-ms]', { timeout: 180_000 });
  const completes = () => t.page.evaluate(() => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['completeCount'] ?? '0'));
  const move = async (dx: number, dy: number, absolute?: { cx: number; cy: number }): Promise<Mark> => {
    const before = await completes();
    t.reset();
    const started = await t.page.evaluate(
      ({ dx, dy, absolute }) => {
        const box = document.querySelector('.viewport.wsi') as HTMLElement & { wsiView: { view: { cx: number; cy: number; scale: number }; panBy(dx: number, dy: number): void } };
        const { view } = box.wsiView;
        const t0 = performance.now();
        if (absolute !== undefined) {
          view.scale = 1 / (window.devicePixelRatio || 1);
          view.cx = absolute.cx;
          view.cy = absolute.cy;
        }
        box.wsiView.panBy(dx, dy);
        return t0;
      },
      { dx, dy, absolute },
    );
    await t.page.waitForFunction((n) => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['completeCount'] ?? '0') > n, before, { timeout: 180_000, polling: 20 });
    const done = Number(await t.page.getAttribute('.viewport.wsi', 'data-complete-ms'));
    return { ms: done - started, bytes: t.bytesUntil() };
  };
  const height = await t.page.evaluate(() => document.querySelector('canvas.wsi-canvas')?.clientHeight ?? 600);
  const width = await t.page.evaluate(() => document.querySelector('canvas.wsi-canvas')?.clientWidth ?? 800);
  // Full resolution, the top-left part of the slide; wait for it, look for 2 s, pan, pan again.
  await move(0, 0, { cx: width / 2, cy: height / 2 });
  await t.page.waitForTimeout(2000);
  const afterLook = await move(0, height);
  const straightAfter = await move(0, height);
  return { afterLook, straightAfter };
}

// ---------------------------------------------------------------------------------------------------

type Cache = 'cold' | 'warm';
type Protocol = 'HTTP/1.1' | 'HTTP/2' | 'before';
interface Sample {
  link: string;
  protocol: Protocol;
  cache: Cache;
  what: string;
  ms: number;
  bytes: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const kb = (bytes: number) => (bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0); // KiB

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const started = new Date();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-viewer-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  if (!args.includes('--no-build')) {
    log('building the viewer…');
    buildViewer({ brotliQuality: 11 });
  }
  const viewerDir = process.env['PACS_VIEWER_DIR'] ?? path.join(repoRoot, 'viewer/dist');
  const baselineDir = BASELINE === '' ? undefined : (log(`building the viewer of ${BASELINE} (baseline)…`), buildBaseline(BASELINE));

  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const tls = { PACS_TLS_CERT_FILE: path.join(dir, 'cert.pem'), PACS_TLS_KEY_FILE: path.join(dir, 'key.pem'), PACS_LOG_LEVEL: 'warn', PACS_AI_ENABLED: 'false' };
  process.env['PACS_VIEWER_DIR'] = viewerDir;
  const server = await buildTestApp(tls);
  const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
  let baseline: { t: TestApp; url: string } | undefined;
  const browsers: Browser[] = [];
  try {
    const t0 = performance.now();
    const ct = { study: DicomMetaDictionary.uid() as string, series: DicomMetaDictionary.uid() as string };
    let endo = { study: '', series: '' };
    const slides: Record<string, { study: string; series: string }> = {};
    if (ONLY !== 'phone') {
      log(`storing ${INSTANCES} CT slices, an endoscopy still and two slide pyramids…`);
      for (let i = 0; i < INSTANCES; i += 50) {
        await stow(server, Array.from({ length: Math.min(50, INSTANCES - i) }, (_, k) => ctSlice(ct.study, ct.series, i + k)));
      }
      const endoFile = await readFile(path.join(sharedDataDir, 'endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-jpeg-baseline.dcm'));
      await stow(server, [endoFile]);
      endo = uidsOf(endoFile);
      for (const [name, folder] of [
        ['TILED_FULL', 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm'],
        ['TILED_SPARSE', 'wsi-cmu1-small-region/tiled-sparse-orthanc-wsi'],
      ] as const) {
        const full = path.join(sharedDataDir, folder);
        const files = await Promise.all(readdirSync(full).filter((f) => f.endsWith('.dcm')).map((f) => readFile(path.join(full, f))));
        await stow(server, files);
        slides[name] = uidsOf(files[0]!);
      }
    }
    // The patient phone page: a study with a signed report, and a share link to it (made in process).
    log('storing the patient phone study and making its share link…');
    const phone = phoneStudy({ stills: 6, slices: 4 });
    await stow(server, phone.files);
    const call: Call = async (method, callUrl, body) => {
      const res = await server.app.inject({ method: method as 'GET', url: callUrl, headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
      let json: unknown = res.body;
      try {
        json = res.json();
      } catch {
        // not JSON
      }
      return { status: res.statusCode, json };
    };
    await signReport(call, phone.studyInstanceUid);
    const phoneLink = await shareLink(call, { studyInstanceUid: phone.studyInstanceUid });
    // The renderer's one-time start is not what a patient waits for: warm it on another series' thumbnail.
    await call('GET', `/dicomweb/studies/${phone.studyInstanceUid}/series/${phone.ct.seriesInstanceUid}/thumbnail`);
    log(`  stored in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (baselineDir !== undefined) {
      // The same archive files and index, served with the old viewer build (no precompressed copies).
      process.env['PACS_VIEWER_DIR'] = baselineDir;
      const t = await buildTestApp({ ...tls, PACS_DATA_DIR: server.dataDir });
      baseline = { t, url: await t.app.listen({ host: '127.0.0.1', port: 0 }) };
      process.env['PACS_VIEWER_DIR'] = viewerDir;
    }

    const launch = (extra: string[]) => chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--disable-gpu', '--disable-quic', '--ignore-certificate-errors', ...extra] });
    const h2 = await launch([]);
    const h1 = await launch(['--disable-http2']);
    browsers.push(h2, h1);
    const chromiumVersion = h2.version();

    // Each protocol's page says which it got.
    for (const [browser, expected] of [
      [h2, 'h2'],
      [h1, 'http/1.1'],
    ] as const) {
      const t = await throttledPage(browser, { name: 'check', mbps: 1000, latencyMs: 0 });
      await t.page.goto(`${url}/`);
      const protocol = await t.page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol);
      await t.context.close();
      if (protocol !== expected) throw new Error(`Chromium spoke ${protocol}, expected ${expected}`);
    }

    const samples: Sample[] = [];
    const phoneScenario = (base: string) => ({ what: 'phone', url: `${base}/s/${phoneLink.token}`, selector: 'body', marks: { 'data-first-image-ms': 'patient phone first image (share link, 390×844 @3×)' }, phone: true as const });
    const scenarios = (base: string, withPan: boolean) => ONLY === 'phone' ? (withPan ? [phoneScenario(base)] : []) : [
      { what: 'study list', url: `${base}/`, selector: '.results', marks: { 'data-first-list-ms': 'study list' }, oldViewer: '.results tbody tr' },
      { what: 'endoscopy', url: `${base}/#/study/${endo.study}`, selector: '.viewport', marks: { 'data-first-image-ms': 'endoscopy: first image', 'data-full-quality-ms': 'endoscopy: full quality' } },
      { what: 'ct', url: `${base}/#/study/${ct.study}`, selector: '.viewport', marks: { 'data-first-image-ms': `CT (${INSTANCES} slices): first image`, 'data-full-quality-ms': `CT (${INSTANCES} slices): full quality` } },
      { what: 'slide full', url: `${base}/#/study/${slides['TILED_FULL']!.study}`, selector: '.viewport.wsi', marks: { 'data-first-screen-ms': 'slide TILED_FULL (500² tiles): first screen' } },
      { what: 'slide sparse', url: `${base}/#/study/${slides['TILED_SPARSE']!.study}`, selector: '.viewport.wsi', marks: { 'data-first-screen-ms': 'slide TILED_SPARSE (256² tiles): first screen' } },
      ...(withPan ? [{ what: 'pan', url: `${base}/#/study/${slides['TILED_SPARSE']!.study}`, selector: '', marks: {} }] : []),
      // The old viewer (`before`) has no phone page.
      ...(withPan ? [phoneScenario(base)] : []),
    ];
    // The old viewer has no full-quality mark (its first image is the full frame), no list mark and no
    // pan hooks.

    const run = async (browser: Browser, link: Link, protocol: Protocol, base: string, caches: Cache[]) => {
      for (const scenario of scenarios(base, protocol !== 'before')) {
        const isPhone = 'phone' in scenario;
        const phoneContext = isPhone ? await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true, locale: 'vi-VN', ignoreHTTPSErrors: true }) : undefined;
        const t = await throttledPage(browser, link, phoneContext);
        try {
          for (const cache of caches) {
            // The patient opens the slip's link once: cold cache only.
            if (isPhone && cache === 'warm') continue;
            if (scenario.what === 'pan') {
              if (cache === 'warm') continue;
              const p = await pans(t, scenario.url);
              samples.push({ link: link.name, protocol, cache, what: 'pan one screen after a 2 s look (TILED_SPARSE, full resolution)', ...p.afterLook });
              samples.push({ link: link.name, protocol, cache, what: 'pan one screen straight after the last (TILED_SPARSE, full resolution)', ...p.straightAfter });
              continue;
            }
            const marks = Object.keys(scenario.marks).filter((m) => protocol !== 'before' || m !== 'data-full-quality-ms');
            const fallback = protocol === 'before' && 'oldViewer' in scenario ? scenario.oldViewer : undefined;
            const result = await visit(t, scenario.url, scenario.selector, marks, fallback);
            for (const [attribute, mark] of Object.entries(result)) {
              samples.push({ link: link.name, protocol, cache, what: (scenario.marks as Record<string, string>)[attribute] ?? attribute, ...mark });
            }
          }
        } finally {
          await t.context.close();
        }
      }
    };

    for (let round = 0; round < ROUNDS; round += 1) {
      for (const link of LINKS) {
        // Alternate which protocol goes first.
        const order: Array<[Browser, Protocol]> = round % 2 === 0 ? [[h1, 'HTTP/1.1'], [h2, 'HTTP/2']] : [[h2, 'HTTP/2'], [h1, 'HTTP/1.1']];
        for (const [browser, protocol] of order) {
          log(`round ${round + 1}/${ROUNDS}, ${linkLabel(link)}, ${protocol}…`);
          await run(browser, link, protocol, url, ['cold', 'warm']);
        }
        if (baseline !== undefined) {
          log(`round ${round + 1}/${ROUNDS}, ${linkLabel(link)}, before (${BASELINE}, HTTP/1.1)…`);
          await run(h1, link, 'before', baseline.url, ['cold']);
        }
      }
    }

    // ----- report
    const cell = (xs: Sample[]) => {
      if (xs.length === 0) return '–';
      const ms = xs.map((x) => x.ms);
      return `${median(ms).toFixed(0)} (${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)}) · ${kb(median(xs.map((x) => x.bytes)))} KiB`;
    };
    const whats = [...new Set(samples.map((s) => s.what))];
    const lines: string[] = [
      `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC: ${os.cpus()[0]?.model ?? 'CPU'}, ${os.cpus().length} logical cores, Node ${process.version}, Chromium ${chromiumVersion} headless (SwiftShader WebGL); ` +
        `load average ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end; medians over ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} (min–max) in ms from navigation start, and the bytes on the wire by then (median).`,
      '',
    ];
    for (const link of LINKS) {
      const of = (what: string, protocol: Protocol, cache: Cache) => samples.filter((s) => s.link === link.name && s.what === what && s.protocol === protocol && s.cache === cache);
      lines.push(`#### ${linkLabel(link)}`, '');
      lines.push(`| what | ${baseline === undefined ? '' : `before (${BASELINE}), HTTP/1.1, cold | `}HTTP/1.1 cold | HTTP/2 cold | HTTP/1.1 warm | HTTP/2 warm |`);
      lines.push(`|---|${baseline === undefined ? '' : '---|'}---|---|---|---|`);
      for (const what of whats) {
        const before = baseline === undefined ? '' : `${cell(of(what, 'before', 'cold'))} | `;
        lines.push(`| ${what} | ${before}${cell(of(what, 'HTTP/1.1', 'cold'))} | ${cell(of(what, 'HTTP/2', 'cold'))} | ${cell(of(what, 'HTTP/1.1', 'warm'))} | ${cell(of(what, 'HTTP/2', 'warm'))} |`);
      }
      lines.push('');
    }
    const sizes = (label: string, d: string) => {
      const list = assetSizes(d);
      const total = (pick: (a: AssetSize) => number) => list.reduce((s, a) => s + pick(a), 0);
      return [
        `${label}: ${list.length} files, ${kb(total((a) => a.raw))} KiB (${kb(total((a) => a.brotli))} KiB brotli, ${kb(total((a) => a.gzip))} KiB gzip); largest:`,
        ...list.slice(0, 8).map((a) => `  - ${a.name.replace(/-[\w-]{8}\.(js|css|wasm)$/, '.$1')}: ${kb(a.raw)} KiB, brotli ${kb(a.brotli)} KiB, gzip ${kb(a.gzip)} KiB`),
      ];
    };
    lines.push('Viewer build:', '', ...sizes('this build (served precompressed)', viewerDir), ...(baselineDir === undefined ? [] : ['', ...sizes(`${BASELINE} (served uncompressed then)`, baselineDir)]), '');
    const out = lines.join('\n');
    process.stdout.write(`${out}\n`);
    await mkdir(path.join(repoRoot, '.bench'), { recursive: true });
    await writeFile(path.join(repoRoot, '.bench', 'viewer-results.md'), `${out}\n`);
    await writeFile(path.join(repoRoot, '.bench', 'viewer-samples.json'), JSON.stringify(samples, null, 1));
  } finally {
    for (const b of browsers) await b.close().catch(() => undefined);
    await baseline?.t.close().catch(() => undefined);
    await server.close();
    removeViewerBuild();
  }
}

mkdirSync(path.join(repoRoot, '.bench'), { recursive: true });
main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
