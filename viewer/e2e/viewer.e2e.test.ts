/**
 * The viewer end to end in Debian's headless Chromium against a real server on loopback (data stored
 * through STOW-RS): study search, CT and colour rendering (pixels checked), scrolling, AI boxes from a
 * stored TID 1500 SR, whole-slide pyramids (TILED_FULL and TILED_SPARSE) with deeper tiles on zoom,
 * bulk annotations, video, and error states. Screenshots of each step: .artifacts/viewer/.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInstance, newUid } from '../../server/src/test-support/make-dicom.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { makePolygonAnnotations } from './make-annotations.js';
import { decodeFrame, initializeCodecs } from '../../server/src/archive/transcode.js';
import { splitMultipart } from '../../server/src/test-support/split-multipart.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stats, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';

const shared = (p: string) => readFile(path.join(sharedDataDir, p));

let server: RunningServer;
let browser: Browser;
let page: Page;
let errors: string[];
let failed: string[];

const ids = {
  stackStudy: newUid(),
  stackSeries: newUid(),
  detectStudy: newUid(),
  detectSeries: newUid(),
  detectSop: newUid(),
};
let ct: { study: string; series: string };
let wsiFull: { study: string; series: string; levels: Map<string, number> };
let wsiSparse: { study: string; series: string; levels: Map<string, number> };
let slide: { study: string; series: string };
let video: { study: string; series: string };
let broken: { study: string };
const cineIds = { study: newUid(), series: newUid() };

/** The endoscopy still under new UIDs with its JPEG bitstream replaced by bytes no decoder accepts. */
function undecodable(file: Buffer): Buffer {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const parsed = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer) as any;
  const study = newUid();
  const series = newUid();
  const sop = newUid();
  parsed.dict['0020000D'].Value = [study];
  parsed.dict['0020000E'].Value = [series];
  parsed.dict['00080018'].Value = [sop];
  parsed.meta['00020003'].Value = [sop];
  parsed.dict['00100010'].Value = [{ Alphabetic: 'VIEWTEST^BROKEN' }];
  const garbage = new Uint8Array(4000);
  garbage.set([0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43]);
  for (let i = 6; i < garbage.length; i += 1) garbage[i] = (i * 7919) & 0xff;
  parsed.dict['7FE00010'].Value = [garbage.buffer];
  return Buffer.from(parsed.write());
}

const WSI_FULL = ['0-frames-0-30', '1-frames-0-9', '2-frames-0-4', '3-frames-0-1', '4-frames-0-1', '5-frames-0-1', '6-frames-0-1', '7-frames-0-1', '8-frames-0-1', '9-frames-0-1', '10-frames-0-1', '11-frames-0-1'].map((l) => `wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-${l}.dcm`);
const WSI_SPARSE = [0, 1, 2, 3, 4].map((l) => `wsi-cmu1-small-region/tiled-sparse-orthanc-wsi/cmu1-level-0${l}.dcm`);

/** Stores a pyramid; `levels` maps each instance to its level (0 = full resolution). */
async function storePyramid(files: string[]): Promise<{ study: string; series: string; levels: Map<string, number> }> {
  const bytes = await Promise.all(files.map(shared));
  await stowAll(server.url, bytes);
  const described = bytes.map((b) => describeInstance(b));
  return { study: described[0]!.study, series: described[0]!.series, levels: new Map(described.map((d, i) => [d.sop, i])) };
}
let endo: { study: string; series: string };

/** 64×64 8-bit images that differ per instance: a horizontal ramp, a vertical ramp, a bright square. */
function patterned(k: number): Uint8Array {
  const px = new Uint8Array(64 * 64);
  for (let y = 0; y < 64; y += 1) {
    for (let x = 0; x < 64; x += 1) px[y * 64 + x] = k === 0 ? x * 4 : k === 1 ? y * 4 : x > 16 && x < 48 && y > 16 && y < 48 ? 250 : 10;
  }
  return px;
}

/** Black 200×100 RGB with a white rectangle x 40..80, y 20..60: the bright-spot model's box. */
function brightRect(): Uint8Array {
  const px = new Uint8Array(200 * 100 * 3);
  for (let y = 20; y < 60; y += 1) for (let x = 40; x < 80; x += 1) px.fill(255, (y * 200 + x) * 3, (y * 200 + x) * 3 + 3);
  return px;
}

