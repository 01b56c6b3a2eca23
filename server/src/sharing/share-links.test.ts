/**
 * Share links as the patient and the staff meet them: a link opens its study and nothing else (every
 * route of the app walked with the link against a second study), searches see only the shared study,
 * chosen series stay chosen, expiry and revocation answer a clear page and a JSON 410, a PIN is needed
 * and locks after five wrong tries, every request through a link is audited as the link, the slip's QR
 * code decodes to a URL that opens the study, and every response carries the safe-to-expose headers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import jsQRModule from 'jsqr';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';

// jsqr is CommonJS whose types declare an ES default export: take whichever the loader gives.
type Decode = typeof jsQRModule.default;
const jsQR: Decode = ((jsQRModule as unknown as { default?: Decode }).default ?? jsQRModule) as Decode;

const BASE = 'https://pacs.example.org';
let issuer: TestIssuer;
let t: TestApp;
let staff: string;
let admin: string;

const A = { study: newUid(), series1: newUid(), series2: newUid(), sop11: newUid(), sop12: newUid(), sop21: newUid() };
const B = { study: newUid(), series: newUid(), sop: newUid() };

async function store(token: string, instances: Buffer[]) {
  const response = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: `Bearer ${token}` }, payload: multipartBody(instances.map((body) => ({ body }))) });
  expect(response.statusCode).toBe(200);
}

async function makeLink(body: Record<string, unknown>, host?: string) {
  const response = await t.app.inject({ method: 'POST', url: '/share/links', headers: { authorization: `Bearer ${staff}`, 'content-type': 'application/json', ...(host === undefined ? {} : { host }) }, payload: JSON.stringify(body) });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { link: { id: string; state: string; hasPin: boolean; seriesInstanceUids: string[] | null }; token: string; url: string; pin: string | null; slip: string };
}

const withLink = (credential: string) => ({ authorization: `Bearer share.${credential}` });

function backdate(linkId: string, expiresAt: number) {
  const db = new Database(path.join(t.dataDir, 'index.sqlite'));
  try {
    db.prepare('update share_link set expires_at = ? where id = ?').run(expiresAt, linkId);
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer, { PACS_PUBLIC_BASE_URL: BASE, PACS_HOSPITAL_NAME: 'Bệnh viện Đa khoa Tỉnh' }));
  staff = await issuer.token({ sub: 'dr-lan', roles: ['physician'] });
  admin = await issuer.token({ sub: 'privacy-officer', roles: ['admin'] });
  const uploader = await issuer.token({ roles: ['uploader'] });
  const a = { studyInstanceUid: A.study, patientName: 'TRAN^THI HOA', patientId: 'SHARE-A', rows: 16, columns: 16 };
  await store(uploader, [
    makeInstance({ ...a, seriesInstanceUid: A.series1, sopInstanceUid: A.sop11 }),
    makeInstance({ ...a, seriesInstanceUid: A.series1, sopInstanceUid: A.sop12 }),
    makeInstance({ ...a, seriesInstanceUid: A.series2, sopInstanceUid: A.sop21 }),
    makeInstance({ studyInstanceUid: B.study, seriesInstanceUid: B.series, sopInstanceUid: B.sop, patientName: 'LE^VAN BINH', patientId: 'SHARE-B', rows: 16, columns: 16 }),
  ]);
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
});

/** A concrete URL of a route pattern with the given UIDs. */
function urlOf(pattern: string, uids: { study: string; series: string; sop: string }): string {
  const values: Record<string, string> = { study: uids.study, series: uids.series, instance: uids.sop, frames: '1', frame: '1', id: 'no-such-id', issuer: '-', version: '1', token: 'A'.repeat(43) };
  const filled = pattern.replace(/\/\*$/, '/7FE00010').replace(/:([A-Za-z]+)/g, (_m, name: string) => values[name] ?? 'x');
  if (pattern.endsWith('/frames/:frame/detections')) return `${filled}?model=bright-spot`;
  if (pattern === '/reports/quality') return `${filled}?from=20240101&to=20241231`;
  if (pattern === '/share/links' || pattern === '/his/orders') return `${filled}?study=${uids.study}`;
  return filled;
}

