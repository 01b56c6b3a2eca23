/**
 * Viewer sign-in end to end in Debian's headless Chromium, against a real OpenID provider (the npm
 * `oidc-provider`, oidc-test-provider.ts) and the real server with sign-in on: the authorization code
 * flow with PKCE through the provider's login page, the access token on QIDO-RS, on Cornerstone's frame
 * requests, on thumbnails, on AI and on the live WebSocket, silent renewal with the refresh token
 * before the short-lived (20 s) access token expires, sign-out at the provider, and the message a user
 * without the `read` permission gets. Screenshots: .artifacts/viewer/auth-*.png.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInstance, newUid } from '../../server/src/test-support/make-dicom.js';
import { buildViewer, CHROMIUM, removeViewerBuild, shoot, startServer, stats, stowAll, watchErrors, type RunningServer } from './harness.js';
import { API_SCOPE, startOidcTestProvider, VIEWER_CLIENT_ID, type OidcTestProvider } from './oidc-test-provider.js';

const AUDIENCE = 'filmless-pacs';
const ACCESS_TOKEN_TTL_S = 20;
const ACCOUNTS = {
  // ai-user: read + ai; uploader: store (recording live sessions).
  alice: { name: 'Alice Radiologist', roles: ['ai-user', 'uploader'] },
  // May store (a modality operator) but not read: the viewer must say so, not show an empty list.
  bob: { name: 'Bob Operator', roles: ['uploader'] },
};

const ids = { study: newUid(), series: newUid(), detectStudy: newUid(), detectSeries: newUid(), detectSop: newUid(), lateStudy: newUid() };

let op: OidcTestProvider;
let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];
let tmp: string;

interface Seen {
  url: string;
  method: string;
  status: number;
  token: string | undefined;
}
/** Every response of the archive to the page, with the bearer token its request carried. */
const seen: Seen[] = [];
/** Main-frame navigations (to see that renewal never leaves the page). */
const navigations: string[] = [];
/** Requests of the page to the provider. */
const toProvider: Array<{ url: string; postData: string | null; at: number }> = [];

interface Claims {
  iss: string;
  aud: string | string[];
  sub: string;
  exp: number;
  iat: number;
  roles?: string[];
}
const claimsOf = (jwt: string): Claims => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Claims;
const userKey = () => `oidc.user:${op.issuer}:${VIEWER_CLIENT_ID}`;

/** 64×64 greyscale: a bright square on dark, so rendered pixels can be checked. */
function square(): Uint8Array {
  const px = new Uint8Array(64 * 64);
  for (let y = 0; y < 64; y += 1) for (let x = 0; x < 64; x += 1) px[y * 64 + x] = x > 16 && x < 48 && y > 16 && y < 48 ? 250 : 30;
  return px;
}

/** Black 200×100 RGB with a white rectangle: the bright-spot test model finds it. */
function brightRect(): Uint8Array {
  const px = new Uint8Array(200 * 100 * 3);
  for (let y = 20; y < 60; y += 1) for (let x = 40; x < 80; x += 1) px.fill(255, (y * 200 + x) * 3, (y * 200 + x) * 3 + 3);
  return px;
}

