/**
 * The audit trail over the whole app with sign-in on (a real issuer on loopback): every access to
 * patient data — search, retrieve, store, AI run, live session — is recorded exactly once with who,
 * what, outcome, time and client address; refused requests too; records cannot be changed through the
 * API or SQL; administrators read them (JSON, or DICOM audit XML) and no one else does.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { childrenNamed, descendantsNamed, parseXml } from '../test-support/audit-xml.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';
import { LiveClient } from '../../../scripts/live/live-client.js';
import type { AuditRecord } from './audit-record.js';

let issuer: TestIssuer;
let t: TestApp;
const study = newUid();
const series = newUid();
const sop = newUid();
const PATIENT_NAME = 'AUDITTRAIL^QUERIED';

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer));
  const stored = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: `Bearer ${await issuer.token({ sub: 'setup', roles: ['uploader'] })}` },
    payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 64, columns: 64, patientName: PATIENT_NAME }) }]),
  });
  expect(stored.statusCode).toBe(200);
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
});

const bearer = async (sub: string, roles: string[], extraClaims: Record<string, unknown> = {}) => ({ authorization: `Bearer ${await issuer.token({ sub, roles, extraClaims })}` });

/** Every record of one user, oldest first (each test uses its own user, so counts are exact). */
async function recordsOf(subject: string): Promise<AuditRecord[]> {
  await t.services.audit!.flush();
  return (await t.services.audit!.store.list({ subject, limit: 1000 })).reverse();
}