describe('a patient link opens its study and nothing else', () => {
  it('refuses every DICOMweb and API route for a second study (404 for its UIDs, 403 for other APIs), and searches show only the shared study', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const routes = t.app.declaredRoutes().filter((route) => route.permission !== 'public' && route.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(60);
    const failures: string[] = [];
    for (const route of routes) {
      const url = urlOf(route.url, { study: B.study, series: B.series, sop: B.sop });
      // A body each route accepts, so what answers is the confinement, not the body's validation.
      const body = route.url.endsWith('/answer') ? '{"text":"second opinion"}' : '{}';
      const response = await t.app.inject({ method: route.method as 'GET', url, headers: { ...withLink(token), 'content-type': 'application/json' }, payload: route.method === 'GET' || route.method === 'DELETE' ? undefined : body });
      const label = `${route.method} ${route.url} → ${response.statusCode}`;
      const dicomwebWithStudy = route.audit?.interface === 'dicomweb' && route.permission === 'read' && route.url.includes(':study');
      if (dicomwebWithStudy) {
        // A UID of another study: "not found", never "forbidden" (which would say that it exists).
        if (response.statusCode !== 404) failures.push(`${label} (expected 404)`);
        continue;
      }
      if (response.statusCode === 403 || response.statusCode === 404) continue;
      // Served: only what the link shares (a search forced to its study, the link's own description).
      if (response.statusCode === 200 && !response.body.includes(B.study) && !response.body.includes(B.sop)) continue;
      failures.push(`${label} ${response.body.slice(0, 160)}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it("serves the shared study's own DICOMweb routes: searches, instances, frames, metadata, bulk data, rendered images and thumbnails", async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const reads = t.app.declaredRoutes().filter((route) => route.audit?.interface === 'dicomweb' && route.permission === 'read' && route.method === 'GET');
    expect(reads.length).toBeGreaterThan(15);
    const failures: string[] = [];
    for (const route of reads) {
      const url = urlOf(route.url, { study: A.study, series: A.series1, sop: A.sop11 });
      const response = await t.app.inject({ method: 'GET', url, headers: withLink(token) });
      if (response.statusCode >= 300) failures.push(`GET ${route.url} → ${response.statusCode} ${response.body.slice(0, 120)}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('finds only the shared study however the search asks', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const uidsOf = async (url: string) => {
      const response = await t.app.inject({ url, headers: withLink(token) });
      expect(response.statusCode, url).toBe(200);
      return (response.json() as Array<Record<string, { Value?: string[] }>>).map((row) => row['0020000D']?.Value?.[0] ?? row['0020000E']?.Value?.[0]);
    };
    expect(await uidsOf('/dicomweb/studies')).toEqual([A.study]);
    expect(await uidsOf(`/dicomweb/studies?StudyInstanceUID=${B.study}`)).toEqual([]);
    expect(await uidsOf(`/dicomweb/studies?studyinstanceuid=${B.study},${A.study}`)).toEqual([A.study]);
    expect(await uidsOf(`/dicomweb/series?0020000D=${B.study}`)).toEqual([]);
    expect(await uidsOf('/dicomweb/series?PatientID=SHARE-B')).toEqual([]);
    const instances = await t.app.inject({ url: '/dicomweb/instances', headers: withLink(token) });
    expect(instances.json()).toHaveLength(3);
    expect(instances.body).not.toContain(B.sop);
  });

  it('keeps a link to chosen series to those series: the other series is not found, study-level reads are refused', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study, seriesInstanceUids: [A.series1] });
    expect(link.seriesInstanceUids).toEqual([A.series1]);
    const get = (url: string) => t.app.inject({ url, headers: withLink(token) });
    const series = await get(`/dicomweb/studies/${A.study}/series`);
    expect((series.json() as Array<Record<string, { Value: string[] }>>).map((row) => row['0020000E']!.Value[0])).toEqual([A.series1]);
    expect((await get(`/dicomweb/studies/${A.study}/series/${A.series2}/metadata`)).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/${A.study}/series/${A.series1}/instances/${A.sop21}`)).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/${A.study}/metadata`)).statusCode).toBe(403);
    expect((await get(`/dicomweb/studies/${A.study}/series/${A.series1}/instances/${A.sop11}/rendered`)).statusCode).toBe(200);
    const view = (await get('/share/view')).json();
    expect(view.series.map((s: { seriesInstanceUid: string }) => s.seriesInstanceUid)).toEqual([A.series1]);
  });

  it('is read-only: storing through a link is refused', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const response = await t.app.inject({
      method: 'POST',
      url: `/dicomweb/studies/${A.study}`,
      headers: { ...withLink(token), 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: A.study }) }]),
    });
    expect(response.statusCode).toBe(403);
  });
});

