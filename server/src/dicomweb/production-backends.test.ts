/**
 * The whole STOW-RS → QIDO-RS path on the production backends: S3 (a real S3-protocol server on
 * loopback, reached through the minio client) and PostgreSQL (the machine's server, own schema).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { createTestSchema, type TestSchema } from '../test-support/postgres-test-schema.js';
import { startS3TestServer, type S3TestServer } from '../test-support/s3-test-server.js';

let s3: S3TestServer;
let schema: TestSchema;
let t: TestApp;

beforeAll(async () => {
  s3 = await startS3TestServer();
  schema = createTestSchema('pacs_e2e');
  t = await buildTestApp({
    PACS_BLOB_STORE: 's3',
    PACS_S3_ENDPOINT: s3.endPoint,
    PACS_S3_PORT: String(s3.port),
    PACS_S3_ACCESS_KEY: s3.accessKey,
    PACS_S3_SECRET_KEY: s3.secretKey,
    PACS_S3_BUCKET: 'pacs-e2e',
    PACS_S3_PART_SIZE: String(5 * 1024 * 1024),
    PACS_INDEX: 'postgres',
    PACS_POSTGRES_URL: schema.connectionString,
    PACS_POSTGRES_SCHEMA: schema.schema,
  });
});
afterAll(async () => {
  await t?.close();
  await schema?.drop();
  await s3?.close();
});

describe('STOW-RS and QIDO-RS on MinIO/S3 + PostgreSQL', () => {
  it('stores instances (one larger than an S3 part) byte for byte and finds them', async () => {
    const studyUid = newUid();
    const small = makeInstance({ studyInstanceUid: studyUid, patientName: 'Prod^Backend' });
    const large = makeInstance({ studyInstanceUid: studyUid, rows: 2600, columns: 2600 }); // ~6.8 MB: multipart upload
    const response = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: small }, { body: large }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(response.statusCode, response.body).toBe(200);

    const studies = (await t.app.inject({ method: 'GET', url: '/dicomweb/studies?PatientName=prod*' })).json();
    expect(studies).toHaveLength(1);
    expect(studies[0]['00201208'].Value).toEqual([2]);

    const instances = await t.services.catalog.listInstances({ studyInstanceUid: studyUid });
    expect(instances).toHaveLength(2);
    for (const instance of instances) {
      const original = instance.rows === 2600 ? large : small;
      expect(instance.blobSize).toBe(original.length);
      const stream = await t.services.blobStore.get(instance.blobKey);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(original)).toBe(true);
      // The recorded frame span reads back exactly the pixel data with one ranged read.
      const [span] = instance.pixelData!.frames[0]!;
      const frame = await t.services.blobStore.getRange(instance.blobKey, { start: span![0], end: span![0] + span![1] - 1 });
      expect(frame.equals(original.subarray(span![0], span![0] + span![1]))).toBe(true);
      expect(frame.length).toBe(instance.rows! * instance.columns!);
    }
  });
});
