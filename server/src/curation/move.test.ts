/**
 * Moving, splitting and merging as a user sees it (the wrong-patient case): a series stored under the
 * wrong patient's study is moved to the right one; one instance is moved out of its series; a study is
 * split; what is left is merged; a study goes to a patient new to the archive. After each step QIDO-RS
 * counts and the metadata are right at once, WADO-RS retrieve and DIMSE C-FIND answer the new study and
 * patient (the stored file stays byte for byte the one received, its pixel data sent unchanged, and
 * dciodvfy finds no new error in the copy), Orthanc pulling the corrected study by C-MOVE sees the new
 * identity, each step is audited with before and after (no patient names), and fsck agrees.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { movedSeriesUid } from '../catalog/curation-rows.js';
import { writePart10 } from '../dicom/write-part10.js';
import { buildTestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { runFsckScript } from '../test-support/fsck-script.js';
import { multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { startOrthancPeer, type OrthancPeer } from '../test-support/orthanc-peer.js';
import { freePort } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';

requireDcmtk();
requireDciodvfy();

const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
type Json = Record<string, { Value?: unknown[] }>;

interface Patient {
  id: string;
  name: string;
  birthDate: string;
  sex: string;
}
interface StudyAttrs {
  uid: string;
  date: string;
  time: string;
  accession: string;
  studyId: string;
  description: string;
  referring: string;
}

const WRONG: Patient = { id: 'PA-1001', name: 'PHAM^THI WRONG', birthDate: '19700101', sex: 'F' };
const RIGHT: Patient = { id: 'PB-2002', name: 'TRAN^VAN RIGHT', birthDate: '19850505', sex: 'M' };

function instance(patient: Patient, study: StudyAttrs, series: string, sop: string, modality: string, seriesNumber: number, number: number): Buffer {
  const pixels = new Uint8Array(8 * 8);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = (i * 13 + number) % 251;
  return writePart10({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
    SOPInstanceUID: sop,
    StudyInstanceUID: study.uid,
    SeriesInstanceUID: series,
    PatientName: patient.name,
    PatientID: patient.id,
    PatientBirthDate: patient.birthDate,
    PatientSex: patient.sex,
    StudyDate: study.date,
    StudyTime: study.time,
    AccessionNumber: study.accession,
    StudyID: study.studyId,
    StudyDescription: study.description,
    ReferringPhysicianName: study.referring,
    Modality: modality,
    ConversionType: 'WSD',
    SeriesNumber: String(seriesNumber),
    InstanceNumber: String(number),
    PatientOrientation: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: 8,
    Columns: 8,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OB' },
  });
}

/** The patient and study elements of a Part-10 file, read by dcmjs. */
function headerOf(file: Buffer): Record<string, unknown> {
  const parsed = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer, { ignoreErrors: true });
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(parsed.dict) as Record<string, unknown>;
  const pn = (value: unknown) => (Array.isArray(value) ? (value[0] as { Alphabetic?: string })?.Alphabetic : value);
  return {
    patientId: ds['PatientID'],
    patientName: pn(ds['PatientName']),
    study: ds['StudyInstanceUID'],
    series: ds['SeriesInstanceUID'],
    accession: ds['AccessionNumber'],
    studyDate: ds['StudyDate'],
    studyId: ds['StudyID'],
    description: ds['StudyDescription'],
    referring: pn(ds['ReferringPhysicianName']),
  };
}

function pixelTail(file: Buffer): Buffer {
  return file.subarray(file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00])));
}

