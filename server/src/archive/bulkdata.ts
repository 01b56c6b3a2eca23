/**
 * WADO-RS bulk data (PS3.18 §10.4.1.1.5): the value of the pixel data element of a stored instance,
 * read from the file by ranged reads in bounded chunks (never the whole value in one buffer).
 * Native pixel data is one span of the file; encapsulated pixel data is its fragments (item values,
 * without item headers) of every frame, in order, concatenated. Encapsulated pixel data can also be
 * decoded (decodedBulkData): every frame's raw little-endian pixels, in frame order.
 */
import '../dicom/dcmjs-fixes.js';
import dcmjs, { type DcmjsDict } from 'dcmjs';
import type { BlobStore } from '../storage/blob-store.js';
import type { StoredInstance } from '../catalog/catalog.js';
import type { ByteSpan } from '../dicom/instance-header.js';
import { AppError, NotFoundError } from '../errors.js';
import { decodeFrames } from './decode-frames.js';
import { decodedFrameLength, MAX_TRANSCODE_BYTES, type PixelAttributes } from './transcode.js';

/** Largest single ranged read while streaming a bulk data value. */
export const BULKDATA_CHUNK_BYTES = 8 * 1024 * 1024;

export interface BulkDataValue {
  /** File byte spans whose concatenation is the value. */
  spans: ByteSpan[];
  /** Total length in bytes. */
  length: number;
  encapsulated: boolean;
}

/** Tag in a bulk data path: 8 hex digits. */
const TAG = /^[0-9A-Fa-f]{8}$/;

/**
 * Where the value of `tag` lies in the stored file. Only the pixel data element is served: another
 * tag, or an instance without pixel data, is a 404 saying so; pixel data inside a deflated data set
 * (no byte offsets in the file) is a 406.
 */
