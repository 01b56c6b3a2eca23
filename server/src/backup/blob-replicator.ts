/**
 * The second copy of every blob (docs/operations.md, "Backup and restore"): each blob the index
 * references is copied, byte for byte and checked against the sha256 recorded at ingest, to the backup
 * store (any BlobStore: a folder on another disk, an S3 bucket elsewhere), asynchronously, through the
 * job queue (pathology/job-queue.ts: in-process, or BullMQ shared by several processes) as
 * `{ kind: 'blob-copy', jobId: <blob key> }`.
 *
 * The outbox rows (backup-store.ts) come from the index itself, after the instance is durably indexed:
 * a pass over the instances (`Catalog.listIndexedBlobs`) adds a pending row for every key it does not
 * know. The pass runs soon after each stored instance (`nudge`, from the archive's `instanceStored`), on
 * every poll from the highest instance seen (minus a look-back for PostgreSQL ids committed out of
 * order), and over the whole index at start and every PACS_BACKUP_RECONCILE_MINUTES. So a crash at any
 * moment (before the row, before the message, during the copy) loses no pending copy: the row, or the
 * index row it comes from, is still there, and a row whose lease ran out is taken again.
 *
 * Deletions: the whole-index pass also finds rows whose key no index row references any more (a purge,
 * a DELETE, a recompressed original): they become `removed`, a tombstone is written beside the copy
 * (backup-layout.ts) and the copy is kept PACS_BACKUP_KEEP_DELETED_DAYS, then deleted. Hospitals expect
 * a backup to hold deleted images for a while (an erroneous DELETE is undone by a restore), and a
 * restore must not bring back on its own what was deleted on purpose: the tombstone says so.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import { AppError, isAppError } from '../errors.js';
import type { JobQueue } from '../pathology/job-queue.js';
import type { BlobStore } from '../storage/blob-store.js';
import { tombstoneKey } from './backup-layout.js';
import type { BackupStore, CopyEntry } from './backup-store.js';

export type CopyMessage = { kind: 'blob-copy'; jobId: string };

export interface ReplicatorOptions {
  pollSeconds: number;
  reconcileMinutes: number;
  keepDeletedDays: number;
  concurrency: number;
}

export interface ReplicaVerification {
  indexedBlobs: number;
  present: number;
  /** Indexed blobs with no copy yet (pending ones among them). */
  missing: number;
  pending: number;
  sizeMismatch: number;
  checksumMismatch: number;
  checksumsVerified: number;
  /** Up to 100 problems: blob key and what is wrong (no patient data). */
  problems: Array<{ blobKey: string; problem: 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'unreadable' }>;
}

const PAGE = 500;
/** PostgreSQL ids are taken before commit: a transaction may commit after a higher id was seen. */
const LOOKBACK_IDS = 200;
const LEASE_MS = 10 * 60 * 1000;

function errorText(err: unknown): string {
  if (isAppError(err)) return `${err.code}: ${err.message}`;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}