describe('expired and revoked links', () => {
  it('answers an expired link with a clear page in Vietnamese and English, and API calls with a JSON 410', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study });
    backdate(link.id, Date.now() - 1000);
    const page = await t.app.inject(`/s/${token}`);
    expect(page.statusCode).toBe(410);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('This link has expired');
    expect(page.body).toContain('Liên kết đã hết hạn');
    expect(page.body).not.toMatch(/stack|Error:|at [A-Za-z]+ \(/);
    const api = await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) });
    expect(api.statusCode).toBe(410);
    expect(api.json()).toEqual({ error: { code: 'LINK_GONE', message: 'This link has expired' } });
    const listed = await t.app.inject({ url: `/share/links?study=${A.study}`, headers: { authorization: `Bearer ${staff}` } });
    expect(listed.json().links.find((l: { id: string }) => l.id === link.id).state).toBe('expired');
  });

  it('stops a revoked link at once, even one just used, with a "revoked" page and a JSON 410', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study });
    expect((await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) })).statusCode).toBe(200);
    const revoked = await t.app.inject({ method: 'DELETE', url: `/share/links/${link.id}`, headers: { authorization: `Bearer ${staff}` } });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ state: 'revoked', revokedBy: { subject: 'dr-lan' } });
    const api = await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) });
    expect(api.statusCode).toBe(410);
    expect(api.json().error).toEqual({ code: 'LINK_GONE', message: 'This link has been revoked' });
    const page = await t.app.inject(`/s/${token}`);
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain('This link has been revoked');
    expect(page.body).toContain('Liên kết đã bị thu hồi');
  });

  it('says a mistyped link does not exist, and refuses an unknown credential with 401', async () => {
    const page = await t.app.inject(`/s/${'Z'.repeat(43)}`);
    expect(page.statusCode).toBe(404);
    expect(page.body).toContain('This link does not exist');
    const api = await t.app.inject({ url: '/dicomweb/studies', headers: withLink('Z'.repeat(43)) });
    expect(api.statusCode).toBe(401);
    expect(api.json().error.code).toBe('UNAUTHENTICATED');
  });
});

describe('a link with a PIN', () => {
  it('needs the PIN, opens with it (Bearer session and cookie), and locks for 15 minutes after 5 wrong PINs', async () => {
    const { token, pin, link } = await makeLink({ studyInstanceUid: A.study, pin: true });
    expect(pin).toMatch(/^\d{6}$/);
    expect(link.hasPin).toBe(true);
    // The token alone opens nothing.
    const bare = await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) });
    expect(bare.statusCode).toBe(401);
    expect(bare.json().error.code).toBe('PIN_REQUIRED');
    const open = (body: Record<string, unknown>) => t.app.inject({ method: 'POST', url: `/share/${token}/session`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    expect((await open({})).json().error.code).toBe('PIN_REQUIRED');
    // The right PIN: a session, as a bearer credential and as an HttpOnly cookie honoured on GET.
    const opened = await open({ pin });
    expect(opened.statusCode).toBe(200);
    const session = opened.json();
    expect(session.accessToken).toMatch(/^share\.[A-Za-z0-9_-]{43}$/);
    expect(session.view.study.studyInstanceUid).toBe(A.study);
    expect(session.view.dicomweb).toBe(`${BASE}/dicomweb`);
    const cookie = String(opened.headers['set-cookie']);
    expect(cookie).toMatch(/^pacs_share=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    expect((await t.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${session.accessToken}` } })).statusCode).toBe(200);
    const byCookie = await t.app.inject({ url: `/dicomweb/studies/${A.study}/series/${A.series1}/thumbnail`, headers: { cookie: cookie.split(';')[0]! } });
    expect(byCookie.statusCode).toBe(200);
    expect((await t.app.inject({ url: `/dicomweb/studies/${B.study}/series/${B.series}/thumbnail`, headers: { cookie: cookie.split(';')[0]! } })).statusCode).toBe(404);
    // Five wrong PINs lock the link; the attempts left are counted down.
    const wrong = pin === '000000' ? '111111' : '000000';
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      const refused = await open({ pin: wrong });
      expect(refused.statusCode).toBe(401);
      expect(refused.json().error).toEqual({ code: 'PIN_INVALID', message: `Wrong PIN: ${5 - attempt} ${5 - attempt === 1 ? 'try' : 'tries'} left before the link locks for 15 minutes` });
    }
    const fifth = await open({ pin: wrong });
    expect(fifth.statusCode).toBe(429);
    expect(fifth.json().error.code).toBe('PIN_LOCKED');
    expect(Number(fifth.headers['retry-after'])).toBe(900);
    // Locked: even the right PIN is refused until the lock ends; the session given before goes on.
    const locked = await open({ pin });
    expect(locked.statusCode).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(890);
    expect((await t.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${session.accessToken}` } })).statusCode).toBe(200);
    const listed = await t.app.inject({ url: `/share/links?study=${A.study}`, headers: { authorization: `Bearer ${staff}` } });
    expect(listed.json().links.find((l: { id: string }) => l.id === link.id).lockedUntil).not.toBeNull();
  });
});

