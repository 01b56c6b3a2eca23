import { randomBytes } from 'node:crypto';
import { Client } from 'minio';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startS3TestServer, type S3TestServer } from '../test-support/s3-test-server.js';
import { collect, expectAppError, failingStream, runBlobStoreContract, streamOf } from './blob-store.contract.js';
import { createBlobStore } from './create-blob-store.js';
import { S3BlobStore, type S3BlobStoreConfig } from './s3-blob-store.js';

const MiB = 1024 * 1024;

function configFor(server: S3TestServer, overrides: Partial<S3BlobStoreConfig> = {}): S3BlobStoreConfig {
  return {
    kind: 's3',
    endPoint: server.endPoint,
    port: server.port,
    useSSL: false,
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    bucket: server.bucket,
    region: 'us-east-1',
    prefix: '',
    // The smallest S3 allows: a 12 MB blob crosses into a three-part multipart upload.
    partSize: 5 * MiB,
    ...overrides,
  };
}

/** A plain client on the same server, to look at what the store wrote. */
function rawClient(server: S3TestServer): Client {
  return new Client({
    endPoint: server.endPoint,
    port: server.port,
    useSSL: false,
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    region: 'us-east-1',
    pathStyle: true,
    partSize: 5 * MiB,
  });
}

runBlobStoreContract('S3BlobStore', async () => {
  const server = await startS3TestServer();
  const store = await S3BlobStore.create(configFor(server));
  return {
    store,
    teardown: async () => {
      await store.close();
      await server.close();
    },
  };
});

describe('S3BlobStore', () => {
  let server: S3TestServer;
  const stores: S3BlobStore[] = [];
  const open = async (overrides: Partial<S3BlobStoreConfig> = {}): Promise<S3BlobStore> => {
    const store = await S3BlobStore.create(configFor(server, overrides));
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    server = await startS3TestServer();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });
  afterAll(async () => {
    await server.close();
  });

  it('creates its bucket at startup when it is missing', async () => {
    const client = rawClient(server);
    expect(await client.bucketExists('fresh-bucket')).toBe(false);
    const store = await open({ bucket: 'fresh-bucket' });
    expect(await client.bucketExists('fresh-bucket')).toBe(true);
    await store.put('k', streamOf(Buffer.from('hello')));
    expect((await collect(await store.get('k'))).toString()).toBe('hello');
    // A second start finds the bucket and keeps its content.
    const again = await open({ bucket: 'fresh-bucket' });
    expect(await again.stat('k')).toEqual({ key: 'k', size: 5 });
  });

  it('is what createBlobStore builds for an "s3" configuration', async () => {
    const built = await createBlobStore(configFor(server, { bucket: 'factory-bucket' }));
    expect(built).toBeInstanceOf(S3BlobStore);
    expect(await rawClient(server).bucketExists('factory-bucket')).toBe(true);
    await built.close();
  });

  it('stores objects under the configured prefix, as a folder', async () => {
    const store = await open({ prefix: 'pacs' });
    await store.put('study/instance', streamOf(Buffer.from('abc')));
    const client = rawClient(server);
    expect((await client.statObject(server.bucket, 'pacs/study/instance')).size).toBe(3);
    await expect(client.statObject(server.bucket, 'study/instance')).rejects.toMatchObject({ code: 'NotFound' });
    expect(await store.stat('study/instance')).toEqual({ key: 'study/instance', size: 3 });
    const unprefixed = await open();
    expect(await unprefixed.stat('study/instance')).toBeUndefined();
    expect(await unprefixed.stat('pacs/study/instance')).toEqual({ key: 'pacs/study/instance', size: 3 });
  });

  it('sends a small blob as one PUT and a large one as a multipart upload of partSize parts', async () => {
    const store = await open();
    const initiate = vi.spyOn(Client.prototype, 'initiateNewMultipartUpload');
    const uploadPart = vi.spyOn(Client.prototype, 'uploadPart');
    await store.put('small', streamOf(randomBytes(5 * MiB)));
    expect(initiate).not.toHaveBeenCalled();
    const data = randomBytes(12 * MiB + 1);
    await store.put('large', streamOf(data));
    expect(initiate).toHaveBeenCalledTimes(1);
    expect(uploadPart.mock.calls.map(([, payload]) => (payload as Buffer).length)).toEqual([5 * MiB, 5 * MiB, 2 * MiB + 1]);
    expect((await collect(await store.get('large'))).equals(data)).toBe(true);
  });

  it('aborts the multipart upload when the body fails after the first parts', async () => {
    const store = await open();
    const abort = vi.spyOn(Client.prototype, 'abortMultipartUpload');
    const error = new Error('client went away');
    await expect(store.put('aborted', failingStream(randomBytes(16 * MiB), error))).rejects.toBe(error);
    expect(abort).toHaveBeenCalledTimes(1);
    expect(await store.stat('aborted')).toBeUndefined();
  });

  it('maps a failing S3 request to STORAGE_FAILURE', async () => {
    const store = await open();
    vi.spyOn(Client.prototype, 'uploadPart').mockRejectedValue(Object.assign(new Error('We encountered an internal error'), { code: 'InternalError' }));
    const err = await expectAppError(store.put('unlucky', streamOf(randomBytes(11 * MiB))), 'STORAGE_FAILURE');
    expect(err.message).toContain('InternalError');
    expect(await store.stat('unlucky')).toBeUndefined();
  });

  it('fails to start with STORAGE_FAILURE, without the secret, when S3 cannot be reached', async () => {
    const unreachable = { ...configFor(server), port: 1, secretKey: 'very-secret-key' };
    const err = await expectAppError(S3BlobStore.create(unreachable), 'STORAGE_FAILURE');
    expect(err.message).not.toContain('very-secret-key');
  });

  it('test server: the minio client\'s own streaming multipart putObject works through it', async () => {
    const client = rawClient(server);
    const data = randomBytes(11 * MiB);
    await client.putObject(server.bucket, 'via-minio', streamOf(data));
    expect((await collect(await client.getObject(server.bucket, 'via-minio'))).equals(data)).toBe(true);
  });
});
