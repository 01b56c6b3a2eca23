/**
 * Interoperability: the real, unmodified OHIF Viewer v3 (the published @ohif/app build, see
 * ohif-host.ts) in Debian's headless Chromium against our DICOMweb server. OHIF runs on its own
 * loopback origin, so every request to us is cross-origin (CORS through PACS_CORS_ORIGINS). Checks the
 * study list (QIDO-RS), then the basic viewer drawing a CT slice and a colour endoscopy still from
 * series metadata and WADO-RS frames, judged by the canvas pixels. Screenshots: .artifacts/viewer/ohif-*.png.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUid } from '../../server/src/test-support/make-dicom.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { launchChromium, shoot, startServer, stats, stowAll, type RunningServer } from './harness.js';
import { startOhifHost, type OhifHost } from './ohif-host.js';

const shared = (p: string) => readFile(path.join(sharedDataDir, p));

const CT_DESCRIPTION = 'OHIF interop CT';
const CT_SLICES = 4;
const ENDO_DESCRIPTION = 'Colonoscopy (test data)';
const ENDO_FILES = ['01-cju0s690hkp960855tjuaqvv0', '02-cju0sr5ghl0nd08789uzf1raf', '03-cju0sxqiclckk08551ycbwhno'].map((id) => `endoscopy-dicom-kvasir/vl-endoscopic-${id}-jpeg-baseline.dcm`);

/**
 * A real CT slice (pydicom's CT_small, 128×128, 16-bit) as a series of `count` slices 5 mm apart
 * under new study/series/instance UIDs and our own study description, so the study list has a row
 * whose text we know and the viewer has a stack to sort by position.
 */
async function ctSeries(count: number): Promise<{ files: Buffer[]; study: string; series: string }> {
  const source = await shared('dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm');
  const study = newUid();
  const series = newUid();
  const files: Buffer[] = [];
  for (let i = 0; i < count; i += 1) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const parsed = dcmjs.data.DicomMessage.readFile(source.buffer.slice(source.byteOffset, source.byteOffset + source.length) as ArrayBuffer) as any;
    const sop = newUid();
    const set = (tag: string, vr: string, value: unknown[]) => {
      parsed.dict[tag] = { vr, Value: value };
    };
    set('0020000D', 'UI', [study]);
    set('0020000E', 'UI', [series]);
    set('00080018', 'UI', [sop]);
    parsed.meta['00020003'].Value = [sop];
    set('00081030', 'LO', [CT_DESCRIPTION]);
    set('0008103E', 'LO', ['Axial 5 mm']);
    set('00200011', 'IS', [1]);
    set('00200013', 'IS', [i + 1]);
    const [x, y, z] = parsed.dict['00200032'].Value as number[];
    set('00200032', 'DS', [x, y, z! + 5 * i]);
    set('00201041', 'DS', [z! + 5 * i]);
    files.push(Buffer.from(parsed.write()));
  }
  return { files, study, series };
}

let server: RunningServer;
let ohif: OhifHost;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let ct: { study: string; series: string };
let endo: { study: string; series: string };
/** Every response from our server, in order. */
const pacsResponses: Array<{ status: number; method: string; url: URL; accept: string; contentType: string }> = [];
/** Page errors and console errors, each with the page URL it happened on. */
const pageProblems: string[] = [];
/** Requests OHIF tried to send anywhere but loopback (aborted: the test stays offline). */
const offline: string[] = [];

const describeResponses = () => pacsResponses.map((r) => `${r.status} ${r.method} ${r.url.pathname}${r.url.search}`).join('\n');
/** Adds what the page saw to a failed wait: our server's responses, page/console errors, blocked requests. */
const withDiagnosis = <T>(p: Promise<T>): Promise<T> =>
  p.catch((err: Error) => {
    throw new Error(`${err.message}\nresponses from our server:\n${describeResponses()}\npage problems:\n${pageProblems.join('\n')}\noffline requests: ${offline.join(' ')}`);
  });

