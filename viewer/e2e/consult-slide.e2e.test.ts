/**
 * A second opinion on a whole-slide image, in Debian's headless Chromium against a real server on
 * loopback (sign-in off: the requester is the server's anonymous user). The CMU-1 H&E pyramid
 * (wsi2dcm, TILED_FULL, 12 levels, base 2220 × 2967) is stored; a consult with de-identification is
 * asked through the API → the specialist opens the consult link in a fresh context: the case's slide in
 * the slide viewer, with "Draw region" (the consult page offers it) → a polygon begun and cancelled with
 * Escape, a second drawn and removed from the answer's list, one drawn by clicks and closed with a
 * double-click → the answer sends it in the slide's TOTAL PIXEL MATRIX (the base level's instance of
 * the copy, no frame) → the requester's consults page shows it over the ORIGINAL slide (the original
 * base level's instance; the part of the slide around it from the pyramid, the polygon as SVG).
 * Screenshots: .artifacts/viewer/consult-slide-*.png.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsultJson } from '../../server/src/contracts/sharing.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';

const LEVELS = ['0-frames-0-30', '1-frames-0-9', '2-frames-0-4', '3-frames-0-1', '4-frames-0-1', '5-frames-0-1', '6-frames-0-1', '7-frames-0-1', '8-frames-0-1', '9-frames-0-1', '10-frames-0-1', '11-frames-0-1'].map(
  (l) => `wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-${l}.dcm`,
);
const BASE = { width: 2220, height: 2967 };
const QUESTION = 'Xin ý kiến: bờ tổn thương ở vùng này?';
const ANSWER = 'Bờ tổn thương rõ, chưa thấy xâm lấn.';
const LABEL = 'Bờ tổn thương';
/** The polygon's corners, in base pixels (the total pixel matrix of level 0). */
const CORNERS: Array<[number, number]> = [
  [700, 900],
  [1500, 1000],
  [1400, 1800],
  [800, 1700],
];

let server: RunningServer;
let browser: Browser;
let specialist: Page;
let requester: Page;
const errors: Record<'requester' | 'specialist', string[]> = { requester: [], specialist: [] };
let specialistFailed: string[];
let slide: { study: string; series: string; baseSop: string };
let consultId: string;
let linkUrl: string;

type WsiView = { view: { scale: number }; toCanvas(x: number, y: number): { x: number; y: number }; base: { width: number; height: number; sop: string } };

