/**
 * Consistency check of the index against the blob store (`npm run fsck`), and the orphan sweep the
 * server runs at startup after a crash.
 *
 * What a crash can leave (the archive writes the blob completely first and the index row last, see
 * archive.ts): leftovers of unfinished uploads (temp files, unfinished multipart uploads), never
 * visible as blobs; and blobs that no index row references: complete ones (killed between the blob and
 * the row, or a failed delete of a duplicate's blob) and, in the folder store, partial ones of at most
 * 1 MiB (ingest writes small blobs of its new keys in place: PutOptions.fresh in storage/blob-store.ts).
 * Neither is ever served. What a crash cannot leave, but a disk fault, an operator or a bug can: an index row whose blob is missing, shorter or longer
 * than indexed, or whose bytes no longer hash to the sha256 recorded at ingest.
 *
 * The age threshold (`minAgeMs`, PACS_ORPHAN_MIN_AGE_SECONDS, 24 h by default) is what makes the
 * sweep safe while the server (or a worker sharing the store) keeps ingesting: an unreferenced blob
 * may belong to an upload whose index row is about to be written. Only blobs last written longer
 * ago than the threshold count as orphans; on S3 the time is when a multipart upload *started*, so
 * the threshold must exceed the longest upload. The check is repeated just before each delete.
 *
 * Curation (docs/architecture.md, "Curation"): a rejected instance keeps its row and blob until it is
 * restored or purged, so it is checked like any other (and counted), never an orphan. A purge or a
 * DELETE removes the rows first and queues their blob keys in the same transaction
 * (`pending_blob_deletes`); a crash before the blobs are gone leaves queued keys: fsck reports them
 * (`pending-delete`, not orphans: no age threshold applies, the index says they are garbage) and
 * --repair, like the startup recovery, deletes them.
 *
 * Storage lifecycle (docs/architecture.md, "Storage lifecycle"): a recompressed instance's row names its
 * converted blob, size and checksum, so it is checked like any other (and counted, with the syntax it
 * was received in kept in the row); the blob it replaced was queued in `pending_blob_deletes` by the
 * same transaction (above). A recompression killed before its swap leaves a journal entry
 * (`blob_conversions`) and possibly its converted blob, unreferenced: younger than the threshold it may
 * be under way in another process and is left alone (`conversionsUnderWay`); older, it is an
 * `interrupted-conversion`, which --repair and the startup recovery remove (the instance stays on its
 * old blob, intact). It is never counted as an orphan.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { BlobStore } from '../storage/blob-store.js';
import type { Catalog, IndexedBlob } from '../catalog/catalog.js';
import { AppError } from '../errors.js';
import { deleteQueuedBlobs } from './blob-deletes.js';

export type ProblemKind = 'missing-blob' | 'size-mismatch' | 'checksum-mismatch' | 'unreadable-blob' | 'orphan-blob' | 'pending-delete' | 'interrupted-conversion';

export interface FsckProblem {
  kind: ProblemKind;
  blobKey: string;
  /** The indexed instance, for problems of an index row (not for orphans). */
  sopInstanceUid?: string;
  /** What the index says and what the store has (sizes, short checksums, error codes). */
  detail: string;
  /** What --repair did about it; 'reported' without --repair. */
  action: string;
}

export interface FsckReport {
  instancesChecked: number;
  checksumsVerified: number;
  /** Rows indexed before checksums were recorded: checked for existence and size only. */
  instancesWithoutChecksum: number;
  /** Instances a rejection note hides (IOCM): kept, checked like the others, until restored or purged. */
  rejectedInstances: number;
  /** Queued deletions of removed rows' blobs finished (the blob was already gone, or --repair deleted it). */
  pendingDeletesFinished: number;
  /** Instances whose stored file is a lossless recompression of the one received (storage lifecycle). */
  recompressedInstances: number;
  /** Recompressions journalled more recently than the threshold: possibly under way, left alone. */
  conversionsUnderWay: number;
  bytesRead: number;
  blobsListed: number;
  /** Unreferenced blobs younger than the threshold: possibly an upload in progress, left alone. */
  recentUnreferencedBlobs: number;
  /** Leftovers of interrupted uploads removed (only with repair). */
  partialUploadsRemoved: number;
  problems: FsckProblem[];
  repair: boolean;
  minAgeMs: number;
}

export interface FsckOptions {
  /** Remove orphan blobs, and index rows (then their blobs) whose blob is missing or corrupt. */
  repair: boolean;
  /** Unreferenced blobs and upload leftovers younger than this are not touched (see above). */
  minAgeMs: number;
  /** Read every blob to compare its sha256 with the recorded one (default true). */
  verifyChecksums?: boolean;
  /** Blobs checked at once (default 4). */
  concurrency?: number;
  now?: () => number;
}