beforeAll(async () => {
  // OHIF's origin first: our server's CORS allow-list must name it.
  ohif = await startOhifHost();
  server = await startServer({ PACS_CORS_ORIGINS: ohif.url });
  ohif.configure(server.url);

  const ctFiles = await ctSeries(CT_SLICES);
  ct = { study: ctFiles.study, series: ctFiles.series };
  const endoFiles = await Promise.all(ENDO_FILES.map(shared));
  await stowAll(server.url, [...ctFiles.files, ...endoFiles]);
  const e = describeInstance(endoFiles[0]!);
  endo = { study: e.study, series: e.series };

  browser = await launchChromium();
  // Service workers blocked: a cached response would never reach page.on('response').
  context = await browser.newContext({ viewport: { width: 1400, height: 900 }, serviceWorkers: 'block' });
  // A returning user: OHIF's first-visit guided tour of the viewer (a modal that dims the viewport) was seen.
  await context.addInitScript(() => localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour'])));
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || url.startsWith('blob:') || new URL(url).hostname === '127.0.0.1') return route.continue();
    offline.push(url);
    return route.abort();
  });
  page = await context.newPage();
  page.on('response', (r: Response) => {
    if (!r.url().startsWith(server.url)) return;
    const accept = r.request().headers()['accept'] ?? '';
    pacsResponses.push({ status: r.status(), method: r.request().method(), url: new URL(r.url()), accept, contentType: r.headers()['content-type'] ?? '' });
  });
  // Nothing is filtered: in this setup (one loopback data source, no external resources, tour off)
  // OHIF 3.13.2 logs no errors at all, so any page error or console error is a finding. HTTP failures
  // appear as console "Failed to load resource" lines and in pacsResponses with their status.
  page.on('pageerror', (err) => pageProblems.push(`pageerror on ${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageProblems.push(`console.error on ${page.url()}: ${msg.text()}`);
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await ohif?.close();
  await server?.t.close();
});

/** Polls the first viewport's canvas until `ok` holds for its pixels (or the time is up); returns the last stats. */
async function waitForImage(name: string, ok: (s: ReturnType<typeof stats>) => boolean, timeoutMs = 20_000) {
  const canvas = page.locator('canvas.cornerstone-canvas').first();
  await withDiagnosis(canvas.waitFor({ state: 'visible', timeout: timeoutMs }));
  const deadline = Date.now() + timeoutMs;
  let last = stats(await shoot(canvas, name));
  while (!ok(last) && Date.now() < deadline) {
    await page.waitForTimeout(300);
    last = stats(await shoot(canvas, name));
  }
  return last;
}

const responsesTo = (study: string) => pacsResponses.filter((r) => r.url.pathname.startsWith(`/dicomweb/studies/${study}/`));

describe('OHIF Viewer v3 (published @ohif/app build) against our DICOMweb server', () => {
  it('OHIF Viewer lists our studies and draws a CT slice from WADO-RS frames', async () => {
    await page.goto(`${ohif.url}/`);
    // The study list: one row per stored study, with what our QIDO-RS answered for it.
    const ctRow = page.getByRole('row', { name: new RegExp(CT_DESCRIPTION) });
    const endoRow = page.getByRole('row', { name: /Colonoscopy \(test data\)/ });
    await withDiagnosis(ctRow.waitFor({ timeout: 20_000 }));
    await withDiagnosis(endoRow.waitFor({ timeout: 5_000 }));
    await shoot(page, 'ohif-study-list');
    const ctText = await ctRow.innerText();
    expect(ctText).toMatch(/CompressedSamples/); // patient name (OHIF shows "Family, Given", cut to the column)
    expect(ctText).toMatch(/19-Jan-2004/); // study date
    expect(ctText).toMatch(/\bCT\b/); // modalities in study
    expect(ctText).toMatch(new RegExp(`\\b${CT_SLICES}\\b`)); // number of instances
    const endoText = await endoRow.innerText();
    expect(endoText).toMatch(/TEST, ENDOSCOPY/);
    expect(endoText).toMatch(/\bES\b/);
    expect(endoText).toMatch(/ENDO0001/); // accession number
    expect(endoText).toMatch(new RegExp(`\\b${ENDO_FILES.length}\\b`));
    const studySearch = pacsResponses.find((r) => r.url.pathname === '/dicomweb/studies' && r.method === 'GET');
    expect(studySearch, describeResponses()).toBeDefined();
    expect(studySearch!.status).toBe(200);
    expect(studySearch!.contentType).toMatch(/^application\/dicom\+json/);

    // The basic viewer on the CT study: series QIDO, series metadata, then WADO-RS frames into the viewport.
    await page.goto(`${ohif.url}/viewer?StudyInstanceUIDs=${ct.study}`);
    const pixels = await waitForImage('ohif-ct', (st) => st.litFraction > 0.3 && st.distinctColours > 40);
    await shoot(page, 'ohif-ct-page');
    // A CT slice at OHIF's default window: most of the canvas lit (body), grey levels, not one flat colour.
    expect(pixels.litFraction, JSON.stringify(pixels)).toBeGreaterThan(0.3);
    expect(pixels.distinctColours, JSON.stringify(pixels)).toBeGreaterThan(40);
    expect(pixels.saturatedFraction).toBeLessThan(0.05); // greyscale: the image itself has no colour
    // The slice counter of the viewport: our 4 instances form one stack.
    await expect.poll(() => page.getByText(`(1/${CT_SLICES})`).count()).toBeGreaterThan(0);
    // The mouse wheel over the image moves to the next slice of the stack.
    await page.locator('canvas.cornerstone-canvas').first().hover();
    await page.mouse.wheel(0, 120);
    await expect.poll(() => page.getByText(`(2/${CT_SLICES})`).count()).toBeGreaterThan(0);
    const second = stats(await shoot(page.locator('canvas.cornerstone-canvas').first(), 'ohif-ct-slice-2'));
    expect(second.litFraction, JSON.stringify(second)).toBeGreaterThan(0.3);

    const ctCalls = responsesTo(ct.study);
    const seriesSearch = ctCalls.find((r) => r.url.pathname === `/dicomweb/studies/${ct.study}/series`);
    const metadata = ctCalls.find((r) => r.url.pathname === `/dicomweb/studies/${ct.study}/series/${ct.series}/metadata`);
    const frames = ctCalls.filter((r) => /\/instances\/[\d.]+\/frames\/1$/.test(r.url.pathname));
    expect(seriesSearch, describeResponses()).toBeDefined();
    expect(metadata, describeResponses()).toBeDefined();
    expect(metadata!.contentType).toMatch(/^application\/dicom\+json/);
    expect(frames.length, describeResponses()).toBeGreaterThanOrEqual(1);
    for (const f of frames) {
      expect(f.accept).toMatch(/^multipart\/related; *type="?application\/octet-stream/);
      expect(f.contentType).toMatch(/^multipart\/related/);
    }
    expect(pacsResponses.filter((r) => r.status >= 400).map((r) => `${r.status} ${r.url}`)).toEqual([]);
    expect(pageProblems).toEqual([]);
    expect(offline).toEqual([]);
  });

  it('OHIF Viewer draws a colour endoscopy still (JPEG baseline) from WADO-RS frames', async () => {
    const before = pacsResponses.length;
    await page.goto(`${ohif.url}/viewer?StudyInstanceUIDs=${endo.study}`);
    const pixels = await waitForImage('ohif-endoscopy', (st) => st.saturatedFraction > 0.2);
    await shoot(page, 'ohif-endoscopy-page');
    // Colonoscopy: reddish mucosa over much of the frame, so many saturated pixels, red above blue.
    expect(pixels.saturatedFraction, JSON.stringify(pixels)).toBeGreaterThan(0.2);
    expect(pixels.mean[0], JSON.stringify(pixels)).toBeGreaterThan(pixels.mean[2] + 20);
    const calls = pacsResponses.slice(before).filter((r) => r.url.pathname.startsWith(`/dicomweb/studies/${endo.study}/`));
    expect(calls.some((r) => r.url.pathname === `/dicomweb/studies/${endo.study}/series/${endo.series}/metadata`), describeResponses()).toBe(true);
    expect(calls.some((r) => /\/frames\/1$/.test(r.url.pathname)), describeResponses()).toBe(true);
    expect(pacsResponses.filter((r) => r.status >= 400).map((r) => `${r.status} ${r.url}`)).toEqual([]);
    expect(pageProblems).toEqual([]);
    expect(offline).toEqual([]);
  });
});
