/** A real blob store wrapped to count how it is read, so tests can prove what a request touched. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../app.js';
import { createServices } from '../services.js';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import { loadConfig } from '../config.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { testLogger } from './log-capture.js';
import type { BlobStore, ByteRange, PutOptions } from '../storage/blob-store.js';

export class CountingStore implements BlobStore {
  gets = 0;
  stats = 0;
  ranges: ByteRange[] = [];
  rangeBytes = 0;

  constructor(private readonly inner: BlobStore) {}

  /** Whole-blob reads plus ranged reads. */
  get reads(): number {
    return this.gets + this.ranges.length;
  }

  get rangeCalls(): number {
    return this.ranges.length;
  }

  reset(): void {
    this.gets = 0;
    this.stats = 0;
    this.ranges = [];
    this.rangeBytes = 0;
  }

  put(key: string, body: Readable, options?: PutOptions) {
    return this.inner.put(key, body, options);
  }
  get(key: string) {
    this.gets += 1;
    return this.inner.get(key);
  }
  async getRange(key: string, range: ByteRange) {
    this.ranges.push(range);
    const bytes = await this.inner.getRange(key, range);
    this.rangeBytes += bytes.length;
    return bytes;
  }
  stat(key: string) {
    this.stats += 1;
    return this.inner.stat(key);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list() {
    return this.inner.list();
  }
  removePartials(olderThan: Date) {
    return this.inner.removePartials(olderThan);
  }
  close() {
    return this.inner.close();
  }
}

export interface CountingApp {
  app: FastifyInstance;
  /** The app's blob store (a folder in a temp dir), counting every read. */
  store: CountingStore;
  close(): Promise<void>;
}

/**
 * The whole app on a counting folder store and an in-memory SQLite index, for tests that prove which
 * bytes a request read. `close` stops it and removes its temp folder.
 */
export async function buildCountingApp(prefix: string): Promise<CountingApp> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const store = new CountingStore(await FsBlobStore.create(path.join(dataDir, 'blobs')));
  const catalog = new SqliteCatalog(':memory:');
  await catalog.migrate();
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'silent' });
  const app = await buildApp(config, await createServices(config, { blobStore: store, catalog, logger: testLogger(), audit: null, inference: null }));
  return {
    app,
    store,
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
