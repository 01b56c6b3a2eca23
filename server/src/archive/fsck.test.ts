/**
 * What an administrator sees from fsck: a clean archive reports no problem; a lost, truncated or
 * bit-flipped blob and a blob nothing indexes are reported, and --repair removes exactly those (the
 * index row first, never a blob that is still indexed), after which the archive checks clean. Run on
 * the embedded backends (folder + SQLite) and on the production ones (S3 protocol + PostgreSQL).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog } from '../catalog/catalog.js';
import { createCatalog } from '../catalog/create-catalog.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { S3BlobStore } from '../storage/s3-blob-store.js';
import { runFsckScript, reportedCount } from '../test-support/fsck-script.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { createTestSchema, isPostgresAvailable } from '../test-support/postgres-test-schema.js';
import { startS3TestServer } from '../test-support/s3-test-server.js';
import { Archive } from './archive.js';
import { formatFsckReport, recoverStorage, runFsck, unresolvedProblems, type FsckReport } from './fsck.js';

const HOUR = 60 * 60 * 1000;

interface Backend {
  blobs: BlobStore;
  catalog: Catalog;
  /** Only the folder store can age a file (utimes); S3 tests move the clock instead. */
  fsRoot?: string;
  teardown(): Promise<void>;
}

async function embedded(): Promise<Backend> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-fsck-'));
  const blobs = await FsBlobStore.create(path.join(dir, 'blobs'));
  const catalog = await createCatalog({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') });
  return {
    blobs,
    catalog,
    fsRoot: blobs.root,
    teardown: async () => {
      await catalog.close();
      await blobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function production(): Promise<Backend> {
  const s3 = await startS3TestServer();
  const blobs = await S3BlobStore.create({
    kind: 's3',
    endPoint: s3.endPoint,
    port: s3.port,
    useSSL: false,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: s3.bucket,
    region: 'us-east-1',
    prefix: 'pacs',
    partSize: 5 * 1024 * 1024,
  });
  const schema = createTestSchema('pacs_fsck');
  const catalog = await createCatalog({ kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 4 });
  return {
    blobs,
    catalog,
    teardown: async () => {
      await catalog.close();
      await blobs.close();
      await schema.drop();
      await s3.close();
    },
  };
}

const postgres = await isPostgresAvailable();
const backends: [string, () => Promise<Backend>][] = [['folder + SQLite', embedded]];
if (postgres || process.env.PACS_TEST_SKIP_POSTGRES !== '1') backends.push(['S3 + PostgreSQL', production]);

for (const [name, setup] of backends) {
  describe(`fsck on ${name}`, () => {
    let backend: Backend;
    let archive: Archive;
    const study = newUid();
    beforeEach(async () => {
      backend = await setup();
      archive = new Archive(backend.blobs, backend.catalog, pino({ level: 'silent' }), { maxHeaderBytes: 1024 * 1024 });
    });
    afterEach(async () => {
      await backend.teardown();
    });

    const storeInstance = async (): Promise<{ sop: string; bytes: Buffer; blobKey: string }> => {
      const sop = newUid();
      const bytes = makeInstance({ studyInstanceUid: study, sopInstanceUid: sop, rows: 64, columns: 64 });
      const scanned = await archive.scanAndStore(Readable.from([bytes.subarray(0, 100), bytes.subarray(100)]));
      const result = await scanned.completion;
      expect(result.ok).toBe(true);
      const [instance] = await archive.listInstances({ studyInstanceUid: study, sopInstanceUid: sop });
      return { sop, bytes, blobKey: instance!.blobKey };
    };
    const fsck = (repair: boolean, now = Date.now()): Promise<FsckReport> => runFsck(backend.blobs, backend.catalog, { repair, minAgeMs: HOUR, now: () => now });
    const indexedSops = async () => (await archive.listInstances({ studyInstanceUid: study }).catch(() => [])).map((i) => i.sopInstanceUid).sort();

    it('records the sha256 of the stored bytes at ingest and finds a healthy archive clean', async () => {
      const stored = [await storeInstance(), await storeInstance(), await storeInstance()];
      const rows = await backend.catalog.listIndexedBlobs(undefined, 100);
      for (const { bytes, blobKey } of stored) {
        expect(rows.find((r) => r.blobKey === blobKey)?.checksum).toBe(createHash('sha256').update(bytes).digest('hex'));
      }
      const report = await fsck(false);
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ instancesChecked: 3, checksumsVerified: 3, instancesWithoutChecksum: 0, blobsListed: 3 });
      expect(report.bytesRead).toBe(stored.reduce((n, s) => n + s.bytes.length, 0));
      expect(formatFsckReport(report)).toMatch(/problems left\s+0/);
    });

    it('reports a lost, a truncated and a corrupted blob and an old orphan; --repair removes exactly those', async () => {
      const healthy = await storeInstance();
      const lost = await storeInstance();
      const truncated = await storeInstance();
      const corrupted = await storeInstance();
      await backend.blobs.delete(lost.blobKey);
      await backend.blobs.put(truncated.blobKey, Readable.from([truncated.bytes.subarray(0, 500)]));
      const flipped = Buffer.from(corrupted.bytes);
      const last = flipped.length - 1;
      flipped.writeUInt8(flipped.readUInt8(last) ^ 0xff, last);
      await backend.blobs.put(corrupted.blobKey, Readable.from([flipped]));
      await backend.blobs.put('ab/cd/orphan-of-a-crash.dcm', Readable.from([randomBytes(3000)]));
      // Two hours later: the orphan is past the one-hour threshold.
      const later = Date.now() + 2 * HOUR;

      const found = await fsck(false, later);
      const kinds = Object.fromEntries(found.problems.map((p) => [p.sopInstanceUid ?? p.blobKey, p.kind]));
      expect(kinds).toEqual({
        [lost.sop]: 'missing-blob',
        [truncated.sop]: 'size-mismatch',
        [corrupted.sop]: 'checksum-mismatch',
        'ab/cd/orphan-of-a-crash.dcm': 'orphan-blob',
      });
      expect(unresolvedProblems(found)).toHaveLength(4);
      // Without --repair nothing changes.
      expect(await indexedSops()).toEqual([healthy.sop, lost.sop, truncated.sop, corrupted.sop].sort());
      expect(await backend.blobs.stat('ab/cd/orphan-of-a-crash.dcm')).toBeDefined();
      const table = formatFsckReport(found);
      expect(table).toContain('checksum-mismatch');
      expect(table).toContain(corrupted.sop);

      const repaired = await fsck(true, later);
      expect(unresolvedProblems(repaired)).toEqual([]);
      expect(Object.fromEntries(repaired.problems.map((p) => [p.sopInstanceUid ?? p.blobKey, p.action]))).toEqual({
        [lost.sop]: 'removed index row and blob',
        [truncated.sop]: 'removed index row and blob',
        [corrupted.sop]: 'removed index row and blob',
        'ab/cd/orphan-of-a-crash.dcm': 'removed blob',
      });
      expect(await indexedSops()).toEqual([healthy.sop]);
      expect(await backend.blobs.stat(corrupted.blobKey)).toBeUndefined();
      expect(await backend.blobs.stat('ab/cd/orphan-of-a-crash.dcm')).toBeUndefined();
      // The healthy instance is untouched, and the archive now checks clean.
      const chunks: Buffer[] = [];
      for await (const chunk of await backend.blobs.get(healthy.blobKey)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(healthy.bytes)).toBe(true);
      expect((await fsck(false, later)).problems).toEqual([]);
      // A removed instance can be sent again.
      expect((await (await archive.scanAndStore(Readable.from([lost.bytes]))).completion).ok).toBe(true);
      expect((await fsck(false, later)).problems).toEqual([]);
    });

    it('leaves an unindexed blob younger than the threshold alone: it may be an upload about to be indexed', async () => {
      await storeInstance();
      await backend.blobs.put('ef/01/just-written.dcm', Readable.from([randomBytes(100)]));
      const report = await fsck(true);
      expect(report.problems).toEqual([]);
      expect(report.recentUnreferencedBlobs).toBe(1);
      expect(await backend.blobs.stat('ef/01/just-written.dcm')).toBeDefined();
    });

    it('startup recovery removes old orphans but never touches index rows', async () => {
      const kept = await storeInstance();
      const lost = await storeInstance();
      await backend.blobs.delete(lost.blobKey);
      await backend.blobs.put('12/34/orphan.dcm', Readable.from([randomBytes(10)]));
      const report = await recoverStorage(backend.blobs, backend.catalog, HOUR, () => Date.now() + 2 * HOUR);
      expect(report.problems.map((p) => [p.blobKey, p.action])).toEqual([['12/34/orphan.dcm', 'removed blob']]);
      expect(await indexedSops()).toEqual([kept.sop, lost.sop].sort());
    });

    if (name === 'folder + SQLite') {
      it('npm run fsck exits 1 listing a corrupted instance; with --repair it says what it removed, then exits 0', async () => {
        const dataDir = path.dirname(backend.fsRoot!);
        await storeInstance();
        const corrupted = await storeInstance();
        await backend.blobs.put(corrupted.blobKey, Readable.from([Buffer.alloc(corrupted.bytes.length, 1)]));
        const found = await runFsckScript({ PACS_DATA_DIR: dataDir });
        expect(found.code, found.output).toBe(1);
        expect(found.output).toMatch(new RegExp(`checksum-mismatch\\s+${corrupted.blobKey}\\s+${corrupted.sop.replace(/\./g, '\\.')}.*reported`));
        expect(reportedCount(found.output, 'problems left')).toBe(1);
        const repaired = await runFsckScript({ PACS_DATA_DIR: dataDir }, ['--repair']);
        expect(repaired.code, repaired.output).toBe(0);
        expect(repaired.output).toMatch(/checksum-mismatch.*removed index row and blob/);
        expect(reportedCount(repaired.output, 'problems left')).toBe(0);
        expect(await indexedSops()).toHaveLength(1);
        const again = await runFsckScript({ PACS_DATA_DIR: dataDir });
        expect(again.code, again.output).toBe(0);
        expect(again.output).toContain('index and blob store agree');
        expect((await runFsckScript({ PACS_DATA_DIR: dataDir }, ['--bogus'])).code).toBe(2);
      }, 60_000);

      it('--repair removes leftovers of uploads interrupted longer ago than the threshold, and only those', async () => {
        const tmp = path.join(backend.fsRoot!, '.tmp');
        await writeFile(path.join(tmp, 'killed.part'), randomBytes(1000));
        await writeFile(path.join(tmp, 'uploading.part'), randomBytes(1000));
        const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
        await utimes(path.join(tmp, 'killed.part'), twoHoursAgo, twoHoursAgo);
        const report = await fsck(true);
        expect(report.partialUploadsRemoved).toBe(1);
        expect(report.problems).toEqual([]);
      });
    }
  });
}