const PAGE = 500;

function emptyReport(options: FsckOptions): FsckReport {
  return {
    instancesChecked: 0,
    checksumsVerified: 0,
    instancesWithoutChecksum: 0,
    rejectedInstances: 0,
    pendingDeletesFinished: 0,
    recompressedInstances: 0,
    conversionsUnderWay: 0,
    bytesRead: 0,
    blobsListed: 0,
    recentUnreferencedBlobs: 0,
    partialUploadsRemoved: 0,
    problems: [],
    repair: options.repair,
    minAgeMs: options.minAgeMs,
  };
}

/** Checks every indexed instance, then sweeps unreferenced blobs; with `repair`, fixes what it finds. */
export async function runFsck(blobs: BlobStore, catalog: Catalog, options: FsckOptions): Promise<FsckReport> {
  const report = emptyReport(options);
  await checkIndexedInstances(blobs, catalog, options, report);
  const converting = await checkConversions(blobs, catalog, options, report);
  const pending = await checkPendingDeletes(blobs, catalog, options, report);
  await sweepUnreferencedBlobs(blobs, catalog, options, report, new Set([...pending, ...converting]));
  return report;
}

/**
 * Recompressions journalled but never swapped in (storage lifecycle): younger than the threshold they
 * may be under way and are counted; older ones are `interrupted-conversion` problems, which --repair
 * gives up (the journal entry queues the converted blob for deletion, unless a row references it) and
 * deletes. Returns the journalled keys still there, which the orphan sweep leaves to this.
 */
async function checkConversions(blobs: BlobStore, catalog: Catalog, options: FsckOptions, report: FsckReport): Promise<Set<string>> {
  const left = new Set<string>();
  const cutoff = (options.now ?? Date.now)() - options.minAgeMs;
  for (const entry of await catalog.listConversions(100_000)) {
    if (Date.parse(entry.startedAt) > cutoff) {
      report.conversionsUnderWay += 1;
      left.add(entry.blobKey);
      continue;
    }
    const problem: FsckProblem = { kind: 'interrupted-conversion', blobKey: entry.blobKey, sopInstanceUid: entry.sopInstanceUid, detail: `recompression to ${entry.transferSyntaxUid} started ${entry.startedAt}, never swapped in (the instance keeps its stored file)`, action: 'reported' };
    if (options.repair) {
      try {
        await catalog.abandonConversions([entry.blobKey], new Date(cutoff + options.minAgeMs).toISOString());
        const { failed } = await deleteQueuedBlobs(blobs, catalog, [entry.blobKey]);
        problem.action = failed > 0 ? 'failed (delete)' : 'removed journal entry and blob';
      } catch (err) {
        problem.action = `failed (${errorCode(err)})`;
      }
    }
    if (problem.action === 'reported' || problem.action.startsWith('failed')) left.add(entry.blobKey);
    report.problems.push(problem);
  }
  return left;
}

/**
 * Blobs queued for deletion by a purge or DELETE whose deletion a crash interrupted: the blob still
 * there is a `pending-delete` problem (--repair deletes it, whatever its age: no index row wants it);
 * one already gone only needs its queue entry cleared (with --repair). Returns the keys still queued,
 * which the orphan sweep leaves to this.
 */
async function checkPendingDeletes(blobs: BlobStore, catalog: Catalog, options: FsckOptions, report: FsckReport): Promise<Set<string>> {
  const left = new Set<string>();
  const seen = new Set<string>();
  for (;;) {
    const keys = (await catalog.pendingBlobDeletes(PAGE + seen.size)).filter((key) => !seen.has(key));
    if (keys.length === 0) return left;
    for (const key of keys) seen.add(key);
    const present: string[] = [];
    for (const key of keys) {
      let info;
      try {
        info = await blobs.stat(key);
      } catch (err) {
        report.problems.push({ kind: 'pending-delete', blobKey: key, detail: `queued for deletion; ${errorCode(err)}`, action: 'reported' });
        left.add(key);
        continue;
      }
      if (info === undefined) {
        if (options.repair) {
          await catalog.clearPendingBlobDeletes([key]);
          report.pendingDeletesFinished += 1;
        }
        continue;
      }
      present.push(key);
    }
    if (!options.repair) {
      for (const key of present) {
        report.problems.push({ kind: 'pending-delete', blobKey: key, detail: 'blob of a purged or deleted instance, its deletion interrupted', action: 'reported' });
        left.add(key);
      }
      continue;
    }
    for (const key of present) {
      const problem: FsckProblem = { kind: 'pending-delete', blobKey: key, detail: 'blob of a purged or deleted instance, its deletion interrupted', action: 'reported' };
      try {
        const { failed } = await deleteQueuedBlobs(blobs, catalog, [key]);
        problem.action = failed > 0 ? 'failed (delete)' : 'removed blob';
        if (failed === 0) report.pendingDeletesFinished += 1;
      } catch (err) {
        problem.action = `failed (${errorCode(err)})`;
      }
      if (problem.action !== 'removed blob') left.add(key);
      report.problems.push(problem);
    }
  }
}

