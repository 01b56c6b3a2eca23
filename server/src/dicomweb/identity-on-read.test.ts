/**
 * Patient identity corrections applied on read (docs/architecture.md, "Hospital link"): an instance
 * stored by STOW-RS under a typo'd name, then corrected and merged through StoredPatients (what the
 * hospital link calls), is answered with the identity of record by QIDO-RS (also by the national ID
 * with its issuer), WADO-RS metadata and retrieve (as stored and transcoded), and DIMSE C-FIND / C-GET
 * (dcmtk findscu, getscu), while the stored blob stays byte-identical and the pixel data goes out
 * unchanged. ETags and cached responses follow the correction; dciodvfy (dicom3tools) finds no new
 * error in a corrected file.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { StoredPatients } from '../his/his-model.js';
import { writePart10 } from '../dicom/write-part10.js';
import { multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';

requireDcmtk();
requireDciodvfy();

const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A secondary capture as a modality would send it before the hospital link: the name typo'd, no national ID. */
function typoInstance(study: string, series: string, sop: string, transferSyntax = EXPLICIT_VR_LE, accessionNumber = 'ACC-17'): Buffer {
  const pixels = new Uint8Array(16 * 16);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = (i * 7) % 251;
  return writePart10(
    {
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
      SOPInstanceUID: sop,
      StudyInstanceUID: study,
      SeriesInstanceUID: series,
      PatientName: 'NGUYEN^VAN AMN',
      PatientID: 'H100',
      IssuerOfPatientID: 'HOSP',
      PatientBirthDate: '19800201',
      PatientSex: 'F',
      StudyDate: '20240102',
      StudyTime: '101500',
      StudyID: '1',
      AccessionNumber: accessionNumber,
      ReferringPhysicianName: '',
      Modality: 'OT',
      ConversionType: 'WSD',
      SeriesNumber: '1',
      InstanceNumber: '1',
      PatientOrientation: '',
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: 16,
      Columns: 16,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelData: pixels.buffer,
      _vrMap: { PixelData: 'OB' },
    },
    transferSyntax,
  );
}

/** The hospital's identity of record: corrected name (Vietnamese), birth date and sex, the national citizen ID. */
const RECORD: PatientIdentity = {
  patientId: 'H100',
  issuer: 'HOSP',
  name: 'NGUYỄN^VĂN AN',
  birthDate: '19800102',
  sex: 'M',
  otherIds: [{ id: '001080012345', issuer: 'VN-CITIZEN', type: 'TEXT' }],
};

/** The identity elements of a Part-10 file, read by dcmjs (naturalized). */
function identityOf(file: Buffer): Record<string, unknown> {
  const parsed = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer, { ignoreErrors: true });
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(parsed.dict) as Record<string, unknown>;
  const name = ds['PatientName'] as Array<{ Alphabetic?: string }> | string | undefined;
  const others = (ds['OtherPatientIDsSequence'] as Array<Record<string, unknown>> | Record<string, unknown> | undefined) ?? [];
  return {
    name: Array.isArray(name) ? name[0]?.Alphabetic : name,
    id: ds['PatientID'],
    issuer: ds['IssuerOfPatientID'],
    birthDate: ds['PatientBirthDate'],
    sex: ds['PatientSex'],
    others: (Array.isArray(others) ? others : [others]).map((o) => `${o['PatientID']}/${o['IssuerOfPatientID']}`),
    charset: ds['SpecificCharacterSet'],
  };
}

/** The bytes from the top-level Pixel Data element on (tag, header and value): what must go out unchanged. */
function pixelTail(file: Buffer): Buffer {
  const at = file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
  expect(at).toBeGreaterThan(0);
  return file.subarray(at);
}

