/**
 * A real S3-protocol server for tests: s3rver in-process on 127.0.0.1, behind a tiny HTTP front that
 * fills the gaps listed in /work/shared/notes/s3-test-server.md. Test support only: excluded from the
 * production build, and s3rver stays a dev dependency.
 *
 * Two fixes make s3rver behave like real S3 where our contract tests look:
 * - The front answers `GET /<bucket>?uploads` (list in-progress multipart uploads, which s3rver answers
 *   501) with an empty list, so the `minio` client's own multipart `putObject` works.
 * - s3rver writes objects in place and answers before the file is flushed, so a reader could see half
 *   an object during or even just after a PUT. Real S3 makes an object visible only once complete;
 *   we replace its store's `putObject`/`putPart` with write-to-temp-then-rename versions.
 * - GETs: s3rver reads the size and the bytes of an object from two different opens (an overwrite in
 *   between mixes old and new), reads `bytes=0-0` as "from 0 to the end", and for any range of an
 *   empty object promises one byte and hangs up. Its store's `getObject` is wrapped to serve size and
 *   bytes from one file handle, with S3's range rules (416 InvalidRange where nothing is satisfiable).
 *
 * Not fixed (production code must not need it): abortMultipartUpload answers 405 MethodNotAllowed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface S3TestServer {
  endPoint: '127.0.0.1';
  port: number;
  accessKey: string;
  secretKey: string;
  /** A bucket that already exists on the server. */
  bucket: string;
  close(): Promise<void>;
}

/** The part of s3rver's untyped API we use. */
interface S3rverStore {
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3rverObject | null>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObject(object: { bucket: string; key: string; metadata: unknown; content: Buffer | Readable }): Promise<Written>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<Written>;
}
interface S3rverObject {
  /** Plain object; `size` is read from its content-length. */
  metadata: Record<string, unknown>;
  range?: { start: number; end: number };
  content: Readable | null;
}
interface S3rverInstance {
  store: S3rverStore;
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;
interface Written {
  size: number;
  md5: string;
}

// s3rver is CommonJS without type declarations: load it through require and type what we use.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

/** s3rver's built-in credentials (it does not verify signatures anyway). */
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';
const BUCKET = 'pacs-test';

export async function startS3TestServer(): Promise<S3TestServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 's3-test-'));
  const dataDir = path.join(dir, 'data');
  // Temp files live beside, not inside, s3rver's folder: inside they would show up as buckets.
  const tmpDir = path.join(dir, 'tmp');
  await Promise.all([mkdir(dataDir), mkdir(tmpDir)]);

  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dataDir,
    vhostBuckets: false,
    configureBuckets: [{ name: BUCKET }],
  });
  fixStore(s3rver.store, tmpDir);
  const upstream = await s3rver.run();

  const agent = new http.Agent({ keepAlive: true });
  const front = http.createServer((req, res) => handle(req, res, upstream.port, agent));
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, '127.0.0.1', () => resolve());
  });

  return {
    endPoint: '127.0.0.1',
    port: (front.address() as AddressInfo).port,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    bucket: BUCKET,
    close: async () => {
      // Clients keep idle keep-alive sockets open: close them, or close() would wait for them.
      front.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      agent.destroy();
      await s3rver.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, upstreamPort: number, agent: http.Agent): void {
  const url = new URL(req.url ?? '/', 'http://front');
  const bucketOnly = /^\/[^/]+\/?$/.test(url.pathname);
  if (req.method === 'GET' && bucketOnly && url.searchParams.has('uploads')) {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/xml' });
    res.end(emptyUploadList(url.pathname.replaceAll('/', '')));
    return;
  }
  proxy(req, res, upstreamPort, agent);
}

/** Streams the request to s3rver and its answer back, headers untouched (Host included). */
function proxy(req: http.IncomingMessage, res: http.ServerResponse, upstreamPort: number, agent: http.Agent): void {
  const upstreamReq = http.request(
    { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent },
    (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      pipeline(upstreamRes, res).catch(() => res.destroy());
    },
  );
  upstreamReq.on('error', () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502).end();
  });
  pipeline(req, upstreamReq).catch(() => upstreamReq.destroy());
}

function emptyUploadList(bucket: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Bucket>${bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
    '<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>' +
    '<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>'
  );
}

function fixStore(store: S3rverStore, tmpDir: string): void {
  makeWritesAtomic(store, tmpDir);
  makeReadsConsistent(store);
}

/**
 * Serves size and bytes from one open file, with S3's range rules. s3rver stats the path, then opens
 * it again: across an overwrite that announces the old length and streams the new bytes.
 */
function makeReadsConsistent(store: S3rverStore): void {
  const getObject = store.getObject.bind(store);
  store.getObject = async (bucket, key, options = {}) => {
    const handle = await open(store.getResourcePath(bucket, key, 'object'), 'r').catch((err: { code?: string }) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!handle) return null;
    try {
      const object = await getObject(bucket, key); // for its metadata (content type, ETag)
      object?.content?.destroy();
      if (!object) {
        await handle.close();
        return null;
      }
      const size = (await handle.stat()).size;
      object.metadata['content-length'] = size;
      if (options.start === undefined && options.end === undefined) {
        object.content = handle.createReadStream();
        return object;
      }
      const start = options.start ?? 0;
      object.range = { start, end: Math.min(options.end ?? Infinity, size - 1) };
      // No range of an empty object, or starting past the end, is satisfiable: 416 InvalidRange.
      object.content = start < size ? handle.createReadStream({ start, end: object.range.end }) : null;
      if (!object.content) await handle.close();
      return object;
    } catch (err) {
      await handle.close();
      throw err;
    }
  };
}

function makeWritesAtomic(store: S3rverStore, tmpDir: string): void {
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    const written = await writeAtomically(object.content, objectPath, tmpDir);
    await store.putMetadata(object.bucket, object.key, object.metadata, written.md5);
    return written;
  };
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    const partPath = path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
    const written = await writeAtomically(content, partPath, tmpDir);
    await writeFile(`${partPath}.md5`, written.md5);
    return written;
  };
}

/** Writes `content` fully to a temp file, then renames it to `target`: readers see all or nothing. */
async function writeAtomically(content: Buffer | Readable, target: string, tmpDir: string): Promise<Written> {
  const tmp = path.join(tmpDir, randomUUID());
  const md5 = createHash('md5');
  let size = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const source = Buffer.isBuffer(content) ? Readable.from([content]) : content;
  try {
    await pipeline(source, measure, createWriteStream(tmp));
    await mkdir(path.dirname(target), { recursive: true });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { size, md5: md5.digest('hex') };
}
