/**
 * Keys of new blobs (archive.ts, BlobKeys): random, unique, in shard folders two levels deep; on the folder
 * store a run of consecutive keys shares its folder (one mkdir per run in a young archive), and folders are
 * drawn anew; with a run of 1 (S3) every key draws its own.
 */
import { describe, expect, it } from 'vitest';
import { BlobKeys } from './archive.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { buildTestApp } from '../test-support/build-test-app.js';
import { buildCountingApp } from '../test-support/counting-store.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { stow } from '../test-support/shared-instance.js';

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

describe("ingest's keys by blob store", () => {
  const study = () => {
    const studyInstanceUid = newUid();
    const seriesInstanceUid = newUid();
    return Array.from({ length: 6 }, () => makeInstance({ studyInstanceUid, seriesInstanceUid, sopInstanceUid: newUid() }));
  };
  const prefixes = async (store: BlobStore) => {
    const keys: string[] = [];
    for await (const blob of store.list()) keys.push(blob.key);
    return new Set(keys.map((key) => key.slice(0, 5)));
  };

  it('share a shard folder on the folder store (prefixes are folders)', async () => {
    const t = await buildTestApp();
    try {
      expect((await stow(t.app, study())).statusCode).toBe(200);
      expect(await prefixes(await FsBlobStore.create((t.config.blobStore as { root: string }).root))).toHaveProperty('size', 1);
    } finally {
      await t.close();
    }
  });

  it('draw a prefix each on a store whose prefixes are not folders (as S3)', async () => {
    const t = await buildCountingApp('blob-keys-');
    try {
      expect((t.store as BlobStore).prefixFolders).toBeUndefined();
      expect((await stow(t.app, study())).statusCode).toBe(200);
      // Six prefixes drawn from 65,536: a repeat is possible but rare; all six alike is a shared run.
      expect((await prefixes(t.store)).size).toBeGreaterThanOrEqual(5);
    } finally {
      await t.close();
    }
  });
});
