/**
 * What every BlobStore must do, as seen by its user (the archive). Each implementation's test file
 * calls `runBlobStoreContract` with a setup that builds a fresh, empty store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, NotFoundError } from '../errors.js';
import type { BlobStore, ByteRange } from './blob-store.js';

export interface BlobStoreFixture {
  store: BlobStore;
  teardown(): Promise<void>;
}

const MiB = 1024 * 1024;

/** A byte stream (not object mode, like an HTTP body) of `data`, in chunks, optionally paced. */
export function streamOf(data: Buffer, chunkSize = 64 * 1024, pauseMs = 0): Readable {
  let offset = 0;
  return new Readable({
    read() {
      const chunk = offset < data.length ? data.subarray(offset, offset + chunkSize) : null;
      offset += chunkSize;
      if (pauseMs > 0) setTimeout(() => this.push(chunk), pauseMs);
      else this.push(chunk);
    },
  });
}

/** A body that delivers `prefix` and then fails with `error`, as a dropped upload would. */
export function failingStream(prefix: Buffer, error: Error): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < prefix.length; i += 64 * 1024) yield prefix.subarray(i, i + 64 * 1024);
      await delay(5);
      throw error;
    })(),
  );
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves to the error `promise` rejects with (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

export async function expectAppError(promise: Promise<unknown>, code: AppError['code']): Promise<AppError> {
  const err = await rejectionOf(promise);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  return err as AppError;
}

export function runBlobStoreContract(name: string, setup: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let fixture: BlobStoreFixture | undefined;
    const store = (): BlobStore => {
      if (!fixture) throw new Error('store not set up');
      return fixture.store;
    };
    /** A key no other test uses, so tests share one store without interfering. */
    const freshKey = (label: string): string => `${label}-${randomUUID()}`;

    beforeAll(async () => {
      fixture = await setup();
    });
    afterAll(async () => {
      await fixture?.teardown();
    });

    const readBack = async (key: string): Promise<Buffer> => collect(await store().get(key));
    /** Content of `key`, or undefined while it does not exist. */
    const readIfPresent = async (key: string): Promise<Buffer | undefined> => {
      try {
        return await readBack(key);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    };

    it('gives back exactly the bytes that were stored, binary included', async () => {
      const key = freshKey('binary');
      const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(100_000)]);
      expect(await store().put(key, streamOf(data, 7_000))).toEqual({ key, size: data.length });
      expect((await readBack(key)).equals(data)).toBe(true);
      expect(await store().stat(key)).toEqual({ key, size: data.length });
    });

    it('stores an empty blob', async () => {
      const key = freshKey('empty');
      expect(await store().put(key, streamOf(Buffer.alloc(0)))).toEqual({ key, size: 0 });
      expect((await readBack(key)).length).toBe(0);
      expect(await store().stat(key)).toEqual({ key, size: 0 });
    });

    it('returns exactly the requested inclusive byte range', async () => {
      const key = freshKey('range');
      const data = randomBytes(1000);
      await store().put(key, streamOf(data));
      const cases: ByteRange[] = [
        { start: 0, end: 0 },
        { start: 999, end: 999 },
        { start: 100, end: 199 },
        { start: 0, end: 999 },
      ];
      for (const range of cases) {
        const bytes = await store().getRange(key, range);
        expect(bytes.equals(data.subarray(range.start, range.end + 1))).toBe(true);
      }
    });

    it('reads a range into a buffer at an offset, leaving the rest of the buffer as it was', async () => {
      const readInto = store().readInto?.bind(store());
      expect(readInto, `${name} offers readInto`).toBeDefined();
      const key = freshKey('read-into');
      const data = randomBytes(150_000);
      await store().put(key, streamOf(data));
      const target = Buffer.alloc(150_010, 0xaa);
      await readInto!(key, { start: 0, end: 149_999 }, target, 7);
      expect(target.subarray(7, 150_007).equals(data)).toBe(true);
      expect([...target.subarray(0, 7), ...target.subarray(150_007)].every((b) => b === 0xaa)).toBe(true);
      const small = Buffer.alloc(10, 0xaa);
      await readInto!(key, { start: 100, end: 104 }, small, 5);
      expect(small.equals(Buffer.concat([Buffer.alloc(5, 0xaa), data.subarray(100, 105)]))).toBe(true);
      await expectAppError(readInto!(key, { start: 149_990, end: 150_000 }, Buffer.alloc(20), 0), 'BAD_REQUEST');
      expect(await rejectionOf(readInto!(freshKey('read-into-missing'), { start: 0, end: 0 }, Buffer.alloc(1), 0))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(readInto!(key, { start: 0, end: 9 }, Buffer.alloc(12), 3))).toBeInstanceOf(RangeError);
    });

    it('refuses a range outside the blob, or a malformed one, with BAD_REQUEST', async () => {
      const key = freshKey('range-out');
      await store().put(key, streamOf(randomBytes(1000)));
      for (const range of [
        { start: 990, end: 1000 },
        { start: 1000, end: 1000 },
        { start: 5000, end: 6000 },
        { start: 10, end: 5 },
        { start: -1, end: 5 },
        { start: 0.5, end: 5 },
      ]) {
        await expectAppError(store().getRange(key, range), 'BAD_REQUEST');
      }
      const empty = freshKey('range-empty');
      await store().put(empty, streamOf(Buffer.alloc(0)));
      await expectAppError(store().getRange(empty, { start: 0, end: 0 }), 'BAD_REQUEST');
    });

    it('reports a missing blob as absent: stat undefined, get and getRange NotFoundError', async () => {
      const key = freshKey('missing');
      expect(await store().stat(key)).toBeUndefined();
      expect(await rejectionOf(store().get(key))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(store().getRange(key, { start: 0, end: 0 }))).toBeInstanceOf(NotFoundError);
      await expectAppError(store().get(key), 'NOT_FOUND');
    });

    it('forgets a deleted blob', async () => {
      const key = freshKey('deleted');
      await store().put(key, streamOf(Buffer.from('soon gone')));
      // A ranged read first: a store that keeps read handles open must still forget the blob.
      expect((await store().getRange(key, { start: 0, end: 3 })).toString()).toBe('soon');
      await store().delete(key);
      expect(await rejectionOf(store().get(key))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(store().getRange(key, { start: 0, end: 3 }))).toBeInstanceOf(NotFoundError);
      expect(await store().stat(key)).toBeUndefined();
    });

    it('accepts deleting a blob that does not exist', async () => {
      await expect(store().delete(freshKey('never-stored'))).resolves.toBeUndefined();
    });

    it('replaces the content when a key is written again', async () => {
      const key = freshKey('overwrite');
      const first = randomBytes(5000);
      await store().put(key, streamOf(first));
      expect((await store().getRange(key, { start: 0, end: 99 })).equals(first.subarray(0, 100))).toBe(true);
      const second = randomBytes(1234);
      expect(await store().put(key, streamOf(second))).toEqual({ key, size: second.length });
      expect((await readBack(key)).equals(second)).toBe(true);
      // Ranged reads see the new blob too (not a handle or cache left on the old one).
      expect((await store().getRange(key, { start: 0, end: 99 })).equals(second.subarray(0, 100))).toBe(true);
      await expectAppError(store().getRange(key, { start: 0, end: 4999 }), 'BAD_REQUEST');
      expect(await store().stat(key)).toEqual({ key, size: second.length });
    });

    it('rejects a put whose body fails midway with that error, and stores nothing', async () => {
      const key = freshKey('broken-body');
      const error = new Error('client went away');
      expect(await rejectionOf(store().put(key, failingStream(randomBytes(200_000), error)))).toBe(error);
      expect(await store().stat(key)).toBeUndefined();
      expect(await rejectionOf(store().get(key))).toBeInstanceOf(NotFoundError);
    });

    it('stores a fresh blob (ingest\'s put of a new key) byte for byte, whole and by range, and a failing one not at all', async () => {
      const key = freshKey('fresh');
      const data = randomBytes(300_000);
      expect(await store().put(key, streamOf(data, 16_000), { fresh: true })).toEqual({ key, size: data.length });
      expect((await readBack(key)).equals(data)).toBe(true);
      expect((await store().getRange(key, { start: 1000, end: 1999 })).equals(data.subarray(1000, 2000))).toBe(true);
      expect(await store().stat(key)).toEqual({ key, size: data.length });
      const broken = freshKey('fresh-broken');
      const error = new Error('association aborted');
      expect(await rejectionOf(store().put(broken, failingStream(randomBytes(200_000), error), { fresh: true }))).toBe(error);
      expect(await store().stat(broken)).toBeUndefined();
      expect(await rejectionOf(store().get(broken))).toBeInstanceOf(NotFoundError);
    });

    it('keeps the previous blob when an overwrite fails midway, even a large one', async () => {
      const key = freshKey('broken-overwrite');
      const original = randomBytes(3000);
      await store().put(key, streamOf(original));
      const error = new Error('upload aborted');
      // 11 MiB: past two 5 MiB parts, so a multipart upload has begun when the body fails.
      expect(await rejectionOf(store().put(key, failingStream(randomBytes(11 * MiB), error)))).toBe(error);
      expect((await readBack(key)).equals(original)).toBe(true);
    });

    /**
     * Runs `poll` until `putting` settles, then awaits it. Observations are returned, not asserted in
     * the loop, so a failure never leaves the put running past the test.
     */
    const pollDuring = async <T>(putting: Promise<unknown>, poll: () => Promise<T>): Promise<T[]> => {
      let finished = false;
      const done = putting.finally(() => (finished = true));
      const seen: T[] = [];
      while (!finished) {
        seen.push(await poll());
        await delay(3);
      }
      await done;
      return seen;
    };

    it('never shows a partial blob to a reader polling while a slow put streams in', async () => {
      const key = freshKey('slow');
      const data = randomBytes(400_000);
      const seen = await pollDuring(store().put(key, streamOf(data, 20_000, 10)), async () => ({
        size: (await store().stat(key))?.size,
        content: await readIfPresent(key),
      }));
      expect(seen.length).toBeGreaterThanOrEqual(2);
      for (const { size, content } of seen) {
        expect([undefined, data.length]).toContain(size);
        expect(content === undefined || content.equals(data)).toBe(true);
      }
      expect((await readBack(key)).equals(data)).toBe(true);
    });

    it('shows either the old or the new blob, never a mix, while an overwrite streams in', async () => {
      const key = freshKey('slow-overwrite');
      const before = randomBytes(50_000);
      const after = randomBytes(300_000);
      await store().put(key, streamOf(before));
      const seen = await pollDuring(store().put(key, streamOf(after, 20_000, 10)), () => readBack(key));
      for (const content of seen) expect(content.equals(before) || content.equals(after)).toBe(true);
      expect((await readBack(key)).equals(after)).toBe(true);
    });

    it('handles 20 concurrent puts and reads', async () => {
      const blobs = Array.from({ length: 20 }, (_, i) => ({ key: freshKey(`concurrent-${i}`), data: randomBytes(1000 + i * 5000) }));
      await Promise.all(
        blobs.map(async ({ key, data }) => {
          await store().put(key, streamOf(data, 4096));
          expect((await readBack(key)).equals(data)).toBe(true);
          expect((await store().getRange(key, { start: 500, end: 999 })).equals(data.subarray(500, 1000))).toBe(true);
        }),
      );
    });

    it('round-trips a ~12 MB body of unknown length byte for byte', async () => {
      const key = freshKey('large');
      const data = randomBytes(12 * MiB + 12_345);
      expect(await store().put(key, streamOf(data))).toEqual({ key, size: data.length });
      expect(await store().stat(key)).toEqual({ key, size: data.length });
      expect((await readBack(key)).equals(data)).toBe(true);
      // Across the 5 MiB part boundary, and the last byte.
      const across = { start: 5 * MiB - 10, end: 5 * MiB + 10 };
      expect((await store().getRange(key, across)).equals(data.subarray(across.start, across.end + 1))).toBe(true);
      const last = data.length - 1;
      expect((await store().getRange(key, { start: last, end: last }))[0]).toBe(data[last]);
    });

    it('accepts keys with slashes, as folders of independent blobs', async () => {
      const folder = freshKey('study');
      const a = `${folder}/series.1/instance-1.dcm`;
      const b = `${folder}/series.1/instance-2.dcm`;
      await store().put(a, streamOf(Buffer.from('first')));
      await store().put(b, streamOf(Buffer.from('second')));
      expect((await readBack(a)).toString()).toBe('first');
      await store().delete(a);
      expect(await store().stat(a)).toBeUndefined();
      expect((await readBack(b)).toString()).toBe('second');
      expect(await store().stat(b)).toEqual({ key: b, size: 6 });
    });

    it('lists every stored blob with its size and write time, and forgets deleted ones', async () => {
      const folder = freshKey('listed');
      const before = Date.now() - 5_000;
      const kept = { [`${folder}/a.dcm`]: randomBytes(10), [`${folder}/b/c.dcm`]: randomBytes(70_000), [`${folder}/empty.dcm`]: Buffer.alloc(0) };
      for (const [key, data] of Object.entries(kept)) await store().put(key, streamOf(data));
      await store().put(`${folder}/gone.dcm`, streamOf(Buffer.from('x')));
      await store().delete(`${folder}/gone.dcm`);
      const listed = new Map<string, { size: number; modifiedAt: Date }>();
      for await (const blob of store().list()) if (blob.key.startsWith(`${folder}/`)) listed.set(blob.key, blob);
      expect([...listed.keys()].sort()).toEqual(Object.keys(kept).sort());
      for (const [key, data] of Object.entries(kept)) {
        expect(listed.get(key)!.size).toBe(data.length);
        expect(listed.get(key)!.modifiedAt.getTime()).toBeGreaterThan(before);
        expect(listed.get(key)!.modifiedAt.getTime()).toBeLessThan(Date.now() + 5_000);
      }
    });

    it('never lists a blob whose put has not finished, nor one whose put failed', async () => {
      const broken = freshKey('list-broken');
      await rejectionOf(store().put(broken, failingStream(randomBytes(100_000), new Error('gone'))));
      // A body held open until the listing is done: the put is surely unfinished while we list.
      const slow = freshKey('list-slow');
      const body = new Readable({ read() {} });
      body.push(randomBytes(100_000));
      const putting = store().put(slow, body);
      await delay(50);
      const seen: string[] = [];
      for await (const blob of store().list()) seen.push(blob.key);
      body.push(null);
      await putting;
      expect(seen).not.toContain(broken);
      expect(seen).not.toContain(slow);
    });

    it('removing leftovers of interrupted puts never touches complete blobs', async () => {
      const key = freshKey('survivor');
      const data = randomBytes(1000);
      await store().put(key, streamOf(data));
      const removed = await store().removePartials(new Date(Date.now() + 60_000));
      expect(removed).toBeGreaterThanOrEqual(0);
      expect((await readBack(key)).equals(data)).toBe(true);
    });

    it('refuses malformed keys with BAD_REQUEST', async () => {
      const bad = ['', '/abs', 'a/../b', '..', 'a//b', 'a/', './a', '.tmp/x', 'sp ace', 'caf\u00e9', 'a\\b', 'x'.repeat(1025)];
      for (const key of bad) {
        await expectAppError(store().put(key, streamOf(Buffer.from('x'))), 'BAD_REQUEST');
        await expectAppError(store().get(key), 'BAD_REQUEST');
        await expectAppError(store().stat(key), 'BAD_REQUEST');
        await expectAppError(store().delete(key), 'BAD_REQUEST');
      }
    });
  });
}
