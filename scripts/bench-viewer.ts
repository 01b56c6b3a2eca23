/**
 * Viewer benchmark: time to the first image in Debian's headless Chromium, over loopback.
 *
 *   npm run bench:viewer                       # build the viewer, 5 rounds
 *   npm run bench:viewer -- --rounds 3 --no-build --instances 500
 *
 * A test server (embedded storage in a temp folder) gets, by STOW-RS, one CT-like series of 500
 * instances (512×512, 16-bit, Explicit VR LE, ~0.5 MB each) and the two CMU-1 whole-slide pyramids
 * (TILED_FULL, 12 levels; TILED_SPARSE, 5 levels). Each round opens a fresh browser context (empty
 * HTTP cache) at the study's URL and reads the page's own marks (performance.now() from navigation
 * start): the stack viewer's first rendered image (`data-first-image-ms`), and the slide viewer's first
 * complete screen (`data-first-screen-ms`: every tile the fitted view needs decoded and drawn). The
 * request timings of the page (Resource Timing) give the breakdown. Output: markdown on stdout and in
 * .bench/viewer-results.md.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { Browser } from 'playwright-core';
import { buildViewer, launchChromium, removeViewerBuild, startServer, stowAll } from '../viewer/e2e/harness.js';
import { makePolygonAnnotations } from '../viewer/e2e/make-annotations.js';
import { sharedDataDir, repoRoot } from '../server/src/test-support/shared-data.js';
import { writePart10 } from '../server/src/dicom/write-part10.js';

const { DicomMetaDictionary } = dcmjs.data;
dcmjs.log.setLevel('silent');

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const ROUNDS = Number(opt('rounds', '5'));
const INSTANCES = Number(opt('instances', '500'));
const log = (m: string) => process.stderr.write(`${m}\n`);

/** One 512×512 16-bit CT-like slice: a disc of soft tissue with a brighter ring, varying with z. */
function ctSlice(study: string, series: string, index: number): Buffer {
  const size = 512;
  const pixels = new Int16Array(size * size);
  const r0 = 200 + 30 * Math.sin(index / 40);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const d = Math.hypot(x - 256, y - 256);
      pixels[y * size + x] = d < r0 - 12 ? 1040 + ((x * 7 + y * 13 + index) % 40) : d < r0 ? 1900 : 0;
    }
  }
  const sop = DicomMetaDictionary.uid() as string;
  const dataset: Record<string, unknown> = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    SOPInstanceUID: sop,
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
  };
  return writePart10(dataset);
}

interface Round {
  total: number;
  breakdown: Record<string, number>;
  requests: number;
}

async function measure(browser: Browser, url: string, selector: string, attribute: string, breakdown: Record<string, RegExp>): Promise<Round> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  const handle = await page.waitForSelector(`${selector}[${attribute}]`, { timeout: 120_000 });
  const total = Number(await handle.getAttribute(attribute));
  const entries = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => ({ name: e.name, start: e.startTime, end: (e as PerformanceResourceTiming).responseEnd })));
  const result: Record<string, number> = {};
  for (const [label, re] of Object.entries(breakdown)) {
    const hit = entries.find((e) => re.test(e.name));
    if (hit !== undefined) result[label] = label.endsWith('requested') ? hit.start : hit.end;
  }
  await context.close();
  if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
  return { total, breakdown: result, requests: entries.length };
}

const ANNOTATIONS = 5000;

