/**
 * Retrieval use cases (WADO-RS, PS3.18 §10.4): find the stored instances of a study, series or
 * instance, and read the bytes of single frames with ranged reads (never the whole file).
 * Depends only on the BlobStore and Catalog interfaces; HTTP negotiation lives in `dicomweb/`.
 */
import type { PartBuffers } from './part-buffers.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Catalog, InstanceScope, StoredInstance } from '../catalog/catalog.js';
import type { ByteSpan } from '../dicom/instance-header.js';
import { AppError, NotFoundError } from '../errors.js';

/**
 * The instances in scope, in catalog order. An empty result is a NotFoundError naming the level asked
 * for (the catalog cannot tell an unknown study from an unknown series of a known study, and the
 * client does not need to know either).
 */
export async function findInstances(catalog: Catalog, scope: InstanceScope): Promise<StoredInstance[]> {
  const instances = await catalog.listInstances(scope);
  if (instances.length === 0) {
    if (scope.sopInstanceUid !== undefined) throw new NotFoundError('Instance not found');
    if (scope.seriesInstanceUid !== undefined) throw new NotFoundError('Series not found');
    throw new NotFoundError('Study not found');
  }
  return instances;
}

/**
 * Default most frame numbers per request (PACS_WADO_MAX_FRAMES): every frame is held in memory until the
 * reply is sent. PS3.18 §8.3.3.1 sets no bound on a frame list; a server may refuse what it cannot serve.
 */
export const MAX_FRAMES_PER_REQUEST = 1000;

/**
 * Parses a WADO-RS frame list (`1`, `1,3,5`): 1-based frame numbers in the order requested,
 * duplicates kept. Anything else is a 400 saying what is wrong.
 */
export function parseFrameList(text: string, maxFrames: number = MAX_FRAMES_PER_REQUEST): number[] {
  const items = text.split(',');
  if (items.length > maxFrames) {
    throw new AppError('BAD_REQUEST', `Frame list has ${items.length} entries; at most ${maxFrames} frames per request`);
  }
  return items.map((item) => {
    const trimmed = item.trim();
    if (!/^[0-9]+$/.test(trimmed)) {
      throw new AppError('BAD_REQUEST', 'Frame list must be comma-separated frame numbers (1, 2, ...), e.g. "1,3,5"');
    }
    const frame = Number(trimmed);
    if (frame === 0) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
    if (!Number.isSafeInteger(frame)) throw new AppError('BAD_REQUEST', 'Frame number is too large');
    return frame;
  });
}

/**
 * Checks that frames can be served as stored bytes and that every requested number exists.
 * Status choices: no pixel data → 400 (BAD_REQUEST), a number past NumberOfFrames → 404, a layout
 * that has no per-frame bytes (video bitstream, deflated data set, bit-packed frames) → 406.
 */
export function frameSpans(instance: StoredInstance, frameNumbers: readonly number[]): ByteSpan[][] {
  const pixelData = instance.pixelData;
  if (pixelData === undefined) throw new AppError('BAD_REQUEST', 'The instance has no pixel data: it has no frames');
  const count = pixelData.isVideo ? instance.numberOfFrames : pixelData.frames.length || instance.numberOfFrames;
  for (const frame of frameNumbers) {
    if (frame < 1) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
    if (frame > count) throw new NotFoundError(`Frame ${frame} does not exist: the instance has ${count} frame${count === 1 ? '' : 's'}`);
  }
  if (pixelData.isVideo) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The instance is a video (${instance.transferSyntaxUid}): its frames form one bitstream and cannot be returned one by one; retrieve the instance instead`,
    );
  }
  if (pixelData.frames.length === 0) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The frame layout of this instance is unknown (stored as ${instance.transferSyntaxUid}, e.g. a deflated data set): frames cannot be read separately yet; retrieve the instance instead`,
    );
  }
  if (pixelData.bitPacked === true) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      'The frames of this instance are bit-packed (BitsAllocated 1) and may start mid-byte: unpacking single frames is not supported yet; retrieve the instance instead',
    );
  }
  return frameNumbers.map((frame) => pixelData.frames[frame - 1]!);
}

/**
 * The bytes of the requested frames, in request order (duplicates read again). Every fragment of
 * every frame is one ranged read, all issued at once; a frame's fragments are concatenated in order.
 * With `take` (and a store that reads into place), each frame is read into a buffer from `take` of
 * exactly its size, its fragments in place one after another (answer-buffers.ts: frame answers reuse
 * memory instead of allocating it anew).
 */