beforeAll(async () => {
  if (process.env['VIEWER_SKIP_BUILD'] !== '1') buildViewer();
  server = await startServer();
  const stack = [0, 1, 2].map((k) => {
    const file = makeInstance({ studyInstanceUid: ids.stackStudy, seriesInstanceUid: ids.stackSeries, patientName: 'VIEWTEST^ALICE', patientId: 'VT-1', accessionNumber: 'ACCVT1', modality: 'OT', rows: 64, columns: 64, pixels: patterned(k) });
    return file;
  });
  // InstanceNumber is 1 in every generated file: ordering falls back to the archive's order, so give each its own number.
  const ctFile = await shared('dicom-highdicom/ct_image.dcm');
  const endoFile = await shared('endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-jpeg-baseline.dcm');
  const detectFile = makeInstance({ studyInstanceUid: ids.detectStudy, seriesInstanceUid: ids.detectSeries, sopInstanceUid: ids.detectSop, patientName: 'VIEWTEST^BOB', modality: 'ES', rows: 100, columns: 200, samplesPerPixel: 3, pixels: brightRect() });
  await stowAll(server.url, [...stack, ctFile, endoFile, detectFile]);
  const ctI = describeInstance(ctFile);
  ct = { study: ctI.study, series: ctI.series };
  const endoI = describeInstance(endoFile);
  endo = { study: endoI.study, series: endoI.series };
  wsiFull = await storePyramid(WSI_FULL);
  wsiSparse = await storePyramid(WSI_SPARSE);
  const slideFiles = await Promise.all(['dicom-highdicom/sm_image.dcm', 'dicom-highdicom/sm_annotations.dcm'].map(shared));
  await stowAll(server.url, slideFiles);
  slide = { study: describeInstance(slideFiles[0]!).study, series: describeInstance(slideFiles[0]!).series };
  const videoFile = await shared('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm');
  const brokenFile = undecodable(endoFile);
  const cineFile = makeInstance({ studyInstanceUid: cineIds.study, seriesInstanceUid: cineIds.series, patientName: 'VIEWTEST^CINE', rows: 64, columns: 64, numberOfFrames: 6, pixels: Uint8Array.from({ length: 64 * 64 * 6 }, (_, i) => (Math.floor(i / 4096) * 40 + (i % 64)) & 0xff) });
  await stowAll(server.url, [videoFile, brokenFile, cineFile]);
  video = { study: describeInstance(videoFile).study, series: describeInstance(videoFile).series };
  broken = { study: describeInstance(brokenFile).study };
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1100, height: 750 } });
  errors = watchErrors(page);
  failed = watchFailedResponses(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
});

