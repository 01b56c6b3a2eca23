/**
 * IHE IOCM rejection as a user sees it: for every rejection title of CID 7011, a rejection note sent by
 * STOW-RS (a Key Object Selection Document naming the instances) or made by the REST call the viewer
 * uses hides the instances it names from QIDO-RS (with the study's counts and ModalitiesInStudy right at
 * once), WADO-RS (instances, metadata, frames, rendered, thumbnails, bulk data), DIMSE C-FIND and C-GET
 * (dcmtk findscu, getscu) and FHIR ImagingStudy, while the note itself stays; administrators list and
 * restore them (everything comes back, the note is voided or reissued for what it still rejects); the
 * note the server writes is dciodvfy-clean; a note sent by C-STORE works the same; rejected instances
 * are purged for good after the delay (113039 at the next sweep), and fsck is clean afterwards.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REJECTION_CODES, writeRejectionNote, type RejectionCode } from '../dicom/rejection-note.js';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { buildTestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { splitMultipart } from '../test-support/split-multipart.js';

requireDcmtk();
requireDciodvfy();

const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const RAW_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
type Json = Record<string, { Value?: unknown[] }>;

/** A study of three instances: series A (OT, two instances) and series B (MR, one). */
interface TestStudy {
  study: string;
  seriesA: string;
  seriesB: string;
  a1: string;
  a2: string;
  b1: string;
}

function newStudy(): TestStudy {
  return { study: newUid(), seriesA: newUid(), seriesB: newUid(), a1: newUid(), a2: newUid(), b1: newUid() };
}

