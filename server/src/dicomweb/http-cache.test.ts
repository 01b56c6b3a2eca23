/**
 * HTTP caching of retrieved content: frames, bulk data and rendered images are immutable with a strong
 * ETag; whole instances (they carry the patient identity) and study / series responses are revalidated, and a matching If-None-Match is a 304 that reads no blob.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { createServices } from '../services.js';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import { loadConfig } from '../config.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { IMMUTABLE_CACHE_CONTROL, ifNoneMatchMatches, representationETag, REVALIDATE_CACHE_CONTROL } from './http-cache.js';
import { CountingStore } from '../test-support/counting-store.js';
import { testLogger } from '../test-support/log-capture.js';

const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

let app: FastifyInstance;
let store: CountingStore;
let dataDir: string;
const study = newUid();
const series = newUid();
const sop = newUid();
const other = newUid();
const seriesUrl = `/dicomweb/studies/${study}/series/${series}`;
const instanceUrl = `${seriesUrl}/instances/${sop}`;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-cache-'));
  store = new CountingStore(await FsBlobStore.create(path.join(dataDir, 'blobs')));
  const catalog = new SqliteCatalog(':memory:');
  await catalog.migrate();
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'silent' });
  app = await buildApp(config, await createServices(config, { blobStore: store, catalog, logger: testLogger(), audit: null, inference: null }));
  const stored = await app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody([
      { body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 16, columns: 16, numberOfFrames: 4 }) },
      { body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: other, rows: 16, columns: 16 }) },
    ]),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });
  expect(stored.statusCode, stored.body).toBe(200);
});
afterAll(async () => {
  await app?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

/** First GET: 200 with validators; the same GET with If-None-Match: 304, no body, no blob read. */
async function expectRevalidates(url: string, cacheControl: string, headers: Record<string, string> = {}) {
  const first = await get(url, headers);
  expect(first.statusCode, first.body.slice(0, 300)).toBe(200);
  expect(first.headers['cache-control']).toBe(cacheControl);
  const etag = String(first.headers['etag']);
  expect(etag).toMatch(/^"[A-Za-z0-9_-]{20,}"$/);
  expect(first.headers['vary']).toContain('Accept');

  const again = await get(url, headers);
  expect(again.headers['etag']).toBe(etag);
  expect(again.rawPayload.equals(first.rawPayload)).toBe(true); // same ETag, same bytes (boundary included)

  const readsBefore = store.reads;
  const cached = await get(url, { ...headers, 'if-none-match': `"other", ${etag}` });
  expect(cached.statusCode).toBe(304);
  expect(cached.rawPayload.length).toBe(0);
  expect(cached.headers['etag']).toBe(etag);
  expect(cached.headers['cache-control']).toBe(cacheControl);
  expect(store.reads).toBe(readsBefore);

  expect((await get(url, { ...headers, 'if-none-match': '"stale"' })).statusCode).toBe(200);
  return etag;
}

describe('caching of instance-level content', () => {
  it('frames: immutable, strong ETag per frame list, 304 without reading', async () => {
    const frame2 = await expectRevalidates(`${instanceUrl}/frames/2`, IMMUTABLE_CACHE_CONTROL, { accept: FRAMES_ANY_TS });
    const frames23 = await expectRevalidates(`${instanceUrl}/frames/2,3`, IMMUTABLE_CACHE_CONTROL, { accept: FRAMES_ANY_TS });
    expect(frames23).not.toBe(frame2);
  });

  it('a single instance: revalidated (its patient identity may be corrected), 304 without reading', async () => {
    await expectRevalidates(instanceUrl, REVALIDATE_CACHE_CONTROL);
  });

  it('bulk data and rendered images of an instance: immutable', async () => {
    await expectRevalidates(`${instanceUrl}/bulkdata/7FE00010`, IMMUTABLE_CACHE_CONTROL);
    const bare = await expectRevalidates(`${instanceUrl}/bulkdata/7FE00010`, IMMUTABLE_CACHE_CONTROL, { accept: 'application/octet-stream' });
    const ranged = await get(`${instanceUrl}/bulkdata/7FE00010`, { accept: 'application/octet-stream', range: 'bytes=0-9' });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.headers['etag']).toBe(bare);
    const jpeg = await expectRevalidates(`${instanceUrl}/frames/3/rendered`, IMMUTABLE_CACHE_CONTROL);
    const png = await expectRevalidates(`${instanceUrl}/frames/3/rendered`, IMMUTABLE_CACHE_CONTROL, { accept: 'image/png' });
    const windowed = await expectRevalidates(`${instanceUrl}/frames/3/rendered?window=10,20`, IMMUTABLE_CACHE_CONTROL);
    expect(new Set([jpeg, png, windowed]).size).toBe(3);
    await expectRevalidates(`${instanceUrl}/thumbnail`, IMMUTABLE_CACHE_CONTROL);
  });

  it('study and series content: revalidated (no-cache), ETag changes when an instance arrives', async () => {
    await expectRevalidates(`/dicomweb/studies/${study}/thumbnail`, REVALIDATE_CACHE_CONTROL);
    const before = await expectRevalidates(seriesUrl, REVALIDATE_CACHE_CONTROL);
    await app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, rows: 8, columns: 8 }) }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    const after = await get(seriesUrl, { 'if-none-match': before });
    expect(after.statusCode).toBe(200);
    expect(after.headers['etag']).not.toBe(before);
  });

  it('errors carry no long-lived caching', async () => {
    const missing = await get(`${instanceUrl}/frames/9`, { accept: FRAMES_ANY_TS });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['cache-control']).toBeUndefined();
    expect(missing.headers['etag']).toBeUndefined();
  });
});

describe('http-cache helpers', () => {
  it('compares If-None-Match weakly, accepts * and lists', () => {
    const etag = representationETag(['a', 1]);
    expect(etag).not.toBe(representationETag(['a1']));
    expect(ifNoneMatchMatches(undefined, etag)).toBe(false);
    expect(ifNoneMatchMatches('*', etag)).toBe(true);
    expect(ifNoneMatchMatches(`"x", W/${etag}`, etag)).toBe(true);
    expect(ifNoneMatchMatches('"x"', etag)).toBe(false);
  });
});