/** Waits until the viewport shows a rendered image (Cornerstone canvas with lit pixels). */
async function waitForImage(): Promise<void> {
  await page.waitForSelector('.viewport[data-sop]:not([data-sop=""])', { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector('.cs-element canvas') !== null, undefined, { timeout: 30_000 });
  await page.waitForTimeout(300);
}

const viewport = () => page.locator('.viewport');

/**
 * No page error, no console error, and no failed request except series thumbnails (a series whose
 * representative instance cannot be rendered, e.g. a video, gets a placeholder) and `expected` ones.
 */
function expectClean(expected: RegExp[] = []): void {
  const unexpected = failed.filter((f) => !f.includes('/thumbnail?') && !expected.some((e) => e.test(f)));
  expect(errors).toEqual([]);
  expect(unexpected).toEqual([]);
  errors.length = 0;
  failed.length = 0;
}
const infoText = () => page.locator('[data-testid=info]').innerText();

describe('study browser and image viewing', () => {
  it('finds a stored study by a wildcard patient name, without patient data in the URL', async () => {
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(server.url + '/');
    await page.fill('input[name=PatientName]', 'viewtest^al*');
    await page.press('input[name=PatientName]', 'Enter');
    const row = page.locator(`tr[data-study="${ids.stackStudy}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await page.locator('tbody tr').count()).toBe(1);
    expect(await row.innerText()).toContain('VIEWTEST ALICE'); // family name first (i18n formatPersonName)
    await shoot(page, '01-study-search');
    // Keyboard: focus the row and open it with Enter.
    await row.focus();
    // The focused study's series, with thumbnails rendered by the archive.
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('.series-preview img');
      return img !== null && img.complete && img.naturalWidth > 0;
    }, undefined, { timeout: 15_000 });
    await shoot(page, '01-study-search-series');
    await page.keyboard.press('Enter');
    await waitForImage();
    expect(page.url()).toBe(`${server.url}/#/study/${ids.stackStudy}`);
    // Patient name / ID only ever in QIDO-RS search query strings.
    const leaking = requests.filter((u) => /VIEWTEST|VT-1/i.test(decodeURIComponent(u)) && !new URL(u).pathname.endsWith('/dicomweb/studies'));
    expect(leaking).toEqual([]);
    expect(await page.locator('.series-item img').count()).toBeGreaterThan(0);
  }, 120_000);

  it('pages results and filters by date range, modality and accession number', async () => {
    const files = Array.from({ length: 27 }, (_, i) =>
      makeInstance({ patientName: `PAGETEST^P${String(i).padStart(2, '0')}`, patientId: `PG-${i}`, studyDate: i < 3 ? '20230615' : '20250101', modality: i === 0 ? 'MR' : 'OT', accessionNumber: `PGACC${i}` }),
    );
    await stowAll(server.url, files);
    await page.goto('about:blank');
    await page.goto(server.url + '/');
    await page.fill('input[name=PatientName]', 'pagetest*');
    await page.press('input[name=PatientName]', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 25);
    await page.click('button:has-text("Next")');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 2);
    expect(await page.locator('.pager').innerText()).toContain('Studies 26–27');
    await shoot(page, '01-study-search-page-2');
    await page.fill('input[name=from]', '2023-01-01');
    await page.fill('input[name=to]', '2023-12-31');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 3);
    await page.selectOption('select[name=ModalitiesInStudy]', 'MR');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1);
    await page.selectOption('select[name=ModalitiesInStudy]', '');
    await page.fill('input[name=AccessionNumber]', 'PGACC2');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1 && (document.querySelector('tbody tr')?.textContent ?? '').includes('PGACC2'));
    expectClean();
  }, 120_000);

  it('renders the stack and scrolling changes the frame', async () => {
    await page.goto('about:blank');
    await page.goto(`${server.url}/#/study/${ids.stackStudy}`);
    await waitForImage();
    const first = await shoot(viewport(), '02-stack-image-1');
    const s1 = stats(first);
    // The bright square fills about a fifth of a square viewport, less of a wider one (it is fitted
    // to the height); an undrawn viewport is ~0.
    expect(s1.litFraction).toBeGreaterThan(0.1);
    expect(await infoText()).toContain('Image 1 / 3');
    await viewport().focus();
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => document.querySelector<HTMLElement>('.viewport')?.dataset['index'] === '1');
    await page.waitForTimeout(300);
    expect(await infoText()).toContain('Image 2 / 3');
    const second = await shoot(viewport(), '03-stack-image-2');
    // Ramp along x then along y: the left column is dark in the first image, a ramp in the second.
    let diff = 0;
    for (let i = 0; i < first.data.length; i += 1) diff += Math.abs((first.data[i] ?? 0) - (second.data[i] ?? 0));
    expect(diff / first.data.length).toBeGreaterThan(10);
    // Mouse wheel scrolls too.
    await viewport().hover();
    await page.mouse.wheel(0, 120);
    await page.waitForFunction(() => document.querySelector<HTMLElement>('.viewport')?.dataset['index'] === '2');
    expectClean();
  }, 120_000);

  it('renders a CT slice with window presets and shows series/instance/window in the overlay', async () => {
    await page.goto(`${server.url}/#/study/${ct.study}`);
    await waitForImage();
    const img = await shoot(viewport(), '04-ct');
    const s = stats(img);
    expect(s.litFraction).toBeGreaterThan(0.1);
    expect(s.distinctColours).toBeGreaterThan(20); // a real greyscale image, not a flat fill
    expect(await infoText()).toMatch(/W \d+ L -?\d+/);
    await page.selectOption('select[aria-label="Window preset"]', 'Bone');
    await page.waitForFunction(() => /W 1800 L 400/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''));
    const bone = await shoot(viewport(), '05-ct-bone-window');
    expect(stats(bone).mean[0]).not.toBeCloseTo(s.mean[0], 0);
    // Window/level by dragging, zoom by keyboard, then reset.
    const box = (await viewport().boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2 + 60, { steps: 6 });
    await page.mouse.up();
    await page.waitForFunction(() => !/W 1800 L 400/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''));
    await viewport().focus();
    await page.keyboard.press('+');
    await page.waitForFunction(() => /Zoom 125%/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''));
    await shoot(viewport(), '05-ct-zoomed');
    await page.keyboard.press('r');
    await page.waitForFunction(() => /Zoom 100%/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''));
    const reset = await shoot(viewport(), '05-ct-reset');
    expect(Math.abs(stats(reset).mean[0] - s.mean[0])).toBeLessThan(3);
    expectClean();
  }, 120_000);

  it('renders a colour endoscopy image (JPEG baseline, YBR) in colour', async () => {
    await page.goto(`${server.url}/#/study/${endo.study}`);
    await waitForImage();
    const img = await shoot(viewport(), '06-endoscopy');
    const s = stats(img);
    expect(s.litFraction).toBeGreaterThan(0.3);
    expect(s.saturatedFraction).toBeGreaterThan(0.2); // colour, not grey
    expect(s.mean[0]).toBeGreaterThan(s.mean[2]); // mucosa is red-dominant
    expect(await infoText()).toContain('Colour');
    expectClean();
  }, 120_000);
});