/** Draw time of each frame while panning the slide, with the annotation layer shown and hidden. */
async function panDrawTimes(browser: Browser, url: string): Promise<{ on: number[]; off: number[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('.viewport.wsi[data-annotations-done][data-first-screen-ms]', { timeout: 120_000 });
  const run = async () => {
    const times: number[] = [];
    await page.focus('canvas.wsi-canvas');
    for (let i = 0; i < 40; i += 1) {
      await page.keyboard.press(i % 20 < 10 ? 'ArrowRight' : 'ArrowLeft');
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      times.push(Number(await page.getAttribute('.viewport.wsi', 'data-draw-ms')));
    }
    return times;
  };
  const on = await run();
  await page.locator('input[data-annotation]').uncheck();
  const off = await run();
  await context.close();
  return { on, off };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const fmt = (xs: number[], digits = 0) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

async function main(): Promise<void> {
  if (!args.includes('--no-build')) {
    log('building the viewer…');
    buildViewer();
  }
  const server = await startServer({ PACS_LOG_LEVEL: 'warn' });
  let browser: Browser | undefined;
  try {
    const study = DicomMetaDictionary.uid() as string;
    const series = DicomMetaDictionary.uid() as string;
    log(`storing ${INSTANCES} CT instances…`);
    const t0 = performance.now();
    const files: Buffer[] = [];
    for (let i = 0; i < INSTANCES; i += 1) files.push(ctSlice(study, series, i));
    await stowAll(server.url, files);
    log(`  stored in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const pyramids: Array<{ name: string; study: string; series: string }> = [];
    for (const [name, dir] of [
      ['TILED_FULL (12 levels, 2220×2967, 500×500 JPEG tiles)', 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm'],
      ['TILED_SPARSE (5 levels, 2220×2967, 256×256 JPEG tiles)', 'wsi-cmu1-small-region/tiled-sparse-orthanc-wsi'],
    ] as const) {
      const folder = path.join(sharedDataDir, dir);
      const names = (await import('node:fs')).readdirSync(folder).filter((f) => f.endsWith('.dcm'));
      const bytes = await Promise.all(names.map((n) => readFile(path.join(folder, n))));
      await stowAll(server.url, bytes);
      const parsed = dcmjs.data.DicomMessage.readFile(bytes[0]!.buffer.slice(bytes[0]!.byteOffset, bytes[0]!.byteOffset + bytes[0]!.length) as ArrayBuffer);
      pyramids.push({ name, study: String(parsed.dict['0020000D']?.Value?.[0]), series: String(parsed.dict['0020000E']?.Value?.[0]) });
    }
    browser = await launchChromium();
    // One warm-up round each (Chromium's own first-start costs), not counted.
    await measure(browser, `${server.url}/#/study/${study}`, '.viewport', 'data-first-image-ms', {});

    const stack: Round[] = [];
    const slides = new Map<string, Round[]>(pyramids.map((p) => [p.name, []]));
    for (let r = 0; r < ROUNDS; r += 1) {
      stack.push(await measure(browser, `${server.url}/#/study/${study}`, '.viewport', 'data-first-image-ms', { 'imaging code loaded': /stack-display-[^/]+\.js$/, 'series metadata received': /\/series\/[0-9.]+\/metadata$/, 'first frame requested': /\/frames\/1$/, 'first frame received': /\/frames\/1$/ }));
      for (const p of pyramids) slides.get(p.name)!.push(await measure(browser, `${server.url}/#/study/${p.study}`, '.viewport.wsi', 'data-first-screen-ms', { 'series metadata received': /\/metadata$/ }));
      log(`round ${r + 1}/${ROUNDS}: stack ${stack.at(-1)!.total} ms; ${pyramids.map((p) => `${slides.get(p.name)!.at(-1)!.total} ms`).join(', ')}`);
    }
    // Drawing cost with many annotations: 5,000 polygons on the TILED_SPARSE slide, 40 pan steps.
    const sparse = pyramids[1]!;
    await stowAll(server.url, [makePolygonAnnotations({ study: sparse.study, slideSeries: sparse.series, width: 2220, height: 2967, count: ANNOTATIONS }).part10]);
    const pan = await panDrawTimes(browser, `${server.url}/#/study/${sparse.study}`);
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const chromiumVersion = browser.version();
    const lines = [
      `Run ${new Date().toISOString().slice(0, 10)}: ${cpu}, ${os.cpus().length} logical cores, Node ${process.version}, Chromium ${chromiumVersion} headless (SwiftShader WebGL), loopback; fresh browser context (empty cache) per round; medians over ${ROUNDS} rounds (min–max), ms from navigation start.`,
      '',
      '| what | first image / screen [ms] | breakdown: median [ms] |',
      '|---|---|---|',
      `| CT series, ${INSTANCES} instances 512×512×16 bit | ${fmt(stack.map((s) => s.total))} | ${['imaging code loaded', 'series metadata received', 'first frame requested', 'first frame received'].map((k) => `${k} ${median(stack.map((s) => s.breakdown[k] ?? NaN)).toFixed(0)}`).join('; ')} |`,
      ...pyramids.map((p) => {
        const rs = slides.get(p.name)!;
        return `| WSI ${p.name}: first full screen (fit) | ${fmt(rs.map((s) => s.total))} | series metadata received ${median(rs.map((s) => s.breakdown['series metadata received'] ?? NaN)).toFixed(0)}; ${median(rs.map((s) => s.requests))} requests |`;
      }),
      `| WSI TILED_SPARSE with ${ANNOTATIONS.toLocaleString('en')} annotation polygons: time to draw one pan frame (tiles + polygons), 40 steps | ${fmt(pan.on, 1)} | without the polygons: ${fmt(pan.off, 1)} |`,
    ];
    const out = lines.join('\n');
    process.stdout.write(`${out}\n`);
    await mkdir(path.join(repoRoot, '.bench'), { recursive: true });
    await writeFile(path.join(repoRoot, '.bench', 'viewer-results.md'), `${out}\n`);
  } finally {
    await browser?.close();
    await server.t.close();
    removeViewerBuild();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