export function bulkDataValue(instance: StoredInstance, tagText: string): BulkDataValue {
  if (!TAG.test(tagText)) throw new AppError('BAD_REQUEST', 'The bulk data path must end in a tag of 8 hex digits, e.g. 7FE00010');
  const tag = tagText.toUpperCase();
  const pixelData = instance.pixelData;
  if (pixelData === undefined) throw new NotFoundError('The instance has no pixel data: it has no bulk data');
  if (tag !== pixelData.tag) {
    throw new NotFoundError(`No bulk data for ${tag}: only the pixel data (${pixelData.tag}) is served as bulk data`);
  }
  if (pixelData.valueOffset < 0) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The pixel data of this instance lies in a deflated data set (${instance.transferSyntaxUid}) and cannot be read as stored bytes; retrieve the instance instead`,
    );
  }
  if (!pixelData.encapsulated) {
    const length = pixelData.valueLength ?? 0;
    return { spans: length > 0 ? [[pixelData.valueOffset, length]] : [], length, encapsulated: false };
  }
  const spans = pixelData.frames.flat().filter(([, length]) => length > 0);
  if (spans.length === 0) {
    throw new AppError('NOT_ACCEPTABLE', 'The fragment layout of this encapsulated pixel data is unknown; retrieve the instance instead');
  }
  return { spans, length: spans.reduce((sum, [, length]) => sum + length, 0), encapsulated: true };
}

/** VRs served as bulk data other than pixel data (PS3.18 §F.2.7: their JSON form is InlineBinary / BulkDataURI). */
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const PIXEL_DATA_TAGS = new Set(['7FE00008', '7FE00009', '7FE00010']);

/** Whether a bulk data path names the pixel data element itself (served by bulkDataValue). */
export function isPixelDataPath(path: string): boolean {
  return PIXEL_DATA_TAGS.has(path.toUpperCase());
}

/**
 * The value of a binary element other than pixel data, at `path` (`TAG[/ITEM/TAG...]`, sequence items
 * numbered from 1, as metadata.ts writes it): e.g. `006A0002/1/00660016`, the Point Coordinates Data
 * of the first annotation group. The data set before the pixel data is read (the whole file for an
 * instance without pixel data, at most `maxBytes`) through `read` (e.g. Archive.readBulkData) and
 * parsed; the value is returned whole. 400 for a malformed path, 404 when the element is not there or
 * is not binary.
 */
export async function elementBulkData(
  read: (value: BulkDataValue, start: number, end: number) => AsyncIterable<Buffer>,
  instance: StoredInstance,
  path: string,
  maxBytes: number = MAX_TRANSCODE_BYTES,
): Promise<Buffer> {
  const segments = path.split('/');
  const valid = segments.length % 2 === 1 && segments.every((segment, index) => (index % 2 === 0 ? TAG.test(segment) : /^[1-9]\d{0,8}$/.test(segment)));
  if (!valid) throw new AppError('BAD_REQUEST', 'The bulk data path must be a tag of 8 hex digits, or sequence tag/item number (from 1)/tag..., e.g. 006A0002/1/00660016');
  const pixelData = instance.pixelData;
  const headerEnd = pixelData !== undefined && pixelData.valueOffset >= 0 ? pixelData.valueOffset : instance.blobSize;
  if (headerEnd > maxBytes) {
    throw new AppError('NOT_ACCEPTABLE', `The data set of this instance (${headerEnd} bytes) is over the ${maxBytes}-byte limit for reading non-pixel bulk data; retrieve the instance instead`);
  }
  const chunks: Buffer[] = [];
  if (headerEnd > 0) {
    for await (const chunk of read({ spans: [[0, headerEnd]], length: headerEnd, encapsulated: false }, 0, headerEnd - 1)) chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  let dict: DcmjsDict;
  try {
    // Stops at the pixel data element's tag without reading its value (which was not read).
    dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer, {
      ignoreErrors: false,
      untilTag: pixelData?.tag ?? null,
      includeUntilTagValue: false,
    }).dict;
  } catch (err) {
    throw new AppError('NOT_ACCEPTABLE', `The stored data set could not be parsed to find ${path}: ${(err as Error).message}`);
  }
  let current: DcmjsDict | undefined = dict;
  for (let index = 0; index < segments.length; index += 2) {
    const tag = segments[index]!.toUpperCase();
    const element = current?.[tag];
    if (element === undefined) throw new NotFoundError(`No element ${segments.slice(0, index + 1).join('/')} in this instance`);
    if (index === segments.length - 1) {
      if (!BINARY_VRS.has(element.vr)) throw new NotFoundError(`${path} is ${element.vr}, not a binary element: it has no bulk data (it is in the metadata)`);
      const parts = (element.Value ?? []).filter((v): v is ArrayBuffer | ArrayBufferView => v instanceof ArrayBuffer || ArrayBuffer.isView(v));
      return Buffer.concat(parts.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength))));
    }
    const item: unknown = element.vr === 'SQ' ? element.Value?.[Number(segments[index + 1]) - 1] : undefined;
    if (item === undefined || item === null || typeof item !== 'object') {
      throw new NotFoundError(`No item ${segments[index + 1]} in sequence ${segments.slice(0, index + 1).join('/')} of this instance`);
    }
    current = item as DcmjsDict;
  }
  throw new NotFoundError(`No element ${path} in this instance`);
}

/**
 * The bytes `start..end` (inclusive, 0-based within the value) of a value made of file spans, as
 * ranged reads of at most BULKDATA_CHUNK_BYTES each, one at a time (a slow client holds one chunk).
 */
export async function* readBulkData(
  blobs: BlobStore,
  blobKey: string,
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  chunkBytes = BULKDATA_CHUNK_BYTES,
): AsyncGenerator<Buffer> {
  let spanStart = 0; // position of the current span within the value
  for (const [offset, length] of spans) {
    const spanEnd = spanStart + length - 1;
    if (spanEnd >= start && spanStart <= end) {
      let from = Math.max(start, spanStart) - spanStart;
      const to = Math.min(end, spanEnd) - spanStart;
      while (from <= to) {
        const last = Math.min(to, from + chunkBytes - 1);
        yield await blobs.getRange(blobKey, { start: offset + from, end: offset + last });
        from = last + 1;
      }
    }
    spanStart += length;
    if (spanStart > end) return;
  }
}

/**
 * Encapsulated pixel data decoded (PS3.18 §8.7.3: no transfer syntax means Explicit VR Little Endian):
 * every frame decoded to raw little-endian pixels (decode-frames.ts), in frame order; the value is
 * their concatenation (kept as one buffer per frame). A 406 before anything is read when the decoded
 * value would exceed MAX_TRANSCODE_BYTES; the decoder's 406 for undecodable syntaxes or bitstreams.
 */
export async function decodedBulkData(
  blobs: BlobStore,
  instance: StoredInstance,
  attributes: PixelAttributes,
  maxBytes: number = MAX_TRANSCODE_BYTES,
): Promise<Buffer[]> {
  const frameCount = instance.pixelData?.frames.length ?? 0;
  if (frameCount === 0) {
    throw new AppError('NOT_ACCEPTABLE', 'The frames of this encapsulated pixel data cannot be located, so it cannot be decoded; ask with transfer-syntax=* to receive it as stored');
  }
  const total = decodedFrameLength(attributes) * frameCount;
  if (total > maxBytes) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The pixel data of this instance (${frameCount} frames) decodes to ${total} bytes, over the ${maxBytes}-byte limit for decoded bulk data (PACS_DECODE_MAX_BYTES); ` +
        'ask with transfer-syntax=* to receive it as stored, or retrieve the frames decoded a few at a time',
    );
  }
  return decodeFrames(blobs, instance, attributes, Array.from({ length: frameCount }, (_, index) => index + 1), maxBytes);
}

/** The bytes `start..end` (inclusive) of a value held as consecutive buffers, without copying. */
export function* sliceBuffers(buffers: readonly Buffer[], start: number, end: number): Generator<Buffer> {
  let position = 0;
  for (const buffer of buffers) {
    const last = position + buffer.length - 1;
    if (last >= start && position <= end && buffer.length > 0) {
      yield buffer.subarray(Math.max(start, position) - position, Math.min(end, last) - position + 1);
    }
    position += buffer.length;
    if (position > end) return;
  }
}