/**
 * Startup recovery after a crash: removes upload leftovers and orphan blobs older than the threshold.
 * Index rows are not touched here (telling a corrupt blob needs reading all of them: that is fsck's).
 */
export async function recoverStorage(blobs: BlobStore, catalog: Catalog, minAgeMs: number, now: () => number = Date.now): Promise<FsckReport> {
  const options: FsckOptions = { repair: true, minAgeMs, now };
  const report = emptyReport(options);
  const converting = await checkConversions(blobs, catalog, options, report);
  const pending = await checkPendingDeletes(blobs, catalog, options, report);
  await sweepUnreferencedBlobs(blobs, catalog, options, report, new Set([...pending, ...converting]));
  return report;
}

/** Problems left after the run: those --repair could not fix, or all of them without --repair. */
export function unresolvedProblems(report: FsckReport): FsckProblem[] {
  return report.problems.filter((p) => p.action === 'reported' || p.action.startsWith('failed'));
}

async function checkIndexedInstances(blobs: BlobStore, catalog: Catalog, options: FsckOptions, report: FsckReport): Promise<void> {
  const verify = options.verifyChecksums ?? true;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let after: number | undefined;
  for (;;) {
    const page = await catalog.listIndexedBlobs(after, PAGE);
    if (page.length === 0) return;
    after = page[page.length - 1]!.cursor;
    let next = 0;
    const worker = async () => {
      while (next < page.length) {
        const row = page[next++]!;
        const problem = await checkOne(blobs, row, verify, report);
        report.instancesChecked += 1;
        if (row.rejected) report.rejectedInstances += 1;
        if (row.originalTransferSyntaxUid !== undefined) report.recompressedInstances += 1;
        if (problem !== undefined) {
          problem.action = options.repair ? await repairRow(blobs, catalog, row) : 'reported';
          report.problems.push(problem);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, page.length) }, worker));
  }
}

async function checkOne(blobs: BlobStore, row: IndexedBlob, verify: boolean, report: FsckReport): Promise<FsckProblem | undefined> {
  const problem = (kind: ProblemKind, detail: string): FsckProblem => ({ kind, blobKey: row.blobKey, sopInstanceUid: row.sopInstanceUid, detail, action: 'reported' });
  if (row.checksum === undefined) report.instancesWithoutChecksum += 1;
  let info;
  try {
    info = await blobs.stat(row.blobKey);
  } catch (err) {
    return problem('unreadable-blob', errorCode(err));
  }
  if (info === undefined) return problem('missing-blob', `indexed ${row.blobSize} bytes, no blob`);
  if (info.size !== row.blobSize) return problem('size-mismatch', `indexed ${row.blobSize} bytes, blob has ${info.size}`);
  if (!verify || row.checksum === undefined) return undefined;
  let digest: string;
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of await blobs.get(row.blobKey)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    report.bytesRead += size;
    if (size !== row.blobSize) return problem('size-mismatch', `indexed ${row.blobSize} bytes, read ${size}`);
    digest = hash.digest('hex');
  } catch (err) {
    return problem('unreadable-blob', errorCode(err));
  }
  report.checksumsVerified += 1;
  if (digest !== row.checksum) return problem('checksum-mismatch', `sha256 indexed ${row.checksum.slice(0, 12)}…, blob ${digest.slice(0, 12)}…`);
  return undefined;
}

/**
 * The row goes first: a blob is never deleted while a row references it. The blob (corrupt, or
 * already gone) is then unreferenced and removed; the instance can be sent again and stores anew.
 */
async function repairRow(blobs: BlobStore, catalog: Catalog, row: IndexedBlob): Promise<string> {
  try {
    const removed = await catalog.removeInstance(row.sopInstanceUid, row.blobKey);
    if (!removed) return 'none: the row had changed meanwhile';
    if ((await catalog.referencedBlobKeys([row.blobKey])).size > 0) return 'removed index row';
    await blobs.delete(row.blobKey);
    return 'removed index row and blob';
  } catch (err) {
    return `failed (${errorCode(err)})`;
  }
}