describe('thin links: the first image first', () => {
  /** The frame responses of the page, with their bytes (read as they arrive). */
  function recordFrames(p: Page): { frames: Array<{ url: string; accept: string; contentType: string; body: Promise<Buffer> }>; stop: () => void } {
    const frames: Array<{ url: string; accept: string; contentType: string; body: Promise<Buffer> }> = [];
    const onResponse = (r: import('playwright-core').Response) => {
      if (!/\/frames\/\d+(\?|$)/.test(r.url()) || r.request().method() !== 'GET') return;
      frames.push({ url: r.url(), accept: r.request().headers()['accept'] ?? '', contentType: r.headers()['content-type'] ?? '', body: r.body() });
    };
    p.on('response', onResponse);
    return { frames, stop: () => p.off('response', onResponse) };
  }

  it('shows a lossy preview of a CT slice labelled on screen, then the full frame, which decodes to exactly the stored pixels', async () => {
    // Hold the imaging code (Cornerstone) back, so the preview can be seen and checked on its own.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const imagingCode = /\/assets\/stack-display-[^/]+\.js$/;
    await page.route(imagingCode, async (route) => {
      await released;
      await route.continue().catch(() => undefined);
    });
    const recorded = recordFrames(page);
    try {
      await page.goto('about:blank');
      await page.goto(`${server.url}/#/study/${ct.study}`);
      const label = page.locator('[data-testid=preview-label]');
      await label.waitFor({ timeout: 30_000 });
      expect(await label.innerText()).toBe('Preview (lossy) — loading full quality…');
      expect(await viewport().getAttribute('data-preview')).toBe('lossy');
      expect(await viewport().getAttribute('data-first-image-ms')).toMatch(/^\d+$/);
      const preview = await shoot(viewport(), '04a-ct-preview-lossy');
      expect(stats(preview).litFraction).toBeGreaterThan(0.1);
      expect(stats(preview).distinctColours).toBeGreaterThan(20);
      // Nothing of the full frame yet: the first image came before the rest.
      expect(recorded.frames).toEqual([]);
      release();
      await waitForImage();
      await label.waitFor({ state: 'detached', timeout: 30_000 });
      expect(await viewport().getAttribute('data-preview')).toBe('replaced');
      expect(await page.locator('[data-testid=stack-preview]').count()).toBe(0);
      const full = await shoot(viewport(), '04b-ct-full-quality');
      expect(stats(full).distinctColours).toBeGreaterThan(20);

      // The frame Cornerstone decoded: JPEG-LS lossless of the stored frame (the stored one is native).
      const first = recorded.frames.find((f) => f.url.endsWith('/frames/1'));
      expect(first, recorded.frames.map((f) => f.url).join(', ')).toBeDefined();
      expect(first!.accept).toBe('multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80');
      const [received] = splitMultipart(await first!.body, first!.contentType);
      expect(received!.headers['content-type']).toBe('image/jls; transfer-syntax=1.2.840.10008.1.2.4.80');
      const asStored = await fetch(first!.url, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      const [stored] = splitMultipart(Buffer.from(await asStored.arrayBuffer()), asStored.headers.get('content-type') ?? '');
      const instance = describeInstance(await shared('dicom-highdicom/ct_image.dcm'));
      const n = (tag: string) => Number(instance.dict[tag]?.Value?.[0]);
      await initializeCodecs();
      const decoded = decodeFrame('1.2.840.10008.1.2.4.80', {
        rows: n('00280010'),
        columns: n('00280011'),
        bitsAllocated: n('00280100'),
        bitsStored: n('00280100'),
        highBit: n('00280100') - 1,
        pixelRepresentation: 0,
        samplesPerPixel: 1,
        photometricInterpretation: 'MONOCHROME2',
        planarConfiguration: 0,
      }, received!.body);
      expect(received!.body.length).toBeLessThan(stored!.body.length);
      expect(decoded.pixels.equals(stored!.body), 'the full frame decodes to the bytes WADO-RS serves with transfer-syntax=*').toBe(true);
    } finally {
      release();
      recorded.stop();
      await page.unroute(imagingCode);
    }
    expectClean();
  }, 120_000);

  it('shows a stored colour JPEG as the first image (no preview label), and Cornerstone reuses exactly those bytes', async () => {
    const recorded = recordFrames(page);
    try {
      await page.goto('about:blank');
      await page.goto(`${server.url}/#/study/${endo.study}`);
      await page.waitForSelector('.viewport[data-first-image-ms]', { timeout: 30_000 });
      // The first image was the stored JPEG (Cornerstone may already have replaced it on a fast machine).
      expect(await viewport().getAttribute('data-first-image')).toBe('original');
      expect(await page.locator('[data-testid=preview-label]').count()).toBe(0);
      await waitForImage();
      const frames = recorded.frames.filter((f) => f.url.endsWith('/frames/1'));
      // One request for the first frame: the first image and the decoded one are the same bytes.
      expect(frames).toHaveLength(1);
      expect(frames[0]!.accept).toBe('multipart/related; type="application/octet-stream"; transfer-syntax=*');
      const [received] = splitMultipart(await frames[0]!.body, frames[0]!.contentType);
      const asStored = await fetch(frames[0]!.url, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      const [stored] = splitMultipart(Buffer.from(await asStored.arrayBuffer()), asStored.headers.get('content-type') ?? '');
      expect(received!.body.equals(stored!.body), 'byte-identical to WADO-RS transfer-syntax=*').toBe(true);
      expect(received!.headers['content-type']).toBe('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50');
    } finally {
      recorded.stop();
    }
    expectClean();
  }, 120_000);

  it('prefetches the next images after the first, and cancels the prefetch when the series is left', async () => {
    const series = newUid();
    const study = newUid();
    const files = Array.from({ length: 30 }, (_, k) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, patientName: 'VIEWTEST^PREFETCH', rows: 64, columns: 64, pixels: patterned(k % 3) }));
    await stowAll(server.url, files);
    const recorded = recordFrames(page);
    try {
      await page.goto('about:blank');
      await page.goto(`${server.url}/#/study/${study}`);
      await waitForImage();
      await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.viewport')?.dataset['prefetched'] ?? '0') >= 2, undefined, { timeout: 15_000 });
      await page.waitForTimeout(500);
      // Frames that were not shown were fetched, none of them twice.
      const urls = recorded.frames.map((f) => f.url);
      expect(new Set(urls).size).toBeGreaterThan(2);
      expect(new Set(urls).size).toBe(urls.length);
      // Scrolling to the next image uses the prefetched bytes: no new request for it.
      const before = recorded.frames.length;
      await viewport().focus();
      await page.keyboard.press('ArrowDown');
      await page.waitForFunction(() => document.querySelector<HTMLElement>('.viewport')?.dataset['index'] === '1');
      const shownSop = await viewport().getAttribute('data-sop');
      expect(recorded.frames.slice(before).filter((f) => f.url.includes(`/instances/${shownSop}/frames/`))).toEqual([]);
    } finally {
      recorded.stop();
    }

    // Leaving the series while prefetches are in flight aborts them (held by the test until then).
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let shown = 0;
    const held: string[] = [];
    const pattern = `**/series/${series}/instances/*/frames/*`;
    await page.route(pattern, async (route) => {
      shown += 1;
      if (shown > 1) {
        held.push(route.request().url());
        await released;
      }
      await route.continue().catch(() => undefined);
    });
    const aborted: string[] = [];
    const onFailed = (r: import('playwright-core').Request) => {
      if (r.url().includes(`/series/${series}/`) && r.url().includes('/frames/')) aborted.push(r.failure()?.errorText ?? '');
    };
    page.on('requestfailed', onFailed);
    try {
      await page.goto('about:blank');
      await page.goto(`${server.url}/#/study/${study}`);
      await waitForImage();
      await page.waitForFunction(() => true);
      await expect.poll(() => held.length, { timeout: 15_000 }).toBeGreaterThan(0);
      await page.evaluate(() => (location.hash = '#/'));
      await expect.poll(() => aborted.length, { timeout: 15_000 }).toBeGreaterThan(0);
      expect(aborted.every((e) => /abort/i.test(e))).toBe(true);
    } finally {
      release();
      page.off('requestfailed', onFailed);
      await page.unroute(pattern);
    }
    errors.length = 0;
    failed.length = 0;
  }, 120_000);
});

