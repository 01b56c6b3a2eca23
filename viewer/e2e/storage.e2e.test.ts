/**
 * The storage page (`#/storage`) in Debian's headless Chromium against a real server on loopback with
 * lossless recompression on (JPEG-LS, run on request): the usage figures as stored, "Run housekeeping
 * now", then the figures after the run (recompressed instances, space saved, the JPEG-LS row), a study's
 * series on demand, and the page in Vietnamese. No patient name anywhere on the page.
 * Screenshots: .artifacts/viewer/storage-*.png.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, type RunningServer } from './harness.js';

let server: RunningServer;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  buildViewer();
  server = await startServer({ PACS_AI_ENABLED: 'false', PACS_LIFECYCLE_COMPRESS: 'jpeg-ls', PACS_LIFECYCLE_COMPRESS_AFTER_DAYS: '1', PACS_LIFECYCLE_INTERVAL_SECONDS: '0', PACS_LIFECYCLE_PAUSE_MS: '0', PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '0' });
  const files = await Promise.all(['debian-python3-pydicom-2.3.1/CT_small.dcm', 'debian-python3-pydicom-2.3.1/MR_small.dcm', 'pydicom-data/SC_rgb.dcm'].map((f) => readFile(path.join(sharedDataDir, 'dicom-pydicom', f))));
  await stowAll(server.url, files);
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  errors = watchErrors(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  removeViewerBuild();
});

describe('the storage page', () => {
  it('shows the usage, runs housekeeping and shows what it saved', async () => {
    await page.goto(`${server.url}/?lang=en#/storage`);
    await expect.poll(async () => page.locator('#storage-instances').textContent(), { timeout: 15_000 }).toBe('3');
    await expect.poll(async () => page.locator('#storage-recompressed').textContent()).toBe('0');
    expect(await page.locator('#storage-rules').textContent()).toContain('Lossless recompression to JPEG-LS');
    expect(await page.locator('#storage-syntaxes').textContent()).toContain('Explicit VR Little Endian');
    await shoot(page, 'storage-before');

    await page.locator('#storage-run-now').click();
    await expect
      .poll(async () => {
        await page.reload();
        await page.locator('#storage-recompressed').waitFor();
        return page.locator('#storage-recompressed').textContent();
      }, { timeout: 30_000 })
      .toBe('3');
    expect(await page.locator('#storage-syntaxes').textContent()).toContain('JPEG-LS Lossless');
    expect(await page.locator('#storage-run').textContent()).toMatch(/3 recompressed/);
    expect(await page.locator('#storage-saved').textContent()).not.toMatch(/^0 B/);
    await page.locator('#storage-studies-table tbody tr').first().locator('button').click();
    await expect.poll(async () => page.locator('#storage-series tbody tr').count()).toBe(1);
    await shoot(page, 'storage-after');

    await page.goto(`${server.url}/?lang=vi#/storage`);
    await page.locator('#storage-recompressed').waitFor();
    expect(await page.locator('h2').first().textContent()).toBe('Lưu trữ');
    expect(await page.locator('#nav-storage').textContent()).toBe('Lưu trữ');
    const text = (await page.locator('#app').textContent()) ?? '';
    // Patients are never named on this page (the samples' names: CompressedSamples^…).
    expect(text).not.toContain('CompressedSamples');
    expect(text).not.toContain('Lestrade');
    expect(errors).toEqual([]);
  }, 90_000);
});