/** A fake camera (MJPEG): a white square moving over black. */
async function fakeCamera(dir: string): Promise<string> {
  const frames: Buffer[] = [];
  for (let i = 0; i < 30; i += 1) {
    frames.push(
      await sharp({ create: { width: 320, height: 240, channels: 3, background: '#000000' } })
        .composite([{ input: { create: { width: 60, height: 60, channels: 3, background: '#ffffff' } }, left: 40 + i * 4, top: 90 }])
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
  }
  const file = path.join(dir, 'fake-camera.mjpeg');
  await writeFile(file, Buffer.concat(frames));
  return file;
}

async function newSignedOutPage(): Promise<Page> {
  context = await browser.newContext({ viewport: { width: 1100, height: 750 } });
  await context.grantPermissions(['camera'], { origin: server.url });
  // Loopback only: the provider's default pages would try to fetch web fonts.
  await context.route((url) => url.hostname !== '127.0.0.1', (route) => route.abort());
  const p = await context.newPage();
  p.on('response', async (response) => {
    const request = response.request();
    if (request.url().startsWith(server.url) && /\/(dicomweb|ai)\//.test(request.url())) {
      const auth = (await request.allHeaders())['authorization'];
      seen.push({ url: request.url(), method: request.method(), status: response.status(), token: auth?.replace(/^Bearer /, '') });
    }
  });
  p.on('request', (request) => {
    if (request.url().startsWith(op.issuer)) toProvider.push({ url: request.url(), postData: request.postData(), at: Date.now() });
  });
  p.on('framenavigated', (frame) => {
    if (frame === p.mainFrame()) navigations.push(frame.url());
  });
  return p;
}

/** The provider's development login: any password, the login name picks the account. */
async function signInAtProvider(p: Page, login: keyof typeof ACCOUNTS): Promise<void> {
  await p.waitForSelector('input[name=login]', { timeout: 30_000 });
  expect(new URL(p.url()).origin).toBe(op.issuer);
  await p.fill('input[name=login]', login);
  await p.fill('input[name=password]', 'any password');
  await p.click('button[type=submit]');
}

async function waitForImage(): Promise<void> {
  await page.waitForSelector('.viewport[data-sop]:not([data-sop=""])', { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector('.cs-element canvas') !== null, undefined, { timeout: 30_000 });
  await page.waitForTimeout(300);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'auth-e2e-'));
  const camera = await fakeCamera(tmp);
  buildViewer();
  op = await startOidcTestProvider({ audience: AUDIENCE, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_S, accounts: ACCOUNTS });
  server = await startServer({
    PACS_AUTH_ENABLED: 'true',
    PACS_AUTH_ISSUER: op.issuer,
    PACS_AUTH_AUDIENCE: AUDIENCE,
    PACS_AUTH_VIEWER_CLIENT_ID: VIEWER_CLIENT_ID,
    PACS_AUTH_VIEWER_SCOPE: `openid profile ${API_SCOPE}`,
    // No grace: an expired token is refused at once, so the test sees that renewal was needed.
    PACS_AUTH_CLOCK_TOLERANCE_SECONDS: '0',
  });
  await op.configure(server.url);
  // Stored through the real STOW-RS route, as a service account of the provider (client credentials).
  const seeder = await op.serviceToken();
  const stack = [0, 1].map(() => makeInstance({ studyInstanceUid: ids.study, seriesInstanceUid: ids.series, patientName: 'AUTHTEST^ALICE', patientId: 'AT-1', modality: 'OT', rows: 64, columns: 64, pixels: square() }));
  const detect = makeInstance({ studyInstanceUid: ids.detectStudy, seriesInstanceUid: ids.detectSeries, sopInstanceUid: ids.detectSop, patientName: 'AUTHTEST^DETECT', modality: 'ES', rows: 100, columns: 200, samplesPerPixel: 3, pixels: brightRect() });
  // Opened only after the first token expired (Cornerstone caches frames it already has).
  const late = makeInstance({ studyInstanceUid: ids.lateStudy, patientName: 'AUTHTEST^LATE', modality: 'OT', rows: 64, columns: 64, pixels: square() });
  await stowAll(server.url, [...stack, detect, late], { authorization: `Bearer ${seeder}` });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--disable-gpu', '--disable-quic', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
  });
  page = await newSignedOutPage();
  errors = watchErrors(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  await op?.close();
  await rm(tmp, { recursive: true, force: true });
  removeViewerBuild();
});

let firstToken: string;

