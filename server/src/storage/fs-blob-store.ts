/**
 * Blob store on a local folder: the key `a/b/c` is the file `<root>/a/b/c`.
 *
 * Atomicity comes from rename(2): a blob is streamed into `<root>/.tmp/` (same filesystem, so the
 * rename is atomic), fsynced, then renamed over its key. Readers see the old file or the complete
 * new one, never a partial one; a reader that already opened the old file keeps reading it. A fresh
 * key (PutOptions.fresh: nothing reads it before the put resolves) whose body fits one write batch
 * (1 MiB) is written in place instead.
 * One difference from S3: a key cannot be both a blob and a folder (`a` and `a/b`).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, opendir, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, NotFoundError } from '../errors.js';
import type { BlobInfo, BlobStore, ByteRange, ListedBlob, PutOptions } from './blob-store.js';
import { bodyChunks, unwrapBodyFailure } from './body-stream.js';
import { assertValidKey, assertValidRange, rangeLength, rangeOutsideBlob } from './validation.js';
import { ReadHandleCache } from './read-handle-cache.js';

/** Temp files older than this at startup belong to a crashed process and are removed. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** readInto reads at most this many bytes with synchronous calls (a series' instances: 0.5 MB CT, 130 KB at 256²). */
export const SYNC_READ_MAX_BYTES = 1 << 20;

/**
 * Synchronous file calls on the event loop (the small reads of readInto; the mkdir, open, write and close
 * of a small fresh put: one governor each) are only cheap while the files come from the page cache or a
 * fast disk. Below, "reads" stands for either. The governor keeps a moving average of how long they held the loop (each reading capped at 3×
 * `slowMs`, weight 1/8): when it passes `slowMs` (a cold spinning disk, a network mount: several slow
 * reads in a row) they stop for `pauseMs` and reads go through the thread pool again, where a slow disk
 * delays only the retrieve that waits for it; afterwards synchronous reads start again from a clean
 * average. One read that was slow only because the process was preempted mid-call (2 cores shared with
 * other work) cannot trip it: the first version paused on any single read over 4 ms and, with two servers
 * and a client on 2 cores, spent much of a benchmark on the thread-pool route.
 */
export class SyncCallGovernor {
  private average = 0;
  private pausedUntil = 0;

  constructor(
    private readonly slowMs = 2,
    private readonly pauseMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  allowed(): boolean {
    if (this.pausedUntil === 0) return true;
    if (this.now() < this.pausedUntil) return false;
    this.pausedUntil = 0;
    this.average = 0;
    return true;
  }

  /** A synchronous read took `ms`. */
  took(ms: number): void {
    this.average += (Math.min(ms, 3 * this.slowMs) - this.average) / 8;
    if (this.average > this.slowMs) this.pausedUntil = this.now() + this.pauseMs;
  }
}

export class FsBlobStore implements BlobStore {
  /** Key prefixes are folders (BlobStore.prefixFolders). */
  readonly prefixFolders = true;
  readonly root: string;
  private readonly tmpDir: string;
  /** Ranged reads (frames, tiles) reuse open handles: see read-handle-cache.ts. */
  private readonly readHandles = new ReadHandleCache((key) => this.openForRanges(key), { maxHandles: 256, idleMs: 30_000 });
  /** Whether readInto may read on the event loop just now. */
  private readonly syncReads = new SyncCallGovernor();
  /** Whether a small fresh put may make its metadata calls and its write on the event loop just now (putInPlace). */
  private readonly syncWrites = new SyncCallGovernor();

  private constructor(root: string) {
    this.root = path.resolve(root);
    this.tmpDir = path.join(this.root, '.tmp');
  }

  /** Creates the root folder (and its `.tmp`) if needed and clears stale temp files. */
  static async create(root: string): Promise<FsBlobStore> {
    const store = new FsBlobStore(root);
    try {
      await mkdir(store.tmpDir, { recursive: true });
    } catch (err) {
      throw storageFailure('create the blob folder', err);
    }
    await store.removeStaleTempFiles();
    return store;
  }

