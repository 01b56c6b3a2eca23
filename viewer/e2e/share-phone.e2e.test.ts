/**
 * The patient's phone page (viewer/share.html at /s/{token}) in Debian's headless Chromium as a phone
 * (390×844 CSS pixels at 3×, touch, mobile) on a throttled link (1.6 Mbit/s, 150 ms added to each
 * request: Network.emulateNetworkConditions, as scripts/bench-viewer.ts does), cold cache, against a real
 * server on loopback. A link made by `POST /share/links` opens the study: the first image is on screen
 * within the byte budget of "≤ 3 s over 1.6 Mbit/s with 150 ms RTT" (the bytes and requests before it are
 * asserted, the time is logged), a finger swipe goes to the next image, a pinch zooms, a double tap
 * resets, the texts switch between Vietnamese and English, the "not for diagnosis" notice is on screen,
 * the report PDF opens, and both downloads are valid ZIPs with the expected entries. A link with a PIN
 * says how many tries are left after a wrong PIN and opens with the right one; five wrong PINs lock it.
 * Screenshots: a temp folder, printed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { buildViewer, launchChromium, removeViewerBuild, startServer, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';
import { PHONE_PATIENT_SHOWN, phoneStudy, shareLink, signReport, type Call, type PhoneStudy } from './share-phone-study.js';

/** 1.6 Mbit/s, 150 ms: the slow mobile link of the issue. */
const LINK = { latencyMs: 150, bytesPerSecond: 1.6e6 / 8 };
/**
 * The budget of bytes before the first image: 3 s on the link, less the round trips the page cannot
 * avoid (page, script and style, session, instance list, image: five sequential requests, each paying
 * the 150 ms, and one more for the connection), left for bytes at 200 kB/s: 3 − 6 × 0.15 = 2.1 s, so
 * 420 kB; asserted with a fifth kept in hand.
 */
const BYTES_BEFORE_FIRST_IMAGE = 0.8 * (3 - 6 * 0.15) * LINK.bytesPerSecond;
/**
 * Requests finished before the first image: the page, its scripts (the entry, the page module and the
 * shared i18n chunk, fetched side by side; the module-preload polyfill) and style sheet, the session,
 * the instance list, the image.
 */
const REQUESTS_BEFORE_FIRST_IMAGE = 10;

let server: RunningServer;
let browser: Browser;
let study: PhoneStudy;
let reportId: string;
let shots: string;
const screenshots: string[] = [];

const call: Call = async (method, url, body) => {
  const res = await fetch(`${server.url}${url}`, { method, headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, json };
};

async function phone(locale = 'vi-VN'): Promise<{ context: BrowserContext; page: Page; cdp: CDPSession; errors: string[]; failed: string[] }> {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true, locale, acceptDownloads: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  return { context, page, cdp, errors: watchErrors(page), failed: watchFailedResponses(page) };
}

const throttle = (cdp: CDPSession, on: boolean) =>
  cdp.send('Network.emulateNetworkConditions', on ? { offline: false, latency: LINK.latencyMs, downloadThroughput: LINK.bytesPerSecond, uploadThroughput: LINK.bytesPerSecond } : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

async function shoot(page: Page, name: string): Promise<void> {
  const file = path.join(shots, `share-phone-${name}.png`);
  await page.screenshot({ path: file });
  screenshots.push(file);
}

/** One finger from `from` to `to` in `steps` moves (DevTools touch events: the page sees Pointer Events). */
async function drag(cdp: CDPSession, from: { x: number; y: number }, to: { x: number; y: number }, steps = 8): Promise<void> {
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ ...from, id: 1 }] });
  for (let i = 1; i <= steps; i += 1) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x: from.x + ((to.x - from.x) * i) / steps, y: from.y + ((to.y - from.y) * i) / steps, id: 1 }] });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
}

/** Two fingers spreading apart around `at`, from `d0` to `d1` pixels apart. */
async function pinchOut(cdp: CDPSession, at: { x: number; y: number }, d0: number, d1: number, steps = 10): Promise<void> {
  const points = (d: number) => [
    { x: at.x - d / 2, y: at.y, id: 1 },
    { x: at.x + d / 2, y: at.y, id: 2 },
  ];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: points(d0) });
  for (let i = 1; i <= steps; i += 1) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: points(d0 + ((d1 - d0) * i) / steps) });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
}

async function tap(cdp: CDPSession, at: { x: number; y: number }): Promise<void> {
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ ...at, id: 1 }] });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
}

/** The entries of a ZIP file (yauzl, which checks the central directory and every CRC as it reads). */
function unzip(bytes: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true }, (err, zip) => {
      if (err !== null || zip === undefined) return reject(err ?? new Error('no zip'));
      const entries = new Map<string, Buffer>();
      zip.on('error', reject);
      zip.on('end', () => resolve(entries));
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e !== null || stream === undefined) return reject(e ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            entries.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
}