describe('the audit trail records each access to patient data once', () => {
  it('records a study search with the user, the query level and keys, the outcome and the client address', async () => {
    const response = await t.app.inject({
      url: `/dicomweb/studies?PatientName=${encodeURIComponent('AUDITTRAIL^QUER*')}&limit=5`,
      headers: await bearer('qido-user', ['reader'], { preferred_username: 'Dr Qido' }),
      remoteAddress: '10.20.30.40',
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toHaveLength(1);
    const records = await recordsOf('qido-user');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: 'query',
      outcome: 0,
      status: 200,
      who: { subject: 'qido-user', name: 'Dr Qido', kind: 'token', roles: ['reader'] },
      clientAddress: '10.20.30.40',
      interface: 'dicomweb',
      route: 'GET /dicomweb/studies',
      objects: [],
      query: { level: 'study', keys: { PatientName: 'AUDITTRAIL^QUER*', limit: '5' } },
    });
    expect(Math.abs(records[0]!.time - Date.now())).toBeLessThan(60_000);
    // The query names a patient: it is in the protected audit store, never in the application log.
    expect(t.logLines.join('')).not.toContain('AUDITTRAIL');
  });

  it('records a WADO-RS instance, frames and metadata retrieval each once, naming the instance', async () => {
    const headers = await bearer('wado-user', ['reader']);
    const base = `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
    const instance = await t.app.inject({ url: base, headers: { ...headers, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    const frames = await t.app.inject({ url: `${base}/frames/1`, headers: { ...headers, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    const metadata = await t.app.inject({ url: `${base}/metadata`, headers });
    expect([instance.statusCode, frames.statusCode, metadata.statusCode]).toEqual([200, 200, 200]);
    const records = await recordsOf('wado-user');
    expect(records.map((r) => [r.action, r.route, r.outcome])).toEqual([
      ['retrieve', 'GET /dicomweb/studies/:study/series/:series/instances/:instance', 0],
      ['retrieve', 'GET /dicomweb/studies/:study/series/:series/instances/:instance/frames/:frames', 0],
      ['retrieve', 'GET /dicomweb/studies/:study/series/:series/instances/:instance/metadata', 0],
    ]);
    for (const record of records) expect(record.objects).toEqual([{ study, series, instance: sop }]);
    expect(records[1]!.detail).toEqual({ frames: '1' });
    expect(records.every((r) => r.clientAddress === '127.0.0.1')).toBe(true);
  });

  it('records the first tile read of an instance at once and folds the reads that follow into a count', async () => {
    const headers = await bearer('panning-user', ['reader']);
    const base = `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
    const accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
    for (let i = 0; i < 20; i += 1) {
      expect((await t.app.inject({ url: `${base}/frames/1`, headers: { ...headers, accept } })).statusCode).toBe(200);
    }
    // A refused read is never folded: it is its own record.
    expect((await t.app.inject({ url: `${base}/frames/9`, headers: { ...headers, accept } })).statusCode).toBe(404);
    const records = await recordsOf('panning-user');
    expect(records.map((r) => [r.status, r.detail])).toEqual([
      [200, { frames: '1' }],
      [404, { frames: '9' }],
      [200, { repeats: 19, firstTime: records[0]!.time }],
    ]);
    expect(records[2]!.objects).toEqual([{ study, series, instance: sop }]);
    expect(records[2]!.time).toBeGreaterThanOrEqual(records[0]!.time);
  });

  it('records a STOW-RS of two instances once, naming both stored instances', async () => {
    const newStudy = newUid();
    const instances = [newUid(), newUid()];
    const stowSeries = newUid();
    const response = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      headers: { ...(await bearer('stow-user', ['uploader'])), 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody(instances.map((uid) => ({ body: makeInstance({ studyInstanceUid: newStudy, seriesInstanceUid: stowSeries, sopInstanceUid: uid }) }))),
    });
    expect(response.statusCode).toBe(200);
    const records = await recordsOf('stow-user');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'store', outcome: 0, status: 200, route: 'POST /dicomweb/studies', who: { subject: 'stow-user', kind: 'token' } });
    expect(records[0]!.objects).toEqual(
      instances.map((uid) => ({ study: newStudy, series: stowSeries, instance: uid, sopClass: '1.2.840.10008.5.1.4.1.1.7' })),
    );
    // Found by study through the admin API's filter too.
    expect((await t.services.audit!.store.list({ study: newStudy, limit: 10 })).map((r) => r.id)).toEqual([records[0]!.id]);
  });

  it('records an AI detection on a stored frame once, naming the frame analysed and the report stored', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: `/ai/studies/${study}/series/${series}/instances/${sop}/frames/1/detections?model=bright-spot`,
      headers: await bearer('ai-user-1', ['ai-user']),
    });
    expect(response.statusCode).toBe(201);
    const report = response.json().report;
    const records = await recordsOf('ai-user-1');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'ai-run', outcome: 0, status: 201, interface: 'ai', detail: { model: 'bright-spot', created: true, frames: '1' } });
    expect(records[0]!.objects).toEqual([
      { study, series, instance: sop },
      { study, series: report.seriesInstanceUid, instance: report.sopInstanceUid },
    ]);
  });

  it('records a refused request: 403 with the user its token names, 401 as unauthenticated, neither naming stored instances', async () => {
    const forbidden = await t.app.inject({
      method: 'POST',
      url: `/dicomweb/studies/${study}`,
      headers: { ...(await bearer('reader-trying-to-store', ['reader'], { name: 'Nosy Reader' })), 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study }) }]),
      remoteAddress: '192.0.2.9',
    });
    expect(forbidden.statusCode).toBe(403);
    const records = await recordsOf('reader-trying-to-store');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: 'store',
      outcome: 4,
      status: 403,
      who: { subject: 'reader-trying-to-store', name: 'Nosy Reader', kind: 'token', roles: ['reader'] },
      clientAddress: '192.0.2.9',
      route: 'POST /dicomweb/studies/:study',
      objects: [{ study }],
    });

    const before = (await recordsOf('unauthenticated')).length;
    const anonymous = await t.app.inject({ url: `/dicomweb/studies/${study}/metadata`, remoteAddress: '192.0.2.10' });
    expect(anonymous.statusCode).toBe(401);
    const unauthenticated = await recordsOf('unauthenticated');
    expect(unauthenticated).toHaveLength(before + 1);
    expect(unauthenticated.at(-1)).toMatchObject({ action: 'retrieve', outcome: 4, status: 401, who: { subject: 'unauthenticated', kind: 'unauthenticated' }, clientAddress: '192.0.2.10', objects: [{ study }] });
  });

  describe('over real connections: live endoscopy, abandoned downloads', () => {
    let url: string;
    beforeAll(async () => {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      url = `ws://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/live`;
    });

    it('records a session start and its end once each, and a refused WebSocket upgrade', async () => {
      const client = await LiveClient.connect(`${url}?access_token=${await issuer.token({ sub: 'endoscopist', roles: ['ai-user'] })}`);
      client.sendJson({ type: 'start', model: 'bright-spot', record: false, study: { studyInstanceUid: study } });
      await client.next((m) => m.type === 'started');
      client.sendJson({ type: 'stop' });
      await client.next((m) => m.type === 'stopped');
      client.ws.close();
      await new Promise((resolve) => client.ws.once('close', resolve));
      await new Promise((resolve) => setTimeout(resolve, 100)); // the server's close handler runs after ours

      const records = await recordsOf('endoscopist');
      expect(records.map((r) => [r.action, r.outcome, r.status])).toEqual([
        ['live-session-start', 0, 101],
        ['live-session-end', 0, 200],
      ]);
      expect(records[0]).toMatchObject({ interface: 'live', route: 'GET /live', clientAddress: '127.0.0.1', objects: [{ study }], detail: { model: 'bright-spot', record: false } });
      expect(records[1]).toMatchObject({ objects: [{ study }], detail: { reason: 'stopped', model: 'bright-spot', frames: 0 } });

      const refused = await new Promise<number>(async (resolve) => {
        const { default: WebSocket } = await import('ws');
        const socket = new WebSocket(`${url}?access_token=${await issuer.token({ sub: 'reader-at-live', roles: ['reader'] })}`);
        socket.once('unexpected-response', (request, response) => {
          request.destroy();
          resolve(response.statusCode ?? 0);
        });
        socket.once('error', () => resolve(0));
      });
      expect(refused).toBe(403);
      const refusals = await recordsOf('reader-at-live');
      expect(refusals.map((r) => [r.action, r.outcome, r.status])).toEqual([['live-session-start', 4, 403]]);
      // The token in the URL never reaches the audit record.
      expect(JSON.stringify(refusals)).not.toContain('access_token');
    });

    it('records a retrieval the client abandoned halfway once, as a serious failure', async () => {
      const big = { study: newUid(), series: newUid(), sop: newUid() };
      const stored = await t.app.inject({
        method: 'POST',
        url: '/dicomweb/studies',
        headers: { ...(await bearer('setup', ['uploader'])), 'content-type': STOW_CONTENT_TYPE() },
        payload: multipartBody([{ body: makeInstance({ studyInstanceUid: big.study, seriesInstanceUid: big.series, sopInstanceUid: big.sop, rows: 4096, columns: 4096 }) }]),
      });
      expect(stored.statusCode).toBe(200);
      const base = url.replace('ws://', 'http://').replace('/live', '');
      const token = await issuer.token({ sub: 'impatient-user', roles: ['reader'] });
      const { default: http } = await import('node:http');
      const firstBytes = await new Promise<number>((resolve, reject) => {
        const request = http.get(`${base}/dicomweb/studies/${big.study}/series/${big.series}/instances/${big.sop}`, { headers: { authorization: `Bearer ${token}`, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } }, (response) => {
          response.once('data', (chunk: Buffer) => {
            request.destroy(); // the user scrolled on: the download is abandoned
            resolve(chunk.length);
          });
        });
        request.on('error', () => undefined);
        setTimeout(() => reject(new Error('no response')), 30_000).unref();
      });
      expect(firstBytes).toBeGreaterThan(0);
      let records: AuditRecord[] = [];
      for (let i = 0; i < 100 && records.length === 0; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        records = await recordsOf('impatient-user');
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      records = await recordsOf('impatient-user');
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ action: 'retrieve', outcome: 8, status: 200, objects: [{ study: big.study, series: big.series, instance: big.sop }], detail: { incomplete: true } });
    });
  });
});

