/**
 * Restore from the backup store after the primary blob store and/or the index were lost (`npm run
 * restore`, server/src/restore.ts; docs/operations.md, "Restore"). With the server stopped:
 *
 * 1. `restoreIndex`: the chosen index backup (the newest by default) is read from the backup store, its
 *    sha256 checked against the catalogue, and put in place: SQLite: un-gzipped to a temporary file,
 *    `PRAGMA integrity_check`ed, then renamed over the index file (an existing index, and its -wal and
 *    -shm files, are moved aside first, only with --force); PostgreSQL: `pg_restore --clean --if-exists`
 *    into the configured schema.
 * 2. `restoreBlobs`, with the restored index opened (and migrated) by the caller:
 *    a. every blob copy on the backup store that the restored index does not reference is an instance
 *       stored after that backup: it is re-indexed through the normal ingest path (`reindex`: the
 *       archive's scanAndStore, header parsed, checksum recorded, stored under a new key), unless a
 *       tombstone (or the restored index's backup table) says it was deleted on purpose;
 *    b. every blob the restored index references and the primary store lacks is copied back from the
 *       backup store, its sha256 checked against the one recorded at ingest;
 *    and the report says exactly what was recovered and what is missing: index rows whose blob is in
 *    neither store (lost), copies whose bytes do not match (corrupt), blobs that failed to re-index,
 *    and instances the restored index still holds although they were deleted after the backup.
 * The caller then runs fsck (archive/fsck.ts) and prints both reports.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import Database from 'better-sqlite3';
import type { Catalog } from '../catalog/catalog.js';
import type { IndexConfig } from '../config.js';
import { AppError, isAppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { isBackupObject, readCatalogue, TOMBSTONE_PREFIX, tombstoneKey, type IndexGeneration } from './backup-layout.js';
import type { BackupStore } from './backup-store.js';

export interface InstanceRef {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

export interface RestoreReport {
  backup: IndexGeneration | undefined;
  /** Where the index that was there before went (SQLite with --force). */
  previousIndexMovedTo: string[];
  indexedBlobs: number;
  /** Referenced blobs the primary store still had (size checked). */
  alreadyPresent: number;
  /** Referenced blobs copied back from the backup store (sha256 checked). */
  copiedBack: number;
  /** Blobs on the backup store the restored index did not reference, re-indexed: instances stored after the backup. */
  recovered: InstanceRef[];
  /** Blob copies not re-indexed because they were deleted on purpose (tombstone, or removed in the restored index). */
  deletedOnPurpose: number;
  /** Blob copies that could not be re-indexed (not DICOM, refused): key and why. */
  reindexFailures: Array<{ blobKey: string; reason: string }>;
  /** Index rows whose blob is in neither store: the gap. */
  lost: Array<InstanceRef & { blobKey: string }>;
  /** Index rows whose copy on the backup store does not match the size or sha256 recorded at ingest. */
  corrupt: Array<InstanceRef & { blobKey: string }>;
  /** Instances the restored index holds that were deleted after the backup (a tombstone on the backup store). */
  deletedAfterBackup: Array<InstanceRef & { blobKey: string }>;
}

export function emptyRestoreReport(backup: IndexGeneration | undefined): RestoreReport {
  return { backup, previousIndexMovedTo: [], indexedBlobs: 0, alreadyPresent: 0, copiedBack: 0, recovered: [], deletedOnPurpose: 0, reindexFailures: [], lost: [], corrupt: [], deletedAfterBackup: [] };
}

export type Reindex = (blob: Readable) => Promise<{ ok: true; item: InstanceRef } | { ok: false; reason: string }>;

const PAGE = 500;

function hashingCounter(): { stream: Transform; result: () => { size: number; sha256: string } } {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  return { stream, result: () => ({ size, sha256: hash.digest('hex') }) };
}

/** The generation asked for (`id`), or the newest; NOT_FOUND when the backup store lists none. */
export async function chooseGeneration(backupStore: BlobStore, id?: string): Promise<IndexGeneration> {
  const { generations } = await readCatalogue(backupStore);
  const chosen = id === undefined ? generations[0] : generations.find((g) => g.id === id);
  if (chosen === undefined) {
    throw new AppError('NOT_FOUND', id === undefined ? 'The backup store holds no index backup (_backup/index/catalogue.json)' : `No index backup "${id}" on the backup store`);
  }
  return chosen;
}

