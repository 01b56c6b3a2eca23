/**
 * Vietnamese and English in Debian's headless Chromium against a real server on loopback: a browser
 * whose language is Vietnamese (`vi-VN`) gets the study list and the study page in Vietnamese — headings
 * and buttons, the study date day first (dd/mm/yyyy) and the patient's name family name first, as written
 * in Vietnam; the header's switch turns the page to English in place (same study, same series, nothing
 * reloaded) and back; the choice is kept on the device across a reload, over the browser's language.
 * An English browser (`en-US`, as the other e2e tests run) gets English, with the month spelled out.
 * Screenshots: .artifacts/viewer/i18n-*.png.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInstance, newUid } from '../../server/src/test-support/make-dicom.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, type RunningServer } from './harness.js';

/**
 * PS3.5 PN: Family^Given^Middle. Written in Vietnam family, middle, given: "TRAN THI HOA". (Without
 * diacritics: the test instance declares no Specific Character Set, so only the default repertoire.)
 */
const PATIENT = 'TRAN^HOA^THI';
const SHOWN_NAME = 'TRAN THI HOA';

let server: RunningServer;
let browser: Browser;
let study: { studyInstanceUid: string; seriesInstanceUid: string };

beforeAll(async () => {
  buildViewer();
  server = await startServer();
  study = { studyInstanceUid: newUid(), seriesInstanceUid: newUid() };
  // Three images: the image shown is part of the place a language change keeps.
  const images = [0, 1, 2].map(() => makeInstance({ ...study, patientName: PATIENT, patientId: 'I18N-1', studyDate: '20260603', modality: 'OT', accessionNumber: 'I18NACC', rows: 64, columns: 64 }));
  await stowAll(server.url, images);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
});

async function open(locale: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  return { context, page, errors: watchErrors(page) };
}

const text = async (page: Page, selector: string) => (await page.locator(selector).first().innerText()).trim();
const row = (page: Page) => page.locator(`tr[data-study="${study.studyInstanceUid}"]`);

describe('the viewer in Vietnamese and English', () => {
  it('shows a Vietnamese browser the study list and the study in Vietnamese, switches to English and back in place, and keeps the choice after a reload', async () => {
    const { context, page, errors } = await open('vi-VN');
    try {
      // The study list: Vietnamese from the browser's language.
      await page.goto(`${server.url}/`);
      await row(page).waitFor({ timeout: 15_000 });
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('vi');
      expect(await text(page, 'main h2')).toBe('Ca chụp');
      expect(await text(page, '#nav-studies')).toBe('Ca chụp');
      expect(await text(page, '#nav-live')).toBe('Nội soi trực tiếp');
      expect(await text(page, 'form.search button[type=submit]')).toBe('Tìm');
      expect(await page.locator('.study-table thead th').allInnerTexts()).toEqual(expect.arrayContaining(['Bệnh nhân', 'Mã bệnh nhân', 'Ngày chụp']));
      const listRow = await row(page).innerText();
      expect(listRow).toContain(SHOWN_NAME); // family name first
      expect(listRow).toContain('03/06/2026'); // dd/mm/yyyy
      expect(await page.locator('.lang-switch button[data-lang="vi"]').getAttribute('aria-pressed')).toBe('true');
      expect(await page.title()).toContain('trình xem ảnh');
      await shoot(page, 'i18n-1-study-list-vi');

      // The study page.
      await row(page).click();
      await page.waitForURL(/#\/study\//);
      await page.locator('[data-testid=info]').waitFor({ timeout: 30_000 });
      await page.waitForFunction(() => /Ảnh 1 \/ 3/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''), undefined, { timeout: 30_000 });
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('ArrowDown');
      await page.waitForFunction(() => /Ảnh 3 \/ 3/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''), undefined, { timeout: 15_000 });
      expect(await text(page, '#study-reports')).toBe('Báo cáo kết quả');
      expect(await text(page, '.study-header a[href="#/"]')).toBe('← Danh sách ca chụp');
      expect(await text(page, '.study-header .patient strong')).toBe(SHOWN_NAME);
      expect(await text(page, '.study-header .patient + .muted')).toContain('03/06/2026');
      expect(await text(page, '.ai-results h3')).toBe('Kết quả AI');
      expect(await page.locator('.toolbar button[data-tool="length"]').getAttribute('title')).toBe('Đo chiều dài (L)');
      await shoot(page, 'i18n-2-study-vi');

      // To English: the same page in place (same URL, same series), no reload.
      const url = page.url();
      await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
      await page.click('.lang-switch button[data-lang="en"]');
      await page.waitForFunction(() => document.querySelector('#study-reports')?.textContent === 'Report', undefined, { timeout: 15_000 });
      expect(page.url()).toBe(url);
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('en');
      expect(await text(page, '#nav-studies')).toBe('Studies');
      expect(await text(page, '.study-header .patient strong')).toBe(SHOWN_NAME); // names read family first in English too
      expect(await text(page, '.study-header .patient + .muted')).toContain('3 Jun 2026');
      expect(await text(page, '.ai-results h3')).toBe('AI results');
      // The same image (the third), in English.
      await page.waitForFunction(() => /Image 3 \/ 3/.test(document.querySelector('[data-testid=info]')?.textContent ?? ''), undefined, { timeout: 30_000 });
      expect(await page.locator(`.series-item[data-series="${study.seriesInstanceUid}"]`).getAttribute('aria-current')).toBe('true');
      expect(await page.evaluate(() => localStorage.getItem('pacs.lang'))).toBe('en');
      await shoot(page, 'i18n-3-study-en');

      // Kept after a reload, over the browser's Vietnamese.
      await page.reload();
      await page.locator('#study-reports').waitFor({ timeout: 15_000 });
      expect(await text(page, '#study-reports')).toBe('Report');
      expect(await page.locator('.lang-switch button[data-lang="en"]').getAttribute('aria-pressed')).toBe('true');

      // And back to Vietnamese, then the list: still Vietnamese after another reload.
      await page.click('.lang-switch button[data-lang="vi"]');
      await page.waitForFunction(() => document.querySelector('#study-reports')?.textContent === 'Báo cáo kết quả', undefined, { timeout: 15_000 });
      await page.click('#nav-studies');
      await row(page).waitFor({ timeout: 15_000 });
      expect(await text(page, 'main h2')).toBe('Ca chụp');
      expect(await row(page).innerText()).toContain('03/06/2026');
      await page.reload();
      await row(page).waitFor({ timeout: 15_000 });
      expect(await text(page, 'main h2')).toBe('Ca chụp');
      expect(await page.evaluate(() => localStorage.getItem('pacs.lang'))).toBe('vi');
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);

  it('shows an English browser the viewer in English, dates with the month spelled out', async () => {
    const { context, page, errors } = await open('en-US');
    try {
      await page.goto(`${server.url}/`);
      await row(page).waitFor({ timeout: 15_000 });
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('en');
      expect(await text(page, 'main h2')).toBe('Studies');
      const listRow = await row(page).innerText();
      expect(listRow).toContain(SHOWN_NAME);
      expect(listRow).toContain('3 Jun 2026');
      expect(await page.locator('.lang-switch button[data-lang="en"]').getAttribute('aria-pressed')).toBe('true');
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