  /** The change feed said another process rewrote or removed `key` (or anything): reopen on the next read. */
  forgetCached(key?: string): void {
    if (key === undefined) this.readHandles.clear();
    else this.readHandles.invalidate(key);
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<BlobInfo> {
    const target = this.pathOf(key);
    const chunks = bodyChunks(body);
    if (options.fresh !== true) return this.putThroughTemp(key, target, [], chunks);
    // A fresh key whose whole body fits one write batch is written in place (putInPlace); a larger one
    // goes through a temp file like any put, so a crash mid-upload leaves a temp file the startup
    // cleanup removes, not a large partial blob waiting for the orphan sweep's day.
    const head: Buffer[] = [];
    let headBytes = 0;
    let whole = false;
    try {
      while (!whole && headBytes < WRITE_BATCH_BYTES) {
        const next = await chunks.next();
        if (next.done === true) whole = true;
        else {
          head.push(next.value);
          headBytes += next.value.length;
        }
      }
    } catch (err) {
      throw unwrapBodyFailure(err, (cause) => storageFailure('write', cause));
    }
    return whole ? this.putInPlace(key, target, head) : this.putThroughTemp(key, target, head, chunks);
  }

  /** Temp file, fsync, rename over the key, folder fsync: atomic for readers, whatever the size. */
  private async putThroughTemp(key: string, target: string, head: Buffer[], rest: AsyncIterator<Buffer>): Promise<BlobInfo> {
    const tmp = path.join(this.tmpDir, `${randomUUID()}.part`);
    try {
      const fd = await fdOpen(tmp, 'wx');
      let size: number;
      try {
        size = await fillDurably(fd, head, rest);
      } finally {
        await fdClose(fd);
      }
      const folder = path.dirname(target);
      const parents = await this.ensureFolder(folder);
      await rename(tmp, target);
      this.readHandles.invalidate(key);
      // The rename lives in the folder's metadata: sync it too, so an acknowledged blob survives a crash.
      await Promise.all([syncFolder(folder), this.syncEntries(folder, parents)]);
      return { key, size };
    } catch (err) {
      // A write that failed mid-body leaves the rest unread: ending its reader destroys the body, as the
      // for-await over it did before the head/rest split (a reader never started has nothing to end).
      await rest.return?.(undefined).catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
      throw unwrapBodyFailure(err, (cause) => storageFailure('write', cause));
    }
  }

  /**
   * A small blob of a fresh key (PutOptions.fresh: ingest's random keys), already read whole, written in
   * place: the file is created exclusively ('wx': an existing key fails here, untouched), written,
   * fsynced, and its folder fsynced for the new entry. Against temp file + rename this saves the rename
   * and a second metadata change to sync: on this machine's ext4 the rename and folder fsync took ~1 ms,
   * in place the folder fsync ~0.25 ms (the file's fsync has already committed the journal holding its
   * entry), of ~8 ms per C-STORE (docs/benchmarks.md, "Where one C-STORE's time goes"). A failure removes the
   * file this put created, never one it did not.
   *
   * The calls that only touch the page cache and the folder's metadata (mkdir, open with create, write of
   * at most one batch, close) are made synchronously on the event loop while the governor allows it
   * (`syncWrites`, timed for it), otherwise through the thread pool; the fsyncs (the real wait for the
   * disk) always go through the pool. Why: each thread-pool round trip cost ~30–80 µs of main-thread time
   * on 2 cores shared with the pool threads it wakes (the CPU profile of 50-instance STOW-RS requests
   * charged mkdir alone ~90 µs per instance), and a small put made eight to eleven of them; synchronously
   * it makes two or three (the file's fsync, its folder's and a new folder's parent's, side by side: see
   * below). Either way the promise resolves only once the file and its entries are durable.
   */
  private async putInPlace(key: string, target: string, chunks: Buffer[]): Promise<BlobInfo> {
    const folder = path.dirname(target);
    const now = this.syncWrites.allowed();
    const started = process.hrtime.bigint();
    let fd: number | undefined;
    let parents: string[];
    let size = 0;
    try {
      for (const chunk of chunks) size += chunk.length;
      if (now) {
        parents = this.ensureFolderNow(folder);
        fd = fs.openSync(target, 'wx');
        writeAllNow(fd, chunks, size);
      } else {
        parents = await this.ensureFolder(folder);
        fd = await fdOpen(target, 'wx');
        await writeAll(fd, chunks);
      }
    } catch (err) {
      await this.abandon(fd, target);
      throw storageFailure('write', err);
    } finally {
      if (now) this.syncWrites.took(Number(process.hrtime.bigint() - started) / 1e6);
    }
    // The file's fsync (its data and inode) and its folder's (its entry, and a new folder's entry in its
    // parent) run side by side: the put resolves, and the index row can publish the key, only once all
    // are done. A crash before that may leave the entry durable before the data: a partial file under a
    // key nothing references, an orphan like any interrupted put (docs/architecture.md, "Crash safety").
    // On ext4 both wait for the same journal commit, so this costs one commit instead of two in a row.
    const syncs = Promise.allSettled([fdSync(fd), now ? this.syncFolderNow(folder) : syncFolder(folder), this.syncEntries(folder, parents)]);
    const failed = (await syncs).find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    try {
      if (now) fs.closeSync(fd);
      else await fdClose(fd);
    } catch {
      // A failing close of a descriptor loses nothing (the data is durable, or the put fails below).
    }
    if (failed !== undefined) {
      await rm(target, { force: true }).catch(() => undefined);
      throw storageFailure('write', failed.reason);
    }
    this.readHandles.invalidate(key);
    return { key, size };
  }

  /** A failed putInPlace: closes and removes the file it created (only if it did create it). */
  private async abandon(fd: number | undefined, target: string): Promise<void> {
    if (fd === undefined) return;
    await fdClose(fd).catch(() => undefined);
    // Left behind on failure: an unreferenced file, swept as an orphan (docs/architecture.md, "Crash safety").
    await rm(target, { force: true }).catch(() => undefined);
  }

  /** syncFolder with the folder opened and closed synchronously (cheap metadata calls); the fsync through the pool. */
  private async syncFolderNow(folder: string): Promise<void> {
    const fd = fs.openSync(folder, 'r');
    try {
      await fdSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Shard folders that exist with their entries durable in their parents: no mkdir or sync for them again. */
  private readonly knownFolders = new Set<string>();

  /**
   * Makes `folder` exist and returns the folders whose fsync makes its entry durable: its parent, and
   * theirs up to the first folder known durable (a folder made here, or by a concurrent put, is an entry
   * in its parent); none once `folder` is known. The caller syncs them with `syncEntries` after the
   * blob's own fsync, or beside it (putInPlace): either way they share the journal commit that fsync
   * makes (ext4) and are cheap; synced right after the mkdir, on their own, they cost ~2.5 ms per new
   * folder here (measured). Ingest keeps a shard folder for 256 keys (archive.ts, BlobKeys), so a new
   * archive pays this once per 256 puts.
   */
  private async ensureFolder(folder: string): Promise<string[]> {
    if (this.knownFolders.has(folder)) return [];
    await mkdir(folder, { recursive: true });
    return this.entriesToSync(folder);
  }

  /** ensureFolder with a synchronous mkdir (putInPlace). */
  private ensureFolderNow(folder: string): string[] {
    if (this.knownFolders.has(folder)) return [];
    fs.mkdirSync(folder, { recursive: true });
    return this.entriesToSync(folder);
  }

  /** After the mkdir of `folder`: the folders to sync for its entry (see ensureFolder). */
  private entriesToSync(folder: string): string[] {
    const parents: string[] = [];
    for (let at = folder; at.startsWith(this.root + path.sep) && !(at !== folder && this.knownFolders.has(at)); at = path.dirname(at)) parents.push(path.dirname(at));
    if (parents.length === 0) this.remember(folder);
    return parents;
  }

  /** Syncs what ensureFolder returned, then remembers `folder` and the new folders above it as durable. */
  private async syncEntries(folder: string, parents: string[]): Promise<void> {
    if (parents.length === 0) return;
    await Promise.all(parents.map((parent) => (this.syncWrites.allowed() ? this.syncFolderNow(parent) : syncFolder(parent))));
    this.remember(folder);
    // Each synced parent below the root holds an entry synced just now, and its own entry was synced too.
    for (const parent of parents.slice(0, -1)) this.remember(parent);
  }

  private remember(folder: string): void {
    if (this.knownFolders.size > 100_000) this.knownFolders.clear();
    this.knownFolders.add(folder);
  }

  async get(key: string): Promise<Readable> {
    const { handle } = await this.openBlob(key);
    // Streams from the handle opened above: a concurrent overwrite or delete cannot change what we read.
    return handle.createReadStream();
  }

  async getRange(key: string, range: ByteRange): Promise<Buffer> {
    assertValidRange(range);
    const lease = await this.readHandles.acquire(key);
    try {
      const bytes = await readAt(lease.handle, range.start, rangeLength(range));
      if (bytes !== undefined) return bytes;
      // The file ended first: only now is its size worth a syscall, for the message.
      throw rangeOutsideBlob(range, (await lease.handle.stat()).size);
    } catch (err) {
      // EISDIR: the key names a folder of other blobs (open succeeds on a folder, the read does not).
      throw errorCode(err) === 'EISDIR' || errorCode((err as { cause?: unknown }).cause) === 'EISDIR' ? blobNotFound() : err;
    } finally {
      lease.release();
    }
  }

  /**
   * Open, read, close with plain file descriptors: no FileHandle object (whose open, close and garbage
   * collection cost more than the read of a 130 KB instance: CPU profile of whole-series retrieves) and no
   * entry in the handle cache, which a series larger than it would only churn.
   *
   * A small read is made with synchronous calls on the event loop while such reads stay quick on average
   * (see SyncCallGovernor): through the thread pool every open, read and close is a round trip whose dispatch
   * the profile of a 500-instance series retrieve charged ~30–35 µs of main-thread time each on 2 cores
   * (~50 ms of a ~125 ms request), where the three calls themselves take ~28 µs for a 130 KB file in the
   * page cache (docs/benchmarks.md, "Whole-series retrieve: four cuts").
   */
  async readInto(key: string, range: ByteRange, target: Buffer, targetOffset: number): Promise<void> {
    assertValidRange(range);
    const length = rangeLength(range);
    if (!Number.isInteger(targetOffset) || targetOffset < 0 || targetOffset + length > target.length) {
      throw new RangeError(`a target of ${target.length} bytes cannot take ${length} bytes at ${targetOffset}`);
    }
    const file = this.pathOf(key);
    if (length <= SYNC_READ_MAX_BYTES && this.syncReads.allowed()) {
      this.readIntoNow(file, range, length, target, targetOffset);
      return;
    }
    let fd: number;
    try {
      fd = await fdOpen(file, 'r');
    } catch (err) {
      throw isMissing(err) ? blobNotFound() : storageFailure('read', err);
    }
    try {
      let filled = 0;
      while (filled < length) {
        const bytesRead = await fdRead(fd, target, targetOffset + filled, length - filled, range.start + filled);
        // Files are replaced whole by rename, never truncated: the end of the file is the end of the blob.
        if (bytesRead === 0) throw rangeOutsideBlob(range, (await fdStat(fd)).size);
        filled += bytesRead;
      }
    } catch (err) {
      throw readFailure(err);
    } finally {
      // Not awaited: the bytes are in; a failing close of a read-only descriptor loses nothing.
      fs.close(fd, () => undefined);
    }
  }

  /** readInto with synchronous calls, timed for the governor; the same errors. */
  private readIntoNow(file: string, range: ByteRange, length: number, target: Buffer, targetOffset: number): void {
    const started = process.hrtime.bigint();
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw isMissing(err) ? blobNotFound() : storageFailure('read', err);
    }
    try {
      let filled = 0;
      while (filled < length) {
        const bytesRead = fs.readSync(fd, target, targetOffset + filled, length - filled, range.start + filled);
        if (bytesRead === 0) throw rangeOutsideBlob(range, fs.fstatSync(fd).size);
        filled += bytesRead;
      }
    } catch (err) {
      throw readFailure(err);
    } finally {
      try {
        fs.closeSync(fd);
      } catch {
        // A failing close of a read-only descriptor loses nothing.
      }
      this.syncReads.took(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const file = this.pathOf(key);
    try {
      const info = await stat(file);
      return info.isFile() ? { key, size: info.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw storageFailure('stat', err);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    this.readHandles.invalidate(key);
    try {
      await unlink(file);
    } catch (err) {
      // EISDIR: the key names a folder of other blobs, so there is no blob under it.
      if (isMissing(err) || errorCode(err) === 'EISDIR') return;
      throw storageFailure('delete', err);
    }
  }

  /**
   * Walks the folders depth first, one directory handle at a time (opendir streams entries, so a
   * shard folder of many files is never read whole). `.tmp` holds unfinished puts: not blobs.
   * Files whose relative path is not a valid key cannot have been written by `put` and are skipped.
   */
  async *list(): AsyncGenerator<ListedBlob> {
    const pending: string[] = [this.root];
    while (pending.length > 0) {
      const folder = pending.pop()!;
      let dir;
      try {
        dir = await opendir(folder);
      } catch (err) {
        if (isMissing(err)) continue;
        throw storageFailure('list', err);
      }
      for await (const entry of dir) {
        const file = path.join(folder, entry.name);
        if (entry.isDirectory()) {
          if (file !== this.tmpDir) pending.push(file);
          continue;
        }
        if (!entry.isFile()) continue;
        const key = path.relative(this.root, file).split(path.sep).join('/');
        if (!isValidKeyQuietly(key)) continue;
        const info = await stat(file).catch(() => undefined);
        // Deleted between the listing and the stat: no longer a blob.
        if (info === undefined) continue;
        yield { key, size: info.size, modifiedAt: info.mtime };
      }
    }
  }

  async removePartials(olderThan: Date): Promise<number> {
    return this.removeTempFilesBefore(olderThan.getTime());
  }

  async close(): Promise<void> {
    // Only the cached read handles are held between calls.
    this.readHandles.close();
  }

  /** The file of `key`; validation of the key is what keeps every path inside the root. */
  private pathOf(key: string): string {
    assertValidKey(key);
    const file = path.join(this.root, ...key.split('/'));
    if (!file.startsWith(this.root + path.sep)) throw new AppError('BAD_REQUEST', 'Invalid blob key');
    return file;
  }

  /**
   * Opens the blob for ranged reads, without the fstat of openBlob: a range past the end shows as a
   * short read (readAt), and a read of a few KiB should not pay a third thread-pool trip.
   */
  private async openForRanges(key: string): Promise<FileHandle> {
    const file = this.pathOf(key);
    try {
      return await open(file, 'r');
    } catch (err) {
      throw isMissing(err) ? blobNotFound() : storageFailure('read', err);
    }
  }

  /** Opens the blob for reading; the caller closes the handle. */
  private async openBlob(key: string): Promise<{ handle: FileHandle; size: number }> {
    const file = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      throw isMissing(err) ? blobNotFound() : storageFailure('read', err);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw blobNotFound();
      return { handle, size: info.size };
    } catch (err) {
      await handle.close();
      throw err instanceof AppError ? err : storageFailure('read', err);
    }
  }

  /** Best effort: a leftover temp file wastes space but is never visible as a blob. */
  private async removeStaleTempFiles(): Promise<void> {
    await this.removeTempFilesBefore(Date.now() - STALE_TEMP_MS);
  }

  /**
   * Temp files not written to since `cutoffMs`. A live put writes its temp file continuously (its
   * mtime moves with every batch), so an old mtime means its writer is gone or stalled that long.
   */
  private async removeTempFilesBefore(cutoffMs: number): Promise<number> {
    const names = await readdir(this.tmpDir).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      const file = path.join(this.tmpDir, name);
      const info = await stat(file).catch(() => undefined);
      if (info && info.isFile() && info.mtimeMs < cutoffMs) {
        const gone = await rm(file).then(() => true, () => false);
        if (gone) removed += 1;
      }
    }
    return removed;
  }
}

/** Chunks are gathered up to this many bytes and written with one writev: fewer syscalls per blob. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * Writes `head` and then the rest of the body's chunks into the open file `fd` in batches and fsyncs
 * it; returns the size. Plain file descriptors, not fs/promises FileHandles: ingest writes thousands of
 * small files, and FileHandle objects cost measurably more CPU per file (profiled: the largest single
 * item of small-instance STOW).
 */
async function fillDurably(fd: number, head: Buffer[], rest: AsyncIterator<Buffer> | undefined): Promise<number> {
  let size = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const add = async (chunk: Buffer): Promise<void> => {
    batch.push(chunk);
    batchBytes += chunk.length;
    size += chunk.length;
    if (batchBytes >= WRITE_BATCH_BYTES) {
      await writeAll(fd, batch);
      batch = [];
      batchBytes = 0;
    }
  };
  for (const chunk of head) await add(chunk);
  if (rest !== undefined) for (let next = await rest.next(); next.done !== true; next = await rest.next()) await add(next.value);
  if (batch.length > 0) await writeAll(fd, batch);
  // Data must be on disk before the rename (or the index row) publishes it: otherwise a crash can leave
  // the key naming an empty or truncated file (delayed allocation on ext4/xfs persists the rename first).
  await fdSync(fd);
  return size;
}

/** writeAll with synchronous calls (putInPlace while the governor allows them); `size` is the chunks' total. */
function writeAllNow(fd: number, chunks: Buffer[], size: number): void {
  const written = size === 0 ? 0 : fs.writevSync(fd, chunks);
  if (written === size) return;
  // Short write (rare: signals, quotas): the rest one piece at a time.
  const rest = Buffer.concat(chunks, size).subarray(written);
  for (let at = 0; at < rest.length; ) at += fs.writeSync(fd, rest, at);
}

async function writeAll(fd: number, chunks: Buffer[]): Promise<void> {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const { bytesWritten } = await fdWritev(fd, chunks);
  if (bytesWritten === total) return;
  // Short write (rare: signals, quotas): finish the rest one buffer at a time.
  let remaining = Buffer.concat(chunks, total).subarray(bytesWritten);
  while (remaining.length > 0) {
    const { bytesWritten: written } = await fdWrite(fd, remaining);
    remaining = remaining.subarray(written);
  }
}

/**
 * `length` bytes at `position` (looping only if the kernel returns fewer than asked), or undefined when
 * the file ends first: the range is outside the blob.
 */
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer | undefined> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  try {
    while (filled < length) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
      // Files are replaced whole by rename, never truncated: the end of the file is the end of the blob.
      if (bytesRead === 0) return undefined;
      filled += bytesRead;
    }
  } catch (err) {
    throw err instanceof AppError || errorCode(err) === 'EISDIR' ? err : storageFailure('read', err);
  }
  return buffer;
}

async function syncFolder(folder: string): Promise<void> {
  const fd = await fdOpen(folder, 'r');
  try {
    await fdSync(fd);
  } finally {
    await fdClose(fd);
  }
}

const fdOpen = promisify(fs.open) as (path: string, flags: string) => Promise<number>;
const fdClose = promisify(fs.close);
/** fs.read as a promise of the bytes read (util.promisify's version resolves to { bytesRead, buffer }). */
function fdRead(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
}
const fdStat = promisify(fs.fstat);
const fdSync = promisify(fs.fsync);
const fdWritev = promisify(fs.writev);
const fdWrite = promisify(fs.write);

function isValidKeyQuietly(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

function errorCode(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** ENOTDIR: a parent segment of the key is a blob, so nothing can exist under the key. */
function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** What a failed read of an opened blob means. EISDIR: the key names a folder of other blobs (open succeeds on a folder, the read does not). */
function readFailure(err: unknown): Error {
  if (errorCode(err) === 'EISDIR') return blobNotFound();
  return err instanceof AppError ? err : storageFailure('read', err);
}

function blobNotFound(): NotFoundError {
  return new NotFoundError('Blob not found');
}

/** The message names the OS error code only: paths would carry the key (UIDs) into client answers. */
function storageFailure(action: string, cause: unknown): AppError {
  const code = errorCode(cause);
  const reason = typeof code === 'string' ? code : cause instanceof Error ? cause.name : 'unknown error';
  return new AppError('STORAGE_FAILURE', `File blob store could not ${action} (${reason})`, { cause });
}