export async function readFrames(
  blobs: BlobStore,
  instance: StoredInstance,
  frameNumbers: readonly number[],
  take?: (size: number) => Buffer,
): Promise<Buffer[]> {
  const spans = frameSpans(instance, frameNumbers);
  const readInto = blobs.readInto?.bind(blobs);
  if (take !== undefined && readInto !== undefined) {
    return Promise.all(
      spans.map(async (frame) => {
        const out = take(frame.reduce((sum, [, length]) => sum + length, 0));
        // Every byte of `out` is written below, fragment after fragment, or a read throws and `out` is dropped.
        let at = 0;
        const reads: Promise<void>[] = [];
        for (const [offset, length] of frame) {
          if (length > 0) reads.push(readInto(instance.blobKey, { start: offset, end: offset + length - 1 }, out, at));
          at += length;
        }
        await Promise.all(reads);
        return out;
      }),
    );
  }
  return Promise.all(
    spans.map(async (frame) => {
      const fragments = await Promise.all(
        frame.map(([offset, length]) =>
          length === 0 ? Promise.resolve(Buffer.alloc(0)) : blobs.getRange(instance.blobKey, { start: offset, end: offset + length - 1 }),
        ),
      );
      return fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
    }),
  );
}

/** Bounds of the read-ahead of whole-instance retrieves (studies and series). */
export interface ReadAheadLimits {
  /** Instances up to this size are read whole with one ranged read; larger ones are streamed. */
  maxInstanceBytes: number;
  /** Most bytes read ahead of the instance being sent. */
  windowBytes: number;
  /** Most instances read ahead. */
  windowCount: number;
}

export const READ_AHEAD: ReadAheadLimits = { maxInstanceBytes: 4 << 20, windowBytes: 32 << 20, windowCount: 16 };

/** Bytes a caller wants around an instance's stored bytes (a multipart part's head and its CRLF). */
export interface Framing {
  head: Buffer;
  tail: Buffer;
}

/**
 * The instances in order, each with its stored bytes when it is small enough to be read whole (one
 * ranged read each, several issued ahead of the one being sent, within `limits`), or without bytes
 * when the caller must stream it (large) or wants none (`skip`, e.g. instances it transcodes). With
 * `framing`, `bytes` is head + stored bytes + tail in one buffer, the file read straight into place
 * (BlobStore.readInto) instead of into a buffer of its own and copied.
 *
 * Why read ahead: a series is hundreds of small files; reading them one after another leaves the
 * socket idle during every open and read (and on S3 every GET's round trip). Memory stays bounded by
 * `windowBytes` whatever the series size. With `buffers`, parts read into place take their buffers from
 * it and are handed out through it, so their memory is used again once written out (part-buffers.ts).
 */
export async function* instancesWithBytes(
  blobs: BlobStore,
  instances: readonly StoredInstance[],
  skip: (instance: StoredInstance) => boolean,
  limits: ReadAheadLimits = READ_AHEAD,
  framing?: (instance: StoredInstance) => Framing,
  buffers?: PartBuffers,
): AsyncGenerator<{ instance: StoredInstance; bytes?: Buffer }> {
  const pending: { instance: StoredInstance; read?: Promise<{ bytes: Buffer; pooled: boolean }> }[] = [];
  let next = 0;
  let bytesAhead = 0;
  const readsWhole = (instance: StoredInstance) =>
    !skip(instance) && instance.blobSize > 0 && instance.blobSize <= limits.maxInstanceBytes;
  const fill = () => {
    while (next < instances.length && pending.length < limits.windowCount) {
      const instance = instances[next]!;
      if (!readsWhole(instance)) {
        pending.push({ instance });
      } else {
        if (pending.length > 0 && bytesAhead + instance.blobSize > limits.windowBytes) return;
        bytesAhead += instance.blobSize;
        const read = readWhole(blobs, instance, framing?.(instance), buffers);
        // Awaited in order below; until then (or if the client leaves first) a failure must not go unhandled.
        read.catch(() => undefined);
        pending.push({ instance, read });
      }
      next += 1;
    }
  };
  for (;;) {
    fill();
    const head = pending.shift();
    if (head === undefined) return;
    if (head.read === undefined) {
      yield { instance: head.instance };
      continue;
    }
    const { bytes, pooled } = await head.read;
    bytesAhead -= head.instance.blobSize;
    if (pooled) buffers?.handOut(bytes);
    else buffers?.passed(bytes.length);
    yield { instance: head.instance, bytes };
  }
}

/**
 * The stored bytes of `instance`, framed when asked, in one buffer when the store can read into one (from
 * `buffers` when given: `pooled`, to be handed out through it).
 */
async function readWhole(
  blobs: BlobStore,
  instance: StoredInstance,
  framing: Framing | undefined,
  buffers: PartBuffers | undefined,
): Promise<{ bytes: Buffer; pooled: boolean }> {
  const range = { start: 0, end: instance.blobSize - 1 };
  if (blobs.readInto === undefined) {
    const bytes = await blobs.getRange(instance.blobKey, range);
    return { bytes: framing === undefined ? bytes : Buffer.concat([framing.head, bytes, framing.tail]), pooled: false };
  }
  const head = framing?.head.length ?? 0;
  const size = head + instance.blobSize + (framing?.tail.length ?? 0);
  // Every byte is written below (head, the whole range, tail) or the read throws and the buffer is dropped.
  const out = buffers === undefined ? Buffer.allocUnsafe(size) : buffers.take(size);
  framing?.head.copy(out, 0);
  await blobs.readInto(instance.blobKey, range, out, head);
  framing?.tail.copy(out, head + instance.blobSize);
  return { bytes: out, pooled: buffers !== undefined };
}
