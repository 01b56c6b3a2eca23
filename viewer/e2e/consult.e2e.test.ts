/**
 * A second opinion from request to answer in Debian's headless Chromium against a real server on
 * loopback (sign-in off: the requester is the server's anonymous user, who may share). A CT slice
 * (highdicom's ct_image.dcm, 128×128) stored under a Vietnamese patient name → the requester, on the
 * study page, asks a specialist outside the archive with de-identification on → the consult link is
 * shown once, with Copy → the consults page says `requested` → the specialist opens the link in a fresh
 * browser context (no cookies, no sign-in): the full viewer in link mode, the de-identified case under
 * its pseudonym (not the patient's name nor ID), the question → the requester's page says `viewed` →
 * the specialist outlines a region with the area tool and answers → the page says answered → the
 * requester's page says `answered`, with the turnaround time, the answer's text, and the region drawn
 * on the ORIGINAL study's image (its series and instance UIDs, the outline where it was drawn).
 * Screenshots: .artifacts/viewer/consult-*.png.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsultJson } from '../../server/src/contracts/sharing.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';

const SIZE = 128;
const PATIENT = 'Phạm^Thị Mai';
const PATIENT_SHOWN = 'Phạm Thị Mai';
const PATIENT_ID = 'BN-4471';
const SPECIALIST = 'GS. Trần Văn Minh';
const QUESTION = 'Xin ý kiến: nốt mờ thùy phải, có cần sinh thiết không?';
const ANSWER = 'Nốt đặc 8 mm, bờ đều: theo dõi CT sau 3 tháng, chưa cần sinh thiết.';
const LABEL = 'Nốt mờ';

let server: RunningServer;
let browser: Browser;
let requester: Page;
let specialist: Page;
const errors: Record<'requester' | 'specialist', string[]> = { requester: [], specialist: [] };
let specialistFailed: string[];
let ct: { study: string; series: string; sop: string };
let linkUrl: string;
let consultId: string;
/** The instance of the de-identified copy the specialist sees. */
let caseSop: string;

/** The CT slice under a Vietnamese patient name and ID (UTF-8, ISO_IR 192). */
async function ctWithPatient(): Promise<Buffer> {
  const file = await readFile(path.join(sharedDataDir, 'dicom-highdicom/ct_image.dcm'));
  const data = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  data.dict['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'] };
  data.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: PATIENT }] };
  data.dict['00100020'] = { vr: 'LO', Value: [PATIENT_ID] };
  const out = new dcmjs.data.DicomDict(data.meta);
  out.dict = data.dict;
  return Buffer.from(out.write());
}

const consultsOfRequester = async (): Promise<ConsultJson[]> =>
  ((await (await fetch(`${server.url}/consults?role=requester`, { headers: { accept: 'application/json' } })).json()) as { consults: ConsultJson[] }).consults;

beforeAll(async () => {
  buildViewer();
  server = await startServer();
  const file = await ctWithPatient();
  await stowAll(server.url, [file]);
  const d = describeInstance(file);
  ct = { study: d.study, series: d.series, sop: d.sop };
  browser = await launchChromium();
  requester = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  errors.requester = watchErrors(requester);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
});

/** Page point ↔ image pixels of the square image fitted, centred, in the stack's element. */
async function imageGeometry(page: Page) {
  const box = (await page.locator('.cs-element').boundingBox())!;
  const scale = Math.min(box.width, box.height) / SIZE;
  const toPage = (x: number, y: number): [number, number] => [box.x + box.width / 2 + (x - SIZE / 2) * scale, box.y + box.height / 2 + (y - SIZE / 2) * scale];
  return { toPage };
}

async function drag(page: Page, points: Array<[number, number]>): Promise<void> {
  await page.mouse.move(...points[0]!);
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...p, { steps: 8 });
  await page.mouse.up();
}

const item = () => requester.locator(`.consult-list[data-role=requester] .consult-item[data-consult="${consultId}"]`);

async function requesterSees(status: string): Promise<void> {
  await requester.locator('#consults-refresh').click();
  await expect.poll(async () => item().getAttribute('data-status'), { timeout: 10_000 }).toBe(status);
}