describe('patient identity corrections applied on read', () => {
  let dimse: TestDimse;
  let work: string;
  let storedPatients: StoredPatients;
  const study = newUid();
  const series = newUid();
  const sop = newUid();
  const implicitSop = newUid();
  const original = typoInstance(study, series, sop);
  const implicitOriginal = typoInstance(study, series, implicitSop, IMPLICIT_VR_LE);
  const instanceUrl = `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
  const etags: Record<string, string> = {};

  const app = () => dimse.testApp.app;
  const qido = async (query: string) => {
    const response = await app().inject({ method: 'GET', url: `/dicomweb/studies?${query}` });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response.statusCode === 204 || response.body === '' ? [] : (response.json() as Array<Record<string, { Value?: unknown[] }>>);
  };
  const retrieve = async (url: string, accept = ANY_TS) => {
    const response = await app().inject({ method: 'GET', url, headers: { accept } });
    expect(response.statusCode, response.body.slice(0, 200)).toBe(200);
    return { response, parts: splitMultipart(response.rawPayload, response.headers['content-type']) };
  };
  const metadata = async (url: string) => {
    const response = await app().inject({ method: 'GET', url: `${url}/metadata` });
    expect(response.statusCode).toBe(200);
    return { etag: String(response.headers.etag), body: response.json() as Array<Record<string, { Value?: unknown[] }>> };
  };
  /** The stored blob of an instance, read from the folder store. */
  const storedBlobOf = async (studyInstanceUid: string, seriesInstanceUid: string, sopInstanceUid: string) => {
    const [instance] = await dimse.archive.listInstances({ studyInstanceUid, seriesInstanceUid, sopInstanceUid });
    return readFile(path.join((dimse.testApp.config.blobStore as { root: string }).root, instance!.blobKey));
  };
  const storedBlob = (sopInstanceUid: string) => storedBlobOf(study, series, sopInstanceUid);
  const peer = () => ['-aet', 'TESTSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)];

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-identity-'));
    dimse = await startTestDimse();
    const { archive } = dimse;
    // What services.ts hands the hospital link.
    storedPatients = {
      applyIdentity: (identity) => archive.applyPatientIdentity(identity),
      mergePatient: (prior, surviving) => archive.mergePatients(prior, surviving),
    };
    const stow = await app().inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: original }, { body: implicitOriginal }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(stow.statusCode, stow.body).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await dimse?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers the stored identity before any correction, the stored bytes exactly', async () => {
    const [found] = await qido(`PatientID=H100&includefield=IssuerOfPatientID`);
    expect(found?.['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYEN^VAN AMN' }]);
    const { etag, body } = await metadata(instanceUrl);
    etags['metadata'] = etag;
    expect(body[0]?.['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYEN^VAN AMN' }]);
    const { response, parts } = await retrieve(instanceUrl);
    etags['instance'] = String(response.headers.etag);
    expect(parts[0]!.body.equals(original)).toBe(true);
    // Warm the instance lookup cache (frames) and the series metadata cache: the correction must not be hidden by them.
    expect((await app().inject({ method: 'GET', url: `${instanceUrl}/frames/1`, headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } })).statusCode).toBe(200);
    etags['series'] = (await metadata(`/dicomweb/studies/${study}/series/${series}`)).etag;
  });

  it('applies the identity of record: QIDO-RS answers it and finds the patient by the national ID with its issuer', async () => {
    expect(await storedPatients.applyIdentity(RECORD)).toEqual([study]);
    const [found] = await qido(`PatientID=H100&IssuerOfPatientID=HOSP&includefield=OtherPatientIDsSequence,IssuerOfPatientID`);
    expect(found?.['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYỄN^VĂN AN' }]);
    expect(found?.['00100020']?.Value).toEqual(['H100']);
    expect(found?.['00100030']?.Value).toEqual(['19800102']);
    expect(found?.['00100040']?.Value).toEqual(['M']);
    expect(JSON.stringify(found?.['00101002'])).toContain('001080012345');
    const byNationalId = await qido('PatientID=001080012345&IssuerOfPatientID=VN-CITIZEN');
    expect(byNationalId.map((s) => s['0020000D']?.Value?.[0])).toEqual([study]);
    expect(await qido('PatientID=001080012345&IssuerOfPatientID=HOSP')).toEqual([]);
    expect(await qido('PatientName=NGUYEN^VAN AMN')).toEqual([]);
    // Instance level, with everything from the stored header: the identity still comes from the patient row.
    const instances = await app().inject({ method: 'GET', url: `/dicomweb/studies/${study}/instances?includefield=all` });
    for (const instance of instances.json() as Array<Record<string, { Value?: unknown[] }>>) {
      expect(instance['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYỄN^VĂN AN' }]);
    }
  });

  it('WADO-RS metadata says the same, with new ETags, even for the lookups cached before', async () => {
    const { etag, body } = await metadata(instanceUrl);
    expect(etag).not.toBe(etags['metadata']);
    expect(body[0]?.['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYỄN^VĂN AN' }]);
    expect(body[0]?.['00100030']?.Value).toEqual(['19800102']);
    expect(body[0]?.['00100021']?.Value).toEqual(['HOSP']);
    expect(JSON.stringify(body[0]?.['00101002'])).toContain('VN-CITIZEN');
    const seriesMetadata = await metadata(`/dicomweb/studies/${study}/series/${series}`);
    expect(seriesMetadata.etag).not.toBe(etags['series']);
    expect(seriesMetadata.body.map((i) => i['00100010']?.Value)).toEqual([[{ Alphabetic: 'NGUYỄN^VĂN AN' }], [{ Alphabetic: 'NGUYỄN^VĂN AN' }]]);
    // The old ETag no longer validates.
    const stale = await app().inject({ method: 'GET', url: `${instanceUrl}/metadata`, headers: { 'if-none-match': etags['metadata']! } });
    expect(stale.statusCode).toBe(200);
  });

  it('WADO-RS retrieve sends a copy whose header carries the identity of record; the stored blob is unchanged', async () => {
    const { response, parts } = await retrieve(instanceUrl);
    expect(String(response.headers.etag)).not.toBe(etags['instance']);
    expect(response.headers['cache-control']).toBe('private, no-cache');
    const sent = parts[0]!.body;
    expect(identityOf(sent)).toEqual({
      name: 'NGUYỄN^VĂN AN',
      id: 'H100',
      issuer: 'HOSP',
      birthDate: '19800102',
      sex: 'M',
      others: ['001080012345/VN-CITIZEN'],
      charset: 'ISO_IR 192',
    });
    expect(pixelTail(sent).equals(pixelTail(original))).toBe(true);
    // dcmtk reads it too (an independent parser).
    await writeFile(path.join(work, 'sent.dcm'), sent);
    const dump = await runTool('dcmdump', ['+P', '0010,0010', '+P', '0010,0020', path.join(work, 'sent.dcm')]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('NGUYỄN^VĂN AN');
    // Originals are evidence: the blob is what was stored, byte for byte.
    expect(sha256(await storedBlob(sop))).toBe(sha256(original));
    expect(sha256(await storedBlob(implicitSop))).toBe(sha256(implicitOriginal));
    // Frames are pixel bytes: the same as stored.
    const frame = await app().inject({ method: 'GET', url: `${instanceUrl}/frames/1`, headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    const [framePart] = splitMultipart(frame.rawPayload, frame.headers['content-type']);
    expect(original.includes(framePart!.body)).toBe(true);
  });

  it('a series retrieve and a transcoded instance carry the identity of record too', async () => {
    const { parts } = await retrieve(`/dicomweb/studies/${study}/series/${series}`);
    expect(parts.map((p) => identityOf(p.body).name)).toEqual(['NGUYỄN^VĂN AN', 'NGUYỄN^VĂN AN']);
    const { parts: transcoded } = await retrieve(
      `/dicomweb/studies/${study}/series/${series}/instances/${implicitSop}`,
      `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_VR_LE}`,
    );
    expect(transcoded[0]!.headers['content-type']).toContain(EXPLICIT_VR_LE);
    expect(identityOf(transcoded[0]!.body)).toMatchObject({ name: 'NGUYỄN^VĂN AN', id: 'H100', sex: 'M', others: ['001080012345/VN-CITIZEN'] });
  });

  it('dciodvfy finds no error in the corrected file that the original did not have', async () => {
    const { parts } = await retrieve(instanceUrl);
    const before = await dciodvfyErrors(original, 'original.dcm', { withoutValues: true });
    const after = await dciodvfyErrors(parts[0]!.body, 'corrected.dcm', { withoutValues: true });
    expect(after.filter((line) => !before.includes(line))).toEqual([]);
  });

  it('a real CT (ISO_IR 100, which cannot spell the name) is re-encoded as UTF-8 with no new dciodvfy error', async () => {
    const file = path.join(sharedDataDir, 'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm');
    const ct = await readFile(file);
    const stow = await app().inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: ct }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
    expect(stow.statusCode, stow.body).toBe(200);
    const url = String((stow.json() as Record<string, { Value: Array<Record<string, { Value: string[] }>> }>)['00081199']!.Value[0]!['00081190']!.Value[0]).replace(/^.*\/dicomweb/, '/dicomweb');
    const ctStudy = /studies\/([0-9.]+)/.exec(url)![1]!;
    const { parts: storedParts } = await retrieve(url);
    const ctIdentity = identityOf(storedParts[0]!.body);
    const changed = await storedPatients.applyIdentity({ ...RECORD, patientId: String(ctIdentity['id']), issuer: '', otherIds: [] });
    expect(changed).toEqual([ctStudy]);
    const { parts } = await retrieve(url);
    expect(identityOf(parts[0]!.body)).toMatchObject({ name: 'NGUYỄN^VĂN AN', charset: 'ISO_IR 192', sex: 'M' });
    expect(pixelTail(parts[0]!.body).equals(pixelTail(ct))).toBe(true);
    const before = await dciodvfyErrors(ct, 'ct-original.dcm', { withoutValues: true });
    const after = await dciodvfyErrors(parts[0]!.body, 'ct-corrected.dcm', { withoutValues: true });
    expect(after.filter((line) => !before.includes(line))).toEqual([]);
  });

  it('C-FIND (findscu) answers the identity of record and matches the national ID with its issuer', async () => {
    const result = await runTool('findscu', [
      '-S', '-v',
      '-k', 'QueryRetrieveLevel=STUDY',
      '-k', 'PatientID=001080012345',
      '-k', 'IssuerOfPatientID=VN-CITIZEN',
      '-k', 'PatientName',
      '-k', 'PatientBirthDate',
      '-k', 'StudyInstanceUID',
      ...peer(),
    ]);
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(0);
    expect(output.match(/\(Pending\)/g)).toHaveLength(1);
    expect(output).toContain('NGUYỄN^VĂN AN');
    expect(output).toContain('19800102');
    expect(output).toContain(study);
    expect(output).not.toContain('NGUYEN^VAN AMN');
  });

  it('C-GET (getscu) receives the corrected header and the stored pixel data', async () => {
    const out = await mkdtemp(path.join(work, 'get-'));
    const result = await runTool('getscu', ['-S', '--output-directory', out, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${study}`, '-k', `SeriesInstanceUID=${series}`, '-k', `SOPInstanceUID=${sop}`, ...peer()], 60_000);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const [name] = await readdir(out);
    const received = await readFile(path.join(out, name!));
    expect(identityOf(received)).toMatchObject({ name: 'NGUYỄN^VĂN AN', id: 'H100', birthDate: '19800102', others: ['001080012345/VN-CITIZEN'] });
    expect(pixelTail(received).equals(pixelTail(original))).toBe(true);
  });

  it('merges the patient into a surviving one: the prior ID finds nothing, the surviving ID the study, the blob unchanged', async () => {
    const metadataBefore = (await metadata(instanceUrl)).etag;
    const surviving: PatientIdentity = { ...RECORD, patientId: 'H200' };
    expect(await storedPatients.mergePatient({ patientId: 'H100', issuer: 'HOSP' }, surviving)).toEqual([study]);
    expect(await qido('PatientID=H100')).toEqual([]);
    expect(await qido('PatientID=H100&IssuerOfPatientID=HOSP')).toEqual([]);
    const found = await qido('PatientID=H200&IssuerOfPatientID=HOSP');
    expect(found.map((s) => s['0020000D']?.Value?.[0])).toEqual([study]);
    const { etag, body } = await metadata(instanceUrl);
    expect(etag).not.toBe(metadataBefore);
    expect(body[0]?.['00100020']?.Value).toEqual(['H200']);
    const { parts } = await retrieve(instanceUrl);
    expect(identityOf(parts[0]!.body)).toMatchObject({ id: 'H200', name: 'NGUYỄN^VĂN AN' });
    expect(sha256(await storedBlob(sop))).toBe(sha256(original));
    const find = await runTool('findscu', ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'PatientID=H100', '-k', 'StudyInstanceUID', ...peer()]);
    expect(find.code).toBe(0);
    expect((find.stdout + find.stderr).match(/\(Pending\)/g) ?? []).toHaveLength(0);
  });

  it("through the composition root's hospital link: a patient update reaches stored studies, an order coerces new images", async () => {
    const his = dimse.testApp.services.his!;
    const context = { via: 'rest' as const, subject: 'test', clientAddress: '127.0.0.1' };
    // A study of H100 stored after the merge (a modality that still had the old record).
    const [study2, series2, sop2] = [newUid(), newUid(), newUid()];
    const stow = async (file: Buffer) => {
      const response = await app().inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: file }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
      expect(response.statusCode, response.body).toBe(200);
    };
    await stow(typoInstance(study2, series2, sop2));
    const updated = await his.service.apply({ kind: 'patient-upsert', event: 'A08', identity: { ...RECORD, name: 'NGUYỄN^VĂN ANH' } }, context);
    expect(updated.studiesUpdated).toEqual([study2]);
    const [found] = await qido(`StudyInstanceUID=${study2}`);
    expect(found?.['00100010']?.Value).toEqual([{ Alphabetic: 'NGUYỄN^VĂN ANH' }]);

    // An order for another patient: images sent with its accession number are indexed under that patient.
    const ordered: PatientIdentity = { patientId: 'H500', issuer: 'HOSP', name: 'LE^THI HOA', birthDate: '19900303', sex: 'F', otherIds: [] };
    await his.service.apply(
      {
        kind: 'order-new',
        patient: ordered,
        order: {
          placerOrderNumber: 'PL-17',
          fillerOrderNumber: null,
          accessionNumber: 'ACC-ORDER-17',
          requestedProcedureId: 'RP-17',
          requestedProcedureDescription: null,
          requestedProcedureCode: null,
          scheduledProcedureStepId: 'SPS-17',
          scheduledProcedureStepDescription: null,
          modality: 'OT',
          scheduledStationAeTitle: null,
          scheduledStart: '20260105093000',
          referringPhysicianName: null,
          performingPhysicianName: null,
          studyInstanceUid: null,
        },
      },
      context,
    );
    const [study3, series3, sop3] = [newUid(), newUid(), newUid()];
    const sent = typoInstance(study3, series3, sop3, EXPLICIT_VR_LE, 'ACC-ORDER-17');
    await stow(sent);
    const [coerced] = await qido('PatientID=H500&IssuerOfPatientID=HOSP');
    expect(coerced?.['0020000D']?.Value).toEqual([study3]);
    expect(coerced?.['00100010']?.Value).toEqual([{ Alphabetic: 'LE^THI HOA' }]);
    const { parts } = await retrieve(`/dicomweb/studies/${study3}/series/${series3}/instances/${sop3}`);
    expect(identityOf(parts[0]!.body)).toMatchObject({ id: 'H500', name: 'LE^THI HOA', sex: 'F' });
    expect(sha256(await storedBlobOf(study3, series3, sop3))).toBe(sha256(sent));
  });
});
