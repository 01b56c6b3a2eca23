/**
 * Measurements in the stack viewer, into the radiology report, in Debian's headless Chromium against a
 * real server on loopback: a CT slice with Pixel Spacing (highdicom's ct_image.dcm, 128×128, 0.661468
 * mm, stored through STOW-RS) → a length drawn with the length tool (key L) → its value in mm, as the
 * two points dragged and the pixel spacing say, in the panel and in Cornerstone's own label → "Add to
 * report": a new radiology draft holds it (type, value, unit mm, image, points in image pixels) → an
 * area drawn with the area tool (A) goes to the same draft → the report page lists both. Screenshots:
 * .artifacts/viewer/measurements-*.png.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RadiologyContent, ReportList } from '../../server/src/contracts/reports.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';

const SPACING = 0.661468;
const SIZE = 128;

let server: RunningServer;
let browser: Browser;
let page: Page;
let errors: string[];
let failed: string[];
let ct: { study: string; series: string; sop: string };

beforeAll(async () => {
  buildViewer();
  server = await startServer();
  const file = await readFile(path.join(sharedDataDir, 'dicom-highdicom/ct_image.dcm'));
  await stowAll(server.url, [file]);
  const d = describeInstance(file);
  ct = { study: d.study, series: d.series, sop: d.sop };
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

const reports = async (): Promise<ReportList['reports']> => ((await (await fetch(`${server.url}/reports/studies/${ct.study}`, { headers: { accept: 'application/json' } })).json()) as ReportList).reports;

/**
 * Where the image lies in the page: the stack viewport shows the whole (square) image, centred, scaled
 * to the element's smaller side. Page point → image pixels (0,0 = top-left corner of the first pixel).
 */
async function imageGeometry() {
  const box = (await page.locator('.cs-element').boundingBox())!;
  const scale = Math.min(box.width, box.height) / SIZE; // CSS px per image pixel
  const toImage = (x: number, y: number): [number, number] => [SIZE / 2 + (x - (box.x + box.width / 2)) / scale, SIZE / 2 + (y - (box.y + box.height / 2)) / scale];
  const toPage = (x: number, y: number): [number, number] => [box.x + box.width / 2 + (x - SIZE / 2) * scale, box.y + box.height / 2 + (y - SIZE / 2) * scale];
  return { scale, toImage, toPage };
}

async function drag(points: Array<[number, number]>): Promise<void> {
  await page.mouse.move(...points[0]!);
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...p, { steps: 8 });
  await page.mouse.up();
}