describe('AI overlays', () => {
  it('"Detect polyps" runs the model on the frame, stores a TID 1500 SR and draws its box where it belongs', async () => {
    await page.goto(`${server.url}/#/study/${ids.detectStudy}`);
    await waitForImage();
    // The test model (test-fixtures/models): marks bright regions, so the box is known.
    await page.selectOption('select[data-testid=model]', 'bright-spot');
    await page.click('button[data-action=detect]');
    await page.waitForSelector('[data-testid=detect-done]', { timeout: 60_000 });
    expect(await page.locator('[data-testid=detect-done]').innerText()).toContain('1 finding');
    await page.waitForFunction(() => (document.querySelector<HTMLCanvasElement>('.overlay-canvas')?.dataset['boxes'] ?? '[]') !== '[]');
    const boxes = JSON.parse((await page.locator('.overlay-canvas').getAttribute('data-boxes')) ?? '[]') as Array<{ x: number; y: number; width: number; height: number; label: string }>;
    expect(boxes).toHaveLength(1);
    const box = boxes[0]!;
    expect(box.label).toMatch(/^Polyp of colon \d+%$/);
    const img = await shoot(viewport(), '07-detection-box');
    // The left edge of the box is yellow…
    const midY = box.y + box.height / 2;
    const edge = img.at(box.x, midY);
    expect(edge[0]).toBeGreaterThan(180);
    expect(edge[1]).toBeGreaterThan(180);
    expect(edge[2]).toBeLessThan(100);
    // …and lies on the left edge of the white rectangle in the image (within the model's grid, ~4 px).
    let whiteX = -1;
    for (let x = 0; x < img.width; x += 1) {
      const [r, g, b] = img.at(x, midY);
      if (r > 200 && g > 200 && b > 200) {
        whiteX = x;
        break;
      }
    }
    const scale = box.width / 40;
    expect(whiteX).toBeGreaterThan(0);
    expect(Math.abs(whiteX - box.x)).toBeLessThanOrEqual(5 * scale + 3);
    // The result is listed and can be hidden.
    const toggle = page.locator('.ai-results input[type=checkbox]');
    expect(await toggle.count()).toBe(1);
    await toggle.uncheck();
    await page.waitForFunction(() => document.querySelector<HTMLCanvasElement>('.overlay-canvas')?.dataset['boxes'] === '[]');
    const hidden = await shoot(viewport(), '08-detection-hidden');
    const [hr, hg, hb] = hidden.at(box.x, midY);
    expect(hb).toBeGreaterThan(hr - 60); // no yellow there any more
    expect(hg).toBeGreaterThan(-1);
    expectClean();
  }, 120_000);
});

