/**
 * Keys of new blobs (archive.ts, BlobKeys): random, unique, in shard folders two levels deep; on the folder
 * store a run of consecutive keys shares its folder (one mkdir per run in a young archive), and folders are
 * drawn anew; with a run of 1 (S3) every key draws its own.
 */
import { describe, expect, it } from 'vitest';
import { BlobKeys } from './archive.js';

describe('BlobKeys', () => {
  it('gives unique keys in two-level shard folders, the same folder for a run of keys, then another', () => {
    const keys = new BlobKeys(4);
    const made = Array.from({ length: 4 * 50 }, () => keys.next());
    expect(new Set(made).size).toBe(made.length);
    for (const key of made) expect(key).toMatch(/^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f-]{36}\.dcm$/);
    const folders = made.map((key) => key.slice(0, 5));
    for (let run = 0; run < 50; run++) expect(new Set(folders.slice(run * 4, run * 4 + 4)).size).toBe(1);
    // 50 runs drawn from 65,536 folders: all alike would be a broken draw.
    expect(new Set(folders).size).toBeGreaterThan(40);
  });

  it('draws a shard for every key with a run of 1 (S3: prefixes are not folders)', () => {
    const keys = new BlobKeys(1);
    const folders = Array.from({ length: 50 }, () => keys.next().slice(0, 5));
    expect(new Set(folders).size).toBeGreaterThan(40);
  });
});