beforeAll(async () => {
  shots = await mkdtemp(path.join(os.tmpdir(), 'share-phone-shots-'));
  buildViewer();
  server = await startServer({ PACS_HOSPITAL_NAME: 'Bệnh viện Đa khoa Tỉnh' });
  study = phoneStudy({ stills: 4, slices: 3 });
  await stowAll(server.url, study.files);
  reportId = await signReport(call, study.studyInstanceUid);
  // A server that has run for a while: the renderer's one-time start (about a second here) is not
  // part of what a patient waits for. Another series' thumbnail, so no image of the test is cached.
  expect((await fetch(`${server.url}/dicomweb/studies/${study.studyInstanceUid}/series/${study.ct.seriesInstanceUid}/thumbnail`)).status).toBe(200);
  browser = await launchChromium();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
  // The screenshots stay for a look (not in the repository); their paths are printed.
  if (screenshots.length > 0) process.stdout.write(`share-phone screenshots:\n${screenshots.map((s) => `  ${s}`).join('\n')}\n`);
  else if (shots !== undefined) await rm(shots, { recursive: true, force: true });
});

describe("the patient's phone page", () => {
  it('shows the first image within the byte budget of 3 s over 1.6 Mbit/s, then swipes, pinches, switches language, opens the report and downloads the study', async () => {
    const { token } = await shareLink(call, { studyInstanceUid: study.studyInstanceUid });
    const { context, page, cdp, errors, failed } = await phone('vi-VN');
    try {
      // ----- cold cache, throttled: bytes and requests until the first image
      const finishedAt: Array<{ id: string; at: number; bytes: number }> = [];
      const urls = new Map<string, string>();
      const sentAt = new Map<string, number>();
      cdp.on('Network.requestWillBeSent', (e: { requestId: string; request: { url: string }; timestamp: number }) => {
        urls.set(e.requestId, e.request.url);
        sentAt.set(e.requestId, e.timestamp);
      });
      cdp.on('Network.loadingFinished', (e: { requestId: string; timestamp: number; encodedDataLength: number }) => finishedAt.push({ id: e.requestId, at: e.timestamp, bytes: e.encodedDataLength }));
      await throttle(cdp, true);
      await page.goto(`${server.url}/s/${token}`, { waitUntil: 'commit' });
      await page.waitForSelector('body[data-first-image-ms]', { timeout: 60_000 });
      const ms = Number(await page.getAttribute('body', 'data-first-image-ms'));
      const firstImage = finishedAt.find((f) => /\/rendered\?/.test(urls.get(f.id) ?? ''));
      expect(firstImage, 'the first rendered image finished loading').toBeDefined();
      const before = finishedAt.filter((f) => f.at <= firstImage!.at);
      const bytes = before.reduce((sum, f) => sum + f.bytes, 0);
      const start = Math.min(...before.map((f) => sentAt.get(f.id) ?? f.at));
      const paths = before.map((f) => `${new URL(urls.get(f.id) ?? 'x:/').pathname.replace(/[A-Za-z0-9_-]{43}/, '{token}').replace(/[0-9.]{20,}/g, '…')} (${Math.round(((sentAt.get(f.id) ?? start) - start) * 1000)}–${Math.round((f.at - start) * 1000)} ms, ${f.bytes} B)`);
      process.stdout.write(`share-phone: first image at ${ms} ms after navigation start (1.6 Mbit/s + 150 ms, cold); ${bytes} bytes in ${before.length} responses before it: ${paths.join(', ')}\n`);
      expect(bytes).toBeLessThanOrEqual(BYTES_BEFORE_FIRST_IMAGE);
      expect(before.length).toBeLessThanOrEqual(REQUESTS_BEFORE_FIRST_IMAGE);
      // The first image is the endoscopy series' instance number 1 (stored last), fitted to 2× the stage.
      const first = page.locator('#stage img.media');
      expect(await first.getAttribute('data-sop')).toBe(study.endoscopy.sopInstanceUids[0]);
      expect(await first.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(300);
      await shoot(page, '1-first-image-vi');

      // ----- the page in Vietnamese (the browser's language): notice, patient, date
      const notice = page.locator('#not-for-diagnosis');
      await expect.poll(() => notice.isVisible()).toBe(true);
      expect(await notice.innerText()).toContain('Không dùng để chẩn đoán');
      expect(await page.locator('#patient-name').innerText()).toBe(PHONE_PATIENT_SHOWN);
      expect(await page.locator('#study-date').innerText()).toBe('05/01/2026');
      expect(await page.locator('#hospital-name').innerText()).toBe('Bệnh viện Đa khoa Tỉnh');
      // The examination's image modalities, not the report's SR and PDF series.
      expect(await page.locator('#study-description').innerText()).toBe('Nội soi dạ dày · CT, ES');
      expect(await page.locator('#image-counter').innerText()).toBe('Ảnh 1/4');
      await throttle(cdp, false);

      // ----- swipe left: the next image (instance number 2)
      const box = (await page.locator('#stage').boundingBox())!;
      const mid = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
      await drag(cdp, { x: box.x + box.width - 40, y: mid.y }, { x: box.x + 40, y: mid.y });
      await page.waitForSelector('#stage[data-index="1"] img.media[data-loaded="true"]');
      expect(await page.locator('#stage img.media').getAttribute('data-sop')).toBe(study.endoscopy.sopInstanceUids[1]);
      expect(await page.locator('#image-counter').innerText()).toBe('Ảnh 2/4');
      // A swipe right goes back; a short vertical stroke does nothing.
      await drag(cdp, { x: box.x + 40, y: mid.y }, { x: box.x + box.width - 40, y: mid.y });
      await page.waitForSelector('#stage[data-index="0"] img.media[data-loaded="true"]');
      await drag(cdp, { x: mid.x, y: mid.y - 30 }, { x: mid.x + 5, y: mid.y + 30 });
      expect(await page.getAttribute('#stage', 'data-index')).toBe('0');

      // ----- pinch: the scale follows the fingers (×3 apart → ×3); a double tap resets it
      await pinchOut(cdp, mid, 60, 180);
      const scale = Number(await page.getAttribute('#stage', 'data-scale'));
      expect(scale).toBeGreaterThan(2.5);
      expect(await page.locator('#stage img.media').evaluate((img) => getComputedStyle(img).transform)).not.toBe('none');
      await shoot(page, '2-pinched');
      // Zoomed: a drag pans the image and does not change it.
      await drag(cdp, { x: mid.x + 60, y: mid.y }, { x: mid.x - 60, y: mid.y });
      expect(await page.getAttribute('#stage', 'data-index')).toBe('0');
      await tap(cdp, mid);
      await page.waitForTimeout(60);
      await tap(cdp, mid);
      await expect.poll(() => page.getAttribute('#stage', 'data-scale')).toBe('1.00');

      // ----- another series: the CT's thumbnail, then a swipe past the last endoscopy image gets there too
      await page.locator(`button.series[data-series="${study.ct.seriesInstanceUid}"]`).click();
      await page.waitForSelector(`#stage img.media[data-sop="${study.ct.sopInstanceUids[0]}"][data-loaded="true"]`);
      expect(await page.locator('#image-counter').innerText()).toBe('Ảnh 1/3');
      await shoot(page, '3-ct');

      // ----- English and back
      await page.locator('.lang-switch button[data-lang="en"]').click();
      expect(await notice.innerText()).toBe("Not for diagnosis – images for the patient's information");
      expect(await page.locator('#study-date').innerText()).toBe('5 Jan 2026');
      expect(await page.locator('#image-counter').innerText()).toBe('Image 1 of 3');
      expect(await page.locator('#download-dicom').innerText()).toBe('DICOM files (ZIP)');
      await shoot(page, '4-english');
      await page.locator('.lang-switch button[data-lang="vi"]').click();
      expect(await page.locator('#download-dicom').innerText()).toBe('Tệp DICOM (ZIP)');
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('vi');

      // ----- the report: its link opens the signed PDF with the page's cookie
      const reportLink = page.locator(`a.report-link[data-report="${reportId}"]`);
      expect(await reportLink.isVisible()).toBe(true);
      const href = await reportLink.getAttribute('href');
      const pdf = await context.request.get(new URL(href!, server.url).toString());
      expect(pdf.status()).toBe(200);
      expect(pdf.headers()['content-type']).toContain('application/pdf');
      expect((await pdf.body()).subarray(0, 5).toString('latin1')).toBe('%PDF-');

      // ----- the downloads: a ZIP of JPEGs and a ZIP of the DICOM files
      await page.locator('#downloads').scrollIntoViewIfNeeded();
      await shoot(page, '5-downloads');
      const download = async (selector: string) => {
        const [file] = await Promise.all([page.waitForEvent('download'), page.locator(selector).click()]);
        const saved = path.join(shots, file.suggestedFilename());
        await file.saveAs(saved);
        return { name: file.suggestedFilename(), entries: await unzip(await import('node:fs/promises').then((fs) => fs.readFile(saved))) };
      };
      const jpegs = await download('#download-images');
      expect(jpegs.name).toBe('images-20260105.zip');
      const jpegNames = [...jpegs.entries.keys()].sort();
      expect(jpegNames).toEqual(['README.txt', 'report.pdf', 'series-01/image-0001.jpg', 'series-01/image-0002.jpg', 'series-01/image-0003.jpg', 'series-01/image-0004.jpg', 'series-02/image-0001.jpg', 'series-02/image-0002.jpg', 'series-02/image-0003.jpg']);
      for (const name of jpegNames.filter((n) => n.endsWith('.jpg'))) expect([...jpegs.entries.get(name)!.subarray(0, 3)], name).toEqual([0xff, 0xd8, 0xff]);
      expect(jpegs.entries.get('report.pdf')!.subarray(0, 5).toString('latin1')).toBe('%PDF-');
      expect(jpegs.entries.get('README.txt')!.toString('utf8')).toContain('không dùng để chẩn đoán');
      const dicom = await download('#download-dicom');
      expect(dicom.name).toBe('dicom-20260105.zip');
      const dicomNames = [...dicom.entries.keys()];
      // Every instance the link shares (the images, and the report's SR and PDF series), one folder per series.
      expect(dicomNames.filter((n) => n.startsWith('series-01/'))).toHaveLength(4);
      expect(dicomNames.filter((n) => n.startsWith('series-02/'))).toHaveLength(3);
      expect(dicomNames.length).toBe(9);
      for (const [name, bytes] of dicom.entries) expect(bytes.subarray(128, 132).toString('latin1'), name).toBe('DICM');
      for (const name of [jpegs.name, dicom.name]) expect(name).not.toMatch(/NGUY|PHONE-0001/i);

      expect(errors).toEqual([]);
      expect(failed).toEqual([]);
    } finally {
      await context.close();
    }
  }, 180_000);

  it('asks for the PIN: a wrong PIN says how many tries are left, the right one opens; five wrong PINs lock the link', async () => {
    const { token, pin } = await shareLink(call, { studyInstanceUid: study.studyInstanceUid, pin: true });
    const { context, page, errors } = await phone('en-GB');
    try {
      await page.goto(`${server.url}/s/${token}`);
      await page.waitForSelector('#pin-form');
      expect(await page.locator('#not-for-diagnosis').isVisible()).toBe(true);
      const wrong = pin === '000000' ? '111111' : '000000';
      await page.fill('#pin', wrong);
      await page.click('#pin-submit');
      await expect.poll(() => page.locator('#pin-message').innerText()).toBe('Wrong PIN: 4 tries left before the link locks for a while.');
      await shoot(page, '6-wrong-pin');
      await page.locator('.lang-switch button[data-lang="vi"]').click();
      expect(await page.locator('#pin-message').innerText()).toBe('Mã PIN sai: còn 4 lần thử trước khi liên kết bị khóa tạm thời.');
      await page.fill('#pin', pin!);
      await page.click('#pin-submit');
      await page.waitForSelector('#stage img.media[data-loaded="true"]');
      expect(await page.locator('#patient-name').innerText()).toBe(PHONE_PATIENT_SHOWN);
      // A reload opens it again without the PIN (the session's cookie), in the same tab.
      await page.reload();
      await page.waitForSelector('#stage img.media[data-loaded="true"]');
      expect(await page.locator('#pin-form').count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }

    const locked = await shareLink(call, { studyInstanceUid: study.studyInstanceUid, pin: true });
    const second = await phone('en-GB');
    try {
      await second.page.goto(`${server.url}/s/${locked.token}`);
      await second.page.waitForSelector('#pin-form');
      const wrong = locked.pin === '000000' ? '111111' : '000000';
      const answers = [
        'Wrong PIN: 4 tries left before the link locks for a while.',
        'Wrong PIN: 3 tries left before the link locks for a while.',
        'Wrong PIN: 2 tries left before the link locks for a while.',
        'Wrong PIN: 1 try left before the link locks for a while.',
        'Too many wrong PINs: the link is locked. Try again in 15 minutes.',
      ];
      for (const answer of answers) {
        await second.page.fill('#pin', wrong);
        await second.page.click('#pin-submit');
        await expect.poll(() => second.page.locator('#pin-message').innerText()).toBe(answer);
      }
      expect(await second.page.locator('#pin-message').getAttribute('data-kind')).toBe('pin-locked');
      expect(await second.page.locator('#pin').isDisabled()).toBe(true);
      await shoot(second.page, '7-locked');
    } finally {
      await second.context.close();
    }
  }, 120_000);

  it('says so clearly when the link is revoked', async () => {
    const { token, linkId } = await shareLink(call, { studyInstanceUid: study.studyInstanceUid });
    expect((await call('DELETE', `/share/links/${linkId}`)).status).toBe(200);
    const { context, page } = await phone('vi-VN');
    try {
      const response = await page.goto(`${server.url}/s/${token}`);
      expect(response?.status()).toBe(410);
      expect(await page.locator('body').innerText()).toContain('Liên kết đã bị thu hồi');
    } finally {
      await context.close();
    }
  });
});