describe('the audit trail', () => {
  it('records every request through a link, served or refused, with the link as the user, and the opening of the link', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study });
    await t.app.inject({ method: 'POST', url: `/share/${token}/session`, headers: { 'content-type': 'application/json' }, payload: '{}' });
    await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) });
    await t.app.inject({ url: `/dicomweb/studies/${A.study}/series/${A.series1}/instances/${A.sop11}/rendered`, headers: withLink(token) });
    await t.app.inject({ url: `/dicomweb/studies/${B.study}/metadata`, headers: withLink(token) });
    await t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/detect', headers: withLink(token) });
    await t.services.audit!.flush();
    const response = await t.app.inject({ url: `/admin/audit?user=${encodeURIComponent(`link:${link.id}`)}&limit=100`, headers: { authorization: `Bearer ${admin}` } });
    expect(response.statusCode).toBe(200);
    const records = response.json().records as Array<{ action: string; status: number; route: string; who: { subject: string; kind: string }; objects: Array<{ study?: string }> }>;
    expect(records.every((r) => r.who.subject === `link:${link.id}` && r.who.kind === 'link')).toBe(true);
    const seen = records.map((r) => `${r.action} ${r.status} ${r.route}`).sort();
    expect(seen).toEqual(
      [
        'ai-run 403 POST /ai/models/:id/detect',
        'query 200 GET /dicomweb/studies',
        'retrieve 200 GET /dicomweb/studies/:study/series/:series/instances/:instance/rendered',
        'retrieve 404 GET /dicomweb/studies/:study/metadata',
        'share-open 200 POST /share/:token/session',
      ].sort(),
    );
    expect(records.find((r) => r.status === 404)!.objects).toEqual([{ study: B.study }]);
    // The staff's own actions are recorded under their name.
    const made = await t.app.inject({ url: '/admin/audit?action=share-link&limit=5', headers: { authorization: `Bearer ${admin}` } });
    expect(made.json().records[0].who.subject).toBe('dr-lan');
  });
});

describe('the result slip', () => {
  it("prints the hospital, the patient, the PIN and a QR code that decodes to the link's public URL, which opens the study", async () => {
    const { token, pin, url, link, slip } = await makeLink({ studyInstanceUid: A.study, pin: true }, 'evil.example');
    // The public base URL, not the request's Host header.
    expect(url).toBe(`${BASE}/s/${token}`);
    expect(slip).toBe(`${BASE}/share/links/${link.id}/slip.pdf`);
    const response = await t.app.inject({ method: 'POST', url: `/share/links/${link.id}/slip.pdf?size=A5`, headers: { authorization: `Bearer ${staff}`, 'content-type': 'application/json' }, payload: JSON.stringify({ token, pin }) });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/pdf');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'slip-'));
    try {
      writeFileSync(path.join(dir, 'slip.pdf'), response.rawPayload);
      const text = execFileSync('pdftotext', ['-layout', path.join(dir, 'slip.pdf'), '-'], { encoding: 'utf8' });
      expect(text).toContain('Bệnh viện Đa khoa Tỉnh');
      expect(text).toContain('TRAN THI HOA');
      expect(text).toContain(`Mã PIN / PIN: ${pin}`);
      expect(text).toContain(url);
      expect(text).toContain('không dùng để chẩn đoán');
      execFileSync('pdftoppm', ['-png', '-r', '200', '-singlefile', path.join(dir, 'slip.pdf'), path.join(dir, 'page')]);
      const { data, info } = await sharp(readFileSync(path.join(dir, 'page.png'))).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
      const decoded = jsQR(new Uint8ClampedArray(data.buffer, data.byteOffset, data.length), info.width, info.height);
      expect(decoded?.data).toBe(url);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The decoded URL works: its path opens the patient page, and with the PIN the study.
    const decodedPath = new URL(url).pathname;
    expect((await t.app.inject(decodedPath)).statusCode).toBe(200);
    const opened = await t.app.inject({ method: 'POST', url: `/share/${token}/session`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pin }) });
    expect(opened.statusCode).toBe(200);
    expect(opened.json().view.hospital.name).toBe('Bệnh viện Đa khoa Tỉnh');
  });

  it('refuses a slip for a token that is not the link\'s', async () => {
    const { link } = await makeLink({ studyInstanceUid: A.study });
    const response = await t.app.inject({ method: 'POST', url: `/share/links/${link.id}/slip.pdf`, headers: { authorization: `Bearer ${staff}`, 'content-type': 'application/json' }, payload: JSON.stringify({ token: 'Q'.repeat(43) }) });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toBe('Body field "token": is not the token of this link');
  });
});