describe('rejected instances (IHE IOCM)', () => {
  let dimse: TestDimse;
  let work: string;
  const app = () => dimse.testApp.app;
  const peer = () => ['-aet', 'TESTSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)];

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-iocm-'));
    // No purge timer here: purges are asked for (POST /curation/purge), so a restore is never raced.
    dimse = await startTestDimse({}, await buildTestApp({ PACS_REJECTION_PURGE_INTERVAL_SECONDS: '0' }));
  }, 60_000);

  afterAll(async () => {
    await dimse?.close();
    await dimse?.testApp.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const get = async (url: string, accept?: string) => app().inject({ method: 'GET', url, ...(accept === undefined ? {} : { headers: { accept } }) });
  const json = async (url: string): Promise<Json[]> => {
    const response = await get(url);
    expect(response.statusCode, `${url}: ${response.body.slice(0, 200)}`).toBeLessThan(300);
    return response.statusCode === 204 || response.body === '' ? [] : (response.json() as Json[]);
  };
  const uids = (list: Json[], tag: string) => list.map((d) => d[tag]?.Value?.[0]);

  async function store(t: TestStudy): Promise<void> {
    const instance = (series: string, sop: string, modality: string) =>
      makeInstance({ studyInstanceUid: t.study, seriesInstanceUid: series, sopInstanceUid: sop, modality, rows: 8, columns: 8 });
    const response = await app().inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: instance(t.seriesA, t.a1, 'OT') }, { body: instance(t.seriesA, t.a2, 'OT') }, { body: instance(t.seriesB, t.b1, 'MR') }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(response.statusCode, response.body).toBe(200);
  }

  /** A rejection note as another system (a modality, another archive) would send it: a KOS naming a1 and b1. */
  function receivedNote(t: TestStudy, code: RejectionCode, sopInstanceUid: string): Buffer {
    const sc = '1.2.840.10008.5.1.4.1.1.7';
    return writeRejectionNote({
      code,
      references: [
        { studyInstanceUid: t.study, seriesInstanceUid: t.seriesA, sopInstanceUid: t.a1, sopClassUid: sc, image: true },
        { studyInstanceUid: t.study, seriesInstanceUid: t.seriesB, sopInstanceUid: t.b1, sopClassUid: sc, image: true },
      ],
      patient: { patientId: 'TEST-ID', issuer: '', name: 'TEST^PATIENT', birthDate: null, sex: null, otherIds: [] },
      study: { studyInstanceUid: t.study, studyDate: '20240102', studyTime: '101500', accessionNumber: 'ACC1', studyId: null, studyDescription: null, referringPhysicianName: null },
      seriesInstanceUid: newUid(),
      sopInstanceUid,
      instanceNumber: 1,
      createdAt: new Date(),
    });
  }

  async function rejectByStow(t: TestStudy, code: RejectionCode): Promise<string> {
    const note = newUid();
    const response = await app().inject({ method: 'POST', url: `/dicomweb/studies/${t.study}`, payload: multipartBody([{ body: receivedNote(t, code, note) }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
    expect(response.statusCode, response.body).toBe(200);
    return note;
  }

  async function rejectByRest(t: TestStudy, code: RejectionCode): Promise<string> {
    const response = await app().inject({
      method: 'POST',
      url: '/curation/rejections',
      payload: { studyInstanceUid: t.study, sopInstanceUids: [t.a1, t.b1], reason: code, description: 'Motion blur; wrong series' },
    });
    expect(response.statusCode, response.body).toBe(201);
    const body = response.json() as { note: { sopInstanceUid: string; studyInstanceUid: string }; reason: { code: string }; rejected: number };
    expect(body).toMatchObject({ reason: { code, scheme: 'DCM' }, rejected: 2, note: { studyInstanceUid: t.study } });
    return body.note.sopInstanceUid;
  }

  async function findImages(t: TestStudy): Promise<string[]> {
    const result = await runTool('findscu', ['-S', '-v', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${t.study}`, '-k', 'SOPInstanceUID', ...peer()]);
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(0);
    // An odd-length UID may be shown with its padding.
    return [...output.matchAll(/\(0008,0018\) UI \[([0-9.]+)[^\]]*\]/g)].map((m) => m[1]!).sort();
  }

  async function getStudy(t: TestStudy): Promise<number> {
    const out = await mkdtemp(path.join(work, 'get-'));
    const result = await runTool('getscu', ['-S', '--output-directory', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${t.study}`, ...peer()], 60_000);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    return (await readdir(out)).length;
  }

  /** a1 and all of series B are rejected: every interface shows a2 and the note only. */
  async function expectHidden(t: TestStudy, note: string): Promise<void> {
    const base = `/dicomweb/studies/${t.study}`;
    const [study] = await json(`/dicomweb/studies?StudyInstanceUID=${t.study}`);
    expect(study?.['00201208']?.Value).toEqual([2]); // NumberOfStudyRelatedInstances: a2 + the note
    expect(study?.['00201206']?.Value).toEqual([2]); // NumberOfStudyRelatedSeries: A + the note's
    expect(study?.['00080061']?.Value).toEqual(['KO', 'OT']); // MR's only series is rejected
    expect(await json(`/dicomweb/studies?StudyInstanceUID=${t.study}&ModalitiesInStudy=MR`)).toEqual([]);
    const series = await json(`${base}/series`);
    expect(series.map((s) => s['0020000E']?.Value?.[0])).not.toContain(t.seriesB);
    expect(series.find((s) => s['0020000E']?.Value?.[0] === t.seriesA)?.['00201209']?.Value).toEqual([1]);
    expect(uids(await json(`${base}/instances`), '00080018').sort()).toEqual([t.a2, note].sort());
    expect(await json(`/dicomweb/instances?SOPInstanceUID=${t.a1}`)).toEqual([]);
    // WADO-RS: the rejected instance and series are not found by any resource.
    const a1 = `${base}/series/${t.seriesA}/instances/${t.a1}`;
    for (const [url, accept] of [
      [a1, ANY_TS],
      [`${a1}/metadata`, undefined],
      [`${a1}/frames/1`, RAW_FRAMES],
      [`${a1}/rendered`, undefined],
      [`${a1}/frames/1/rendered`, undefined],
      [`${a1}/thumbnail`, undefined],
      [`${a1}/bulkdata/7FE00010`, undefined],
      [`${base}/series/${t.seriesB}`, ANY_TS],
      [`${base}/series/${t.seriesB}/metadata`, undefined],
      [`${base}/series/${t.seriesB}/thumbnail`, undefined],
    ] as Array<[string, string | undefined]>) {
      expect((await get(url, accept)).statusCode, url).toBe(404);
    }
    const studyRetrieve = await get(base, ANY_TS);
    expect(splitMultipart(studyRetrieve.rawPayload, studyRetrieve.headers['content-type'])).toHaveLength(2);
    expect(uids(await json(`${base}/metadata`), '00080018').sort()).toEqual([t.a2, note].sort());
    expect((await get(`${base}/thumbnail`)).statusCode).toBe(200);
    // DIMSE.
    expect(await findImages(t)).toEqual([t.a2, note].sort());
    expect(await getStudy(t)).toBe(2);
    // FHIR ImagingStudy.
    const fhir = (await get(`/fhir/ImagingStudy/${t.study}`)).json() as { numberOfInstances: number; numberOfSeries: number; series: Array<{ uid: string; instance: Array<{ uid: string }> }> };
    expect([fhir.numberOfInstances, fhir.numberOfSeries]).toEqual([2, 2]);
    expect(fhir.series.flatMap((s) => s.instance.map((i) => i.uid)).sort()).toEqual([t.a2, note].sort());
  }

  /** Everything visible again (the note voided, hidden itself). */
  async function expectRestored(t: TestStudy): Promise<void> {
    const base = `/dicomweb/studies/${t.study}`;
    const [study] = await json(`/dicomweb/studies?StudyInstanceUID=${t.study}`);
    expect(study?.['00201208']?.Value).toEqual([3]);
    expect(study?.['00201206']?.Value).toEqual([2]);
    expect(study?.['00080061']?.Value).toEqual(['MR', 'OT']);
    expect(uids(await json(`${base}/instances`), '00080018').sort()).toEqual([t.a1, t.a2, t.b1].sort());
    const a1 = `${base}/series/${t.seriesA}/instances/${t.a1}`;
    expect((await get(a1, ANY_TS)).statusCode).toBe(200);
    expect((await get(`${a1}/frames/1`, RAW_FRAMES)).statusCode).toBe(200);
    expect((await get(`${a1}/rendered`)).statusCode).toBe(200);
    expect((await get(`${base}/series/${t.seriesB}/metadata`)).statusCode).toBe(200);
    expect(await findImages(t)).toEqual([t.a1, t.a2, t.b1].sort());
    expect(await getStudy(t)).toBe(3);
    expect(((await get(`/fhir/ImagingStudy/${t.study}`)).json() as { numberOfInstances: number }).numberOfInstances).toBe(3);
  }

  const rejectedOf = async (t: TestStudy, state = 'active') =>
    ((await get(`/curation/rejected?study=${t.study}&state=${state}`)).json() as { rejected: Array<{ sopInstanceUid: string; kind: string; reason: { code: string }; noteUid: string; stored: boolean }> }).rejected;

  for (const code of REJECTION_CODES) {
    it(`${code}: a note sent by STOW-RS hides what it names everywhere; restored one by one, the note is reissued then voided`, async () => {
      const t = newStudy();
      await store(t);
      // Warm the caches the rejection must not be hidden by: instance lookups, series metadata.
      expect((await get(`/dicomweb/studies/${t.study}/series/${t.seriesA}/instances/${t.a1}/frames/1`, RAW_FRAMES)).statusCode).toBe(200);
      expect((await get(`/dicomweb/studies/${t.study}/series/${t.seriesB}/metadata`)).statusCode).toBe(200);
      const note = await rejectByStow(t, code);
      await expectHidden(t, note);
      const listed = await rejectedOf(t);
      expect(listed.map((e) => [e.sopInstanceUid, e.kind, e.reason.code, e.noteUid, e.stored]).sort()).toEqual(
        [
          [t.a1, 'rejected', code, note, true],
          [t.b1, 'rejected', code, note, true],
        ].sort(),
      );
      // Restore a1 alone: the note still rejects b1, so a new note naming only b1 replaces it.
      const first = await app().inject({ method: 'POST', url: `/curation/rejected/${t.a1}/restore` });
      expect(first.statusCode, first.body).toBe(200);
      const restored = first.json() as { restored: string[]; voidedNotes: string[]; reissuedNotes: Array<{ sopInstanceUid: string; seriesInstanceUid: string }> };
      expect(restored.restored).toEqual([t.a1]);
      expect(restored.voidedNotes).toEqual([note]);
      expect(restored.reissuedNotes).toHaveLength(1);
      const reissued = restored.reissuedNotes[0]!;
      const instances = uids(await json(`/dicomweb/studies/${t.study}/instances`), '00080018');
      expect(instances.sort()).toEqual([t.a1, t.a2, reissued.sopInstanceUid].sort());
      const [reissuedMetadata] = await json(`/dicomweb/studies/${t.study}/series/${reissued.seriesInstanceUid}/instances/${reissued.sopInstanceUid}/metadata`);
      const evidence = JSON.stringify(reissuedMetadata?.['0040A375']);
      expect(evidence).toContain(t.b1);
      expect(evidence).not.toContain(t.a1);
      expect((await rejectedOf(t)).map((e) => [e.sopInstanceUid, e.noteUid]).filter(([sop]) => sop === t.b1)).toEqual([[t.b1, reissued.sopInstanceUid]]);
      const second = await app().inject({ method: 'POST', url: `/curation/rejected/${t.b1}/restore` });
      expect(second.statusCode, second.body).toBe(200);
      expect(second.json()).toMatchObject({ restored: [t.b1], voidedNotes: [reissued.sopInstanceUid], reissuedNotes: [] });
      await expectRestored(t);
      expect((await rejectedOf(t)).map((e) => e.kind).sort()).toEqual(['voided-note', 'voided-note']);
      // Not rejected any more: nothing to restore.
      expect((await app().inject({ method: 'POST', url: `/curation/rejected/${t.a1}/restore` })).statusCode).toBe(404);
    }, 120_000);

    it(`${code}: the REST call writes a dciodvfy-clean rejection note that hides what it names everywhere; restoring the note brings all back`, async () => {
      const t = newStudy();
      await store(t);
      expect((await get(`/dicomweb/studies/${t.study}/series/${t.seriesA}/instances/${t.a1}/metadata`)).statusCode).toBe(200);
      const note = await rejectByRest(t, code);
      await expectHidden(t, note);
      // The note is a real KOS: title, evidence, content; dciodvfy (dicom3tools) finds no error.
      const [noteMetadata] = await json(`/dicomweb/studies/${t.study}/instances?SOPInstanceUID=${note}&includefield=0040A043`);
      const noteSeries = String(noteMetadata?.['0020000E']?.Value?.[0]);
      const retrieved = await get(`/dicomweb/studies/${t.study}/series/${noteSeries}/instances/${note}`, ANY_TS);
      const [part] = splitMultipart(retrieved.rawPayload, retrieved.headers['content-type']);
      expect(await dciodvfyErrors(part!.body, `note-${code}.dcm`, { withoutValues: true })).toEqual([]);
      const [metadata] = await json(`/dicomweb/studies/${t.study}/series/${noteSeries}/instances/${note}/metadata`);
      expect(JSON.stringify(metadata?.['0040A043'])).toContain(code);
      expect(metadata?.['00080060']?.Value).toEqual(['KO']);
      const restore = await app().inject({ method: 'POST', url: `/curation/notes/${note}/restore` });
      expect(restore.statusCode, restore.body).toBe(200);
      expect(restore.json()).toMatchObject({ voidedNotes: [note], reissuedNotes: [] });
      expect((restore.json() as { restored: string[] }).restored.sort()).toEqual([t.a1, t.b1].sort());
      await expectRestored(t);
    }, 120_000);
  }

  it('a rejection note sent by C-STORE (dcmtk storescu) hides what it names too', async () => {
    const t = newStudy();
    await store(t);
    const note = newUid();
    const file = path.join(work, 'note-cstore.dcm');
    await writeFile(file, receivedNote(t, '113037', note));
    const result = await runTool('storescu', ['-aet', 'MODALITY', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port), file]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    await expectHidden(t, note);
    // Audited: the C-STORE as a store, the rejection it applied as a reject by the archive.
    await dimse.testApp.services.audit!.flush();
    const records = (await get(`/admin/audit?action=reject&study=${t.study}`)).json() as { records: Array<{ who: { subject: string }; objects: Array<{ instance?: string }>; detail: Record<string, unknown> }> };
    expect(records.records[0]).toMatchObject({ who: { subject: 'filmless-pacs' }, detail: { reason: '113037', noteUid: note, named: 2, hidden: 2 } });
  }, 60_000);

  it('a rejection is audited with what it rejected; so is a restore', async () => {
    const t = newStudy();
    await store(t);
    const note = await rejectByRest(t, '113001');
    await app().inject({ method: 'POST', url: `/curation/notes/${note}/restore` });
    await dimse.testApp.services.audit!.flush();
    type Record = { action: string; interface: string; objects: Array<{ instance?: string }>; detail: { [key: string]: unknown }; atna: { eventId: { code: string } } };
    const rejected = ((await get(`/admin/audit?action=reject&study=${t.study}`)).json() as { records: Record[] }).records;
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ interface: 'curation', detail: { reason: '113001', noteUid: note, rejected: 2 }, atna: { eventId: { code: '110103' } } });
    expect(rejected[0]!.objects.map((o) => o.instance)).toEqual(expect.arrayContaining([t.a1, t.b1, note]));
    const restoredRecords = ((await get(`/admin/audit?action=restore&study=${t.study}`)).json() as { records: Record[] }).records;
    expect(restoredRecords[0]!.objects.map((o) => o.instance)).toEqual(expect.arrayContaining([t.a1, t.b1]));
  });

  it('113039 Data Retention Policy Expired is purged at the next sweep; the others wait for their delay', async () => {
    const expired = newStudy();
    const quality = newStudy();
    await store(expired);
    await store(quality);
    await rejectByRest(expired, '113039');
    await rejectByRest(quality, '113001');
    const purge = await app().inject({ method: 'POST', url: '/curation/purge' });
    expect(purge.statusCode, purge.body).toBe(200);
    expect(purge.json()).toEqual({ purged: 2, instancesRemoved: 2 });
    expect((await rejectedOf(expired, 'purged')).map((e) => e.sopInstanceUid).sort()).toEqual([expired.a1, expired.b1].sort());
    expect(await rejectedOf(quality)).toHaveLength(2);
    // Gone for good: not even a restore brings them back.
    const restore = await app().inject({ method: 'POST', url: `/curation/rejected/${expired.a1}/restore` });
    expect(restore.statusCode).toBe(409);
    await dimse.testApp.services.audit!.flush();
    const deleted = ((await get(`/admin/audit?action=delete&study=${expired.study}`)).json() as { records: Array<{ who: { subject: string }; atna: { eventId: { code: string } } }> }).records;
    expect(deleted.find((r) => r.who.subject === 'filmless-pacs')).toMatchObject({ atna: { eventId: { code: '110105' } } });
  });

  it('leaves the index and the blob store in agreement: fsck counts the rejected instances, finds nothing wrong', async () => {
    const t = newStudy();
    await store(t);
    await rejectByRest(t, '113038');
    const fsck = await runFsckScript({ PACS_DATA_DIR: dimse.testApp.dataDir });
    expect(fsck.code, fsck.output).toBe(0);
    expect(reportedCount(fsck.output, 'rejected instances')).toBeGreaterThanOrEqual(2);
    expect(fsck.output).toContain('index and blob store agree');
  }, 60_000);

  it('refuses a rejection of nothing, of an unknown study, with an unknown reason', async () => {
    const t = newStudy();
    await store(t);
    const post = (payload: unknown) => app().inject({ method: 'POST', url: '/curation/rejections', payload: payload as object });
    expect((await post({ studyInstanceUid: '1.2.3.404', reason: '113001' })).statusCode).toBe(404);
    expect((await post({ studyInstanceUid: t.study, sopInstanceUids: ['1.2.3.404'], reason: '113001' })).statusCode).toBe(404);
    const bad = await post({ studyInstanceUid: t.study, reason: '999999' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/reason/);
  });
});

describe('rejected instances are removed for good after the delay', () => {
  it('purges them on the timer: rows, blobs, counts; fsck finds nothing wrong', async () => {
    // 0.00003 days = 2.6 s; the sweep runs every second.
    const testApp = await buildTestApp({ PACS_REJECTION_PURGE_DAYS: '0.00003', PACS_REJECTION_PURGE_INTERVAL_SECONDS: '1' });
    try {
      const { app } = testApp;
      const t = newStudy();
      const instance = (series: string, sop: string) => makeInstance({ studyInstanceUid: t.study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 8, columns: 8 });
      const stow = await app.inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: instance(t.seriesA, t.a1) }, { body: instance(t.seriesA, t.a2) }, { body: instance(t.seriesB, t.b1) }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
      expect(stow.statusCode).toBe(200);
      const root = (testApp.config.blobStore as { root: string }).root;
      const blobOf = async (sop: string) => (await testApp.services.archive.listInstances({ studyInstanceUid: t.study }, { includeRejected: true })).find((i) => i.sopInstanceUid === sop)!.blobKey;
      const rejectedBlobs = [await blobOf(t.a1), await blobOf(t.b1)];
      const reject = await app.inject({ method: 'POST', url: '/curation/rejections', payload: { studyInstanceUid: t.study, sopInstanceUids: [t.a1, t.b1], reason: '113001' } });
      expect(reject.statusCode, reject.body).toBe(201);
      const { purgeAfter } = reject.json() as { purgeAfter: string };
      expect(Date.parse(purgeAfter) - Date.now()).toBeLessThan(3000);
      // Still restorable until then: the files are there.
      for (const key of rejectedBlobs) expect(existsSync(path.join(root, key))).toBe(true);
      const deadline = Date.now() + 20_000;
      let purged: Array<{ sopInstanceUid: string; purgedAt: string | null; stored: boolean }> = [];
      while (Date.now() < deadline) {
        purged = ((await app.inject(`/curation/rejected?study=${t.study}&state=purged`)).json() as { rejected: typeof purged }).rejected;
        // Row first, blob after (crash-safe order): the sweep is done when both are gone.
        if (purged.length === 2 && rejectedBlobs.every((key) => !existsSync(path.join(root, key)))) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(purged.map((e) => e.sopInstanceUid).sort()).toEqual([t.a1, t.b1].sort());
      expect(purged.every((e) => e.purgedAt !== null && !e.stored)).toBe(true);
      for (const key of rejectedBlobs) expect(existsSync(path.join(root, key))).toBe(false);
      expect((await testApp.services.archive.listInstances({ studyInstanceUid: t.study }, { includeRejected: true })).map((i) => i.sopInstanceUid)).not.toContain(t.a1);
      const [study] = (await app.inject(`/dicomweb/studies?StudyInstanceUID=${t.study}`)).json() as Json[];
      expect(study?.['00201208']?.Value).toEqual([2]);
      // Sent again, a purged instance is hidden (and purged again), not shown.
      const again = await app.inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: instance(t.seriesA, t.a1) }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
      expect(again.statusCode).toBe(200);
      expect((await app.inject(`/dicomweb/instances?SOPInstanceUID=${t.a1}`)).body).toBe('[]');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const fsck = await runFsckScript({ PACS_DATA_DIR: testApp.dataDir });
      expect(fsck.code, fsck.output).toBe(0);
      expect(fsck.output).toContain('index and blob store agree');
    } finally {
      await testApp.close();
    }
  }, 60_000);
});