describe('moving, splitting and merging studies (the wrong-patient case)', () => {
  let dimse: TestDimse;
  let orthanc: OrthancPeer;
  let work: string;
  const app = () => dimse.testApp.app;

  // Study A of the wrong patient: series A1 (OT, 2 instances) is hers; series A2 (MR, 1) was the right patient's.
  const studyA: StudyAttrs = { uid: newUid(), date: '20240301', time: '080000', accession: 'ACC-A', studyId: 'SA', description: 'Abdomen', referring: 'LE^REFERRER A' };
  const studyB: StudyAttrs = { uid: newUid(), date: '20240302', time: '090000', accession: 'ACC-B', studyId: 'SB', description: 'Brain', referring: 'VO^REFERRER B' };
  const seriesA1 = newUid();
  const seriesA2 = newUid();
  const seriesB1 = newUid();
  const [a11, a12, a21, b11] = [newUid(), newUid(), newUid(), newUid()];
  const originals = new Map<string, Buffer>([
    [a11, instance(WRONG, studyA, seriesA1, a11, 'OT', 1, 1)],
    [a12, instance(WRONG, studyA, seriesA1, a12, 'OT', 1, 2)],
    [a21, instance(WRONG, studyA, seriesA2, a21, 'MR', 2, 1)],
    [b11, instance(RIGHT, studyB, seriesB1, b11, 'CT', 1, 1)],
  ]);

  const get = (url: string, accept?: string) => app().inject({ method: 'GET', url, ...(accept === undefined ? {} : { headers: { accept } }) });
  const qido = async (url: string): Promise<Json[]> => {
    const response = await get(url);
    expect(response.statusCode, response.body.slice(0, 200)).toBeLessThan(300);
    return response.body === '' ? [] : (response.json() as Json[]);
  };
  const studyRow = async (uid: string) => (await qido(`/dicomweb/studies?StudyInstanceUID=${uid}&includefield=00081030,00200010`))[0];
  const counts = async (uid: string) => {
    const row = await studyRow(uid);
    return { instances: row?.['00201208']?.Value?.[0], series: row?.['00201206']?.Value?.[0], modalities: row?.['00080061']?.Value, patientId: row?.['00100020']?.Value?.[0] };
  };
  const move = async (url: string, payload: object) => {
    const response = await app().inject({ method: 'POST', url, payload });
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as { fromStudy: string; toStudy: string; series: number; instances: number; sourceRemoved: boolean; toPatient: { patientId: string } };
  };
  const retrieveOne = async (study: string, series: string, sop: string) => {
    const response = await get(`/dicomweb/studies/${study}/series/${series}/instances/${sop}`, ANY_TS);
    expect(response.statusCode, response.body.slice(0, 200)).toBe(200);
    return splitMultipart(response.rawPayload, response.headers['content-type'])[0]!.body;
  };
  const storedBlob = async (study: string, sop: string) => {
    const [found] = (await dimse.archive.listInstances({ studyInstanceUid: study })).filter((i) => i.sopInstanceUid === sop);
    return readFile(path.join((dimse.testApp.config.blobStore as { root: string }).root, found!.blobKey));
  };
  const orthancRest = async (method: string, url: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${orthanc.url}${url}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
    return text === '' ? undefined : JSON.parse(text);
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-move-'));
    const orthancPort = await freePort();
    dimse = await startTestDimse({ destinations: { ORTHANC: { host: '127.0.0.1', port: orthancPort } } }, await buildTestApp({ PACS_REJECTION_PURGE_INTERVAL_SECONDS: '0' }));
    orthanc = await startOrthancPeer({}, { aeTitle: 'ORTHANC', port: orthancPort, modalities: { filmless: { aeTitle: dimse.aeTitle, host: '127.0.0.1', port: dimse.port } } });
    const stow = await app().inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([...originals.values()].map((body) => ({ body }))), headers: { 'content-type': STOW_CONTENT_TYPE() } });
    expect(stow.statusCode, stow.body).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await orthanc?.stop();
    await dimse?.close();
    await dimse?.testApp.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('moves the wrong patient\'s series to the right study: counts, metadata, retrieve and C-FIND say the new study and patient; the file is unchanged', async () => {
    expect(await counts(studyA.uid)).toEqual({ instances: 3, series: 2, modalities: ['MR', 'OT'], patientId: WRONG.id });
    // Warm what must not go stale: the instance lookup (frames), the series metadata and its ETag.
    const oldUrl = `/dicomweb/studies/${studyA.uid}/series/${seriesA2}/instances/${a21}`;
    expect((await get(`${oldUrl}/frames/1`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*')).statusCode).toBe(200);
    const before = await get(`/dicomweb/studies/${studyA.uid}/series/${seriesA2}/metadata`);
    const outcome = await move('/curation/move', { from: { studyInstanceUid: studyA.uid, seriesInstanceUids: [seriesA2] }, to: { studyInstanceUid: studyB.uid } });
    expect(outcome).toMatchObject({ fromStudy: studyA.uid, toStudy: studyB.uid, series: 1, instances: 1, sourceRemoved: false, toPatient: { patientId: RIGHT.id } });
    expect(await counts(studyA.uid)).toEqual({ instances: 2, series: 1, modalities: ['OT'], patientId: WRONG.id });
    expect(await counts(studyB.uid)).toEqual({ instances: 2, series: 2, modalities: ['CT', 'MR'], patientId: RIGHT.id });
    expect((await qido(`/dicomweb/studies?PatientID=${RIGHT.id}`)).map((s) => s['0020000D']?.Value?.[0])).toEqual([studyB.uid]);
    // The old place answers nothing; the new one the instance, read as the right patient's, in study B.
    expect((await get(`${oldUrl}/frames/1`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*')).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/${studyA.uid}/series/${seriesA2}/metadata`)).statusCode).toBe(404);
    const metadata = await get(`/dicomweb/studies/${studyB.uid}/series/${seriesA2}/metadata`);
    expect(metadata.headers.etag).not.toBe(before.headers.etag);
    const [ds] = metadata.json() as Json[];
    expect(ds?.['0020000D']?.Value).toEqual([studyB.uid]);
    expect(ds?.['00100020']?.Value).toEqual([RIGHT.id]);
    expect(ds?.['00100010']?.Value).toEqual([{ Alphabetic: RIGHT.name }]);
    expect([ds?.['00080050']?.Value, ds?.['00080020']?.Value, ds?.['00081030']?.Value, ds?.['00200010']?.Value, ds?.['00080090']?.Value]).toEqual([
      [studyB.accession],
      [studyB.date],
      [studyB.description],
      [studyB.studyId],
      [{ Alphabetic: studyB.referring }],
    ]);
    // Instance-level QIDO with everything: the study's values come from the study of record too.
    const [found] = await qido(`/dicomweb/studies/${studyB.uid}/instances?SOPInstanceUID=${a21}&includefield=all`);
    expect([found?.['00080050']?.Value, found?.['00100020']?.Value, found?.['0020000D']?.Value]).toEqual([[studyB.accession], [RIGHT.id], [studyB.uid]]);
    const sent = await retrieveOne(studyB.uid, seriesA2, a21);
    expect(headerOf(sent)).toEqual({
      patientId: RIGHT.id,
      patientName: RIGHT.name,
      study: studyB.uid,
      series: seriesA2,
      accession: studyB.accession,
      studyDate: studyB.date,
      studyId: studyB.studyId,
      description: studyB.description,
      referring: studyB.referring,
    });
    expect(pixelTail(sent).equals(pixelTail(originals.get(a21)!))).toBe(true);
    expect(sha256(await storedBlob(studyB.uid, a21))).toBe(sha256(originals.get(a21)!));
    const originalErrors = await dciodvfyErrors(originals.get(a21)!, 'original.dcm', { withoutValues: true });
    const movedErrors = await dciodvfyErrors(sent, 'moved.dcm', { withoutValues: true });
    expect(movedErrors.filter((line) => !originalErrors.includes(line))).toEqual([]);
    // DIMSE C-FIND answers the instance in study B.
    const find = await runTool('findscu', ['-S', '-v', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${studyB.uid}`, '-k', 'SOPInstanceUID', '-k', 'PatientID', '-aet', 'TESTSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)]);
    expect(find.code, find.stderr).toBe(0);
    expect(find.stdout + find.stderr).toContain(a21);
    // Sent again as it was (its header says study A): the archive has it, a duplicate, not a conflict.
    const again = await app().inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: originals.get(a21)! }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
    expect(again.statusCode, again.body).toBe(200);
    expect(await counts(studyB.uid)).toMatchObject({ instances: 2 });
  });

  it('lets Orthanc pull the corrected study by C-MOVE: it receives the moved instance with its new study and patient', async () => {
    await orthancRest('POST', '/modalities/filmless/move', { Level: 'Study', Resources: [{ StudyInstanceUID: studyB.uid }], TargetAet: 'ORTHANC', Synchronous: true });
    const ids = (await orthancRest('POST', '/tools/find', { Level: 'Instance', Query: { SOPInstanceUID: a21 } })) as string[];
    expect(ids).toHaveLength(1);
    const tags = (await orthancRest('GET', `/instances/${ids[0]}/simplified-tags`)) as Record<string, string>;
    expect([tags['StudyInstanceUID'], tags['PatientID'], tags['PatientName'], tags['AccessionNumber'], tags['StudyDescription']]).toEqual([studyB.uid, RIGHT.id, RIGHT.name, studyB.accession, studyB.description]);
    // Orthanc files both under the right patient's one study.
    const study = (await orthancRest('POST', '/tools/find', { Level: 'Study', Query: { StudyInstanceUID: studyB.uid }, Expand: true })) as Array<{ Series: string[]; PatientMainDicomTags: Record<string, string> }>;
    expect(study).toHaveLength(1);
    expect(study[0]!.Series).toHaveLength(2);
    expect(study[0]!.PatientMainDicomTags['PatientID']).toBe(RIGHT.id);
  }, 120_000);

  it('moves one instance out of its series into another study: a series is made for it there, its header says so', async () => {
    const outcome = await move('/curation/move', { from: { studyInstanceUid: studyA.uid, sopInstanceUids: [a12] }, to: { studyInstanceUid: studyB.uid } });
    expect([outcome.series, outcome.instances]).toEqual([1, 1]);
    const newSeries = movedSeriesUid(seriesA1, studyB.uid);
    expect(await counts(studyA.uid)).toMatchObject({ instances: 1, series: 1 });
    expect(await counts(studyB.uid)).toMatchObject({ instances: 3, series: 3, modalities: ['CT', 'MR', 'OT'] });
    const sent = await retrieveOne(studyB.uid, newSeries, a12);
    expect(headerOf(sent)).toMatchObject({ study: studyB.uid, series: newSeries, patientId: RIGHT.id });
    const [series] = await qido(`/dicomweb/studies/${studyB.uid}/series?SeriesInstanceUID=${newSeries}`);
    expect([series?.['00080060']?.Value, series?.['00201209']?.Value]).toEqual([['OT'], [1]]);
  });

  let splitStudy = '';

  it('splits a study: the chosen series go to a new study with its own accession number', async () => {
    const outcome = await move(`/curation/studies/${studyB.uid}/split`, { seriesInstanceUids: [seriesA2], attributes: { accessionNumber: 'ACC-SPLIT', studyDescription: 'Brain MR (split)' } });
    splitStudy = outcome.toStudy;
    expect(splitStudy).not.toBe(studyB.uid);
    expect(outcome).toMatchObject({ fromStudy: studyB.uid, series: 1, instances: 1, toPatient: { patientId: RIGHT.id } });
    const row = await studyRow(splitStudy);
    expect([row?.['00080050']?.Value, row?.['00081030']?.Value, row?.['00080020']?.Value, row?.['00201208']?.Value, row?.['00100020']?.Value]).toEqual([['ACC-SPLIT'], ['Brain MR (split)'], [studyB.date], [1], [RIGHT.id]]);
    expect(await counts(studyB.uid)).toMatchObject({ instances: 2, series: 2, modalities: ['CT', 'OT'] });
    const [ds] = (await get(`/dicomweb/studies/${splitStudy}/metadata`)).json() as Json[];
    expect([ds?.['0020000D']?.Value, ds?.['00080050']?.Value, ds?.['00100020']?.Value]).toEqual([[splitStudy], ['ACC-SPLIT'], [RIGHT.id]]);
    expect(headerOf(await retrieveOne(splitStudy, seriesA2, a21))).toMatchObject({ study: splitStudy, accession: 'ACC-SPLIT', description: 'Brain MR (split)', patientId: RIGHT.id });
  });

  it('merges what is left of the wrong study into the right one: the study and the patient it alone had are gone', async () => {
    const outcome = await move(`/curation/studies/${studyA.uid}/merge`, { into: studyB.uid });
    expect(outcome).toMatchObject({ fromStudy: studyA.uid, toStudy: studyB.uid, instances: 1, sourceRemoved: true });
    expect(await qido(`/dicomweb/studies?StudyInstanceUID=${studyA.uid}`)).toEqual([]);
    expect(await qido(`/dicomweb/studies?PatientID=${WRONG.id}`)).toEqual([]);
    expect(await counts(studyB.uid)).toMatchObject({ instances: 3, series: 3, patientId: RIGHT.id });
    expect(headerOf(await retrieveOne(studyB.uid, seriesA1, a11))).toMatchObject({ study: studyB.uid, patientId: RIGHT.id, patientName: RIGHT.name });
  });

  it('moves a whole study to a patient new to the archive: it keeps its UID, reads with the new patient', async () => {
    const outcome = await move('/curation/move', { from: { studyInstanceUid: splitStudy }, to: { patient: { patientId: 'PC-3003', issuer: 'HOSP', name: 'LY^NEW PATIENT', birthDate: '19990909', sex: 'O' } } });
    expect(outcome).toMatchObject({ fromStudy: splitStudy, toStudy: splitStudy, toPatient: { patientId: 'PC-3003' } });
    const [row] = await qido(`/dicomweb/studies?PatientID=PC-3003&IssuerOfPatientID=HOSP`);
    expect(row?.['0020000D']?.Value).toEqual([splitStudy]);
    expect(headerOf(await retrieveOne(splitStudy, seriesA2, a21))).toMatchObject({ patientId: 'PC-3003', patientName: 'LY^NEW PATIENT', study: splitStudy });
  });

  it('audits each step with before and after, naming patients by ID only', async () => {
    await dimse.testApp.services.audit!.flush();
    const records = ((await get(`/admin/audit?action=move&limit=100`)).json() as { records: Array<{ route: string; detail: Record<string, unknown>; objects: Array<Record<string, string>>; atna: { eventId: { code: string } } }> }).records;
    expect(records).toHaveLength(5);
    const first = records.find((r) => r.route === 'POST /curation/move' && r.detail['fromStudy'] === studyA.uid && r.detail['instances'] === 1 && r.detail['series'] === 1 && r.objects.some((o) => o['study'] === studyB.uid));
    expect(first).toBeDefined();
    expect(first!.detail).toMatchObject({ toStudy: studyB.uid, patientChanged: true, sourceRemoved: false });
    expect(first!.objects.map((o) => o['patient']).filter(Boolean)).toEqual([WRONG.id, RIGHT.id]);
    expect(first!.atna.eventId.code).toBe('110103');
    const text = JSON.stringify(records);
    for (const name of [WRONG.name, RIGHT.name, 'LY^NEW PATIENT']) expect(text).not.toContain(name);
  });

  it('leaves the index and the blob store in agreement: fsck is clean, every original file kept', async () => {
    const fsck = await runFsckScript({ PACS_DATA_DIR: dimse.testApp.dataDir });
    expect(fsck.code, fsck.output).toBe(0);
    for (const [sop, original] of originals) {
      const [found] = (await dimse.archive.listInstances({ studyInstanceUid: studyB.uid })).concat(await dimse.archive.listInstances({ studyInstanceUid: splitStudy })).filter((i) => i.sopInstanceUid === sop);
      expect(sha256(await readFile(path.join((dimse.testApp.config.blobStore as { root: string }).root, found!.blobKey))), sop).toBe(sha256(original));
    }
  }, 60_000);

  it('refuses moves that make no sense', async () => {
    const post = (payload: object) => app().inject({ method: 'POST', url: '/curation/move', payload });
    expect((await post({ from: { studyInstanceUid: '1.2.404' }, to: { studyInstanceUid: studyB.uid } })).statusCode).toBe(404);
    expect((await post({ from: { studyInstanceUid: studyB.uid }, to: { studyInstanceUid: studyB.uid } })).statusCode).toBe(400);
    expect((await post({ from: { studyInstanceUid: studyB.uid, seriesInstanceUids: ['1.2.404'] }, to: { studyInstanceUid: splitStudy } })).statusCode).toBe(404);
    expect((await post({ from: { studyInstanceUid: studyB.uid }, to: { nowhere: true } })).statusCode).toBe(400);
  });
});