describe('safe to expose', () => {
  it('says nosniff and no-referrer on a frame, a search, an error and a static file', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const responses = [
      await t.app.inject({ url: `/dicomweb/studies/${A.study}/series/${A.series1}/instances/${A.sop11}/frames/1`, headers: withLink(token) }),
      await t.app.inject({ url: '/dicomweb/studies', headers: withLink(token) }),
      await t.app.inject({ url: `/dicomweb/studies/${B.study}`, headers: withLink(token) }),
      await t.app.inject({ url: '/no/such/route', headers: { authorization: `Bearer ${staff}` } }),
      await t.app.inject('/'),
      await t.app.inject('/healthz'),
    ];
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 404, 404, expect.any(Number), 200]);
    for (const response of responses) {
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['referrer-policy']).toBe('no-referrer');
    }
  });

  it('gives the viewer and the patient page a Content-Security-Policy, and the token URL no referrer', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    for (const url of ['/', `/s/${token}`, `/s/${'Z'.repeat(43)}`]) {
      const page = await t.app.inject(url);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      const csp = String(page.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
      expect(csp).not.toContain("'unsafe-inline' ;");
      expect(csp).toMatch(/script-src [^;]*$|script-src [^;]*;/);
      expect(csp.split(';').find((d) => d.trim().startsWith('script-src'))).not.toContain('unsafe-inline');
      expect(csp).toContain("img-src 'self' blob: data:");
      expect(csp).toContain(`connect-src 'self' ${new URL(issuer.issuer).origin}`);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(page.headers['referrer-policy']).toBe('no-referrer');
    }
    const tokenPage = await t.app.inject(`/s/${token}`);
    expect(tokenPage.headers['cache-control']).toBe('no-store');
    // JSON is not a page: no policy needed there.
    expect((await t.app.inject('/healthz')).headers['content-security-policy']).toBeUndefined();
  });

  it('keeps the token out of the request log', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    await t.app.inject(`/s/${token}`);
    await t.app.inject({ method: 'POST', url: `/share/${token}/session`, headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(t.logLines.join('\n')).not.toContain(token);
    expect(t.logLines.join('\n')).toContain('/s/{token}');
  });
});

describe('an embedded archive without sign-in', () => {
  it('still confines a link to its study: everyone else is anonymous on loopback, the link is not', async () => {
    const embedded = await buildTestApp();
    try {
      const study = newUid();
      const other = newUid();
      await embedded.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE() }, payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study }) }, { body: makeInstance({ studyInstanceUid: other }) }]) });
      const made = await embedded.app.inject({ method: 'POST', url: '/share/links', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ studyInstanceUid: study }) });
      expect(made.statusCode).toBe(201);
      const headers = withLink(made.json().token);
      const studies = (await embedded.app.inject({ url: '/dicomweb/studies', headers })).json() as Array<Record<string, { Value: string[] }>>;
      expect(studies.map((row) => row['0020000D']!.Value[0])).toEqual([study]);
      expect((await embedded.app.inject({ url: `/dicomweb/studies/${other}/metadata`, headers })).statusCode).toBe(404);
      expect((await embedded.app.inject({ url: '/admin/audit', headers })).statusCode).toBe(403);
      expect((await embedded.app.inject('/dicomweb/studies')).json()).toHaveLength(2);
    } finally {
      await embedded.close();
    }
  });
});
