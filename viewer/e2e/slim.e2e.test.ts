/**
 * Interoperability with Slim, the IDC slide microscopy viewer, through the library it draws slides
 * with: the published, unmodified dicom-microscopy-viewer 0.48.24 (npm tarball pinned by integrity in
 * test-support/npm-bundle.ts) in Debian's headless Chromium, against our server on loopback.
 *
 * Our server stores both CMU-1 pyramids by STOW-RS (TILED_FULL from Google's wsi2dcm, TILED_SPARSE
 * from Orthanc WSI) and runs the nuclei detector as a slide job over a region of each, which stores a
 * Microscopy Bulk Simple Annotations (ANN) instance. A page on a second loopback origin (slim-host.ts,
 * slim-page/) does what Slim's SlideViewer does: WADO-RS series metadata through dicomweb-client,
 * VLWholeSlideMicroscopyImage per instance, a VolumeImageViewer rendered into a div, then the ANN
 * series through MicroscopyBulkSimpleAnnotations, addAnnotationGroups and showAnnotationGroup.
 *
 * Checked per pyramid: the canvas shows H&E tissue (screenshot pixels), the library fetched tiles with
 * WADO-RS frame requests from our server and none of its requests to us failed, the annotation group
 * is listed by the library's API, its coordinates came from the BulkDataURI our metadata gives them
 * (they are over 4 KiB, so not inline), and showing it draws the overlay colour over the tissue, at the
 * same place on both pyramids. Screenshots: .artifacts/viewer/slim-*.png.
 *
 * The TILED_FULL files are stored with three attributes repaired (withRequiredWsiAttributes): the
 * library cannot open them as published, for reasons in the files, not in our server.
 */
import { readdir, readFile } from 'node:fs/promises';
import dcmjs from 'dcmjs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR } from '../../server/src/config.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { launchChromium, shoot, startServer, stowAll, watchErrors, watchFailedResponses, type Pixels, type RunningServer } from './harness.js';
import { startSlimHost, type SlimHost } from './slim-host.js';

const PYRAMIDS = {
  TILED_FULL: 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm',
  TILED_SPARSE: 'wsi-cmu1-small-region/tiled-sparse-orthanc-wsi',
} as const;
type PyramidName = keyof typeof PYRAMIDS;

/** A tissue-rich region of the 2220 × 2967 base level for the nuclei job (keeps the job to seconds). */
const JOB_REGION = { x: 640, y: 960, width: 960, height: 960 };
/** The overlay colour the page asks dicom-microscopy-viewer to draw annotations in: absent from H&E. */
const OVERLAY: [number, number, number] = [0, 255, 0];

let server: RunningServer;
let host: SlimHost;
let browser: Browser;
/** Where each pyramid's nuclei were drawn in the viewport (bounding box of overlay-green pixels). */
const overlayBoxes = new Map<PyramidName, Box>();
const slides = new Map<PyramidName, { study: string; series: string; sops: Set<string>; annSeries: string; nuclei: number }>();

