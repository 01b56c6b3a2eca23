/**
 * Ingest coercion through the archive's OrderReconciliation (what the hospital link hands it): an
 * instance whose Accession Number has an order is indexed under the order's patient, its blob stored as
 * received, its series reported to the order, and it reads back (retrieve stream, metadata attributes)
 * with the order's identity. No order, no accession number, or an order store that fails: indexed as
 * received.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { testLogger } from '../test-support/log-capture.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { Archive } from './archive.js';
import { metadataDataset } from './metadata.js';
import type { OrderReconciliation } from './order-reconciliation.js';

const ORDER_PATIENT: PatientIdentity = { patientId: 'H43', issuer: 'HOSP', name: 'LE^VAN CUONG', birthDate: '19700101', sex: 'M', otherIds: [] };

class FakeOrders implements OrderReconciliation {
  readonly linked: Array<[string, string, string]> = [];
  failing = false;

  async identityFor(accessionNumber: string): Promise<PatientIdentity | undefined> {
    if (this.failing) throw Object.assign(new Error('order store down'), { code: 'ECONNREFUSED' });
    return accessionNumber === 'ORDER-43' ? ORDER_PATIENT : undefined;
  }

  stored(accessionNumber: string, studyInstanceUid: string, seriesInstanceUid: string): void {
    this.linked.push([accessionNumber, studyInstanceUid, seriesInstanceUid]);
  }
}

async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

describe('ingest coercion by accession number', () => {
  let dir: string;
  let blobs: FsBlobStore;
  let catalog: SqliteCatalog;
  let archive: Archive;
  const orders = new FakeOrders();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-coercion-'));
    blobs = await FsBlobStore.create(path.join(dir, 'blobs'));
    catalog = new SqliteCatalog(':memory:');
    await catalog.migrate();
    archive = new Archive(blobs, catalog, testLogger(), { maxHeaderBytes: 1 << 20, orderReconciliation: orders });
  });
  afterAll(async () => {
    await catalog?.close();
    await blobs?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const store = async (file: Buffer) => {
    const result = await (await archive.scanAndStore(once(file))).completion;
    expect(result.ok, JSON.stringify(result)).toBe(true);
  };

  it("indexes an instance of a known order under the order's patient, the blob as received", async () => {
    const study = newUid();
    const series = newUid();
    const sop = newUid();
    const file = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, patientName: 'LE^VAN C', patientId: 'TYPO', accessionNumber: 'ORDER-43' });
    await store(file);
    expect(orders.linked).toContainEqual(['ORDER-43', study, series]);

    const found = await archive.search({ level: 'study', matches: [{ tag: '00100020', value: 'H43' }], includeFields: [], limit: 10, offset: 0, fuzzyMatching: false });
    expect(found.matches.map((m) => m['0020000D']?.Value?.[0])).toEqual([study]);
    expect(found.matches[0]?.['00100010']?.Value).toEqual([{ Alphabetic: 'LE^VAN CUONG' }]);
    const typo = await archive.search({ level: 'study', matches: [{ tag: '00100020', value: 'TYPO' }], includeFields: [], limit: 10, offset: 0, fuzzyMatching: false });
    expect(typo.matches).toEqual([]);

    const [instance] = await archive.findInstances({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop });
    expect(instance?.patient).toMatchObject({ version: 1, differs: true, identity: { patientId: 'H43', name: 'LE^VAN CUONG' } });
    // The blob is what the modality sent.
    const blob = await readFile(path.join(dir, 'blobs', instance!.blobKey));
    expect(createHash('sha256').update(blob).digest('hex')).toBe(createHash('sha256').update(file).digest('hex'));
    // Read back with the order's identity.
    const chunks: Buffer[] = [];
    for await (const chunk of await archive.openInstance(instance!)) chunks.push(chunk as Buffer);
    const sent = Buffer.concat(chunks);
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(sent.buffer.slice(sent.byteOffset, sent.byteOffset + sent.length) as ArrayBuffer).dict);
    expect(ds.PatientID).toBe('H43');
    expect(ds.IssuerOfPatientID).toBe('HOSP');
    expect(ds.PatientName?.[0]?.Alphabetic ?? ds.PatientName).toBe('LE^VAN CUONG');
    expect(sent.subarray(sent.length - 16).equals(file.subarray(file.length - 16))).toBe(true);
    const [withAttributes] = await archive.findInstancesWithAttributes({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop });
    const metadata = metadataDataset(withAttributes!, () => 'uri');
    expect(metadata['00100020']?.Value).toEqual(['H43']);
    expect(metadata['00100010']?.Value).toEqual([{ Alphabetic: 'LE^VAN CUONG' }]);
  });

  it('indexes as received without an order, without an accession number, or when the order store fails', async () => {
    const cases = [
      { accessionNumber: 'NO-ORDER', failing: false, id: 'P-NO-ORDER' },
      { accessionNumber: '', failing: false, id: 'P-NO-ACCESSION' },
      { accessionNumber: 'ORDER-43', failing: true, id: 'P-STORE-DOWN' },
    ];
    for (const c of cases) {
      orders.failing = c.failing;
      const study = newUid();
      await store(makeInstance({ studyInstanceUid: study, patientId: c.id, accessionNumber: c.accessionNumber }));
      const found = await archive.search({ level: 'study', matches: [{ tag: '0020000D', value: study }], includeFields: [], limit: 10, offset: 0, fuzzyMatching: false });
      expect(found.matches[0]?.['00100020']?.Value, c.id).toEqual([c.id]);
      const [instance] = await archive.findInstances({ studyInstanceUid: study });
      expect(instance?.patient, c.id).toBeUndefined();
    }
    orders.failing = false;
  });
});
