/**
 * Curation from the viewer in Debian's headless Chromium against real servers on loopback. Sign-in off
 * (the server's anonymous user has every permission, as an administrator): a series is rejected for
 * patient safety from the study view's "Correct" menu (the confirmation names it) → it is gone from the
 * study view and QIDO-RS counts drop at once; the curation page (`#/curation`) lists it (reason, who,
 * purge date) with the recent actions; Restore brings it back; a series stored under the wrong patient is
 * moved, through a QIDO search by accession number, to the other patient's study and shows there.
 * Sign-in on (real OpenID sign-in, the server's default roles): a physician (no `admin`) trying to reject
 * gets the clear "needs the admin permission" message and nothing changes.
 * Screenshots: .artifacts/viewer/curation-*.png.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archive } from '../../server/src/archive/archive.js';
import { makeInstance, newUid } from '../../server/src/test-support/make-dicom.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, watchErrors, type RunningServer } from './harness.js';
import { API_SCOPE, startOidcTestProvider, VIEWER_CLIENT_ID, type OidcTestProvider } from './oidc-test-provider.js';

type Json = Record<string, { Value?: unknown[] } | undefined>;
const AUDIENCE = 'filmless-pacs';
const ACCOUNTS = { physician: { name: 'BS. Lê Văn Minh', roles: ['physician'] } };

const A = { id: 'CUR-A-1', name: 'NGUYEN^VAN AN', accession: 'ACC-CUR-A' };
const B = { id: 'CUR-B-2', name: 'TRAN^THI BINH', accession: 'ACC-CUR-B' };
const studyA = newUid();
const studyB = newUid();
const keep = newUid(); // OT, 2 images
const unsafe = newUid(); // XC, 1 image: rejected, then restored
const wrong = newUid(); // OT, 1 image of patient B stored under A: moved
const seriesB = newUid();

function instance(patient: typeof A, study: string, series: string, modality: string): Buffer {
  return makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, patientId: patient.id, patientName: patient.name, accessionNumber: patient.accession, modality, studyDate: '20260110', rows: 16, columns: 16 });
}

async function storeAll(archive: Archive): Promise<void> {
  const files = [instance(A, studyA, keep, 'OT'), instance(A, studyA, keep, 'OT'), instance(A, studyA, unsafe, 'XC'), instance(A, studyA, wrong, 'OT'), instance(B, studyB, seriesB, 'OT')];
  for (const file of files) {
    const result = await (await archive.scanAndStore((async function* () {
      yield file;
    })())).completion;
    if (!result.ok) throw new Error(result.failure.message);
  }
}

let server: RunningServer;
let authServer: RunningServer;
let op: OidcTestProvider;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let errors: string[];

const qido = async (url: string, path: string): Promise<Json[]> => {
  const res = await fetch(`${url}/dicomweb${path}`, { headers: { accept: 'application/dicom+json' } });
  return res.status === 204 ? [] : ((await res.json()) as Json[]);
};
const value = (j: Json | undefined, tag: string) => j?.[tag]?.Value?.[0];
/** Instances of the study's series other than its rejection notes (KO), and those series' UIDs, by QIDO-RS. */
async function seriesOf(study: string): Promise<{ uids: string[]; instances: number }> {
  const list = (await qido(server.url, `/studies/${study}/series`)).filter((s) => value(s, '00080060') !== 'KO');
  return { uids: list.map((s) => String(value(s, '0020000E'))).sort(), instances: list.reduce((n, s) => n + Number(value(s, '00201209') ?? 0), 0) };
}

beforeAll(async () => {
  buildViewer();
  server = await startServer({ PACS_AI_ENABLED: 'false' });
  await storeAll(server.t.services.archive);
  op = await startOidcTestProvider({ audience: AUDIENCE, accessTokenTtlSeconds: 300, accounts: ACCOUNTS });
  authServer = await startServer({ PACS_AI_ENABLED: 'false', PACS_AUTH_ENABLED: 'true', PACS_AUTH_ISSUER: op.issuer, PACS_AUTH_AUDIENCE: AUDIENCE, PACS_AUTH_VIEWER_CLIENT_ID: VIEWER_CLIENT_ID, PACS_AUTH_VIEWER_SCOPE: `openid profile ${API_SCOPE}` });
  await op.configure(authServer.url);
  await storeAll(authServer.t.services.archive);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  await authServer?.t.close();
  await op?.close();
  removeViewerBuild();
});

