/**
 * WADO-RS frames on the S3 backend (a real S3-protocol server on loopback, reached through the minio
 * client): one frame of a multi-frame whole-slide level is read with ranged GETs of exactly that
 * frame's fragments, never by downloading the object.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { createServices } from '../services.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import { loadConfig } from '../config.js';
import { S3BlobStore, type S3BlobStoreConfig } from '../storage/s3-blob-store.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { startS3TestServer, type S3TestServer } from '../test-support/s3-test-server.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { CountingStore } from '../test-support/counting-store.js';
import { testLogger } from '../test-support/log-capture.js';

const WSI_LEVEL = path.join(sharedDataDir, 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm');
const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

let s3: S3TestServer;
let dataDir: string;
let store: CountingStore;
let catalog: SqliteCatalog;
let app: FastifyInstance;

beforeAll(async () => {
  s3 = await startS3TestServer();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-wado-s3-'));
  const config = loadConfig({
    PACS_DATA_DIR: dataDir,
    PACS_LOG_LEVEL: 'silent',
    PACS_BLOB_STORE: 's3',
    PACS_S3_ENDPOINT: s3.endPoint,
    PACS_S3_PORT: String(s3.port),
    PACS_S3_ACCESS_KEY: s3.accessKey,
    PACS_S3_SECRET_KEY: s3.secretKey,
    PACS_S3_BUCKET: 'pacs-wado-s3',
  });
  store = new CountingStore(await S3BlobStore.create(config.blobStore as S3BlobStoreConfig));
  catalog = new SqliteCatalog(':memory:');
  await catalog.migrate();
  app = await buildApp(config, await createServices(config, { blobStore: store, catalog, logger: testLogger(), audit: null, inference: null }));
});
afterAll(async () => {
  await app?.close();
  await s3?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('WADO-RS frames on S3', () => {
  it('reads frame 7 with ranged GETs of exactly its fragments, never the whole object', async () => {
    const file = await readFile(WSI_LEVEL);
    const stored = await app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: file }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(stored.statusCode, stored.body).toBe(200);
    const instances = await catalog.listInstances({ studyInstanceUid: studyUidOf(stored.json()) });
    expect(instances).toHaveLength(1);
    const instance: StoredInstance = instances[0]!;
    expect(instance.numberOfFrames).toBeGreaterThanOrEqual(7);
    const spans = instance.pixelData!.frames[6]!;
    const expected = Buffer.concat(spans.map(([offset, length]) => file.subarray(offset, offset + length)));
    const spanBytes = spans.reduce((sum, [, length]) => sum + length, 0);
    expect(expected[0]).toBe(0xff); // a JPEG tile: starts with SOI
    expect(expected[1]).toBe(0xd8);

    store.reset();
    const url = `/dicomweb/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${instance.sopInstanceUid}/frames/7`;
    const response = await app.inject({ method: 'GET', url, headers: { accept: FRAMES_ANY_TS } });
    expect(response.statusCode, response.body).toBe(200);
    const parts = splitMultipart(response.rawPayload, response.headers['content-type']);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.body.equals(expected)).toBe(true);

    expect(store.gets).toBe(0);
    expect(store.rangeCalls).toBe(spans.filter(([, length]) => length > 0).length);
    expect(store.rangeBytes).toBe(spanBytes);
    expect(store.rangeBytes).toBeLessThan(file.length / 10);
  });
});

function studyUidOf(stowResponse: Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>): string {
  const retrieveUrl = stowResponse['00081199']!.Value![0]!['00081190']!.Value![0]!;
  return /\/studies\/([^/]+)/.exec(retrieveUrl)![1]!;
}