/** Frame requests of the page, as [sop, frame list]. */
function frameRequests(): Array<[string, string]> {
  return tileRequests.map((u) => /instances\/([0-9.]+)\/frames\/([0-9,]+)/.exec(u)).filter((m): m is RegExpExecArray => m !== null).map((m) => [m[1]!, m[2]!]);
}
let tileRequests: string[] = [];

async function openSlide(study: string, name: string) {
  tileRequests = [];
  const onRequest = (r: { url(): string }) => {
    if (r.url().includes('/frames/')) tileRequests.push(r.url());
  };
  page.on('request', onRequest);
  // A fresh page load (the same hash again would not reload the study).
  await page.goto('about:blank');
  await page.goto(`${server.url}/#/study/${study}`);
  await page.waitForSelector('.viewport.wsi[data-loaded]', { timeout: 30_000 });
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['loaded'] ?? 0) >= 1, undefined, { timeout: 30_000 });
  await page.waitForTimeout(500);
  return { img: await shoot(viewport(), name), stop: () => page.off('request', onRequest) };
}

/** Zooms in (button) until the full-resolution level is shown and its tiles have arrived. */
async function zoomToBase(): Promise<void> {
  for (let i = 0; i < 12; i += 1) {
    if ((await viewport().getAttribute('data-level')) === '0') break;
    await page.click('button[data-action=zoom-in]');
    await page.waitForTimeout(150);
  }
  expect(await viewport().getAttribute('data-level')).toBe('0');
  await page.waitForTimeout(1500);
}

