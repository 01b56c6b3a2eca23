import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReadHandleCache } from './read-handle-cache.js';

/** Opens real files and records every open and close, so the tests see what the cache does to the OS. */
class CountingOpener {
  opens: string[] = [];
  closes: string[] = [];
  constructor(private readonly dir: string) {}
  readonly open = async (key: string): Promise<FileHandle> => {
    this.opens.push(key);
    const handle = await open(path.join(this.dir, key), 'r');
    const realClose = handle.close.bind(handle);
    handle.close = async () => {
      this.closes.push(key);
      await realClose();
    };
    return handle;
  };
}

describe('open read handles reused across ranged reads', () => {
  let dir: string;
  let opener: CountingOpener;
  let cache: ReadHandleCache | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'handles-'));
    for (const name of ['a', 'b', 'c']) await writeFile(path.join(dir, name), `content of ${name}`);
    opener = new CountingOpener(dir);
  });
  afterEach(async () => {
    cache?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('opens a file once for many reads, including concurrent ones', async () => {
    cache = new ReadHandleCache(opener.open, { maxHandles: 8, idleMs: 60_000 });
    const leases = await Promise.all(Array.from({ length: 10 }, () => cache!.acquire('a')));
    expect(opener.opens).toEqual(['a']);
    const bytes = Buffer.alloc(7);
    await leases[3]!.handle.read(bytes, 0, 7, 0);
    expect(bytes.toString()).toBe('content');
    for (const lease of leases) lease.release();
    await (await cache.acquire('a')).release();
    expect(opener.opens).toEqual(['a']);
    expect(opener.closes).toEqual([]);
  });

  it('closes the least recently used idle handle when over the limit, never one in use', async () => {
    cache = new ReadHandleCache(opener.open, { maxHandles: 2, idleMs: 60_000 });
    const a = await cache.acquire('a');
    (await cache.acquire('b')).release();
    (await cache.acquire('c')).release(); // over the limit: 'a' is oldest but in use, so it is retired, not closed
    await settle();
    expect(opener.closes).toEqual([]);
    const bytes = Buffer.alloc(10);
    await a.handle.read(bytes, 0, 10, 0);
    expect(bytes.toString()).toBe('content of');
    a.release();
    await settle();
    expect(opener.closes).toEqual(['a']);
    expect(cache.size).toBe(2);
  });

  it('reopens after invalidate, closing the old handle once its reader is done', async () => {
    cache = new ReadHandleCache(opener.open, { maxHandles: 8, idleMs: 60_000 });
    const old = await cache.acquire('a');
    cache.invalidate('a');
    await writeFile(path.join(dir, 'a.new'), 'replaced!');
    await rm(path.join(dir, 'a'));
    await import('node:fs/promises').then((fs) => fs.rename(path.join(dir, 'a.new'), path.join(dir, 'a')));
    const fresh = await cache.acquire('a');
    expect((await fresh.handle.stat()).size).toBe('replaced!'.length);
    expect(opener.opens).toEqual(['a', 'a']);
    expect(opener.closes).toEqual([]);
    old.release();
    fresh.release();
    await settle();
    expect(opener.closes).toEqual(['a']);
  });

  it('does not remember a failed open: the next read tries again', async () => {
    cache = new ReadHandleCache(opener.open, { maxHandles: 8, idleMs: 60_000 });
    await expect(cache.acquire('missing')).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(path.join(dir, 'missing'), 'here now');
    const lease = await cache.acquire('missing');
    expect((await lease.handle.stat()).size).toBe(8);
    lease.release();
  });

  it('closes idle handles after the idle time, and everything on close', async () => {
    cache = new ReadHandleCache(opener.open, { maxHandles: 8, idleMs: 1000 });
    (await cache.acquire('a')).release();
    const b = await cache.acquire('b');
    await new Promise((resolve) => setTimeout(resolve, 2200));
    expect(opener.closes).toEqual(['a']);
    cache.close();
    await settle();
    expect(opener.closes).toEqual(['a']);
    b.release();
    await settle();
    expect(opener.closes).toEqual(['a', 'b']);
  });
});

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20));
}