describe('viewer sign-in (authorization code + PKCE against oidc-provider)', () => {
  it('sends an anonymous visitor to the provider, and back to the route they opened once signed in', async () => {
    await page.goto(`${server.url}/#/study/${ids.study}`);
    await signInAtProvider(page, 'alice');
    // Back on the study they opened, the code and state gone from the address bar.
    await page.waitForURL(`${server.url}/#/study/${ids.study}`, { timeout: 30_000 });
    await waitForImage();
    expect(page.url()).not.toMatch(/[?&](code|state)=/);
    await shoot(page, 'auth-1-signed-in-image');

    // Authorization code with PKCE (S256), the scope from /api.
    const authorize = new URL(toProvider.find((r) => new URL(r.url).pathname === '/auth')!.url);
    expect(authorize.searchParams.get('response_type')).toBe('code');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get('scope')).toBe(`openid profile ${API_SCOPE}`);
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${server.url}/`);
    const exchange = toProvider.find((r) => new URL(r.url).pathname === '/token')!;
    expect(exchange.postData).toContain('grant_type=authorization_code');
    expect(exchange.postData).toMatch(/code_verifier=[A-Za-z0-9_~.-]{43,}/);

    // Cornerstone's frame requests carried the access token: a JWT for the archive with the roles.
    const frames = seen.filter((s) => s.url.includes('/frames/'));
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) {
      expect(f.status).toBe(200);
      expect(f.token).toBeDefined();
    }
    firstToken = seen.find((s) => s.token !== undefined)!.token!;
    const claims = claimsOf(firstToken);
    expect(claims.iss).toBe(op.issuer);
    expect(claims.aud).toBe(AUDIENCE);
    expect(claims.sub).toBe('alice');
    expect(claims.roles).toEqual(['ai-user', 'uploader']);
    expect(claims.exp - claims.iat).toBe(ACCESS_TOKEN_TTL_S);
    // The rendered image: the bright square on dark (about a fifth of the viewport, less when the
    // viewport is wider than tall: the square is fitted to its height; an undrawn viewport is ~0).
    const s = stats(await shoot(page.locator('.viewport'), 'auth-1-image'));
    expect(s.litFraction).toBeGreaterThan(0.1);

    // Who is signed in; the session lives in sessionStorage (gone with the tab), not localStorage.
    expect(await page.locator('#auth-user').innerText()).toBe('alice');
    expect(await page.locator('#sign-out').isVisible()).toBe(true);
    const storage = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: JSON.stringify(localStorage) }));
    expect(storage.session).toContain(userKey());
    expect(storage.local).not.toContain(firstToken);
    // Without the token the same archive refuses: what the page shows is thanks to the token.
    expect(await page.evaluate(() => fetch('/dicomweb/studies').then((r) => r.status))).toBe(401);
    await expect.poll(() => seen.some((x) => x.status === 401 && x.token === undefined)).toBe(true);
    expect(errors).toEqual([]);
  }, 120_000);

  it('lists the stored studies in the study browser (QIDO-RS and thumbnails with the token)', async () => {
    const before = seen.length;
    await page.click('.top-nav a[href="#/"]');
    const row = page.locator(`tr[data-study="${ids.study}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.innerText()).toContain('AUTHTEST ALICE');
    expect(await page.locator(`tr[data-study="${ids.detectStudy}"]`).count()).toBe(1);
    const isQido = (s: Seen) => new URL(s.url).pathname === '/dicomweb/studies';
    await expect.poll(() => seen.slice(before).filter(isQido).length).toBeGreaterThan(0);
    const qido = seen.slice(before).filter(isQido);
    expect(qido.every((q) => q.status === 200 && q.token !== undefined)).toBe(true);
    // The series thumbnail (an <img> cannot send headers: fetched with the token into an object URL).
    await row.hover();
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('.series-preview img');
      return img !== null && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
    }, undefined, { timeout: 15_000 });
    expect(seen.slice(before).some((s) => s.url.includes('/thumbnail') && s.status === 200 && s.token !== undefined)).toBe(true);
    await shoot(page, 'auth-2-study-browser');
    expect(errors).toEqual([]);
  }, 60_000);

  it('runs an AI detection with the token', async () => {
    const before = seen.length;
    await page.goto(`${server.url}/#/study/${ids.detectStudy}`);
    await waitForImage();
    await page.selectOption('select[data-testid=model]', 'bright-spot');
    await page.click('button[data-action=detect]');
    await page.waitForSelector('[data-testid=detect-done]', { timeout: 60_000 });
    expect(await page.locator('[data-testid=detect-done]').innerText()).toContain('1 finding');
    await expect.poll(() => seen.slice(before).some((s) => s.method === 'POST')).toBe(true);
    const detection = seen.slice(before).find((s) => s.method === 'POST' && s.url.includes('/detections'));
    expect(detection?.status).toBe(201);
    expect(detection?.token).toBeDefined();
    await shoot(page, 'auth-3-detection');
    expect(errors).toEqual([]);
  }, 90_000);

  it('streams to the live WebSocket with the token in its query', async () => {
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${server.url}/#/live`);
    await page.locator('#live-model option').first().waitFor({ state: 'attached' });
    await page.fill('#live-patient-name', 'AUTHTEST^LIVE');
    await page.fill('#live-patient-id', 'AT-LIVE');
    await page.uncheck('#live-record');
    await page.click('#live-start');
    await page.waitForFunction(() => Number(document.querySelector<HTMLOutputElement>('#live-analysed')?.value ?? 0) >= 5, undefined, { timeout: 30_000 });
    const boxes = JSON.parse((await page.getAttribute('#live-canvas', 'data-boxes')) ?? '[]') as unknown[];
    expect(boxes.length).toBeGreaterThanOrEqual(1);
    await page.click('#live-stop');
    await page.locator('#live-status', { hasText: 'Stopped:' }).waitFor({ timeout: 30_000 });
    expect(sockets).toHaveLength(1);
    const token = new URL(sockets[0]!).searchParams.get('access_token');
    expect(token).not.toBeNull();
    expect(claimsOf(token!).sub).toBe('alice');
    await shoot(page, 'auth-4-live');
    expect(errors).toEqual([]);
  }, 90_000);

  it('renews the access token silently (refresh token) before it expires; requests keep succeeding', async () => {
    await page.goto(`${server.url}/#/`);
    await page.locator(`tr[data-study="${ids.study}"]`).waitFor({ timeout: 15_000 });
    await page.evaluate(() => ((window as unknown as { samePage: boolean }).samePage = true));
    const navigationsBefore = navigations.length;
    const firstExpiry = claimsOf(firstToken).exp;
    // Past the first token's expiry (no clock tolerance on the archive in this test).
    const wait = firstExpiry * 1000 + 1500 - Date.now();
    if (wait > 0) await page.waitForTimeout(wait);
    const refused = await fetch(`${server.url}/dicomweb/studies`, { headers: { authorization: `Bearer ${firstToken}` } });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/expired/);
    expect(op.grants).toContain('refresh_token');
    // The page renewed with its refresh token before the first token expired (not after a failure).
    const renewal = toProvider.find((r) => new URL(r.url).pathname === '/token' && (r.postData ?? '').includes('grant_type=refresh_token'));
    expect(renewal).toBeDefined();
    expect(renewal!.at).toBeLessThan(firstExpiry * 1000);

    // A new search from the same page: a newer token, accepted.
    const before = seen.length;
    await page.click('.search button[type=submit]');
    await page.waitForFunction((n) => document.querySelectorAll('tbody tr').length >= n, 2);
    const isQido = (s: Seen) => new URL(s.url).pathname === '/dicomweb/studies';
    await expect.poll(() => seen.slice(before).filter(isQido).length).toBeGreaterThan(0);
    const qido = seen.slice(before).filter(isQido);
    const latest = qido[qido.length - 1]!;
    expect(latest.status).toBe(200);
    expect(latest.token).not.toBe(firstToken);
    expect(claimsOf(latest.token!).exp).toBeGreaterThan(firstExpiry);
    // Frames too (Cornerstone asks for the current token on each request): a study not opened before.
    await page.goto(`${server.url}/#/study/${ids.lateStudy}`);
    await waitForImage();
    expect(stats(await shoot(page.locator('.viewport'), 'auth-5-after-renewal')).litFraction).toBeGreaterThan(0.1);
    await expect.poll(() => seen.slice(before).filter((s) => s.url.includes('/frames/')).length).toBeGreaterThan(0);
    const frame = seen.slice(before).filter((s) => s.url.includes('/frames/')).pop();
    expect(frame?.status).toBe(200);
    expect(claimsOf(frame!.token!).exp).toBeGreaterThan(firstExpiry);
    // No request of the signed-in page was ever refused for its token.
    expect(seen.filter((x) => x.status === 401 && x.token !== undefined)).toEqual([]);
    // Renewal never left the page (no redirect to the provider, no reload).
    expect(await page.evaluate(() => (window as unknown as { samePage?: boolean }).samePage)).toBe(true);
    expect(navigations.slice(navigationsBefore).filter((u) => u.startsWith(op.issuer))).toEqual([]);
    expect(errors).toEqual([]);
  }, 90_000);

  it('signs out at the provider and lands on its login; the old session can no longer be used', async () => {
    const stored = await page.evaluate((key) => JSON.parse(sessionStorage.getItem(key) ?? '{}') as { refresh_token?: string; access_token?: string }, userKey());
    expect(stored.refresh_token).toBeDefined();
    await page.click('#sign-out');
    // The provider's logout confirmation (RP-initiated logout), then back to the viewer, then its login.
    await page.click('button[name=logout]', { timeout: 30_000 });
    await page.waitForSelector('input[name=login]', { timeout: 30_000 });
    expect(new URL(page.url()).origin).toBe(op.issuer);
    await shoot(page, 'auth-6-signed-out');
    // The refresh token was revoked / ended with the provider session: no silent way back in.
    const refresh = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: stored.refresh_token!, client_id: VIEWER_CLIENT_ID }),
    });
    expect(refresh.status).toBe(400);
    expect(((await refresh.json()) as { error: string }).error).toBe('invalid_grant');
    // Opening the viewer again asks for the login (no provider session, nothing in the tab's storage).
    await page.goto(`${server.url}/`);
    await page.waitForSelector('input[name=login]', { timeout: 30_000 });
    expect(new URL(page.url()).origin).toBe(op.issuer);
    expect(errors).toEqual([]);
  }, 60_000);

  it('tells a user whose roles do not grant "read" that they are not allowed, instead of an empty list', async () => {
    await context.close();
    page = await newSignedOutPage();
    errors = watchErrors(page);
    await page.goto(`${server.url}/`);
    await signInAtProvider(page, 'bob');
    await page.waitForURL(`${server.url}/`, { timeout: 30_000 });
    const alert = page.locator('#app [role=alert]');
    await alert.waitFor({ timeout: 15_000 });
    const text = await alert.innerText();
    expect(text).toMatch(/You are not allowed to do this \(Study search\)/);
    expect(text).toMatch(/"read" permission/);
    expect(await page.locator('#auth-user').innerText()).toBe('bob');
    expect(await page.locator('tbody tr').count()).toBe(0);
    expect(seen.filter((s) => s.token !== undefined && claimsOf(s.token).sub === 'bob').every((s) => s.status === 403)).toBe(true);
    await shoot(page, 'auth-7-forbidden');
    expect(errors).toEqual([]);
  }, 60_000);
});
