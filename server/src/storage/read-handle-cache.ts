/**
 * Open read handles of recently read blob files, kept for reuse.
 *
 * Why: a WADO-RS frame or WSI tile is one small ranged read, but opening the file for it costs three
 * trips through libuv's thread pool (open, fstat, close) around the one read; measured here, 0.2 ms
 * per request idle and ~0.7 ms under 16 concurrent requests, more than the read itself. Viewers read
 * many frames of the same few files (a multi-frame instance, a slide's pyramid levels), so a small
 * LRU of handles removes most of that.
 *
 * Safe because a handle reads the inode it opened: a put renames a new file over the key, so the
 * cache drops the key on put and delete (this process), and on a change another process announces for
 * the key (the change feed: `FsBlobStore.forgetCached`); until that arrives a file removed by another
 * process is read as it was, which is what a reader that opened it just before would see too. A handle in use is
 * closed only once its last user releases it. Idle handles are closed after `idleMs`.
 *
 * Hand-written rather than lru-cache's `dispose`: eviction there would close a handle another request
 * is still reading from; the leases here count their users.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface LeasedHandle {
  handle: FileHandle;
  /** Every lease must be released exactly once. */
  release(): void;
}

interface Entry {
  key: string;
  opening: Promise<FileHandle>;
  opened?: FileHandle;
  users: number;
  lastUsed: number;
  /** Dropped from the map (evicted, invalidated, cache closed): close when the last user releases. */
  retired: boolean;
}

export interface ReadHandleCacheOptions {
  /** Most handles kept open (in use or idle). */
  maxHandles: number;
  /** Idle handles older than this are closed by a periodic sweep. */
  idleMs: number;
}

export class ReadHandleCache {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    /** Opens the file of a key for reading; throws the store's own errors. */
    private readonly openFile: (key: string) => Promise<FileHandle>,
    private readonly options: ReadHandleCacheOptions,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(Date.now() - options.idleMs), Math.max(1000, options.idleMs / 2));
    this.sweeper.unref();
  }

  async acquire(key: string): Promise<LeasedHandle> {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { key, opening: this.openFile(key), users: 0, lastUsed: Date.now(), retired: false };
      this.entries.set(key, entry);
      this.evictOverflow();
    } else {
      // Map order is LRU order: move to the back.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    entry.users += 1;
    let opened: FileHandle;
    try {
      opened = await entry.opening;
    } catch (err) {
      entry.users -= 1;
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
    entry.opened = opened;
    let released = false;
    return {
      handle: opened,
      release: () => {
        if (released) return;
        released = true;
        entry.users -= 1;
        entry.lastUsed = Date.now();
        if (entry.retired && entry.users === 0) void closeQuietly(entry);
      },
    };
  }

  /** Forget `key` (its file was replaced or removed by this process). */
  invalidate(key: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.retire(entry);
  }

  /** Forgets every key (another process may have replaced any file); in-use handles close on release. */
  clear(): void {
    for (const entry of [...this.entries.values()]) this.retire(entry);
  }

  /** Closes every handle (those in use when their users release them). */
  close(): void {
    clearInterval(this.sweeper);
    for (const entry of [...this.entries.values()]) this.retire(entry);
  }

  get size(): number {
    return this.entries.size;
  }

  private retire(entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    entry.retired = true;
    if (entry.users === 0) void closeQuietly(entry);
  }

  private evictOverflow(): void {
    for (const entry of this.entries.values()) {
      if (this.entries.size <= this.options.maxHandles) return;
      this.retire(entry);
    }
  }

  private closeIdle(cutoff: number): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.users === 0 && entry.lastUsed < cutoff) this.retire(entry);
    }
  }
}

async function closeQuietly(entry: Entry): Promise<void> {
  try {
    const opened = entry.opened ?? (await entry.opening);
    await opened.close();
  } catch {
    // A failed open has nothing to close; a failed close leaves nothing we could do.
  }
}