/** Passes bytes through while counting and hashing them. */
function hashing(): { stream: Transform; result: () => { size: number; sha256: string } } {
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

async function sha256Of(stream: Readable): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

export class BlobReplicator {
  private timer: NodeJS.Timeout | undefined;
  private nudgeTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private highestSeen: number | undefined;
  private lastFullPass = 0;
  private closed = false;
  private again = false;
  private forceFull = false;
  private lastPassError: string | undefined;

  constructor(
    private readonly store: BackupStore,
    private readonly catalog: Catalog,
    private readonly primary: BlobStore,
    private readonly replica: BlobStore,
    private readonly queue: JobQueue<CopyMessage>,
    private readonly log: Logger,
    private readonly options: ReplicatorOptions,
  ) {}

  /** Takes copy messages in this process and starts the passes (the first, over the whole index, now). */
  async start(): Promise<void> {
    // Copies that failed before a restart are tried again now (the cause may be what the restart fixed).
    await this.store.retryAllNow();
    await this.queue.startWorkers(this.handle, this.options.concurrency);
    this.timer = setInterval(() => void this.poll(), this.options.pollSeconds * 1000);
    this.timer.unref();
    void this.poll();
  }

  /** An instance was indexed: look for new keys shortly (many instances of one upload: one pass). */
  nudge(): void {
    if (this.closed || this.nudgeTimer !== undefined) return;
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined;
      void this.poll();
    }, 200);
    this.nudgeTimer.unref();
  }

  /** One pass at a time: new keys (whole index when due), deletions, retention, due copies queued. */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // Asked during a pass (an instance stored meanwhile): one more pass after it.
    if (this.polling !== undefined) this.again = true;
    this.polling ??= (async () => {
      const now = Date.now();
      const full = this.forceFull || now - this.lastFullPass >= this.options.reconcileMinutes * 60_000;
      try {
        await this.addNewKeys(full ? undefined : this.highestSeen);
        if (full) {
          await this.findRemovals();
          await this.dropExpiredCopies(now);
          this.lastFullPass = now;
        }
        await this.queueDue();
        this.lastPassError = undefined;
      } catch (err) {
        this.lastPassError = errorText(err);
        this.log.warn({ err: { type: (err as Error).name, code: (err as { code?: string }).code } }, 'backup: a replication pass failed; it runs again at the next poll');
      } finally {
        if (full) this.forceFull = false;
      }
    })().finally(() => {
      this.polling = undefined;
      if (this.again) {
        this.again = false;
        void this.poll();
      }
    });
    return this.polling;
  }

  /** A pass over the whole index now (new keys and deletions), as the timer makes every PACS_BACKUP_RECONCILE_MINUTES. */
  async reconcile(): Promise<void> {
    this.forceFull = true;
    while (this.forceFull && !this.closed) await this.poll();
  }

  /** Why the last pass failed (index unreachable…), or undefined. */
  get passError(): string | undefined {
    return this.lastPassError;
  }

  /** Waits until no copy is pending or `timeoutMs` passed; true when none is pending (tests, restore checks). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.poll();
      if ((await this.store.counts()).pending === 0) return true;
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async addNewKeys(after: number | undefined): Promise<void> {
    let cursor = after === undefined ? undefined : Math.max(0, after - LOOKBACK_IDS);
    for (;;) {
      const page = await this.catalog.listIndexedBlobs(cursor, PAGE);
      if (page.length === 0) return;
      const known = await this.store.knownKeys(page.map((blob) => blob.blobKey));
      const fresh = page.filter((blob) => !known.has(blob.blobKey));
      await this.store.addPending(fresh.map((blob) => ({ blobKey: blob.blobKey, size: blob.blobSize, checksum: blob.checksum })));
      cursor = page[page.length - 1]!.cursor;
      this.highestSeen = Math.max(this.highestSeen ?? 0, cursor);
      if (page.length < PAGE) return;
    }
  }

  private async findRemovals(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const keys = await this.store.livePage(after, PAGE);
      if (keys.length === 0) return;
      const referenced = await this.catalog.referencedBlobKeys(keys);
      const gone = keys.filter((key) => !referenced.has(key));
      const copied = await this.store.markRemoved(gone);
      const removedAt = new Date().toISOString();
      for (const key of copied) {
        await this.replica.put(tombstoneKey(key), Readable.from([Buffer.from(JSON.stringify({ removedAt }))]));
      }
      if (gone.length > 0) this.log.info({ removed: gone.length, copiesKeptDays: this.options.keepDeletedDays }, 'backup: blobs no longer indexed; their copies are kept for the retention');
      after = keys[keys.length - 1];
      if (keys.length < PAGE) return;
    }
  }

  private async dropExpiredCopies(now: number): Promise<void> {
    const before = now - this.options.keepDeletedDays * 24 * 3600 * 1000;
    for (;;) {
      const keys = await this.store.dueRemovals(before, PAGE);
      if (keys.length === 0) return;
      for (const key of keys) {
        await this.replica.delete(key);
        await this.replica.delete(tombstoneKey(key));
      }
      await this.store.forget(keys);
      this.log.info({ deleted: keys.length }, 'backup: copies of deleted blobs past their retention deleted from the backup store');
      if (keys.length < PAGE) return;
    }
  }

  private async queueDue(): Promise<void> {
    const keys = await this.store.due(Date.now(), 1000);
    if (keys.length > 0) await this.queue.add(keys.map((jobId) => ({ kind: 'blob-copy' as const, jobId })));
  }

  private backoffMs(attempts: number): number {
    return Math.min(30_000 * 2 ** Math.max(0, attempts - 1), 3600_000);
  }

  /** The queue's handler: one attempt at one copy. Never throws (failures are recorded in the row). */
  handle = async (message: CopyMessage): Promise<void> => {
    if (this.closed) return;
    let entry: CopyEntry | undefined;
    try {
      entry = await this.store.claim(message.jobId, Date.now(), LEASE_MS);
    } catch {
      return;
    }
    if (entry === undefined) return;
    try {
      const referenced = await this.catalog.referencedBlobKeys([entry.blobKey]);
      if (!referenced.has(entry.blobKey)) {
        // Deleted before it was copied: nothing to keep.
        await this.store.markRemoved([entry.blobKey]);
        return;
      }
      await this.copy(entry);
      await this.store.markCopied(entry.blobKey);
    } catch (err) {
      const text = errorText(err);
      this.log.warn({ err: { type: (err as Error).name, code: (err as { code?: string }).code }, attempts: entry.attempts }, 'backup: a blob copy failed; it will be retried');
      await this.store.markAttemptFailed(entry.blobKey, text, Date.now() + this.backoffMs(entry.attempts)).catch(() => undefined);
    }
  };

  /** A copy already there and whole is kept; otherwise the primary's bytes are copied and checked. */
  private async copy(entry: CopyEntry): Promise<void> {
    const existing = await this.replica.stat(entry.blobKey);
    if (existing !== undefined && existing.size === entry.size) {
      if (entry.checksum === undefined) return;
      const { sha256 } = await sha256Of(await this.replica.get(entry.blobKey));
      if (sha256 === entry.checksum) return;
    }
    const source = await this.primary.get(entry.blobKey);
    const counter = hashing();
    source.on('error', (err) => counter.stream.destroy(err));
    try {
      await this.replica.put(entry.blobKey, source.pipe(counter.stream));
    } catch (err) {
      source.destroy();
      counter.stream.destroy();
      throw err;
    }
    const { size, sha256 } = counter.result();
    if (size !== entry.size || (entry.checksum !== undefined && sha256 !== entry.checksum)) {
      await this.replica.delete(entry.blobKey).catch(() => undefined);
      throw new AppError('STORAGE_FAILURE', 'The primary blob does not match the size or sha256 recorded at ingest (run npm run fsck)');
    }
  }

  /**
   * fsck of the copies: every indexed blob has a copy of its size on the backup store (and, with
   * `checksums`, of its sha256). Pages through the index; bounded memory.
   */
  async verify(checksums: boolean): Promise<ReplicaVerification> {
    const report: ReplicaVerification = { indexedBlobs: 0, present: 0, missing: 0, pending: 0, sizeMismatch: 0, checksumMismatch: 0, checksumsVerified: 0, problems: [] };
    const problem = (blobKey: string, kind: ReplicaVerification['problems'][number]['problem']) => {
      if (report.problems.length < 100) report.problems.push({ blobKey, problem: kind });
    };
    let cursor: number | undefined;
    for (;;) {
      const page = await this.catalog.listIndexedBlobs(cursor, PAGE);
      for (const blob of page) {
        report.indexedBlobs += 1;
        let info;
        try {
          info = await this.replica.stat(blob.blobKey);
        } catch {
          problem(blob.blobKey, 'unreadable');
          continue;
        }
        if (info === undefined) {
          report.missing += 1;
          const entry = await this.store.get(blob.blobKey);
          if (entry?.state === 'pending' || entry === undefined) report.pending += 1;
          else problem(blob.blobKey, 'missing');
          continue;
        }
        if (info.size !== blob.blobSize) {
          report.sizeMismatch += 1;
          problem(blob.blobKey, 'size-mismatch');
          continue;
        }
        report.present += 1;
        if (checksums && blob.checksum !== undefined) {
          const { sha256 } = await sha256Of(await this.replica.get(blob.blobKey));
          report.checksumsVerified += 1;
          if (sha256 !== blob.checksum) {
            report.checksumMismatch += 1;
            problem(blob.blobKey, 'checksum-mismatch');
          }
        }
      }
      if (page.length < PAGE) return report;
      cursor = page[page.length - 1]!.cursor;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.nudgeTimer !== undefined) clearTimeout(this.nudgeTimer);
    await this.polling;
    await this.queue.close();
  }
}
