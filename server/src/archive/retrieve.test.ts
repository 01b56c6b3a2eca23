/**
 * The read-ahead of whole-instance retrieves (instancesWithBytes): parts come framed (head, stored bytes,
 * tail) in instance order, the same whether the blob store reads into a buffer (BlobStore.readInto) or
 * only gives ranges (getRange, then a copy); large and skipped instances come without bytes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredInstance } from '../catalog/catalog.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { instancesWithBytes, type ReadAheadLimits } from './retrieve.js';

let dir: string;
let store: FsBlobStore;
const contents = [Buffer.alloc(3000, 1), Buffer.alloc(70_000, 2), Buffer.alloc(9000, 3), Buffer.alloc(500, 4), Buffer.alloc(20, 5)];

function instance(i: number): StoredInstance {
  return {
    studyInstanceUid: '1.2',
    seriesInstanceUid: '1.2.3',
    sopInstanceUid: `1.2.3.${i}`,
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    blobKey: `blob-${i}`,
    blobSize: contents[i]!.length,
    numberOfFrames: 1,
    rows: undefined,
    columns: undefined,
    pixelData: undefined,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pacs-read-ahead-'));
  store = await FsBlobStore.create(dir);
  for (const [i, bytes] of contents.entries()) await store.put(`blob-${i}`, Readable.from([bytes]));
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Small window limits, so the window fills and drains several times over five instances. */
const LIMITS: ReadAheadLimits = { maxInstanceBytes: 50_000, windowBytes: 12_000, windowCount: 2 };
const framing = (i: StoredInstance) => ({ head: Buffer.from(`[${i.sopInstanceUid}]`), tail: Buffer.from('\r\n') });

async function collect(blobs: BlobStore) {
  const out: Array<{ uid: string; bytes: Buffer | undefined }> = [];
  const skip = (i: StoredInstance) => i.sopInstanceUid === '1.2.3.3';
  for await (const { instance: i, bytes } of instancesWithBytes(blobs, [0, 1, 2, 3, 4].map(instance), skip, LIMITS, framing)) out.push({ uid: i.sopInstanceUid, bytes });
  return out;
}

describe('read-ahead of whole instances', () => {
  it('frames each small instance in one buffer, in order; large and skipped ones come without bytes', async () => {
    const parts = await collect(store);
    expect(parts.map((p) => p.uid)).toEqual(['1.2.3.0', '1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4']);
    for (const i of [0, 2, 4]) {
      expect(parts[i]!.bytes!.equals(Buffer.concat([Buffer.from(`[1.2.3.${i}]`), contents[i]!, Buffer.from('\r\n')]))).toBe(true);
    }
    expect(parts[1]!.bytes).toBeUndefined(); // over maxInstanceBytes: the caller streams it
    expect(parts[3]!.bytes).toBeUndefined(); // skipped (e.g. to be transcoded)
  });

  it('gives the same parts through a store without readInto (ranged reads, then a copy)', async () => {
    const rangesOnly = { getRange: (key: string, range: ByteRange) => store.getRange(key, range) } as unknown as BlobStore;
    const viaRanges = await collect(rangesOnly);
    const viaReadInto = await collect(store);
    expect(viaRanges.map((p) => p.bytes?.toString('hex'))).toEqual(viaReadInto.map((p) => p.bytes?.toString('hex')));
  });

  it('fails the part whose blob is missing, with the store\'s NotFoundError', async () => {
    const missing = { ...instance(0), blobKey: 'no-such-blob' };
    const iterate = async () => {
      for await (const _ of instancesWithBytes(store, [missing], () => false, LIMITS, framing)) void _;
    };
    await expect(iterate()).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
