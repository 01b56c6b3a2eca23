/**
 * Reports with sign-in on, in Debian's headless Chromium: real OpenID sign-in (the npm `oidc-provider`,
 * oidc-test-provider.ts) and the server's default roles. A resident (`report`, no `sign`) drafts an
 * endoscopy report and reviews its AI findings, and Sign answers "You are not allowed to sign reports"
 * (the server's 403), the report staying a draft; a physician (`sign`) then signs it: the signer is the
 * token's subject, and the PDF is downloaded with the token. A reader (no `report`) is told the quality
 * figures are not theirs to see. Screenshots: .artifacts/viewer/reports-auth-*.png.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeEndoscopyStudy, type EndoscopyStudy } from '../../server/src/test-support/endoscopy-study.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, watchErrors, type RunningServer } from './harness.js';
import { API_SCOPE, startOidcTestProvider, VIEWER_CLIENT_ID, type OidcTestProvider } from './oidc-test-provider.js';

const AUDIENCE = 'filmless-pacs';
const ACCOUNTS = {
  resident: { name: 'BS. Phạm Quốc Huy', roles: ['resident'] },
  physician: { name: 'BS. Lê Văn Minh', roles: ['physician'] },
  reader: { name: 'Reader', roles: ['reader'] },
};

let op: OidcTestProvider;
let server: RunningServer;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let errors: string[];
let study: EndoscopyStudy;
let reportId: string;
/** The archive's answers to sign requests, by the page. */
const signs: number[] = [];

async function signedInPage(login: keyof typeof ACCOUNTS, route: string): Promise<Page> {
  await context?.close();
  context = await browser.newContext({ viewport: { width: 1280, height: 1400 }, acceptDownloads: true });
  await context.route((url) => url.hostname !== '127.0.0.1', (r) => r.abort());
  const p = await context.newPage();
  errors = watchErrors(p);
  p.on('response', (r) => {
    if (r.request().method() === 'POST' && /\/reports\/[^/]+\/sign$/.test(new URL(r.url()).pathname)) signs.push(r.status());
  });
  await p.goto(`${server.url}/${route}`);
  await p.waitForSelector('input[name=login]', { timeout: 30_000 });
  await p.fill('input[name=login]', login);
  await p.fill('input[name=password]', 'any password');
  await p.click('button[type=submit]');
  await p.waitForURL(`${server.url}/${route}`, { timeout: 30_000 });
  await p.locator('#auth-user', { hasText: login }).waitFor();
  return p;
}

beforeAll(async () => {
  buildViewer();
  op = await startOidcTestProvider({ audience: AUDIENCE, accessTokenTtlSeconds: 300, accounts: ACCOUNTS });
  server = await startServer({
    PACS_AUTH_ENABLED: 'true',
    PACS_AUTH_ISSUER: op.issuer,
    PACS_AUTH_AUDIENCE: AUDIENCE,
    PACS_AUTH_VIEWER_CLIENT_ID: VIEWER_CLIENT_ID,
    PACS_AUTH_VIEWER_SCOPE: `openid profile ${API_SCOPE}`,
  });
  await op.configure(server.url);
  study = await storeEndoscopyStudy(server.t.services.archive, { studyDate: '20260107' });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  await op?.close();
  removeViewerBuild();
});

describe('reports with sign-in', () => {
  it('lets a resident draft and review, and tells them they may not sign', async () => {
    page = await signedInPage('resident', `#/study/${study.studyInstanceUid}/report`);
    await page.click('#report-create');
    await page.waitForSelector('.report-form[data-kind="endoscopy"]');
    await expect.poll(() => page.locator('.ai-finding').count(), { timeout: 30_000 }).toBe(3);
    for (const f of await page.locator('.ai-finding .ai-accept').all()) await f.click();
    await page.fill('textarea[name="conclusion"]', 'Polyp đại tràng sigma, chờ bác sĩ ký.');
    await page.click('#report-save');
    await page.locator('.report-ok', { hasText: 'Draft saved' }).waitFor();
    reportId = page.url().split('/').at(-1)!;

    await page.click('#report-sign');
    await page.click('#report-sign-confirm');
    const refused = page.locator('#sign-refused');
    await refused.waitFor();
    expect(await refused.innerText()).toContain('You are not allowed to sign reports');
    expect(signs).toEqual([403]);
    // Sign is off from now on, with the reason; the draft is still a draft, editable.
    expect(await page.locator('#report-sign').isDisabled()).toBe(true);
    expect(await page.locator('#report-sign').getAttribute('title')).toContain('not allowed to sign');
    expect(await page.locator('.report-info .report-status').getAttribute('data-status')).toBe('draft');
    expect(await page.locator('textarea[name="conclusion"]').isEditable()).toBe(true);
    await shoot(page, 'reports-auth-1-sign-refused');
    const stored = await server.t.services.reports!.service.get(reportId);
    expect(stored.versions.map((v) => v.status)).toEqual(['draft']);
    expect(stored.versions[0]!.createdBy.subject).toBe('resident');
    expect(errors).toEqual([]);
  }, 120_000);

  it('lets a physician sign it: the signer comes from the token, the PDF downloads with it', async () => {
    page = await signedInPage('physician', `#/study/${study.studyInstanceUid}/report/${reportId}`);
    await page.waitForSelector('#report-sign:not([disabled])');
    await page.click('#report-sign');
    await page.click('#report-sign-confirm');
    await page.locator('.report-ok', { hasText: 'Version 1 signed' }).waitFor({ timeout: 60_000 });
    expect(signs).toEqual([403, 200]);
    expect(await page.locator('#report-signer').innerText()).toBe('physician');
    expect(await page.locator('.report-info .report-status').getAttribute('data-status')).toBe('final');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-pdf')]);
    const bytes = await (await download.createReadStream()).toArray();
    expect(Buffer.concat(bytes).subarray(0, 5).toString('latin1')).toBe('%PDF-');
    await shoot(page, 'reports-auth-2-signed-by-physician');
    expect(errors).toEqual([]);
  }, 120_000);

  it('tells a reader that the quality figures need the report permission', async () => {
    page = await signedInPage('reader', '#/quality');
    const alert = page.locator('.quality-result [role=alert]');
    await alert.waitFor();
    expect(await alert.innerText()).toMatch(/You are not allowed to do this \(loading the quality figures\).*"report" permission/s);
    await shoot(page, 'reports-auth-3-quality-refused');
    expect(errors).toEqual([]);
  }, 60_000);
});