describe('audit records cannot be changed', () => {
  it('has no route to change or remove a record: PUT, PATCH and DELETE answer 404 and the records stay as they were', async () => {
    const admin = await bearer('auditor-immutable', ['admin']);
    await t.app.inject({ url: '/dicomweb/studies', headers: admin });
    const [record] = await recordsOf('auditor-immutable');
    const before = await t.services.audit!.store.list({ limit: 1000 });
    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      for (const url of [`/admin/audit/${record!.id}`, '/admin/audit']) {
        const response = await t.app.inject({ method, url, headers: { ...admin, 'content-type': 'application/json' }, payload: JSON.stringify({ outcome: 0, who: { subject: 'nobody' } }) });
        expect([404, 405], `${method} ${url}`).toContain(response.statusCode);
      }
    }
    const after = await t.services.audit!.store.list({ limit: 1000 });
    expect(after.filter((r) => before.some((b) => b.id === r.id))).toEqual(before);
    expect(await t.services.audit!.store.get(record!.id!)).toEqual(record);
  });
});

describe("the administrators' audit API", () => {
  it('lists records newest first, filtered by user, action, study and time, page by page', async () => {
    const reader = await bearer('filter-user', ['reader']);
    const t0 = Date.now();
    await t.app.inject({ url: '/dicomweb/studies', headers: reader });
    await t.app.inject({ url: `/dicomweb/studies/${study}/metadata`, headers: reader });
    await t.app.inject({ url: `/dicomweb/studies/${study}/series/${series}/instances/${sop}/metadata`, headers: reader });
    const admin = await bearer('auditor', ['admin']);
    const get = async (query: string) => {
      const response = await t.app.inject({ url: `/admin/audit?${query}`, headers: admin });
      expect(response.statusCode, response.body).toBe(200);
      return response.json() as { records: Array<Record<string, any>>; next: string | null };
    };

    const byUser = await get('user=filter-user');
    expect(byUser.records.map((r) => r.action)).toEqual(['retrieve', 'retrieve', 'query']);
    expect(byUser.records[0]).toMatchObject({ who: { subject: 'filter-user' }, atna: { eventId: { code: '110104', codeSystemName: 'DCM', meaning: 'DICOM Instances Transferred' }, eventActionCode: 'R' } });
    expect(Date.parse(byUser.records[0]!.time)).toBeGreaterThanOrEqual(t0);
    expect(byUser.next).toBeNull();

    expect((await get('user=filter-user&action=query')).records.map((r) => r.route)).toEqual(['GET /dicomweb/studies']);
    expect((await get(`user=filter-user&study=${study}`)).records).toHaveLength(2);
    expect((await get(`user=filter-user&from=${new Date(t0 - 1000).toISOString()}&to=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`)).records).toHaveLength(3);
    expect((await get(`user=filter-user&to=${t0 - 60_000}`)).records).toHaveLength(0);

    const page1 = await get('user=filter-user&limit=2');
    expect(page1.records).toHaveLength(2);
    expect(page1.next).toMatch(/^\/admin\/audit\?.*before=\d+/);
    const page2 = (await t.app.inject({ url: page1.next!, headers: admin })).json();
    expect([...page1.records, ...page2.records].map((r: any) => r.id)).toEqual(byUser.records.map((r) => r.id));

    // Reading the trail is itself in the trail (ATNA "Audit Log Used").
    const own = await recordsOf('auditor');
    expect(own.length).toBeGreaterThanOrEqual(7);
    expect(own.every((r) => r.action === 'audit-read' && r.interface === 'admin')).toBe(true);

    expect((await t.app.inject({ url: '/admin/audit?action=destroy', headers: admin })).statusCode).toBe(400);
    expect((await t.app.inject({ url: '/admin/audit?limit=0', headers: admin })).statusCode).toBe(400);
  });

  it('serves one record as JSON, or as a DICOM audit message (PS3.15 A.5.1) with the ATNA codes when XML is asked for', async () => {
    await t.app.inject({
      method: 'POST',
      url: `/dicomweb/studies/${study}`,
      headers: { ...(await bearer('xml-user', ['uploader'], { preferred_username: 'Uploader <&> One' })), 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series }) }]),
      remoteAddress: '10.9.8.7',
    });
    const [record] = await recordsOf('xml-user');
    const admin = await bearer('auditor-xml', ['admin']);
    const json = await t.app.inject({ url: `/admin/audit/${record!.id}`, headers: admin });
    expect(json.json()).toMatchObject({ id: record!.id, action: 'store', who: { subject: 'xml-user' } });

    const xml = await t.app.inject({ url: `/admin/audit/${record!.id}`, headers: { ...admin, accept: 'application/xml' } });
    expect(xml.statusCode).toBe(200);
    expect(xml.headers['content-type']).toMatch(/^application\/xml/);
    const message = parseXml(xml.body);
    expect(message.name).toBe('AuditMessage');
    const [event] = childrenNamed(message, 'EventIdentification');
    expect(event!.attributes).toMatchObject({ EventActionCode: 'C', EventOutcomeIndicator: '0', EventDateTime: new Date(record!.time).toISOString() });
    expect(childrenNamed(event!, 'EventID')[0]!.attributes).toEqual({ 'csd-code': '110104', codeSystemName: 'DCM', originalText: 'DICOM Instances Transferred' });
    const participants = childrenNamed(message, 'ActiveParticipant');
    expect(participants[0]!.attributes).toMatchObject({ UserID: 'xml-user', UserName: 'Uploader <&> One', UserIsRequestor: 'true', NetworkAccessPointID: '10.9.8.7', NetworkAccessPointTypeCode: '2' });
    expect(childrenNamed(participants[0]!, 'RoleIDCode')[0]!.attributes['csd-code']).toBe('110153'); // the uploader is the source
    expect(participants[1]!.attributes).toMatchObject({ UserID: 'filmless-pacs', UserIsRequestor: 'false' });
    expect(childrenNamed(participants[1]!, 'RoleIDCode')[0]!.attributes['csd-code']).toBe('110152');
    expect(childrenNamed(childrenNamed(message, 'AuditSourceIdentification')[0]!, 'AuditSourceTypeCode')[0]!.attributes['csd-code']).toBe('4');
    const [object] = childrenNamed(message, 'ParticipantObjectIdentification');
    expect(object!.attributes).toEqual({ ParticipantObjectID: study, ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '3' });
    expect(childrenNamed(object!, 'ParticipantObjectIDTypeCode')[0]!.attributes).toMatchObject({ 'csd-code': '110180', codeSystemName: 'DCM' });
    expect(descendantsNamed(object!, 'Instance').map((i) => i.attributes['UID'])).toEqual([record!.objects[0]!.instance]);

    expect((await t.app.inject({ url: '/admin/audit/999999999', headers: admin })).statusCode).toBe(404);
  });

  it('refuses anyone who is not an administrator (403), and records that refusal', async () => {
    for (const roles of [['reader'], ['uploader'], ['ai-user']]) {
      const response = await t.app.inject({ url: '/admin/audit', headers: await bearer('curious-user', roles) });
      expect(response.statusCode).toBe(403);
    }
    expect((await t.app.inject({ url: '/admin/audit' })).statusCode).toBe(401);
    const records = await recordsOf('curious-user');
    expect(records.map((r) => [r.action, r.outcome, r.status])).toEqual([
      ['audit-read', 4, 403],
      ['audit-read', 4, 403],
      ['audit-read', 4, 403],
    ]);
  });
});
