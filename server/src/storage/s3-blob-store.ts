/**
 * Blob store on any S3-compatible service (MinIO, AWS, Ceph RGW, ...) through the `minio` client.
 *
 * Atomicity is S3's own: an object becomes visible only when its PUT, or its multipart upload's
 * completion, succeeds, and an overwrite swaps old for new in one step.
 *
 * `put` drives the upload itself instead of handing the stream to `client.putObject`: for a stream of
 * unknown length putObject always starts a multipart upload (even for a few bytes), never aborts a
 * failed one (and resumes it on the next put of the key), and never hears of an error of the body
 * stream (it pipes without error forwarding, so the upload hangs). Here: a body that fits in one part
 * is sent as one plain PUT; a larger one goes up in parts of `partSize`, and any failure aborts it.
 * Memory per upload: at most two parts (one uploading while the next is read).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import type { BlobStoreConfig } from '../config.js';
import { AppError, NotFoundError } from '../errors.js';
import type { BlobInfo, BlobStore, ByteRange, ListedBlob } from './blob-store.js';
import { bodyBlocks, unwrapBodyFailure } from './body-stream.js';
import { assertValidKey, assertValidRange, rangeLength, rangeOutsideBlob } from './validation.js';

export type S3BlobStoreConfig = Extract<BlobStoreConfig, { kind: 's3' }>;

const CONTENT_TYPE = 'application/octet-stream';

interface UploadedPart {
  part: number;
  etag: string;
}

export class S3BlobStore implements BlobStore {
  private constructor(
    private readonly client: Client,
    private readonly agent: http.Agent,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly partSize: number,
  ) {}

  /** Connects and creates the bucket if it does not exist yet. */
  static async create(config: S3BlobStoreConfig): Promise<S3BlobStore> {
    // Our own agent: keep-alive between requests, and one we can destroy in close().
    const agent = config.useSSL ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    const client = new Client({
      endPoint: config.endPoint,
      port: config.port,
      useSSL: config.useSSL,
      accessKey: config.accessKey,
      secretKey: config.secretKey,
      region: config.region,
      pathStyle: true,
      partSize: config.partSize,
      transportAgent: agent,
    });
    const store = new S3BlobStore(client, agent, config.bucket, normalizePrefix(config.prefix), config.partSize);
    try {
      await store.ensureBucket(config.region);
    } catch (err) {
      agent.destroy();
      throw err;
    }
    return store;
  }

  async put(key: string, body: Readable): Promise<BlobInfo> {
    const name = this.objectName(key);
    const blocks = bodyBlocks(body, this.partSize);
    try {
      const first = await blocks.next();
      const second = first.done ? first : await blocks.next();
      if (second.done) {
        const content = first.done ? Buffer.alloc(0) : first.value;
        await this.client.putObject(this.bucket, name, content, content.length, { 'Content-Type': CONTENT_TYPE });
        return { key, size: content.length };
      }
      const size = await this.putMultipart(name, [first.value as Buffer, second.value], blocks);
      return { key, size };
    } catch (err) {
      // Stop reading a body we no longer want (a no-op if it already failed or ended).
      body.destroy();
      throw unwrapBodyFailure(err, (cause) => s3Failure('write', cause));
    }
  }

  async get(key: string): Promise<Readable> {
    const name = this.objectName(key);
    try {
      return await this.client.getObject(this.bucket, name);
    } catch (err) {
      throw s3Failure('read', err);
    }
  }

  async getRange(key: string, range: ByteRange): Promise<Buffer> {
    const name = this.objectName(key);
    assertValidRange(range);
    const length = rangeLength(range);
    let bytes: Buffer;
    try {
      const stream = await this.client.getPartialObject(this.bucket, name, range.start, length);
      bytes = await collect(stream);
    } catch (err) {
      throw isCode(err, 'InvalidRange') ? rangeOutsideBlob(range) : s3Failure('read', err);
    }
    // S3 answers a range that starts inside the object but ends past it with the bytes it has.
    if (bytes.length !== length) throw rangeOutsideBlob(range);
    return bytes;
  }

  /**
   * One ranged GET, as getRange, each chunk of the response copied into place as it arrives: one copy, as
   * getRange makes when it joins the chunks, and no buffer of its own (frame answers and series parts
   * bring reused memory: archive/answer-buffers.ts, part-buffers.ts).
   */
  async readInto(key: string, range: ByteRange, target: Buffer, targetOffset: number): Promise<void> {
    assertValidRange(range);
    const length = rangeLength(range);
    if (!Number.isInteger(targetOffset) || targetOffset < 0 || targetOffset + length > target.length) {
      throw new RangeError(`a target of ${target.length} bytes cannot take ${length} bytes at ${targetOffset}`);
    }
    let filled = 0;
    try {
      const stream = await this.client.getPartialObject(this.bucket, this.objectName(key), range.start, length);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        // Never past the range's place in `target`, whatever the server sends.
        const take = Math.min(chunk.length, length - filled);
        chunk.copy(target, targetOffset + filled, 0, take);
        filled += take;
        if (take < chunk.length) break;
      }
    } catch (err) {
      throw isCode(err, 'InvalidRange') ? rangeOutsideBlob(range) : s3Failure('read', err);
    }
    // S3 answers a range that starts inside the object but ends past it with the bytes it has.
    if (filled !== length) throw rangeOutsideBlob(range);
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const name = this.objectName(key);
    try {
      const info = await this.client.statObject(this.bucket, name);
      return { key, size: info.size };
    } catch (err) {
      if (isCode(err, 'NotFound', 'NoSuchKey')) return undefined;
      throw s3Failure('stat', err);
    }
  }

  async delete(key: string): Promise<void> {
    const name = this.objectName(key);
    try {
      await this.client.removeObject(this.bucket, name);
    } catch (err) {
      // S3 answers 204 for a missing key already; some compatible servers say NoSuchKey.
      if (isCode(err, 'NotFound', 'NoSuchKey')) return;
      throw s3Failure('delete', err);
    }
  }

  /** ListObjectsV2 under the prefix, page by page (the client follows continuation tokens). */
  async *list(): AsyncGenerator<ListedBlob> {
    const stream = this.client.listObjectsV2(this.bucket, this.prefix, true);
    try {
      for await (const item of stream as AsyncIterable<{ name?: string; size?: number; lastModified?: Date }>) {
        if (item.name === undefined || !item.name.startsWith(this.prefix)) continue;
        const key = item.name.slice(this.prefix.length);
        yield { key, size: item.size ?? 0, modifiedAt: item.lastModified ?? new Date(0) };
      }
    } catch (err) {
      throw s3Failure('list', err);
    }
  }

  /**
   * Aborts multipart uploads under the prefix started before `olderThan` (a killed process never
   * completes or aborts its own). Servers that cannot list uploads (NotImplemented, e.g. s3rver)
   * answer 0: their leftovers are invisible anyway, and a bucket lifecycle rule
   * (AbortIncompleteMultipartUpload) is the durable answer on AWS and MinIO.
   */
  async removePartials(olderThan: Date): Promise<number> {
    let removed = 0;
    let keyMarker = '';
    let uploadIdMarker = '';
    for (;;) {
      let page;
      try {
        page = await this.client.listIncompleteUploadsQuery(this.bucket, this.prefix, keyMarker, uploadIdMarker, '');
      } catch (err) {
        if (isCode(err, 'NotImplemented')) return removed;
        throw s3Failure('list unfinished uploads', err);
      }
      for (const upload of page.uploads) {
        if (!(upload.initiated instanceof Date) || upload.initiated >= olderThan) continue;
        await this.client.abortMultipartUpload(this.bucket, upload.key, upload.uploadId).then(
          () => (removed += 1),
          () => undefined,
        );
      }
      if (!page.isTruncated) return removed;
      keyMarker = page.nextKeyMarker;
      uploadIdMarker = page.nextUploadIdMarker;
    }
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private objectName(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  private async ensureBucket(region: string): Promise<void> {
    try {
      if (await this.client.bucketExists(this.bucket)) return;
      await this.client.makeBucket(this.bucket, region);
    } catch (err) {
      // Another instance created it between our check and our request: that is what we wanted.
      if (isCode(err, 'BucketAlreadyOwnedByYou')) return;
      throw s3Failure('open the bucket', err);
    }
  }

  /** Uploads the blocks as parts of one multipart upload; aborts it on any failure. Returns the size. */
  private async putMultipart(name: string, firstTwo: [Buffer, Buffer], rest: AsyncIterator<Buffer>): Promise<number> {
    const uploadId = await this.client.initiateNewMultipartUpload(this.bucket, name, { 'Content-Type': CONTENT_TYPE });
    try {
      const parts: UploadedPart[] = [];
      let size = firstTwo[0].length;
      parts.push(await this.uploadPart(name, uploadId, 1, firstTwo[0]));
      let current: IteratorResult<Buffer> = { done: false, value: firstTwo[1] };
      while (!current.done) {
        const block: Buffer = current.value;
        // Upload this part while the next one is read from the body.
        const [part, next]: [UploadedPart, IteratorResult<Buffer>] = await Promise.all([this.uploadPart(name, uploadId, parts.length + 1, block), rest.next()]);
        parts.push(part);
        size += block.length;
        current = next;
      }
      await this.client.completeMultipartUpload(this.bucket, name, uploadId, parts);
      return size;
    } catch (err) {
      // Best effort: parts of an aborted or unfinished upload are never visible as an object, and a
      // bucket lifecycle rule (AbortIncompleteMultipartUpload) reaps any that abort failed to remove.
      await this.client.abortMultipartUpload(this.bucket, name, uploadId).catch(() => undefined);
      throw err;
    }
  }

  private async uploadPart(name: string, uploadId: string, part: number, block: Buffer): Promise<UploadedPart> {
    const { etag } = await this.client.uploadPart(
      {
        bucketName: this.bucket,
        objectName: name,
        uploadID: uploadId,
        partNumber: part,
        // The server checks the part against its MD5 (plain-HTTP requests also carry a SHA-256).
        headers: { 'Content-MD5': createHash('md5').update(block).digest('base64') },
      },
      block,
    );
    return { part, etag };
  }
}

/** `pacs` and `pacs/` both mean the folder `pacs/`; an empty prefix means the bucket's root. */
function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

/**
 * Missing objects become NotFoundError; anything else STORAGE_FAILURE. The message holds the S3 error
 * code and text, or the network error (host and port): never the credentials or the object key.
 */
function s3Failure(action: string, err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (isCode(err, 'NoSuchKey', 'NotFound')) return new NotFoundError('Blob not found');
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const reason = typeof code === 'string' ? `${code}: ${message}` : message;
  return new AppError('STORAGE_FAILURE', `S3 blob store could not ${action}: ${reason}`, { cause: err });
}