async function sweepUnreferencedBlobs(blobs: BlobStore, catalog: Catalog, options: FsckOptions, report: FsckReport, queued: ReadonlySet<string> = new Set()): Promise<void> {
  const now = (options.now ?? Date.now)();
  const cutoff = now - options.minAgeMs;
  if (options.repair) report.partialUploadsRemoved = await blobs.removePartials(new Date(cutoff));
  let batch: { key: string; size: number; modifiedAt: Date }[] = [];
  const flush = async () => {
    const referenced = await catalog.referencedBlobKeys(batch.map((b) => b.key));
    for (const blob of batch) {
      if (referenced.has(blob.key) || queued.has(blob.key)) continue;
      if (blob.modifiedAt.getTime() > cutoff) {
        report.recentUnreferencedBlobs += 1;
        continue;
      }
      const problem: FsckProblem = { kind: 'orphan-blob', blobKey: blob.key, detail: `${blob.size} bytes, written ${blob.modifiedAt.toISOString()}`, action: 'reported' };
      if (options.repair) problem.action = await removeOrphan(blobs, catalog, blob.key);
      report.problems.push(problem);
    }
    batch = [];
  };
  for await (const blob of blobs.list()) {
    report.blobsListed += 1;
    batch.push(blob);
    if (batch.length >= PAGE) await flush();
  }
  if (batch.length > 0) await flush();
}

async function removeOrphan(blobs: BlobStore, catalog: Catalog, key: string): Promise<string> {
  try {
    // Asked again right before the delete: never remove a blob that has an index row.
    if ((await catalog.referencedBlobKeys([key])).size > 0) return 'none: indexed meanwhile';
    await blobs.delete(key);
    return 'removed blob';
  } catch (err) {
    return `failed (${errorCode(err)})`;
  }
}

/** Error codes only: messages of storage errors may carry paths, and paths carry keys. */
function errorCode(err: unknown): string {
  if (err instanceof AppError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown error';
}

/** The report as the plain-text tables the fsck script prints. */
export function formatFsckReport(report: FsckReport): string {
  const lines: string[] = [];
  const summary: [string, string | number][] = [
    ['indexed instances checked', report.instancesChecked],
    ['checksums verified (sha256)', report.checksumsVerified],
    ['instances without recorded checksum (size checked only)', report.instancesWithoutChecksum],
    ['rejected instances (hidden until restored or purged)', report.rejectedInstances],
    ['interrupted blob deletions finished (purge, DELETE, recompression)', report.repair ? report.pendingDeletesFinished : '– (with --repair)'],
    ['recompressed instances (lossless; original syntax in the index)', report.recompressedInstances],
    [`recompressions started less than ${Math.round(report.minAgeMs / 1000)} s ago (left alone: may be under way)`, report.conversionsUnderWay],
    ['bytes read', report.bytesRead],
    ['blobs listed', report.blobsListed],
    [`unreferenced blobs younger than ${Math.round(report.minAgeMs / 1000)} s (left alone: may be uploading)`, report.recentUnreferencedBlobs],
    ['interrupted-upload leftovers removed', report.repair ? report.partialUploadsRemoved : '– (with --repair)'],
    ['problems found', report.problems.length],
    ['problems left', unresolvedProblems(report).length],
  ];
  const width = Math.max(...summary.map(([label]) => label.length));
  for (const [label, value] of summary) lines.push(`${label.padEnd(width)}  ${value}`);
  if (report.problems.length > 0) {
    lines.push('');
    const rows = [['problem', 'blob key', 'SOP Instance UID', 'detail', 'action'], ...report.problems.map((p) => [p.kind, p.blobKey, p.sopInstanceUid ?? '–', p.detail, p.action])];
    const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
    rows.forEach((row, i) => {
      lines.push(row.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd());
      if (i === 0) lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
    });
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Runs `recoverStorage` in the background of a starting server (a sweep of a large bucket takes
 * long; ingest is safe meanwhile thanks to the age threshold) and logs what it did, counts only.
 */
export function startStorageRecovery(blobs: BlobStore, catalog: Catalog, minAgeMs: number, log: Logger): Promise<void> {
  return recoverStorage(blobs, catalog, minAgeMs).then(
    (report) => {
      const orphans = report.problems.filter((p) => p.kind === 'orphan-blob');
      const summary = {
        blobsListed: report.blobsListed,
        orphanBlobsRemoved: orphans.filter((p) => p.action === 'removed blob').length,
        orphanBlobsLeft: unresolvedProblems(report).length,
        partialUploadsRemoved: report.partialUploadsRemoved,
        recentUnreferencedBlobs: report.recentUnreferencedBlobs,
        interruptedDeletionsFinished: report.pendingDeletesFinished,
        minAgeSeconds: Math.round(minAgeMs / 1000),
      };
      const removedAny = summary.orphanBlobsRemoved + summary.partialUploadsRemoved + summary.interruptedDeletionsFinished > 0;
      log[removedAny || summary.orphanBlobsLeft > 0 ? 'warn' : 'info'](summary, 'storage recovery finished');
    },
    (err: unknown) => {
      log.warn({ err: { code: errorCode(err) } }, 'storage recovery failed; run npm run fsck');
    },
  );
}