/** Downloads a generation to `file`, checking its sha256 (and un-gzipping SQLite snapshots). */
async function download(backupStore: BlobStore, generation: IndexGeneration, file: string): Promise<void> {
  const counter = hashingCounter();
  const source = await backupStore.get(generation.key);
  if (generation.key.endsWith('.gz')) await pipeline(source, counter.stream, createGunzip(), createWriteStream(file));
  else await pipeline(source, counter.stream, createWriteStream(file));
  const { sha256 } = counter.result();
  if (sha256 !== generation.sha256) throw new AppError('STORAGE_FAILURE', `The index backup ${generation.id} does not match its recorded sha256: choose another with --backup`);
}

/**
 * Puts the index backup in place. SQLite: refuses while an index file exists unless `force` (then it is
 * moved aside, with its -wal and -shm: a stale WAL replayed over the restored file would corrupt it).
 */
export async function restoreIndex(backupStore: BlobStore, index: IndexConfig, generation: IndexGeneration, force: boolean): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-restore-'));
  try {
    const file = path.join(dir, generation.engine === 'sqlite' ? 'index.sqlite' : 'index.pgdump');
    if (index.kind === 'sqlite') {
      if (generation.engine !== 'sqlite') throw new AppError('BAD_REQUEST', 'This index backup is a PostgreSQL dump; the configured index is SQLite');
      const companions = [index.file, `${index.file}-wal`, `${index.file}-shm`].filter((f) => existsSync(f));
      if (companions.length > 0 && !force) {
        throw new AppError('CONFLICT', `The index file exists (${index.file}): stop the server and move it away, or pass --force to have it moved aside`);
      }
      await download(backupStore, generation, file);
      const db = new Database(file, { fileMustExist: true });
      try {
        const check = db.pragma('integrity_check', { simple: true });
        if (check !== 'ok') throw new AppError('STORAGE_FAILURE', `The index backup ${generation.id} fails SQLite's integrity check`);
        db.pragma('journal_mode = WAL');
      } finally {
        db.close();
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const moved: string[] = [];
      for (const existing of companions) {
        const aside = `${existing}.before-restore-${stamp}`;
        await rename(existing, aside);
        moved.push(aside);
      }
      await rm(`${file}-wal`, { force: true });
      await rm(`${file}-shm`, { force: true });
      await mkdir(path.dirname(path.resolve(index.file)), { recursive: true });
      await copyInto(file, index.file);
      return moved;
    }
    if (generation.engine !== 'postgres') throw new AppError('BAD_REQUEST', 'This index backup is an SQLite snapshot; the configured index is PostgreSQL');
    await download(backupStore, generation, file);
    await pgRestore(index.connectionString, file);
    return [];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Copy then rename in the target folder (the temp folder may be on another file system). */
async function copyInto(source: string, target: string): Promise<void> {
  const partial = `${target}.restoring`;
  await pipeline(createReadStream(source), createWriteStream(partial));
  await rename(partial, target);
}

function pgRestore(connectionString: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('pg_restore', ['--clean', '--if-exists', '--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${connectionString}`, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString();
    });
    child.once('error', (err) => reject(new AppError('INDEX_FAILURE', `pg_restore could not be started (${(err as { code?: string }).code ?? err.name}): install postgresql-client`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new AppError('INDEX_FAILURE', `pg_restore failed (exit ${code}): ${stderr.trim().split('\n')[0]?.slice(0, 300) ?? ''}`))));
  });
}

export interface RestoreBlobsOptions {
  catalog: Catalog;
  primary: BlobStore;
  backupStore: BlobStore;
  /** The restored index's backup tables (which keys it knew as removed). */
  backupTables: BackupStore;
  reindex: Reindex;
  report: RestoreReport;
}

/** Steps 2a and 2b (module comment). Bounded memory: pages of 500, tombstones the only set kept. */
export async function restoreBlobs(options: RestoreBlobsOptions): Promise<RestoreReport> {
  const tombstones = await reindexNewerCopies(options);
  await copyBackIndexedBlobs(options, tombstones);
  return options.report;
}

async function reindexNewerCopies(options: RestoreBlobsOptions): Promise<Set<string>> {
  const { catalog, backupStore, report } = options;
  const tombstones = new Set<string>();
  let batch: string[] = [];
  const flush = async () => {
    const keys = batch;
    batch = [];
    const referenced = await catalog.referencedBlobKeys(keys);
    for (const key of keys) {
      if (referenced.has(key)) continue;
      if ((await backupStore.stat(tombstoneKey(key))) !== undefined || (await options.backupTables.isRemoved(key))) {
        report.deletedOnPurpose += 1;
        continue;
      }
      await reindexOne(options, key);
    }
  };
  for await (const blob of backupStore.list()) {
    if (blob.key.startsWith(TOMBSTONE_PREFIX)) tombstones.add(blob.key.slice(TOMBSTONE_PREFIX.length));
    if (isBackupObject(blob.key)) continue;
    batch.push(blob.key);
    if (batch.length >= PAGE) await flush();
  }
  if (batch.length > 0) await flush();
  return tombstones;
}

