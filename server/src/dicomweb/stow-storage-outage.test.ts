/**
 * Blob storage failing mid-request (disk full, MinIO down): each part fails alone with 0xA700, nothing
 * is indexed, the request does not hang, and the server keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../app.js';
import { createServices } from '../services.js';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import { loadConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { testLogger } from '../test-support/log-capture.js';

/** A real folder store that can be switched to fail its writes after some bytes, like a full disk. */
class FlakyStore implements BlobStore {
  failing = false;
  constructor(private readonly inner: BlobStore) {}
  async put(key: string, body: Readable) {
    if (!this.failing) return this.inner.put(key, body);
    let seen = 0;
    for await (const chunk of body) {
      seen += (chunk as Buffer).length;
      if (seen > 1000) throw new AppError('STORAGE_FAILURE', 'File blob store could not write (ENOSPC)');
    }
    throw new AppError('STORAGE_FAILURE', 'File blob store could not write (ENOSPC)');
  }
  get(key: string) { return this.inner.get(key); }
  getRange(key: string, range: { start: number; end: number }) { return this.inner.getRange(key, range); }
  stat(key: string) { return this.inner.stat(key); }
  delete(key: string) { return this.inner.delete(key); }
  list() { return this.inner.list(); }
  removePartials(olderThan: Date) { return this.inner.removePartials(olderThan); }
  close() { return this.inner.close(); }
}

let app: FastifyInstance;
let store: FlakyStore;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-outage-'));
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'silent' });
  store = new FlakyStore(await FsBlobStore.create(path.join(dataDir, 'blobs')));
  const catalog = new SqliteCatalog(':memory:');
  await catalog.migrate();
  app = await buildApp(config, await createServices(config, { blobStore: store, catalog, logger: testLogger(), audit: null, inference: null }));
});
afterAll(async () => {
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
});

const stow = (parts: Buffer[]) =>
  app.inject({ method: 'POST', url: '/dicomweb/studies', payload: multipartBody(parts.map((body) => ({ body }))), headers: { 'content-type': STOW_CONTENT_TYPE() } });

describe('STOW-RS while blob storage fails', () => {
  it('fails every part with 0xA700, indexes nothing, and recovers when storage does', async () => {
    const studyUid = newUid();
    store.failing = true;
    const failed = await stow([makeInstance({ studyInstanceUid: studyUid, rows: 64, columns: 64 }), makeInstance({ studyInstanceUid: studyUid, rows: 64, columns: 64 })]);
    expect(failed.statusCode).toBe(409);
    const reasons = (failed.json()['00081198'].Value as Array<Record<string, { Value: number[] }>>).map((item) => item['00081197']!.Value[0]);
    expect(reasons).toEqual([0xa700, 0xa700]);
    expect((await app.inject({ method: 'GET', url: `/dicomweb/studies/${studyUid}/instances` })).json()).toEqual([]);

    store.failing = false;
    const stored = await stow([makeInstance({ studyInstanceUid: studyUid })]);
    expect(stored.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/dicomweb/studies/${studyUid}/instances` })).json()).toHaveLength(1);
  });
});