describe('whole-slide viewing', () => {
  for (const kind of ['TILED_FULL', 'TILED_SPARSE'] as const) {
    it(`shows the ${kind} pyramid (tissue, scale bar) and fetches deeper-level tiles when zoomed`, async () => {
      const pyramid = kind === 'TILED_FULL' ? wsiFull : wsiSparse;
      const { img, stop } = await openSlide(pyramid.study, `09-wsi-${kind.toLowerCase()}-fit`);
      // Tissue: H&E pinks and purples on a light background, not a blank or black canvas.
      const s = stats(img);
      expect(s.litFraction).toBeGreaterThan(0.2);
      expect(s.saturatedFraction).toBeGreaterThan(0.05);
      expect(s.distinctColours).toBeGreaterThan(200);
      // Stained tissue is red-dominant over green (pink / purple), as a wrong colour transform would not be.
      expect(s.mean[0]).toBeGreaterThan(s.mean[1]);
      // Lowest level first: the first tiles asked for are of a coarse level, none of the base.
      const first = frameRequests();
      expect(first.length).toBeGreaterThan(0);
      expect(pyramid.levels.get(first[0]![0])).toBeGreaterThan(0);
      expect(first.some(([sop]) => pyramid.levels.get(sop) === 0)).toBe(false);
      expect(await page.locator('[data-testid=scale-bar]').innerText()).toMatch(/\d+ (µm|mm)/);
      await zoomToBase();
      const deep = frameRequests().filter(([sop]) => pyramid.levels.get(sop) === 0);
      expect(deep.length).toBeGreaterThan(0);
      const zoomed = await shoot(viewport(), `10-wsi-${kind.toLowerCase()}-base-level`);
      expect(stats(zoomed).distinctColours).toBeGreaterThan(200);
      // Visible tiles only (and, once the screen is complete, a bounded ring around it for the next pan):
      // fewer base tiles asked for than the level has.
      const baseTiles = new Set(deep.map(([sop, f]) => `${sop}:${f}`));
      const prefetched = Number(await viewport().getAttribute('data-prefetched'));
      expect(baseTiles.size - prefetched).toBeLessThan(kind === 'TILED_FULL' ? 30 : 108);
      stop();
      expectClean();
    }, 120_000);
  }

  it('aborts tile requests that left the screen', async () => {
    // Hold every tile of the base level until the test lets them go (a fixed delay was too short on a
    // loaded CI machine: the tiles arrived before the click), zoom in to it, and fit again.
    const baseSop = [...wsiFull.levels].find(([, level]) => level === 0)![0];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await page.route(`**/instances/${baseSop}/frames/**`, async (route) => {
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      const { stop } = await openSlide(wsiFull.study, '10-wsi-abort-fit');
      for (let i = 0; i < 12 && (await viewport().getAttribute('data-level')) !== '0'; i += 1) await page.click('button[data-action=zoom-in]');
      expect(await viewport().getAttribute('data-level')).toBe('0');
      await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['pending'] ?? 0) > 0);
      await page.click('button[data-action=fit]');
      await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['aborted'] ?? 0) > 0);
      release();
      await page.waitForFunction(() => document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['pending'] === '0');
      stop();
    } finally {
      // Never leave held tiles behind for the tests that follow, whatever failed above.
      release();
      await page.unroute(`**/instances/${baseSop}/frames/**`);
    }
    errors.length = 0;
    failed.length = 0;
  }, 120_000);

  it('draws 5,000 annotation polygons over a slide and hides them on request', async () => {
    const { part10 } = makePolygonAnnotations({ study: wsiSparse.study, slideSeries: wsiSparse.series, width: 2220, height: 2967, count: 5000 });
    await stowAll(server.url, [part10]);
    const { stop } = await openSlide(wsiSparse.study, '11-polygons-loading');
    await page.waitForSelector('.viewport.wsi[data-annotations-done]', { timeout: 30_000 });
    expect(await viewport().getAttribute('data-annotations'), await page.locator('.display-status').innerText()).toBe('5000');
    await page.waitForTimeout(300);
    // The first annotation layer is cyan (#00e5ff): count such pixels with and without the layer.
    const cyan = (p: Awaited<ReturnType<typeof shoot>>) => {
      let n = 0;
      for (let i = 0; i < p.data.length; i += 3) if (p.data[i]! < 90 && p.data[i + 1]! > 160 && p.data[i + 2]! > 180) n += 1;
      return n;
    };
    const on = cyan(await shoot(viewport(), '11-polygons'));
    // Pan and zoom with the polygons shown: still drawn, no errors.
    await page.keyboard.press('ArrowRight');
    await page.click('button[data-action=zoom-in]');
    await page.waitForTimeout(500);
    const zoomed = cyan(await shoot(viewport(), '11-polygons-zoomed'));
    await page.locator('input[data-annotation]').uncheck();
    await page.waitForTimeout(300);
    const off = cyan(await shoot(viewport(), '11-polygons-hidden'));
    expect(on).toBeGreaterThan(5000);
    expect(zoomed).toBeGreaterThan(2000);
    expect(off).toBeLessThan(on / 20);
    stop();
    expectClean();
  }, 120_000);

  it('"Analyse slide" offers the models that run on slides, runs the chosen one and draws its regions', async () => {
    const { stop } = await openSlide(wsiFull.study, '11-analyse-before');
    await page.waitForSelector('.viewport.wsi[data-annotations-done]', { timeout: 30_000 });
    await page.waitForSelector('select[data-action=analyse-model]:not([hidden])', { timeout: 30_000 });
    const offered = await page.locator('select[data-action=analyse-model] option').allTextContents();
    // The test models with a training resolution (input.pixelSpacingMm); bright-spot has none.
    expect(offered).toEqual(expect.arrayContaining(['dark-spot 1.0.0', 'dark-tissue 1.0.0']));
    expect(offered.some((o) => o.startsWith('bright-spot'))).toBe(false);
    const before = Number((await viewport().getAttribute('data-annotations')) ?? 0);
    await page.selectOption('select[data-action=analyse-model]', 'dark-tissue');
    await page.click('button[data-action=analyse]');
    await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['annotations'] ?? 0) > n, before, { timeout: 60_000 });
    expect(await page.locator('[data-testid=analysis-progress]').textContent()).toMatch(/^dark-tissue: \d+ /);
    // The regions (POLYGONs of the tile classifier) have a layer toggle of their own.
    expect(await page.locator('.annotation-toggles label').last().textContent()).toMatch(/lesion \(\d+\)/);
    await shoot(viewport(), '11-analyse-regions');
    stop();
    expectClean();
  }, 120_000);

  it('draws the bulk annotations (highdicom sample) on the slide', async () => {
    const { stop } = await openSlide(slide.study, '11-annotations-loading');
    await page.waitForSelector('.viewport.wsi[data-annotations-done]', { timeout: 30_000 });
    expect(await viewport().getAttribute('data-annotations')).toBe('2');
    await page.waitForTimeout(300);
    const img = await shoot(viewport(), '12-annotations');
    // Screen position of the first point (34.6, 18.4) from the view's geometry.
    const pos = await page.evaluate(() => {
      const box = document.querySelector('.viewport.wsi') as HTMLElement & { wsiView: { view: { cx: number; cy: number; scale: number } } };
      const { cx, cy, scale } = box.wsiView.view;
      const canvas = box.querySelector('canvas') as HTMLCanvasElement;
      return [(34.6 - cx) * scale + canvas.clientWidth / 2, (18.4 - cy) * scale + canvas.clientHeight / 2];
    });
    const [r, g, b] = img.at(pos[0]!, pos[1]!);
    expect(r).toBeLessThan(80);
    expect(g).toBeGreaterThan(170);
    expect(b).toBeGreaterThan(170);
    // Hidden when toggled off.
    await page.locator('input[data-annotation]').uncheck();
    await page.waitForTimeout(300);
    const off = await shoot(viewport(), '13-annotations-hidden');
    const [r2, g2, b2] = off.at(pos[0]!, pos[1]!);
    expect(Math.abs(r2 - r) + Math.abs(g2 - g) + Math.abs(b2 - b)).toBeGreaterThan(60);
    stop();
    expectClean();
  }, 120_000);
});

