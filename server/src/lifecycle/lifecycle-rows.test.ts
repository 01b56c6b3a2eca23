/**
 * The storage lifecycle's index operations on both engines (SQLite and the PostgreSQL test server):
 * candidates by syntax, modality and age; the journal and the swap (original syntax and size recorded,
 * old blob queued, a changed row not swapped); the usage sums.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Catalog } from '../catalog/catalog.js';
import { createCatalog } from '../catalog/create-catalog.js';
import type { InstanceHeader } from '../dicom/instance-header.js';
import { createTestSchema, isPostgresAvailable } from '../test-support/postgres-test-schema.js';

const postgres = await isPostgresAvailable();

function header(study: string, sop: string, modality: string, date: string, syntax = '1.2.840.10008.1.2.1'): InstanceHeader {
  const dataset = {
    '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.7'] },
    '00080018': { vr: 'UI', Value: [sop] },
    '00080020': { vr: 'DA', Value: [date] },
    '00080060': { vr: 'CS', Value: [modality] },
    '00100020': { vr: 'LO', Value: ['LIFECYCLE-1'] },
    '0020000D': { vr: 'UI', Value: [study] },
    '0020000E': { vr: 'UI', Value: [`${study}.1`] },
  };
  return {
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
    sopInstanceUid: sop,
    studyInstanceUid: study,
    seriesInstanceUid: `${study}.1`,
    transferSyntaxUid: syntax,
    dataset,
    numberOfFrames: 1,
    rows: 2,
    columns: 2,
    bitsAllocated: 8,
    samplesPerPixel: 1,
    pixelData: { tag: '7FE00010', valueOffset: 300, valueLength: 4, encapsulated: false, frames: [[[300, 4]]], isVideo: false },
  };
}

async function withEngines(run: (catalog: Catalog) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-lifecycle-rows-'));
  const sqlite = await createCatalog({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') });
  try {
    await run(sqlite);
  } finally {
    await sqlite.close();
    await rm(dir, { recursive: true, force: true });
  }
  if (!postgres) {
    if (process.env.PACS_TEST_SKIP_POSTGRES === '1') return;
    throw new Error('No PostgreSQL test server: start it (.ci/run does) or set PACS_TEST_SKIP_POSTGRES=1');
  }
  const schema = createTestSchema();
  const pg = await createCatalog({ kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 3 });
  try {
    await run(pg);
  } finally {
    await pg.close();
    await schema.drop();
  }
}

describe('storage lifecycle rows (SQLite and PostgreSQL)', () => {
  it('selects candidates, swaps a converted blob in one transaction and sums usage', { timeout: 60_000 }, async () => {
    await withEngines(async (catalog) => {
      const store = (study: string, sop: string, modality: string, date: string, size: number, syntax?: string) =>
        catalog.storeInstance({ header: header(study, sop, modality, date, syntax), blobKey: `k/${sop}`, blobSize: size, checksum: 'a'.repeat(64) });
      await store('1.1', '1.1.1.1', 'CT', '20000101', 1000);
      await store('1.1', '1.1.1.2', 'CT', '20000101', 1000, '1.2.840.10008.1.2.4.50');
      await store('1.2', '1.2.1.1', 'MR', '20000101', 500);
      await store('1.3', '1.3.1.1', 'CT', '20991231', 700);

      const old = await catalog.lifecycleCandidates({ transferSyntaxes: ['1.2.840.10008.1.2.1'], modalities: ['CT'], olderThan: '20200101', asReceived: true }, undefined, 10);
      expect(old.map((c) => c.sopInstanceUid)).toEqual(['1.1.1.1']);
      const paged = await catalog.lifecycleCandidates({}, old[0]!.cursor, 2);
      expect(paged.map((c) => c.sopInstanceUid)).toEqual(['1.1.1.2', '1.2.1.1']);

      await catalog.beginConversion({ blobKey: 'k/new', sopInstanceUid: '1.1.1.1', sourceBlobKey: 'k/1.1.1.1', transferSyntaxUid: '1.2.840.10008.1.2.4.80', startedAt: new Date().toISOString() });
      expect((await catalog.listConversions(10)).map((c) => c.blobKey)).toEqual(['k/new']);
      const pixelData = { tag: '7FE00010', valueOffset: 320, valueLength: undefined, encapsulated: true, frames: [[[336, 40]] as [number, number][]], isVideo: false };
      const swap = await catalog.swapConvertedBlob({ sopInstanceUid: '1.1.1.1', sourceBlobKey: 'k/1.1.1.1', blobKey: 'k/new', blobSize: 400, checksum: 'b'.repeat(64), transferSyntaxUid: '1.2.840.10008.1.2.4.80', pixelData });
      expect(swap).toEqual({ swapped: true, studyInstanceUid: '1.1' });
      expect(await catalog.listConversions(10)).toEqual([]);
      expect(await catalog.pendingBlobDeletes(10)).toEqual(['k/1.1.1.1']);
      const [row] = await catalog.listInstances({ studyInstanceUid: '1.1', sopInstanceUid: '1.1.1.1' });
      expect(row).toMatchObject({ blobKey: 'k/new', blobSize: 400, transferSyntaxUid: '1.2.840.10008.1.2.4.80' });
      expect(row!.pixelData).toMatchObject({ encapsulated: true, valueOffset: 320, frames: [[[336, 40]]] });
      expect((await catalog.listIndexedBlobs(undefined, 10)).find((b) => b.sopInstanceUid === '1.1.1.1')?.originalTransferSyntaxUid).toBe('1.2.840.10008.1.2.1');
      expect(await catalog.lifecycleCandidates({ asReceived: true, modalities: ['CT'], olderThan: '20200101' }, undefined, 10)).toHaveLength(1);

      // A row that changed meanwhile is not swapped: the converted blob is queued for deletion instead.
      await catalog.beginConversion({ blobKey: 'k/late', sopInstanceUid: '1.1.1.1', sourceBlobKey: 'k/1.1.1.1', transferSyntaxUid: '1.2.840.10008.1.2.4.80', startedAt: new Date().toISOString() });
      expect(await catalog.swapConvertedBlob({ sopInstanceUid: '1.1.1.1', sourceBlobKey: 'k/1.1.1.1', blobKey: 'k/late', blobSize: 1, checksum: 'c'.repeat(64), transferSyntaxUid: '1.2.840.10008.1.2.4.80', pixelData })).toEqual({ swapped: false });
      expect((await catalog.pendingBlobDeletes(10)).sort()).toEqual(['k/1.1.1.1', 'k/late']);
      await catalog.clearPendingBlobDeletes(['k/1.1.1.1', 'k/late']);

      const usage = await catalog.storageUsage({ limit: 2, offset: 0 });
      expect(usage.total).toMatchObject({ instances: 4, studies: 3, series: 3, bytes: 2600, receivedBytes: 3200, recompressedInstances: 1, pendingBlobDeletes: 0, conversionsUnderWay: 0 });
      expect(usage.byModality).toEqual([
        { modality: 'CT', instances: 3, bytes: 2100, receivedBytes: 2700, recompressedInstances: 1 },
        { modality: 'MR', instances: 1, bytes: 500, receivedBytes: 500, recompressedInstances: 0 },
      ]);
      expect(usage.studies.map((s) => [s.studyInstanceUid, s.bytes])).toEqual([
        ['1.1', 1400],
        ['1.3', 700],
      ]);
      const study = await catalog.studyStorageUsage('1.1');
      expect(study).toMatchObject({ instances: 2, bytes: 1400, receivedBytes: 2000, recompressedInstances: 1, rejectedInstances: 0 });
      expect(study!.byTransferSyntax.map((s) => s.transferSyntaxUid).sort()).toEqual(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.80']);
      expect(await catalog.studyStorageUsage('9.9')).toBeUndefined();
    });
  });
});