describe('measurements in the stack viewer', () => {
  it('draws a length in mm on a CT slice and adds it to a new radiology report', async () => {
    await page.goto(`${server.url}/#/study/${ct.study}/series/${ct.series}`);
    await page.waitForSelector('.viewport[data-sop]:not([data-sop=""])', { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('.cs-element canvas') !== null);
    await page.waitForTimeout(300);
    expect(await page.locator('[data-testid=measurements]').innerText()).toContain('No measurements on this image');
    const viewportBox = await page.locator('.cs-element').boundingBox();

    // L chooses the length tool (the left button draws); the toolbar says so.
    await page.locator('.viewport').focus();
    await page.keyboard.press('l');
    expect(await page.getAttribute('button[data-tool=length]', 'aria-pressed')).toBe('true');
    expect(await page.getAttribute('button[data-tool=windowLevel]', 'aria-pressed')).toBe('false');

    const { scale, toImage, toPage } = await imageGeometry();
    const from = toPage(30.5, 40.5);
    const to = toPage(95.5, 82.5);
    await drag([from, to]);
    const row = page.locator('.measurement[data-type=length]');
    await row.waitFor({ timeout: 10_000 });

    // The expected length from the two page points dragged and the pixel spacing.
    const expected = (Math.hypot(to[0] - from[0], to[1] - from[1]) / scale) * SPACING;
    expect(expected).toBeGreaterThan(40);
    expect(await row.getAttribute('data-unit')).toBe('mm');
    const shown = Number(await row.getAttribute('data-value'));
    expect(Math.abs(shown - expected)).toBeLessThan(expected * 0.01);
    expect(await row.locator('.measurement-value').innerText()).toBe(`Length ${shown.toFixed(1)} mm`);
    // Cornerstone's label on the image says the same (it follows the drag, throttled).
    const label = async () => Number(/([\d.]+)\s*mm/.exec((await page.locator('.cs-element svg text').allTextContents()).join(' '))?.[1]);
    await expect.poll(label, { timeout: 5_000 }).toBeCloseTo(shown, 1);
    // The viewport kept its size (and the image its place) while the measurement appeared.
    expect(await page.locator('.cs-element').boundingBox()).toEqual(viewportBox);
    await shoot(page, 'measurements-1-length');

    // Add to report: no report yet, so a new radiology draft holds it.
    expect(await reports()).toEqual([]);
    await row.locator('button[data-action=add-measurement]').click();
    const done = page.locator('[data-testid=measurement-added]');
    await done.waitFor({ timeout: 15_000 });
    expect(await done.innerText()).toContain('1 measurement added to a new radiology report (draft)');
    expect(await row.locator('button[data-action=add-measurement]').innerText()).toBe('Added');
    const list = await reports();
    expect(list).toHaveLength(1);
    const report = list[0]!;
    expect(report.kind).toBe('radiology');
    expect(report.version.status).toBe('draft');
    expect(await done.getAttribute('data-report')).toBe(report.id);
    expect(await page.getAttribute('[data-testid=measurement-report-link]', 'href')).toBe(`#/study/${ct.study}/report/${report.id}`);
    const content = report.version.content as RadiologyContent;
    expect(content.measurements).toHaveLength(1);
    const m = content.measurements![0]!;
    expect(m.type).toBe('length');
    expect(m.value).toBe(shown);
    expect(m.image).toMatchObject({ seriesInstanceUid: ct.series, sopInstanceUid: ct.sop });
    expect(m.image.frame).toBeUndefined();
    // The points in image pixels: where the drag began and ended (within a pixel), and the value theirs.
    const [x1, y1, x2, y2] = m.points;
    const [ex1, ey1] = toImage(...from);
    const [ex2, ey2] = toImage(...to);
    for (const [got, want] of [[x1, ex1], [y1, ey1], [x2, ex2], [y2, ey2]] as const) expect(Math.abs(got! - want)).toBeLessThan(1);
    expect(Math.abs(Math.hypot(x2! - x1!, y2! - y1!) * SPACING - m.value)).toBeLessThanOrEqual(0.05 + 1e-9);

    // L again: window/level is back on the left button.
    await page.locator('.viewport').focus();
    await page.keyboard.press('L');
    expect(await page.getAttribute('button[data-tool=windowLevel]', 'aria-pressed')).toBe('true');
    expect(await page.getAttribute('button[data-tool=length]', 'aria-pressed')).toBe('false');
    expect(errors).toEqual([]);
    expect(failed).toEqual([]);
  }, 120_000);

  it('draws an area in mm², adds it to the open draft, and the report page lists both', async () => {
    await page.locator('button[data-tool=area]').click();
    expect(await page.getAttribute('button[data-tool=area]', 'aria-pressed')).toBe('true');
    const { toPage } = await imageGeometry();
    // A 40 × 30 pixel rectangle, outlined freehand.
    const corners: Array<[number, number]> = [toPage(20, 90), toPage(60, 90), toPage(60, 120), toPage(20, 120), toPage(20, 90.5)];
    await drag(corners);
    const row = page.locator('.measurement[data-type=area]');
    await row.waitFor({ timeout: 10_000 });
    expect(await row.getAttribute('data-unit')).toBe('mm²');
    const area = Number(await row.getAttribute('data-value'));
    const expected = 40 * 30 * SPACING * SPACING;
    expect(Math.abs(area - expected)).toBeLessThan(expected * 0.05);
    await shoot(page, 'measurements-2-area');

    await row.locator('button[data-action=add-measurement]').click();
    await page.waitForFunction(() => (document.querySelector('[data-testid=measurement-added]')?.textContent ?? '').includes('added to the radiology report draft'), undefined, { timeout: 15_000 });
    const list = await reports();
    expect(list).toHaveLength(1);
    const content = list[0]!.version.content as RadiologyContent;
    expect(content.measurements!.map((x) => x.type)).toEqual(['length', 'area']);
    const saved = content.measurements![1]!;
    expect(saved.value).toBe(area);
    // The outline: at least the four corners, each point on the rectangle's border (within a pixel).
    expect(saved.points.length).toBeGreaterThanOrEqual(8);
    for (let i = 0; i < saved.points.length; i += 2) {
      const [x, y] = [saved.points[i]!, saved.points[i + 1]!];
      expect(Math.min(Math.abs(x - 20), Math.abs(x - 60), Math.abs(y - 90), Math.abs(y - 120)), `${x},${y}`).toBeLessThan(1);
    }

    // The link opens the report: both measurements in the form.
    await page.click('[data-testid=measurement-report-link]');
    await page.waitForSelector('.report-form[data-kind="radiology"]', { timeout: 30_000 });
    expect(await page.locator('tr[data-measurement]').count()).toBe(2);
    const value = page.locator('tr[data-measurement="1"] input[name=value]');
    expect(Number(await value.inputValue())).toBe(content.measurements![0]!.value);
    // A value the form takes as it is (its step is 0.1).
    expect(await value.evaluate((el: HTMLInputElement) => el.checkValidity())).toBe(true);
    expect(await page.locator('tr[data-measurement="2"] select[name=type]').inputValue()).toBe('area');
    await shoot(page, 'measurements-3-report');
    expect(errors).toEqual([]);
    expect(failed).toEqual([]);
  }, 120_000);
});