describe('video, cine and errors', () => {
  it('plays a Video Endoscopic instance (H.264 MP4 from /rendered) in a <video>', async () => {
    await page.goto(`${server.url}/#/study/${video.study}/series/${video.series}`);
    const v = page.locator('video[data-testid=video]');
    await v.waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => {
      const el = document.querySelector<HTMLVideoElement>('video[data-testid=video]');
      return el !== null && (el.error !== null || (el.readyState >= 2 && el.currentTime > 0.2));
    }, undefined, { timeout: 30_000 });
    const state = await v.evaluate((el: HTMLVideoElement) => ({ error: el.error?.code ?? null, width: el.videoWidth, height: el.videoHeight, t: el.currentTime }));
    expect(state).toMatchObject({ error: null, width: 720, height: 576 });
    await shoot(page, '14-video');
    const frame = await shoot(v, '14-video-frame');
    expect(stats(frame).saturatedFraction).toBeGreaterThan(0.1);
    expectClean();
  }, 120_000);

  it('cine plays the frames of a multi-frame instance', async () => {
    await page.goto(`${server.url}/#/study/${cineIds.study}`);
    await waitForImage();
    expect(await infoText()).toContain('frame 1 / 6');
    await page.click('button[data-action=cine]');
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 3; i += 1) {
      seen.add((await viewport().getAttribute('data-frame')) ?? '');
      await page.waitForTimeout(100);
    }
    await page.click('button[data-action=cine]');
    expect(seen.size).toBeGreaterThanOrEqual(3);
    await shoot(viewport(), '15-cine');
    expectClean();
  }, 120_000);

  it('shows a clear message for an image that cannot be decoded', async () => {
    errors.length = 0;
    await page.goto(`${server.url}/#/study/${broken.study}`);
    const alert = page.locator('.display [role=alert]');
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.innerText()).toMatch(/cannot be decoded/i);
    await page.waitForTimeout(500);
    await shoot(page, '16-error-undecodable');
    // The decoder's own console output and the failed frame are expected here.
    errors.length = 0;
    failed.length = 0;
  }, 120_000);

  it('shows a clear message for a 4xx from the archive', async () => {
    await page.goto(`${server.url}/#/study/${ids.stackStudy}/series/1.2.3.999`);
    const alert = page.locator('.display [role=alert]');
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.innerText()).toMatch(/HTTP 404 \(Series not found\)/);
    await shoot(page, '17-error-404');
    expectClean([/\/series\/1\.2\.3\.999\/metadata$/]);
  }, 120_000);

  it('shows a clear message when the server cannot be reached', async () => {
    const context = await browser.newContext();
    const p = await context.newPage();
    await p.goto(server.url + '/');
    await p.route('**/dicomweb/**', (route) => route.abort('connectionrefused'));
    await p.fill('input[name=PatientName]', 'any*');
    await p.press('input[name=PatientName]', 'Enter');
    const alert = p.locator('[role=alert]');
    await alert.waitFor({ timeout: 15_000 });
    expect(await alert.innerText()).toMatch(/server cannot be reached/);
    expect(await p.locator('button', { hasText: 'Retry' }).count()).toBe(1);
    await shoot(p, '18-error-server-down');
    await context.close();
  }, 120_000);
});