async function reindexOne(options: RestoreBlobsOptions, key: string): Promise<void> {
  const { report } = options;
  let outcome;
  try {
    outcome = await options.reindex(await options.backupStore.get(key));
  } catch (err) {
    report.reindexFailures.push({ blobKey: key, reason: isAppError(err) ? err.code : 'error' });
    return;
  }
  if (!outcome.ok) {
    report.reindexFailures.push({ blobKey: key, reason: outcome.reason });
    return;
  }
  report.recovered.push(outcome.item);
  // Stored under a new key (replicated when the server starts); the old copy is kept for the
  // retention, and a primary copy under the old key (if the primary folder survived) would be an orphan.
  await options.backupTables.addRemoved(key, 0);
  await options.primary.delete(key).catch(() => undefined);
}

async function copyBackIndexedBlobs(options: RestoreBlobsOptions, tombstones: Set<string>): Promise<void> {
  const { catalog, primary, backupStore, report } = options;
  let cursor: number | undefined;
  for (;;) {
    const page = await catalog.listIndexedBlobs(cursor, PAGE);
    for (const blob of page) {
      report.indexedBlobs += 1;
      const ref = { studyInstanceUid: blob.studyInstanceUid, seriesInstanceUid: blob.seriesInstanceUid, sopInstanceUid: blob.sopInstanceUid, blobKey: blob.blobKey };
      if (tombstones.has(blob.blobKey)) report.deletedAfterBackup.push(ref);
      const present = await primary.stat(blob.blobKey);
      if (present !== undefined && present.size === blob.blobSize) {
        report.alreadyPresent += 1;
        continue;
      }
      const copy = await backupStore.stat(blob.blobKey);
      if (copy === undefined) {
        report.lost.push(ref);
        continue;
      }
      const counter = hashingCounter();
      const source = await backupStore.get(blob.blobKey);
      source.on('error', (err) => counter.stream.destroy(err));
      await primary.put(blob.blobKey, source.pipe(counter.stream));
      const { size, sha256 } = counter.result();
      if (size !== blob.blobSize || (blob.checksum !== undefined && sha256 !== blob.checksum)) {
        await primary.delete(blob.blobKey);
        report.corrupt.push(ref);
        continue;
      }
      report.copiedBack += 1;
    }
    if (page.length < PAGE) return;
    cursor = page[page.length - 1]!.cursor;
  }
}

/** The report as plain text (what `npm run restore` prints before fsck's). */
export function formatRestoreReport(report: RestoreReport): string {
  const lines: string[] = [];
  const b = report.backup;
  lines.push(b === undefined ? 'index: kept as it was (--skip-index)' : `index: restored from backup ${b.id} (${b.engine}, taken ${b.createdAt}, ${b.instances ?? '?'} instances, ${b.bytes} bytes)`);
  for (const moved of report.previousIndexMovedTo) lines.push(`  previous index file moved to ${moved}`);
  lines.push(
    `indexed blobs checked                         ${report.indexedBlobs}`,
    `  already in the primary store                ${report.alreadyPresent}`,
    `  copied back from the backup store           ${report.copiedBack}`,
    `  LOST (in neither store)                     ${report.lost.length}`,
    `  CORRUPT copy (size or sha256 differs)       ${report.corrupt.length}`,
    `instances stored after the backup, recovered  ${report.recovered.length}`,
    `copies not re-indexed: deleted on purpose     ${report.deletedOnPurpose}`,
    `copies that failed to re-index                ${report.reindexFailures.length}`,
    `deleted after the backup, back in the index   ${report.deletedAfterBackup.length}`,
  );
  const list = (title: string, items: ReadonlyArray<{ sopInstanceUid?: string; studyInstanceUid?: string; blobKey?: string; reason?: string }>) => {
    if (items.length === 0) return;
    lines.push('', title);
    for (const item of items) lines.push(`  ${item.studyInstanceUid ?? ''} ${item.sopInstanceUid ?? ''} ${item.blobKey ?? ''} ${item.reason ?? ''}`.trimEnd());
  };
  list('recovered (study, instance):', report.recovered);
  list('LOST (study, instance, blob key):', report.lost);
  list('CORRUPT (study, instance, blob key):', report.corrupt);
  list('failed to re-index (blob key, reason):', report.reindexFailures);
  list('deleted after the backup but restored with its index (delete again if still wanted):', report.deletedAfterBackup);
  return `${lines.join('\n')}\n`;
}

/** Nothing lost, corrupt or left un-indexed. */
export function restoreComplete(report: RestoreReport): boolean {
  return report.lost.length === 0 && report.corrupt.length === 0 && report.reindexFailures.length === 0;
}