beforeAll(async () => {
  buildViewer();
  server = await startServer();
  const files = await Promise.all(LEVELS.map((f) => readFile(path.join(sharedDataDir, f))));
  await stowAll(server.url, files);
  const base = describeInstance(files[0]!);
  slide = { study: base.study, series: base.series, baseSop: base.sop };
  const asked = await fetch(`${server.url}/consults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ studyInstanceUid: slide.study, specialist: { name: 'GS. Hoa' }, message: QUESTION }),
  });
  expect(asked.status, await asked.clone().text()).toBe(201);
  const created = (await asked.json()) as { consult: ConsultJson; link: { url: string } };
  consultId = created.consult.id;
  linkUrl = created.link.url;
  expect(created.consult.copy?.instances).toBe(LEVELS.length);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
});

/** Page coordinates of a base pixel of the slide shown. */
async function pagePoint(page: Page, x: number, y: number): Promise<[number, number]> {
  const box = (await page.locator('.viewport.wsi canvas').boundingBox())!;
  const at = await page.evaluate(([bx, by]) => (document.querySelector('.viewport.wsi') as HTMLElement & { wsiView: WsiView }).wsiView.toCanvas(bx!, by!), [x, y]);
  return [box.x + at.x, box.y + at.y];
}

describe('a second opinion on a whole-slide image', () => {
  it('lets the specialist draw a polygon on the case slide and answer with it in total pixel matrix coordinates', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    specialist = await context.newPage();
    errors.specialist = watchErrors(specialist);
    specialistFailed = watchFailedResponses(specialist);
    await specialist.goto(linkUrl);
    await specialist.waitForSelector('.consult-page [data-testid=consult-message]', { timeout: 30_000 });
    await specialist.waitForFunction(() => Number(document.querySelector<HTMLElement>('.viewport.wsi')?.dataset['loaded'] ?? 0) >= 1, undefined, { timeout: 30_000 });
    const view = await specialist.evaluate(() => (document.querySelector('.viewport.wsi') as HTMLElement & { wsiView: WsiView }).wsiView.base);
    expect(view).toMatchObject(BASE);
    expect(view.sop).not.toBe(slide.baseSop); // the de-identified copy's base level
    const toggle = specialist.locator('button[data-action=draw-region]');
    expect(await toggle.innerText()).toBe('Draw region');
    await toggle.click();
    expect(await toggle.getAttribute('aria-pressed')).toBe('true');
    const wsi = specialist.locator('.viewport.wsi');
    expect(await wsi.getAttribute('data-drawing')).toBe('true');
    const regions = specialist.locator('[data-testid=consult-regions] li');

    // Begun and cancelled: nothing drawn.
    await specialist.mouse.click(...(await pagePoint(specialist, 300, 300)));
    await specialist.mouse.click(...(await pagePoint(specialist, 500, 300)));
    await specialist.keyboard.press('Escape');
    // A second polygon, closed with Enter, then removed from the answer's list.
    for (const [x, y] of [[200, 2200], [600, 2200], [400, 2600]] as const) await specialist.mouse.click(...(await pagePoint(specialist, x, y)));
    await specialist.keyboard.press('Enter');
    await expect.poll(() => regions.count()).toBe(1);
    await expect.poll(() => wsi.getAttribute('data-regions')).toBe('1');
    await regions.locator('[data-action=remove-region]').click();
    await expect.poll(() => regions.count()).toBe(0);
    await expect.poll(() => wsi.getAttribute('data-regions')).toBe('0');

    // The region: three clicks and a double-click on the fourth corner.
    for (const [x, y] of CORNERS.slice(0, -1)) await specialist.mouse.click(...(await pagePoint(specialist, x, y)));
    await shoot(specialist, 'consult-slide-1-drawing');
    await specialist.mouse.dblclick(...(await pagePoint(specialist, ...CORNERS.at(-1)!)));
    await expect.poll(() => regions.count()).toBe(1);
    expect(await regions.getAttribute('data-type')).toBe('slide');
    expect(await regions.getAttribute('data-sop')).toBe(view.sop);
    await expect.poll(() => wsi.getAttribute('data-regions')).toBe('1');
    await regions.locator('input').fill(LABEL);
    await specialist.locator('#consult-answer').fill(ANSWER);
    // The polygon is drawn over the slide (yellow in the screenshot).
    const shot = await shoot(wsi, 'consult-slide-2-drawn');
    let yellow = 0;
    for (let y = 0; y < shot.height; y += 1) for (let x = 0; x < shot.width; x += 1) {
      const [r, g, b] = shot.at(x, y);
      if (r > 200 && g > 170 && b < 90) yellow += 1;
    }
    expect(yellow).toBeGreaterThan(200);
    const scale = await specialist.evaluate(() => (document.querySelector('.viewport.wsi') as HTMLElement & { wsiView: WsiView }).wsiView.view.scale);
    await specialist.locator('[data-action=send-answer]').click();
    await specialist.locator('[data-testid=answered]').waitFor({ timeout: 15_000 });

    // Sent: on the copy's base-level instance, no frame, the corners in total pixel matrix coordinates
    // (within the page pixel a click lands on).
    const asLink = (await (await fetch(`${server.url}/consults/${consultId}`, { headers: { accept: 'application/json', authorization: `Bearer share.${linkUrl.split('/s/')[1]}` } })).json()) as ConsultJson;
    const [sent] = asLink.answer!.regions;
    expect(asLink.answer!.regions).toHaveLength(1);
    expect(sent).toMatchObject({ sopInstanceUid: view.sop, label: LABEL });
    expect(sent!.frame).toBeUndefined();
    expect(sent!.points).toHaveLength(CORNERS.length * 2);
    CORNERS.flat().forEach((want, i) => expect(Math.abs(sent!.points[i]! - want)).toBeLessThan(1.5 / scale));
    await shoot(specialist, 'consult-slide-3-answered');
    expect(errors.specialist).toEqual([]);
    expect(specialistFailed.filter((f) => !/\/ai\/models$/.test(f))).toEqual([]);
  }, 120_000);

  it("shows the requester the polygon over the ORIGINAL slide, on its base level's instance", async () => {
    requester = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    errors.requester = watchErrors(requester);
    await requester.goto(`${server.url}/#/consults`);
    const item = requester.locator(`.consult-list[data-role=requester] .consult-item[data-consult="${consultId}"]`);
    await item.waitFor({ timeout: 15_000 });
    expect(await item.getAttribute('data-status')).toBe('answered');
    const figure = item.locator('figure.region-figure');
    await expect.poll(() => figure.getAttribute('data-loaded'), { timeout: 15_000 }).toBe('true');
    expect(await figure.getAttribute('data-kind')).toBe('slide');
    expect(await figure.getAttribute('data-series')).toBe(slide.series);
    expect(await figure.getAttribute('data-sop')).toBe(slide.baseSop);
    expect(await figure.locator('figcaption').innerText()).toContain(LABEL);
    // The API: the region on the original's UIDs, the points as sent.
    const mine = ((await (await fetch(`${server.url}/consults/${consultId}`, { headers: { accept: 'application/json' } })).json()) as ConsultJson).answer!.regions[0]!;
    expect(mine).toMatchObject({ seriesInstanceUid: slide.series, sopInstanceUid: slide.baseSop, label: LABEL });
    const points = (await figure.locator('polygon').getAttribute('points'))!.split(' ').flatMap((p) => p.split(',').map(Number));
    expect(points).toEqual(mine.points);
    // The viewBox is the part of the slide around the region, in its coordinates: the region inside it.
    const [vx, vy, vw, vh] = (await figure.locator('svg').getAttribute('viewBox'))!.split(' ').map(Number) as [number, number, number, number];
    for (const [x, y] of CORNERS) {
      expect(x).toBeGreaterThan(vx);
      expect(x).toBeLessThan(vx + vw);
      expect(y).toBeGreaterThan(vy);
      expect(y).toBeLessThan(vy + vh);
    }
    // Drawn from tiles (tissue: not blank) with the outline over it.
    const shot = await shoot(figure.locator('.region-box'), 'consult-slide-4-requester-region');
    let yellow = 0;
    let tissue = 0;
    for (let y = 0; y < shot.height; y += 1) for (let x = 0; x < shot.width; x += 1) {
      const [r, g, b] = shot.at(x, y);
      if (r > 200 && g > 170 && b < 90) yellow += 1;
      else if (r + g + b < 600 && r + g + b > 60) tissue += 1;
    }
    expect(yellow).toBeGreaterThan(50);
    expect(tissue / (shot.width * shot.height)).toBeGreaterThan(0.1);
    await shoot(requester, 'consult-slide-5-requester');
    expect(errors.requester).toEqual([]);
  }, 120_000);
});