describe('a second opinion in the viewer', () => {
  it('asks for a second opinion from the study page, de-identified by default, and shows the link once', async () => {
    await requester.goto(`${server.url}/#/study/${ct.study}`);
    await requester.waitForSelector('.viewport[data-sop]:not([data-sop=""])', { timeout: 30_000 });
    await requester.locator('#ask-consult').click();
    const dialog = requester.locator('dialog.consult-dialog');
    await dialog.locator('#consult-name').waitFor();
    expect(await dialog.locator('#consult-deidentify').isChecked()).toBe(true);
    expect(await dialog.locator(`input[data-series="${ct.series}"]`).isChecked()).toBe(true);
    await dialog.locator('#consult-name').fill(SPECIALIST);
    await dialog.locator('#consult-contact').fill('minh@example.org');
    await dialog.locator('#consult-message').fill(QUESTION);
    await dialog.locator('#consult-days').fill('7');
    await dialog.locator('[data-action=send-consult]').click();

    const link = dialog.locator('#consult-link');
    await link.waitFor({ timeout: 30_000 });
    linkUrl = await link.inputValue();
    expect(linkUrl).toMatch(new RegExp(`^${server.url}/s/[A-Za-z0-9_-]{43}$`));
    expect(await dialog.locator('.consult-once').innerText()).toContain('shown only once');
    expect(await dialog.locator('[data-testid=consult-copy]').innerText()).toContain('De-identified copy: 1 image');
    consultId = (await dialog.locator('.consult-sent').getAttribute('data-consult'))!;
    await dialog.locator('[data-action=copy-link]').click();
    await expect.poll(() => dialog.locator('.consult-link-row [role=status]').innerText()).toBe('Copied.');
    await shoot(requester, 'consult-1-link');

    // The server: a consult asked about the original study, its case a copy, nothing viewed yet.
    const [made] = await consultsOfRequester();
    expect(made).toMatchObject({ id: consultId, status: 'requested', deidentified: true, originalStudyInstanceUid: ct.study, viewedAt: null, answer: null, specialist: { name: SPECIALIST, contact: 'minh@example.org' } });
    expect(made!.caseStudyInstanceUid).not.toBe(ct.study);

    // To the consults page: requested, nothing opened or answered.
    await dialog.locator('#to-consults').click();
    await item().waitFor();
    expect(await requester.locator('dialog.consult-dialog').count()).toBe(0);
    expect(await item().getAttribute('data-status')).toBe('requested');
    expect(await item().locator('[data-testid=consult-status]').innerText()).toBe('Requested');
    expect(await item().locator('[data-testid=consult-message]').innerText()).toBe(QUESTION);
    expect(await item().locator('dd[data-time=viewed]').innerText()).toBe('—');
    expect(await item().locator('dd[data-time=turnaround]').innerText()).toBe('—');
    expect(await item().innerText()).toContain(SPECIALIST);
    expect(errors.requester).toEqual([]);
  }, 120_000);

  it('opens the link in a fresh browser: the full viewer, the de-identified case under its pseudonym; the consult turns viewed', async () => {
    // The link's URL answers with the viewer itself (not the patient's phone page), under the CSP, without
    // the sign-in settings' preload (a relative `api` would be /s/api there).
    const served = await fetch(linkUrl);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await served.text();
    expect(html).toContain('<main id="app"');
    expect(html).not.toContain('href="api"');
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    specialist = await context.newPage();
    errors.specialist = watchErrors(specialist);
    specialistFailed = watchFailedResponses(specialist);
    await specialist.goto(linkUrl);
    await specialist.waitForSelector('.consult-page .consult-brief [data-testid=consult-message]', { timeout: 30_000 });
    // The address keeps the link (a reload works) and names the consult; the token never leaves it.
    expect(specialist.url()).toBe(`${linkUrl}#/consult/${consultId}`);
    expect(await specialist.locator('[data-testid=consult-message]').innerText()).toBe(QUESTION);
    // The case in the stack viewer (the copy's own UIDs), under the pseudonym.
    await specialist.waitForSelector('.viewport[data-sop]:not([data-sop=""])', { timeout: 30_000 });
    await specialist.waitForFunction(() => document.querySelector('.cs-element canvas') !== null);
    caseSop = (await specialist.getAttribute('.viewport', 'data-sop'))!;
    expect(caseSop).not.toBe(ct.sop);
    const patient = await specialist.locator('.study-header .patient').innerText();
    expect(patient).toContain('CONSULT');
    const pageText = await specialist.locator('body').innerText();
    expect(pageText).not.toContain(PATIENT_SHOWN);
    expect(pageText).not.toContain('Phạm');
    expect(pageText).not.toContain(PATIENT_ID);
    // No way out of the case: no study list, reports or second-opinion button; the header's nav hidden.
    expect(await specialist.locator('#study-reports').count()).toBe(0);
    expect(await specialist.locator('#ask-consult').count()).toBe(0);
    expect(await specialist.locator('#top-nav').isHidden()).toBe(true);
    await shoot(specialist, 'consult-2-case');

    // The requester's page follows: viewed, with when.
    await requesterSees('viewed');
    expect(await item().locator('[data-testid=consult-status]').innerText()).toBe('Viewed');
    expect(await item().locator('dd[data-time=viewed]').innerText()).not.toBe('—');
    expect(await item().locator('dd[data-time=answered]').innerText()).toBe('—');
  }, 120_000);

  it('draws a region on the case and answers; the page says it is answered', async () => {
    await specialist.locator('button[data-tool=area]').click();
    const { toPage } = await imageGeometry(specialist);
    // A 40 × 30 pixel rectangle, outlined freehand.
    await drag(specialist, [toPage(40, 50), toPage(80, 50), toPage(80, 80), toPage(40, 80), toPage(40, 50.5)]);
    const region = specialist.locator('[data-testid=consult-regions] li');
    await expect.poll(() => region.count(), { timeout: 10_000 }).toBe(1);
    expect(await region.getAttribute('data-type')).toBe('area');
    await region.locator('input').fill(LABEL);
    await specialist.locator('#consult-answer').fill(ANSWER);
    await shoot(specialist, 'consult-3-drawn');
    await specialist.locator('[data-action=send-answer]').click();
    await specialist.locator('[data-testid=answered]').waitFor({ timeout: 15_000 });
    expect(await specialist.locator('.consult-brief [data-testid=consult-status]').innerText()).toBe('Answered');
    expect(await specialist.locator('.consult-brief [data-testid=answer-text]').innerText()).toBe(ANSWER);
    await shoot(specialist, 'consult-4-answered');
    // A reload keeps the link's session (this tab's sessionStorage) and shows the consult answered.
    await specialist.reload();
    await specialist.locator('[data-testid=answered]').waitFor({ timeout: 15_000 });
    expect(specialist.url()).toBe(`${linkUrl}#/consult/${consultId}`);
    expect(errors.specialist).toEqual([]);
    // What a link may not reach is not asked for (the AI models, refused to a link, are the one try).
    expect(specialistFailed.filter((f) => !/\/ai\/models$/.test(f))).toEqual([]);
  }, 120_000);

  it("shows the requester the answer, the turnaround time and the region on the ORIGINAL study's image", async () => {
    await requesterSees('answered');
    expect(await item().locator('[data-testid=consult-status]').innerText()).toBe('Answered');
    expect(await item().locator('dd[data-time=turnaround]').innerText()).toMatch(/^\d+ (s|min)/);
    expect(await item().locator('[data-testid=answer-text]').innerText()).toBe(ANSWER);
    // The region on the original's series and instance, where it was drawn (within a pixel or so).
    const figure = item().locator('figure.region-figure');
    expect(await figure.getAttribute('data-series')).toBe(ct.series);
    expect(await figure.getAttribute('data-sop')).toBe(ct.sop);
    await expect.poll(() => figure.getAttribute('data-loaded'), { timeout: 10_000 }).toBe('true');
    expect(await figure.locator('figcaption').innerText()).toContain(LABEL);
    const points = (await figure.locator('polygon').getAttribute('points'))!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    // The stack fits the image in its element with a margin the page does not see: the outline is the
    // dragged 40 × 30 rectangle scaled by one factor about the image's centre (64, 64).
    const k = (Math.max(...xs) - Math.min(...xs)) / 40;
    expect(k).toBeGreaterThan(0.7);
    expect(k).toBeLessThan(1.4);
    for (const [got, want] of [[Math.min(...xs), 40], [Math.max(...xs), 80], [Math.min(...ys), 50], [Math.max(...ys), 80]] as const) expect(Math.abs(got - (64 + (want - 64) * k))).toBeLessThan(1);
    // Exactly the points the specialist sent on the case's image (read through the consult link).
    const asLink = (await (await fetch(`${server.url}/consults/${consultId}`, { headers: { accept: 'application/json', authorization: `Bearer share.${linkUrl.split('/s/')[1]}` } })).json()) as ConsultJson;
    const sent = asLink.answer!.regions[0]!;
    expect(sent.sopInstanceUid).toBe(caseSop);
    expect(sent.sopInstanceUid).not.toBe(ct.sop);
    expect(points.flat()).toEqual(sent.points);
    expect(await figure.locator('svg').getAttribute('viewBox')).toBe(`0 0 ${SIZE} ${SIZE}`);
    // The outline is drawn over the image (yellow in the screenshot), and the original study is a click away.
    const shot = await shoot(figure.locator('.region-box'), 'consult-5-requester-region');
    let yellow = 0;
    for (let y = 0; y < shot.height; y += 1) for (let x = 0; x < shot.width; x += 1) {
      const [r, g, b] = shot.at(x, y);
      if (r > 200 && g > 170 && b < 90) yellow += 1;
    }
    expect(yellow).toBeGreaterThan(50);
    expect(await item().locator('[data-action=open-original]').getAttribute('href')).toBe(`#/study/${ct.study}`);
    await shoot(requester, 'consult-6-requester');

    // The API says the same: answered, on the original's UIDs, with the turnaround.
    const [answered] = await consultsOfRequester();
    expect(answered).toMatchObject({ status: 'answered', answer: { text: ANSWER, regions: [{ seriesInstanceUid: ct.series, sopInstanceUid: ct.sop, label: LABEL }] } });
    expect(answered!.turnaroundSeconds).toBeGreaterThanOrEqual(0);
    expect(errors.requester).toEqual([]);
  }, 120_000);
});
