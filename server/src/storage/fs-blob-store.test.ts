import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectAppError, failingStream, rejectionOf, runBlobStoreContract, streamOf } from './blob-store.contract.js';
import { createBlobStore } from './create-blob-store.js';
import { FsBlobStore, SYNC_READ_MAX_BYTES, SyncCallGovernor } from './fs-blob-store.js';

async function tempFolder(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'fs-blob-store-'));
}

runBlobStoreContract('FsBlobStore', async () => {
  const dir = await tempFolder();
  const store = await FsBlobStore.create(path.join(dir, 'blobs'));
  return {
    store,
    teardown: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('FsBlobStore', () => {
  let dir: string;
  let root: string;
  let store: FsBlobStore;
  const tempFiles = (): Promise<string[]> => readdir(path.join(root, '.tmp'));

  beforeEach(async () => {
    dir = await tempFolder();
    root = path.join(dir, 'nested', 'blobs');
    store = await FsBlobStore.create(root);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is what createBlobStore builds for an "fs" configuration', async () => {
    const built = await createBlobStore({ kind: 'fs', root: path.join(dir, 'other') });
    expect(built).toBeInstanceOf(FsBlobStore);
    expect(await readdir(path.join(dir, 'other'))).toEqual(['.tmp']);
  });

  it('creates its root folder and keeps each blob as a plain file named by its key', async () => {
    await store.put('1.2.3/4.5.6/7.8.9.dcm', streamOf(Buffer.from('DICM')));
    expect(await readFile(path.join(root, '1.2.3', '4.5.6', '7.8.9.dcm'), 'utf8')).toBe('DICM');
  });

  it('refuses keys that would escape its root, and writes nothing outside it', async () => {
    for (const key of ['../escaped', 'a/../../escaped', '/tmp/escaped', '../../nested/escaped', '.tmp/escaped']) {
      await expectAppError(store.put(key, streamOf(Buffer.from('x'))), 'BAD_REQUEST');
      await expectAppError(store.get(key), 'BAD_REQUEST');
      await expectAppError(store.getRange(key, { start: 0, end: 0 }), 'BAD_REQUEST');
    }
    expect(await readdir(dir)).toEqual(['nested']);
    expect((await readdir(root)).sort()).toEqual(['.tmp']);
  });

  it('leaves no temp file behind after a success, a failing body, or a failing write', async () => {
    await store.put('ok', streamOf(randomBytes(10_000)));
    await rejectionOf(store.put('broken', failingStream(randomBytes(100_000), new Error('boom'))));
    // "ok" is a file, so "ok/child" cannot be created: the write itself fails.
    const err = await expectAppError(store.put('ok/child', streamOf(randomBytes(10_000))), 'STORAGE_FAILURE');
    expect(err.message).not.toContain('ok/child');
    expect(await tempFiles()).toEqual([]);
    expect(await store.stat('broken')).toBeUndefined();
  });

  it('removes stale temp files at startup but keeps recent ones', async () => {
    const stale = path.join(root, '.tmp', 'stale.part');
    const recent = path.join(root, '.tmp', 'recent.part');
    await writeFile(stale, 'old');
    await writeFile(recent, 'new');
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    await FsBlobStore.create(root);
    expect(await tempFiles()).toEqual(['recent.part']);
  });

  it('removes leftovers of interrupted puts older than the cutoff on request, and only those', async () => {
    const old = path.join(root, '.tmp', 'killed-writer.part');
    const live = path.join(root, '.tmp', 'live-writer.part');
    await writeFile(old, 'half a file');
    await writeFile(live, 'still arriving');
    const tenMinutesAgo = new Date(Date.now() - 10 * 60 * 1000);
    await utimes(old, tenMinutesAgo, tenMinutesAgo);
    await store.put('kept/blob.dcm', streamOf(Buffer.from('complete')));
    expect(await store.removePartials(new Date(Date.now() - 60 * 1000))).toBe(1);
    expect(await tempFiles()).toEqual(['live-writer.part']);
    expect(await readFile(path.join(root, 'kept', 'blob.dcm'), 'utf8')).toBe('complete');
  });

  it('does not list temp files or files whose names cannot be keys', async () => {
    await writeFile(path.join(root, '.tmp', 'x.part'), 'partial');
    await writeFile(path.join(root, 'not a key'), 'stray');
    await store.put('a/b.dcm', streamOf(Buffer.from('blob')));
    const keys: string[] = [];
    for await (const blob of store.list()) keys.push(blob.key);
    expect(keys).toEqual(['a/b.dcm']);
  });

  it('treats a folder of blobs as no blob', async () => {
    await store.put('folder/inside', streamOf(Buffer.from('x')));
    expect(await store.stat('folder')).toBeUndefined();
    await expectAppError(store.get('folder'), 'NOT_FOUND');
    await expect(store.delete('folder')).resolves.toBeUndefined();
    expect((await stat(path.join(root, 'folder', 'inside'))).size).toBe(1);
  });

  it('writes a small fresh blob in place: no temp file, and a key that exists is refused with its blob kept as it was', async () => {
    const key = 'ab/cd/fresh.dcm';
    const data = randomBytes(70_000);
    const seenTemp: string[][] = [];
    const putting = store.put(key, streamOf(data, 10_000, 5), { fresh: true });
    while (!(await Promise.race([putting.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5))]))) seenTemp.push(await tempFiles());
    expect(await putting).toEqual({ key, size: data.length });
    expect(seenTemp.flat()).toEqual([]);
    expect((await readFile(path.join(root, 'ab', 'cd', 'fresh.dcm'))).equals(data)).toBe(true);

    const err = await expectAppError(store.put(key, streamOf(randomBytes(500)), { fresh: true }), 'STORAGE_FAILURE');
    expect(err.message).not.toContain('fresh.dcm');
    expect((await readFile(path.join(root, 'ab', 'cd', 'fresh.dcm'))).equals(data)).toBe(true);
  });

  it('leaves nothing of a fresh put whose body or write fails, small or large', async () => {
    const error = new Error('boom');
    expect(await rejectionOf(store.put('ab/cd/small.dcm', failingStream(randomBytes(100_000), error), { fresh: true }))).toBe(error);
    // Past one write batch (1 MiB) a fresh put goes through a temp file, as a plain put does.
    expect(await rejectionOf(store.put('ab/cd/large.dcm', failingStream(randomBytes(3 * 1024 * 1024), error), { fresh: true }))).toBe(error);
    expect(await store.stat('ab/cd/small.dcm')).toBeUndefined();
    expect(await store.stat('ab/cd/large.dcm')).toBeUndefined();
    const large = randomBytes(3 * 1024 * 1024 + 17);
    expect(await store.put('ab/cd/large.dcm', streamOf(large), { fresh: true })).toEqual({ key: 'ab/cd/large.dcm', size: large.length });
    expect((await readFile(path.join(root, 'ab', 'cd', 'large.dcm'))).equals(large)).toBe(true);
    await store.put('file', streamOf(Buffer.from('x')));
    await expectAppError(store.put('file/child.dcm', streamOf(randomBytes(10)), { fresh: true }), 'STORAGE_FAILURE');
    expect(await store.stat('file')).toEqual({ key: 'file', size: 1 });
    expect(await tempFiles()).toEqual([]);
  });

  it('writes a small fresh blob the same on the event loop or through the thread pool (writes governed as slow): in place, an existing key refused, a failure leaving nothing', async () => {
    for (const via of ['event loop', 'thread pool'] as const) {
      if (via === 'thread pool') {
        // Several slow writes in a row pause the synchronous path (as a slow disk would).
        const governor = (store as unknown as { syncWrites: SyncCallGovernor }).syncWrites;
        for (let i = 0; i < 8; i++) governor.took(50);
        expect(governor.allowed()).toBe(false);
      }
      for (const size of [0, 1, 130_000]) {
        const key = `${via === 'thread pool' ? 'pool' : 'loop'}/${size}/new.dcm`;
        const data = randomBytes(size);
        expect(await store.put(key, streamOf(data), { fresh: true }), via).toEqual({ key, size });
        expect((await readFile(path.join(root, key))).equals(data), via).toBe(true);
        await expectAppError(store.put(key, streamOf(randomBytes(10)), { fresh: true }), 'STORAGE_FAILURE');
        expect((await readFile(path.join(root, key))).equals(data), via).toBe(true);
      }
      await expectAppError(store.put(`${via === 'thread pool' ? 'pool' : 'loop'}/0/new.dcm/child.dcm`, streamOf(randomBytes(10)), { fresh: true }), 'STORAGE_FAILURE');
      expect(await tempFiles()).toEqual([]);
    }
  });

  it('keeps streaming the content it opened when the blob is replaced meanwhile', async () => {
    const first = randomBytes(300_000);
    await store.put('k', streamOf(first));
    const reading = await store.get('k');
    await store.put('k', streamOf(randomBytes(10)));
    const chunks: Buffer[] = [];
    for await (const chunk of reading) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(first)).toBe(true);
  });

  it('reads a whole instance the same on the event loop or through the thread pool, with the same errors', async () => {
    // Up to SYNC_READ_MAX_BYTES synchronously (while reads stay quick), larger through the thread pool.
    for (const size of [130_000, SYNC_READ_MAX_BYTES + 1]) {
      const data = randomBytes(size);
      await store.put(`sizes/${size}`, streamOf(data));
      const target = Buffer.alloc(size + 4, 0xee);
      await store.readInto(`sizes/${size}`, { start: 0, end: size - 1 }, target, 2);
      expect(target.subarray(2, size + 2).equals(data)).toBe(true);
      expect([...target.subarray(0, 2), ...target.subarray(size + 2)]).toEqual([0xee, 0xee, 0xee, 0xee]);
      await expectAppError(store.readInto(`sizes/${size}`, { start: 0, end: size }, Buffer.alloc(size + 1), 0), 'BAD_REQUEST');
      await expectAppError(store.readInto('folder-of-blobs', { start: 0, end: size - 1 }, target, 0), 'NOT_FOUND');
    }
    await store.put('folder-of-blobs/inside', streamOf(Buffer.from('x')));
    await expectAppError(store.readInto('folder-of-blobs', { start: 0, end: 0 }, Buffer.alloc(1), 0), 'NOT_FOUND');
  });
});

describe('SyncCallGovernor (synchronous small reads and writes on the event loop)', () => {
  it('allows them while they are quick, even with a read now and then slowed by preemption', () => {
    const governor = new SyncCallGovernor(2, 10_000, () => 0);
    for (let i = 0; i < 100; i++) {
      governor.took(i % 10 === 0 ? 40 : 0.05); // one read in ten held 40 ms (the process was preempted)
      expect(governor.allowed()).toBe(true);
    }
    governor.took(30);
    governor.took(30); // two in a row
    expect(governor.allowed()).toBe(true);
  });

  it('pauses them after several slow reads in a row (a cold disk), for the pause, then starts afresh', () => {
    let now = 1_000;
    const governor = new SyncCallGovernor(2, 10_000, () => now);
    let reads = 0;
    while (governor.allowed()) {
      governor.took(12); // a cold spinning disk: ~12 ms per file
      reads++;
    }
    expect(reads).toBeLessThanOrEqual(4);
    now += 9_999;
    expect(governor.allowed()).toBe(false);
    now += 1;
    expect(governor.allowed()).toBe(true);
    governor.took(0.05); // quick again (cached now): stays allowed
    now += 60_000;
    expect(governor.allowed()).toBe(true);
  });
});
