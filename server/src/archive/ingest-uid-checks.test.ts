/**
 * Ingest identity checks (issue 17, found by outside testing), by STOW-RS and by C-STORE: a data set
 * without its own SOP Instance UID (0008,0018) is refused even when its File Meta names one; a Study,
 * Series or SOP Instance UID that is not a valid UID (PS3.5 §9.1) is refused, never rewritten; UIDs
 * with leading-zero components (older modalities) are accepted and kept as sent; and nothing stored
 * before is damaged by a refused look-alike.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import dcmjsDimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureReason } from './stow-outcome.js';
import { Dataset } from '../dimse/dimse-lib.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { splitMultipart } from '../test-support/split-multipart.js';

requireDcmtk();

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
const { Client, requests } = dcmjsDimse;
const SC = '1.2.840.10008.5.1.4.1.1.7';
const ROOT = '1.2.826.0.1.3680043.8.498.17';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface Uids {
  study: string;
  series: string;
  /** undefined: the data set has no SOP Instance UID element. */
  sop: string | undefined;
  /** Media Storage SOP Instance UID of the File Meta group (defaults to `sop`). */
  mediaSop?: string;
}

/** A Part-10 file written as given: dcmjs writes UID strings unchanged (it only "cleans" them when reading). */
function instance(uids: Uids, fill = 7): Buffer {
  const pixels = new Uint8Array(16).fill(fill);
  const dataset: Record<string, unknown> = {
    SOPClassUID: SC,
    ...(uids.sop === undefined ? {} : { SOPInstanceUID: uids.sop }),
    StudyInstanceUID: uids.study,
    SeriesInstanceUID: uids.series,
    PatientName: 'UID^CHECKS',
    PatientID: 'UID-CHECKS',
    Modality: 'OT',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: 4,
    Columns: 4,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SC,
    MediaStorageSOPInstanceUID: uids.mediaSop ?? uids.sop,
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '1.2.826.0.1.3680043.8.498.1',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  // dcmjs would cut a UID longer than 64 characters to 64 without this.
  return Buffer.from(dict.write({ allowInvalidVRLength: true }));
}

const uid = (suffix: string) => `${ROOT}.${suffix}`;

/** The file with the data set's SOP Instance UID value replaced in the bytes (dcmjs cuts UIDs at 64 characters). */
function withSopInstanceUid(file: Buffer, value: string): Buffer {
  const at = file.indexOf(Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]));
  const length = file.readUInt16LE(at + 6);
  const bytes = Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1');
  const header = Buffer.from(file.subarray(at, at + 8));
  header.writeUInt16LE(bytes.length, 6);
  return Buffer.concat([file.subarray(0, at), header, bytes, file.subarray(at + 8 + length)]);
}