async function newPage(): Promise<Page> {
  await context?.close();
  context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  await context.route((url) => url.hostname !== '127.0.0.1', (r) => r.abort());
  const p = await context.newPage();
  errors = watchErrors(p);
  return p;
}

async function openMenuItem(item: string): Promise<void> {
  await page.locator('#correct-menu summary').click();
  await page.locator(`#correct-${item}`).click();
}

describe('curation from the viewer (an administrator)', () => {
  it('rejects a series for patient safety: gone from the study view, QIDO counts drop', async () => {
    page = await newPage();
    expect(await seriesOf(studyA)).toEqual({ uids: [keep, unsafe, wrong].sort(), instances: 4 });
    await page.goto(`${server.url}/?lang=en#/study/${studyA}/series/${unsafe}`);
    await page.locator(`.series-item[data-series="${unsafe}"]`).waitFor();
    await openMenuItem('reject-series');
    const dialog = page.locator('#curation-reject');
    await dialog.waitFor();
    // The series shown is the one chosen; the others are offered.
    expect(await dialog.locator(`input[data-series="${unsafe}"]`).isChecked()).toBe(true);
    expect(await dialog.locator(`input[data-series="${keep}"]`).isChecked()).toBe(false);
    expect(await dialog.locator('input[name=reason]').count()).toBe(4);
    await dialog.locator('#curation-next').click();
    expect(await dialog.locator('#curation-error').innerText()).toContain('Choose a reason');
    await dialog.locator('input[data-reason="113037"]').check();
    await dialog.locator('#curation-description').fill('wrong side marker');
    await dialog.locator('#curation-next').click();
    const summary = dialog.locator('#curation-summary');
    await summary.waitFor();
    expect(await summary.innerText()).toMatch(/will be hidden[\s\S]*XC 1 \(1 image\)[\s\S]*Rejected for Patient Safety Reasons/);
    await shoot(page, 'curation-1-reject-confirm');
    await dialog.locator('#curation-confirm').click();

    await page.locator('#curation-flash', { hasText: '1 image rejected (Rejected for Patient Safety Reasons)' }).waitFor({ timeout: 15_000 });
    expect(await page.locator(`.series-item[data-series="${unsafe}"]`).count()).toBe(0);
    expect(await page.locator(`.series-item[data-series="${keep}"]`).count()).toBe(1);
    expect(await seriesOf(studyA)).toEqual({ uids: [keep, wrong].sort(), instances: 3 });
    await shoot(page, 'curation-2-rejected');
    expect(errors).toEqual([]);
  }, 90_000);

  it('lists it on the curation page, and Restore brings it back', async () => {
    await page.locator('#curation-flash a[href="#/curation"]').click();
    const row = page.locator(`#curation-rejected-table tr[data-series="${unsafe}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.locator('.curation-reason').innerText()).toBe('Rejected for Patient Safety Reasons');
    expect(await row.locator('.curation-by').innerText()).toBe('anonymous');
    expect(await row.innerText()).toContain('NGUYEN VAN AN');
    expect(await page.locator('#curation-actions-table tr[data-action="reject"]').count()).toBeGreaterThan(0);
    await shoot(page, 'curation-3-page');

    await row.locator('.curation-restore').click();
    await page.locator('#curation-restored', { hasText: '1 image restored' }).waitFor({ timeout: 15_000 });
    await page.locator('#curation-none').waitFor();
    await page.locator('#curation-actions-table tr[data-action="restore"]').waitFor();
    expect(await seriesOf(studyA)).toEqual({ uids: [keep, unsafe, wrong].sort(), instances: 4 });
    await page.goto(`${server.url}/?lang=en#/study/${studyA}`);
    await page.locator(`.series-item[data-series="${unsafe}"]`).waitFor();
    // In Vietnamese too.
    await page.goto(`${server.url}/?lang=vi#/curation`);
    await page.locator('#curation-none').waitFor();
    expect(await page.locator('#nav-curation').innerText()).toBe('Hiệu chỉnh');
    expect(await page.locator('#curation-actions-table tr[data-action="restore"] td').nth(1).innerText()).toBe('Khôi phục');
    expect(errors).toEqual([]);
  }, 90_000);

  it("moves a series stored under the wrong patient to the other patient's study", async () => {
    await page.goto(`${server.url}/?lang=en#/study/${studyA}/series/${wrong}`);
    await page.locator(`.series-item[data-series="${wrong}"]`).waitFor();
    await openMenuItem('move');
    const dialog = page.locator('#curation-move');
    await dialog.waitFor();
    expect(await dialog.locator(`input[data-series="${wrong}"]`).isChecked()).toBe(true);
    await dialog.locator('#curation-target-query').fill(B.accession);
    await dialog.locator('#curation-target-search').click();
    const target = dialog.locator(`input[data-study="${studyB}"]`);
    await target.waitFor();
    expect(await dialog.locator('#curation-target-results').innerText()).toContain('TRAN THI BINH');
    await target.check();
    await dialog.locator('#curation-next').click();
    expect(await dialog.locator('#curation-summary').innerText()).toMatch(/will move out[\s\S]*OT 1[\s\S]*TRAN THI BINH \(CUR-B-2\)/);
    await dialog.locator('#curation-confirm').click();
    await page.locator('#curation-flash', { hasText: 'Moved 1 series (1 image).' }).waitFor({ timeout: 15_000 });
    expect(await page.locator(`.series-item[data-series="${wrong}"]`).count()).toBe(0);
    expect(await seriesOf(studyA)).toEqual({ uids: [keep, unsafe].sort(), instances: 3 });
    expect(await seriesOf(studyB)).toEqual({ uids: [seriesB, wrong].sort(), instances: 2 });
    const [found] = await qido(server.url, `/studies?PatientID=${B.id}&StudyInstanceUID=${studyB}`);
    expect(value(found, '00201208')).toBe(2);

    await page.locator('#curation-flash a').click();
    await page.locator(`.series-item[data-series="${wrong}"]`).waitFor();
    expect(await page.locator('.study-header .patient').innerText()).toContain(B.id);
    await shoot(page, 'curation-4-moved');
    expect(errors).toEqual([]);
  }, 90_000);
});

describe('curation without the admin permission', () => {
  it('tells a physician that rejecting needs the admin permission', async () => {
    page = await newPage();
    const route = `#/study/${studyA}/series/${unsafe}`;
    await page.goto(`${authServer.url}/?lang=en${route}`);
    await page.waitForSelector('input[name=login]', { timeout: 30_000 });
    await page.fill('input[name=login]', 'physician');
    await page.fill('input[name=password]', 'any password');
    await page.click('button[type=submit]');
    await page.locator('#auth-user', { hasText: 'physician' }).waitFor({ timeout: 30_000 });
    await page.locator(`.series-item[data-series="${unsafe}"]`).waitFor();
    await openMenuItem('reject-series');
    const dialog = page.locator('#curation-reject');
    await dialog.locator('input[data-reason="113001"]').check();
    await dialog.locator('#curation-next').click();
    await dialog.locator('#curation-confirm').click();
    const alert = dialog.locator('#curation-error [role=alert]');
    await alert.waitFor({ timeout: 15_000 });
    expect(await alert.innerText()).toMatch(/You are not allowed to do this \(rejecting\): it needs the admin permission/);
    await shoot(page, 'curation-5-refused');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    // Nothing changed.
    await page.reload();
    await page.locator(`.series-item[data-series="${unsafe}"]`).waitFor();
    // The curation page says the same.
    await page.goto(`${authServer.url}/?lang=en#/curation`);
    await page.locator('#curation-rejected [role=alert]', { hasText: 'needs the admin permission' }).waitFor({ timeout: 15_000 });
    expect(errors).toEqual([]);
  }, 120_000);
});