async function json(url: string, init?: RequestInit): Promise<any> {
  const response = await fetch(url, init);
  const body = await response.text();
  if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${response.status} ${body}`);
  return JSON.parse(body);
}

const el = (vr: string, ...Value: unknown[]) => ({ vr, Value });
const code = (value: string, scheme: string, meaning: string) => ({ '00080100': el('SH', value), '00080102': el('SH', scheme), '00080104': el('LO', meaning) });

/**
 * The TILED_FULL files (wsi2dcm, 2021) lack two Type 1 attributes of the VL Whole Slide Microscopy
 * Image IOD (PS3.3 A.32.8): Optical Path Sequence (0048,0105) of the Optical Path Module and Total
 * Pixel Matrix Origin Sequence (0048,0008) of the Whole Slide Microscopy Image Module; and each level
 * has its own Frame of Reference UID (series UID + ".1" ... ".12") although all image the same slide.
 * Our server stores and serves such files as they are; dicom-microscopy-viewer (like Slim) refuses
 * them: `groupColorInstances` reads OpticalPathSequence[0] (TypeError on undefined), the pyramid
 * check throws "Images of pyramid must all have the same Frame of Reference UID", and 2D annotations
 * are placed through the referenced image's TotalPixelMatrixOriginSequence[0]. So the test stores a
 * conforming copy: same pixels and instance UIDs, a brightfield optical path (as the TILED_SPARSE files
 * have), origin (0, 0), and level 0's Frame of Reference UID on every level.
 */
function withRequiredWsiAttributes(file: Buffer, frameOfReferenceUid: string): Buffer {
  const parsed = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer) as any;
  parsed.dict['00480105'] ??= el('SQ', {
    '00220016': el('SQ', code('111744', 'DCM', 'Brightfield illumination')),
    '00480106': el('SH', '1'),
    '00480108': el('SQ', code('414298005', 'SCT', 'Full Spectrum')),
  });
  parsed.dict['00480008'] ??= el('SQ', { '0040072A': el('DS', 0), '0040073A': el('DS', 0) });
  parsed.dict['00200052'] = el('UI', frameOfReferenceUid);
  return Buffer.from(parsed.write());
}

/** Runs the nuclei detector over JOB_REGION of a stored slide; returns the ANN series and the count. */
async function nucleiJob(study: string, series: string): Promise<{ annSeries: string; nuclei: number }> {
  const created = await json(`${server.url}/ai/studies/${study}/series/${series}/analyses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'nuclei-detector', region: JOB_REGION }),
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = await json(`${server.url}/ai/analyses/${created.id}`);
    if (job.state === 'completed') return { annSeries: job.result.seriesInstanceUid, nuclei: job.progress.annotations };
    if (job.state === 'failed' || job.state === 'cancelled') throw new Error(`nuclei job ${job.state}: ${job.reason}`);
    if (Date.now() > deadline) throw new Error(`nuclei job still ${job.state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  host = await startSlimHost();
  server = await startServer({ PACS_CORS_ORIGINS: host.origin, PACS_MODELS_DIR: BUNDLED_MODELS_DIR });
  for (const [name, folder] of Object.entries(PYRAMIDS) as Array<[PyramidName, string]>) {
    const dir = path.join(sharedDataDir, folder);
    const originals = await Promise.all((await readdir(dir)).filter((f) => f.endsWith('.dcm')).sort().map((f) => readFile(path.join(dir, f))));
    const files = name === 'TILED_FULL' ? originals.map((f) => withRequiredWsiAttributes(f, describeInstance(originals[0]!).dict['00200052']!.Value![0] as string)) : originals;
    await stowAll(server.url, files);
    const described = files.map((f) => describeInstance(f));
    const { study, series } = described[0]!;
    const t0 = Date.now();
    const job = await nucleiJob(study, series);
    console.info(`slim e2e: ${name} nuclei job over ${JSON.stringify(JOB_REGION)}: ${job.nuclei} nuclei in ${Date.now() - t0} ms`);
    slides.set(name, { study, series, sops: new Set(described.map((d) => d.sop)), ...job });
  }
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  await host?.close();
});

interface Traffic {
  /** Requests to our server: method, URL, status (0 while pending or when the request failed). */
  requests: Array<{ method: string; url: string; status: number; failure?: string }>;
}

function watchServerTraffic(page: Page): Traffic {
  const traffic: Traffic = { requests: [] };
  const entries = new Map<object, Traffic['requests'][number]>();
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url)) return;
    const entry = { method: r.method(), url: r.url(), status: 0 };
    entries.set(r, entry);
    traffic.requests.push(entry);
  });
  page.on('requestfinished', async (r) => {
    const entry = entries.get(r);
    const response = await r.response();
    if (entry !== undefined && response !== null) entry.status = response.status();
  });
  page.on('requestfailed', (r) => {
    const entry = entries.get(r);
    if (entry !== undefined) entry.failure = r.failure()?.errorText ?? 'failed';
  });
  return traffic;
}

/** Waits until the page has loaded frames and no request to our server has been pending for `quietMs`. */
async function settle(page: Page, traffic: Traffic, minFrames: number, quietMs = 1000, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietSince = Date.now();
  let seen = traffic.requests.length;
  for (;;) {
    const state = await page.evaluate(() => (window as any).slim.state);
    if (state.phase === 'failed') throw new Error(`page failed: ${state.errors.join('; ')}`);
    const pending = traffic.requests.filter((r) => r.status === 0 && r.failure === undefined).length;
    if (pending > 0 || traffic.requests.length !== seen || state.framesLoaded < minFrames) {
      quietSince = Date.now();
      seen = traffic.requests.length;
    }
    if (Date.now() - quietSince >= quietMs) return;
    if (Date.now() > deadline) throw new Error(`viewer did not settle: ${JSON.stringify(state)}, ${pending} requests pending`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * Shares of a screenshot's pixels (within `box`, default all) that are H&E tissue: not white glass, and
 * pink-to-purple (red and blue over green); the count of overlay-green pixels and their bounding box.
 */
function tissue(p: Pixels, box: Box = { x0: 0, y0: 0, x1: p.width - 1, y1: p.height - 1 }) {
  let nonWhite = 0;
  let pinkish = 0;
  let overlay = 0;
  const found: Box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  for (let y = box.y0; y <= box.y1; y += 1) {
    for (let x = box.x0; x <= box.x1; x += 1) {
      const [r, g, b] = p.at(x, y);
      if (r + g + b < 690) nonWhite += 1;
      if (r + g + b < 690 && r > g + 15 && b > g + 5) pinkish += 1;
      if (g > 200 && r < 80 && b < 80) {
        overlay += 1;
        found.x0 = Math.min(found.x0, x);
        found.x1 = Math.max(found.x1, x);
        found.y0 = Math.min(found.y0, y);
        found.y1 = Math.max(found.y1, y);
      }
    }
  }
  const n = (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1);
  return { nonWhite: nonWhite / n, pinkish: pinkish / n, overlay, box: found };
}

function changedPixels(a: Pixels, b: Pixels): number {
  let changed = 0;
  for (let i = 0; i < a.data.length; i += a.channels) {
    if (Math.abs(a.data[i]! - b.data[i]!) + Math.abs(a.data[i + 1]! - b.data[i + 1]!) + Math.abs(a.data[i + 2]! - b.data[i + 2]!) > 60) changed += 1;
  }
  return changed;
}

describe("Slim's viewer library (dicom-microscopy-viewer 0.48.24) on our DICOMweb server", () => {
  for (const name of Object.keys(PYRAMIDS) as PyramidName[]) {
    it(`draws the CMU-1 ${name} slide from WADO-RS tiles and our nuclei annotations over it`, async () => {
      const slide = slides.get(name)!;
      const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
      try {
        // watchErrors leaves out the browser's "Failed to load resource" lines (they carry no URL):
        // failed responses are checked by URL instead, every one of them (our server and the page host).
        const errors = watchErrors(page);
        const failedResponses = watchFailedResponses(page);
        const consoleLog: string[] = [];
        page.on('console', (m) => consoleLog.push(`${m.type()}: ${m.text().slice(0, 300)}`));
        const traffic = watchServerTraffic(page);
        const query = new URLSearchParams({ dicomweb: `${server.url}/dicomweb`, study: slide.study, series: slide.series });
        await page.goto(`${host.origin}/?${query}`);
        await page.waitForFunction(() => (window as any).slim?.state.phase !== 'starting', undefined, { timeout: 15_000 });
        await settle(page, traffic, 1);
        const state = await page.evaluate(() => (window as any).slim.state);
        const viewport = page.locator('#viewport');
        const before = await shoot(viewport, `slim-${name}`);
        const seen = tissue(before);
        console.info(`slim e2e ${name}: ${JSON.stringify(state)}; pixels ${JSON.stringify(seen)}; ${traffic.requests.length} requests`);

        expect(state.errors).toEqual([]);
        expect(state.volumeImages).toBe(slide.sops.size);
        expect(state.framesLoaded).toBeGreaterThan(0);
        expect(state.framesFailed).toBe(0);
        // The slide fills a good part of the 800 × 600 viewport, and it is H&E: pink/purple, not grey.
        // (Measured: 20–22 % of the viewport is tissue, 17–20 % pink/purple; white glass elsewhere.)
        expect(seen.nonWhite).toBeGreaterThan(0.12);
        expect(seen.pinkish).toBeGreaterThan(0.1);

        // Tiles came from WADO-RS frame requests to our server, for instances of this slide.
        const frameUrl = new RegExp(`/dicomweb/studies/${slide.study}/series/${slide.series}/instances/([0-9.]+)/frames/\\d+(,\\d+)*$`);
        const frames = traffic.requests.filter((r) => frameUrl.test(r.url));
        expect(frames.length).toBeGreaterThan(0);
        for (const f of frames) expect(slide.sops.has(frameUrl.exec(f.url)![1]!)).toBe(true);

        // Our nuclei annotations, as Slim shows AI results.
        const groups = await page.evaluate(([series, color]) => (window as any).slim.showAnnotations(series, color), [slide.annSeries, OVERLAY] as const);
        expect(groups).toEqual([expect.objectContaining({ label: 'nucleus', algorithmName: 'nuclei-detector', referencedSeriesInstanceUID: slide.series })]);
        await settle(page, traffic, 1);
        const after = await shoot(viewport, `slim-${name}-nuclei`);
        const drawn = tissue(after);
        console.info(`slim e2e ${name} with annotations: ${JSON.stringify(drawn)}; changed ${changedPixels(before, after)}`);
        // SLIM_DEBUG=1: the page's console and every request to our server, for diagnosing a failure.
        if (process.env['SLIM_DEBUG']) console.info(consoleLog.join('\n'), traffic.requests.map((r) => `${r.status} ${r.url}`).join('\n'));
        expect(drawn.overlay - seen.overlay).toBeGreaterThan(1000);
        expect(changedPixels(before, after)).toBeGreaterThan(1000);
        // The points came from our server the way its metadata offered them (PS3.18 §F.2.7): as bulk data
        // (the BulkDataURI of the group's Point Coordinates Data) when they are over the 4 KiB our index
        // keeps inline (512 points), else inline (InlineBinary) and no bulk data request. How many nuclei
        // the region holds depends on the model version (1.1.0: over 512, 1.2.0: 458).
        const annMetadata = await json(`${server.url}/dicomweb/studies/${slide.study}/series/${slide.annSeries}/metadata`);
        const points = annMetadata[0]?.['006A0002']?.Value?.[0]?.['00660016'];
        const bulkRequests = traffic.requests.filter((r) => r.url.endsWith('/bulkdata/006A0002/1/00660016') && r.status === 200);
        if (points?.BulkDataURI !== undefined) expect(bulkRequests).toHaveLength(1);
        else {
          expect(points?.InlineBinary).toBeDefined();
          expect(bulkRequests).toHaveLength(0);
        }
        // And they lie where the job looked: drawn over tissue, in a square.
        overlayBoxes.set(name, drawn.box);
        const { x0, x1, y0, y1 } = drawn.box;
        expect((x1 - x0) / (y1 - y0)).toBeGreaterThan(0.8);
        expect((x1 - x0) / (y1 - y0)).toBeLessThan(1.25);
        expect(tissue(before, drawn.box).nonWhite).toBeGreaterThan(0.5);

        // Nothing DMV asked of our server failed, and the page logged no errors.
        const bad = traffic.requests.filter((r) => r.status >= 400 || r.failure !== undefined);
        expect(bad).toEqual([]);
        expect(failedResponses).toEqual([]);
        expect(errors).toEqual([]);
        expect((await page.evaluate(() => (window as any).slim.state)).errors).toEqual([]);
      } finally {
        await page.close();
      }
    }, 45_000);
  }

  it('puts the nuclei of the same region at the same place on both encodings of the slide', () => {
    // Same tissue, same viewport, same job region: the overlays must coincide although the TILED_SPARSE
    // files describe their pixel matrix with swapped slide axes (ImageOrientationSlide 0\-1\0\-1\0\0).
    const full = overlayBoxes.get('TILED_FULL');
    const sparse = overlayBoxes.get('TILED_SPARSE');
    expect(full).toBeDefined();
    expect(sparse).toBeDefined();
    for (const k of ['x0', 'y0', 'x1', 'y1'] as const) expect(Math.abs(full![k] - sparse![k])).toBeLessThan(12);
  });
});