describe('ingest refuses a missing or invalid instance UID, never rewrites one', () => {
  let dimse: TestDimse;
  let work: string;
  const app = () => dimse.testApp.app;

  const stow = async (file: Buffer) => {
    const response = await app().inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody([{ body: file }]), headers: { 'content-type': STOW_CONTENT_TYPE() } });
    const body = response.body === '' ? {} : (response.json() as Record<string, { Value?: Array<Record<string, { Value?: unknown[] }>> }>);
    const failed = body['00081198']?.Value?.[0];
    return { status: response.statusCode, reason: failed?.['00081197']?.Value?.[0], message: String(failed?.['0040A160']?.Value?.[0] ?? '') };
  };
  const countAll = async () => (JSON.parse((await app().inject({ method: 'GET', url: '/dicomweb/instances?limit=1000' })).body || '[]') as unknown[]).length;
  const storescu = async (file: Buffer, name: string) => {
    const at = path.join(work, name);
    await writeFile(at, file);
    const result = await runTool('storescu', ['-v', '-aet', 'TESTSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port), at]);
    return result.stdout + result.stderr;
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-uid-checks-'));
    dimse = await startTestDimse();
  });
  afterAll(async () => {
    await dimse?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('STOW-RS: no SOP Instance UID in the data set is 409 Cannot understand, whatever File Meta says', async () => {
    const before = await countAll();
    const result = await stow(instance({ study: uid('1'), series: uid('1.1'), sop: undefined, mediaSop: uid('1.1.1') }));
    expect(result.status).toBe(409);
    expect(result.reason).toBe(FailureReason.CannotUnderstand);
    expect(result.message).toContain('SOP Instance UID (0008,0018)');
    expect(await countAll()).toBe(before);
  });

  it('STOW-RS: an invalid Study, Series or SOP Instance UID is 409, nothing stored under a rewritten one', async () => {
    const before = await countAll();
    for (const [uids, named] of [
      [{ study: '../../tmp/x', series: uid('2.1'), sop: uid('2.1.1') }, 'Study Instance UID'],
      [{ study: uid('3'), series: '1.2.3 4', sop: uid('3.1.1') }, 'Series Instance UID'],
      [{ study: uid('4'), series: uid('4.1'), sop: `${uid('4.1.1')}.` }, 'SOP Instance UID'],
      [{ study: uid('5'), series: uid('5.1'), sop: uid('5.1.1'), tooLong: true }, 'SOP Instance UID'],
    ] as Array<[Uids & { tooLong?: boolean }, string]>) {
      // 65 characters: one more than a UID may have.
      const file = uids.tooLong ? withSopInstanceUid(instance(uids), `${uids.sop}.${'1'.repeat(64 - uids.sop!.length)}`) : instance(uids);
      const result = await stow(file);
      expect(result.status, JSON.stringify(uids)).toBe(409);
      expect(result.reason).toBe(FailureReason.CannotUnderstand);
      expect(result.message).toContain(named);
    }
    expect(await countAll()).toBe(before);
    // What the rewrite used to produce is not there either.
    expect((await app().inject({ method: 'GET', url: '/dicomweb/studies?StudyInstanceUID=....' })).statusCode).toBeLessThan(500);
    expect(JSON.parse((await app().inject({ method: 'GET', url: `/dicomweb/studies?PatientID=UID-CHECKS` })).body || '[]')).toHaveLength(0);
  });

  it('STOW-RS: a SOP Instance UID equal to a stored one plus a stray character is refused; the stored one is intact', async () => {
    const stored = instance({ study: uid('6'), series: uid('6.1'), sop: uid('6.1.1') }, 1);
    expect((await stow(stored)).status).toBe(200);
    const lookalike = await stow(instance({ study: uid('6'), series: uid('6.1'), sop: `${uid('6.1.1')}x` }, 2));
    expect(lookalike.status).toBe(409);
    expect(lookalike.reason).toBe(FailureReason.CannotUnderstand);
    const retrieved = await app().inject({
      method: 'GET',
      url: `/dicomweb/studies/${uid('6')}/series/${uid('6.1')}/instances/${uid('6.1.1')}`,
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    const [part] = splitMultipart(retrieved.rawPayload, retrieved.headers['content-type']);
    expect(sha256(part!.body)).toBe(sha256(stored));
    expect(JSON.parse((await app().inject({ method: 'GET', url: `/dicomweb/studies/${uid('6')}/instances` })).body)).toHaveLength(1);
  });

  it('STOW-RS: components with leading zeros are accepted and kept as sent', async () => {
    const study = '1.2.826.0.1.3680043.8.498.017.01';
    const series = `${study}.001`;
    const sop = `${series}.0001`;
    const file = instance({ study, series, sop });
    expect((await stow(file)).status).toBe(200);
    const found = JSON.parse((await app().inject({ method: 'GET', url: `/dicomweb/instances?SOPInstanceUID=${sop}` })).body) as Array<Record<string, { Value: string[] }>>;
    expect(found.map((i) => [i['0020000D']!.Value[0], i['0020000E']!.Value[0], i['00080018']!.Value[0]])).toEqual([[study, series, sop]]);
    const retrieved = await app().inject({
      method: 'GET',
      url: `/dicomweb/studies/${study}/series/${series}/instances/${sop}`,
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(retrieved.statusCode).toBe(200);
    const [part] = splitMultipart(retrieved.rawPayload, retrieved.headers['content-type']);
    expect(part!.body.equals(file)).toBe(true);
  });

  it('C-STORE (storescu): invalid UIDs get a failure status (C000), nothing stored, the stored instance intact', async () => {
    const before = await countAll();
    for (const [name, file] of [
      ['traversal.dcm', instance({ study: '../../tmp/x', series: uid('7.1'), sop: uid('7.1.1') })],
      ['lookalike.dcm', instance({ study: uid('6'), series: uid('6.1'), sop: `${uid('6.1.1')}x` }, 3)],
    ] as Array<[string, Buffer]>) {
      const output = await storescu(file, name);
      expect(output, name).not.toContain('Received Store Response (Success)');
      expect(output, name).toMatch(/Received Store Response \(.*(CannotUnderstand|Cannot understand|C000)/i);
    }
    expect(await countAll()).toBe(before);
    const [instanceRow] = await dimse.archive.listInstances({ studyInstanceUid: uid('6'), seriesInstanceUid: uid('6.1'), sopInstanceUid: uid('6.1.1') });
    const blob = await readFile(path.join((dimse.testApp.config.blobStore as { root: string }).root, instanceRow!.blobKey));
    expect(sha256(blob)).toBe(sha256(instance({ study: uid('6'), series: uid('6.1'), sop: uid('6.1.1') }, 1)));
  });

  it('C-STORE: a data set without its SOP Instance UID gets C000 even though the command names one', async () => {
    // storescu will not send such a file; dcmjs-dimse sends what it is given.
    const file = instance({ study: uid('8'), series: uid('8.1'), sop: undefined, mediaSop: uid('8.1.1') });
    const at = path.join(work, 'no-sop.dcm');
    await writeFile(at, file);
    const dataset = Dataset.fromFile(at)!;
    const request = new requests.CStoreRequest(dataset);
    request.setAffectedSopClassUid(SC);
    request.setAffectedSopInstanceUid(uid('8.1.1'));
    const answer = await new Promise<{ status: number; comment: string }>((resolve, reject) => {
      const client = new Client();
      let response: { status: number; comment: string } | undefined;
      request.on('response', (r: { getStatus(): number; getErrorComment(): string }) => (response = { status: r.getStatus(), comment: r.getErrorComment() ?? '' }));
      client.addRequest(request);
      client.on('networkError', (err: Error) => reject(err));
      client.on('closed', () => (response ? resolve(response) : reject(new Error('no response'))));
      client.send('127.0.0.1', dimse.port, 'DCMJSSCU', dimse.aeTitle);
    });
    expect(answer.status).toBe(0xc000);
    expect(answer.comment).toContain('SOP Instance UID');
    expect(JSON.parse((await app().inject({ method: 'GET', url: `/dicomweb/studies?StudyInstanceUID=${uid('8')}` })).body || '[]')).toHaveLength(0);
  });
});
