/**
 * Lossless recompression of one stored, uncompressed instance (docs/architecture.md, "Storage
 * lifecycle"): the new Part-10 file is the stored one with
 *
 * - File Meta: Transfer Syntax UID (0002,0010) = JPEG-LS Lossless 1.2.840.10008.1.2.4.80 (PS3.5 A.4.3)
 *   or HTJ2K Lossless 1.2.840.10008.1.2.4.201 (PS3.5 A.4.4 / 8.2.14), Implementation Class UID
 *   (0002,0012) and Version Name (0002,0013) ours (PS3.10 §7.1: the implementation that wrote the file),
 *   group length recomputed; every other File Meta element kept;
 * - the data set before Pixel Data copied byte for byte (an Explicit VR Little Endian source), or as
 *   transcode.ts rewrites an Implicit VR or Explicit VR Big Endian one in Explicit VR Little Endian
 *   (encapsulated syntaxes are explicit little endian, PS3.5 A.4); Planar Configuration (0028,0006) set
 *   to 0 for colour (Table 8.2.3-1: JPEG-LS RGB has Planar Configuration 0), in place;
 * - Pixel Data (7FE0,0010) encapsulated (OB, undefined length; PS3.5 A.4): a Basic Offset Table with
 *   each frame's offset, then one fragment per frame (PS3.5 A.4: "Each Fragment shall contain encoded
 *   data from a single Frame"), coded by dcmjs-codecs' CharLS / OpenJPH encoders as samples of Bits
 *   Allocated bits (unsigned; signed for HTJ2K of signed data, whose decoder follows the data set's
 *   Pixel Representation; archive/encode-frames.ts encodeLossless), so decoding gives back the stored
 *   frame bytes exactly, whatever Bits Stored, sign and the bits above High Bit hold; the Bits Stored,
 *   High Bit and Pixel Representation elements keep their values (the sample precision of the
 *   codestream is not below Bits Stored);
 * - whatever followed Pixel Data, copied.
 *
 * The SOP Instance UID stays: a lossless change of transfer syntax changes the encoding, not the
 * information (PS3.4 B.4.1: Storage Level 2 keeps every attribute, which a lossless re-encoding does;
 * PS3.2 Table N.5-9 "Transcoding of Transfer Syntaxes": SUPPORTED = the same SOP Instance UID reused,
 * NEW_UID = a new instance, e.g. due to lossy compression), and Lossy Image Compression
 * (0028,2110) is untouched (00 or absent stays; PS3.3 C.7.6.1.1.5). The original syntax is recorded in the
 * index row (`instances.original_transfer_syntax_uid`), not in the data set: File Meta holds no such
 * element and PS3.3 C.12.1.1.9's Original Attributes Sequence records changed *data set* attributes.
 *
 * Every frame is decoded again and compared with the source frame before the result is returned: a
 * codec that does not reproduce the stored bytes leaves the instance as it is.
 *
 * Memory: the instance's frames, raw and encoded, are held at once (for the Basic Offset Table); the
 * caller bounds the raw size (PACS_DECODE_MAX_BYTES) before anything is read.
 */
import { createHash } from 'node:crypto';
import type { BlobStore } from '../storage/blob-store.js';
import type { StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { PixelDataLocation } from '../dicom/instance-header.js';
import { scanPart10 } from '../dicom/part10-scanner.js';
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, HTJ2K_LOSSLESS, IMPLICIT_VR_LITTLE_ENDIAN, JPEG_LS_LOSSLESS } from '../dicom/transfer-syntax.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/write-part10.js';
import { readWholeInstance } from '../archive/decode-frames.js';
import { encodeLossless } from '../archive/encode-frames.js';
import { readFrames } from '../archive/retrieve.js';
import { decodedFrameLength, decodeFrame, initializeCodecs, pixelAttributesFromJson, transcodeToExplicitLittleEndian, type PixelAttributes } from '../archive/transcode.js';
import { AppError } from '../errors.js';

export type LosslessSyntax = typeof JPEG_LS_LOSSLESS | typeof HTJ2K_LOSSLESS;

/** Native syntaxes housekeeping recompresses (deflated data sets are compressed already: kept). */
export const UNCOMPRESSED_SYNTAXES = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN] as const;

/** Photometric interpretations JPEG-LS and HTJ2K lossless carry as they are (PS3.5 Tables 8.2.3-1, 8.2.14-1). */
const PHOTOMETRIC = new Set(['MONOCHROME1', 'MONOCHROME2', 'PALETTE COLOR', 'RGB']);

/**
 * The syntaxes to try, in order, for the configured one. Colour goes to JPEG-LS even when HTJ2K is
 * configured: RGB without a colour transform is plainly allowed for JPEG-LS Lossless (PS3.5 Table
 * 8.2.3-1), while the JPEG 2000 family's tables tie colour to YBR_RCT (dciodvfy of 2022 refuses RGB there)
 * and OpenJPH does not reproduce 16-bit RGB. Otherwise the other syntax is the fallback for an instance
 * the first codec does not reproduce exactly.
 */
export function losslessTargets(configured: LosslessSyntax, attributes: PixelAttributes): LosslessSyntax[] {
  if (attributes.samplesPerPixel > 1) return [JPEG_LS_LOSSLESS];
  return configured === HTJ2K_LOSSLESS ? [HTJ2K_LOSSLESS, JPEG_LS_LOSSLESS] : [JPEG_LS_LOSSLESS, HTJ2K_LOSSLESS];
}

export type Eligibility = { ok: true; attributes: PixelAttributes; rawBytes: number } | { ok: false; reason: string };

/** Whether the instance can be recompressed losslessly, from its row and indexed header alone (no blob read). */
export function recompressionEligibility(instance: StoredInstance, dataset: DicomJsonDataset, maxBytes: number): Eligibility {
  const pixelData = instance.pixelData;
  if (!(UNCOMPRESSED_SYNTAXES as readonly string[]).includes(instance.transferSyntaxUid)) return { ok: false, reason: 'not stored uncompressed' };
  if (pixelData === undefined) return { ok: false, reason: 'no pixel data' };
  if (pixelData.tag !== '7FE00010') return { ok: false, reason: 'float pixel data' };
  if (pixelData.encapsulated || pixelData.isVideo) return { ok: false, reason: 'encapsulated pixel data' };
  if (pixelData.bitPacked === true) return { ok: false, reason: 'bit-packed pixel data (Bits Allocated 1)' };
  if (pixelData.frames.length === 0 || pixelData.valueLength === undefined) return { ok: false, reason: 'frames not located' };
  let attributes: PixelAttributes;
  try {
    attributes = pixelAttributesFromJson(dataset);
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : 'no image pixel module' };
  }
  const photometric = attributes.photometricInterpretation.toUpperCase();
  if (!PHOTOMETRIC.has(photometric)) return { ok: false, reason: `photometric interpretation ${photometric || '(none)'} kept as received` };
  if (attributes.samplesPerPixel !== 1 && attributes.samplesPerPixel !== 3) return { ok: false, reason: `${attributes.samplesPerPixel} samples per pixel` };
  if ((photometric === 'RGB') !== (attributes.samplesPerPixel === 3)) return { ok: false, reason: 'samples per pixel inconsistent with the photometric interpretation' };
  const frameLength = decodedFrameLength(attributes);
  if (pixelData.frames.some((spans) => spans.length !== 1 || spans[0]![1] < frameLength)) return { ok: false, reason: 'frames shorter than the image pixel module says' };
  const rawBytes = frameLength * pixelData.frames.length;
  if (rawBytes > maxBytes || instance.blobSize > maxBytes) return { ok: false, reason: `larger than ${maxBytes} bytes (PACS_DECODE_MAX_BYTES)` };
  return { ok: true, attributes, rawBytes };
}

export interface RecompressedFile {
  /** The syntax it is in: the one asked for, or the next one when that codec could not reproduce the frames. */
  syntax: LosslessSyntax;
  /** The new file, in pieces (header, offset table, fragments, trailer). */
  chunks: Buffer[];
  size: number;
  checksum: string;
  /** Frame spans of the new file, as ingest's scanner records them. */
  pixelData: PixelDataLocation;
  /** Planar Configuration was set to 0: the indexed header changes with it. */
  planarChanged: boolean;
}

/** An Explicit VR Little Endian source: the bytes before Pixel Data, the frames, and what follows. */
export interface Source {
  prefix: Buffer;
  frames: Buffer[];
  trailer: Buffer;
}

/**
 * The recompressed Part-10 file of `instance` (eligible by recompressionEligibility), in the first of
 * `targets` (losslessTargets) whose codec gives back every frame's bytes. Throws an AppError (NOT_ACCEPTABLE)
 * naming what kept it from being converted; nothing is written here.
 */
export async function recompressInstance(
  blobs: BlobStore,
  instance: StoredInstance,
  attributes: PixelAttributes,
  targets: LosslessSyntax | readonly LosslessSyntax[],
  options: { maxBytes: number; maxHeaderBytes: number },
): Promise<RecompressedFile> {
  const source = instance.transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN ? await explicitSource(blobs, instance) : await rewrittenSource(blobs, instance, options);
  const { preamble, meta, datasetStart } = fileMeta(source.prefix);
  let dataset = source.prefix.subarray(datasetStart);
  const planar = attributes.samplesPerPixel > 1 && attributes.planarConfiguration === 1;
  if (planar) {
    const at = findTopLevelValue(dataset, 0x00280006);
    if (at === undefined) throw new AppError('NOT_ACCEPTABLE', 'Planar Configuration 1 could not be located in the data set');
    dataset = Buffer.from(dataset);
    dataset.writeUInt16LE(0, at);
  }
  await initializeCodecs();
  let target: LosslessSyntax | undefined;
  let fragments: Buffer[] = [];
  for (const candidate of typeof targets === 'string' ? [targets] : targets) {
    const encoded = encodeFrames(source.frames, attributes, candidate, planar);
    if (encoded !== undefined) {
      target = candidate;
      fragments = encoded;
      break;
    }
  }
  if (target === undefined) throw new AppError('NOT_ACCEPTABLE', 'A frame did not decode to its stored bytes with any lossless codec: the instance is kept as received');
  const newMeta = metaGroup(meta, target);
  const pixelHeader = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const offsets = basicOffsetTable(fragments);
  const items = fragments.flatMap((fragment) => [itemHeader(fragment.length), fragment]);
  const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const chunks = [preamble, newMeta, dataset, pixelHeader, offsets, ...items, delimiter, source.trailer].filter((c) => c.length > 0);
  const hash = createHash('sha256');
  let size = 0;
  for (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
  }
  // The frame spans the index records are what ingest's own scanner finds in the new file.
  const header = await scanPart10(
    (async function* () {
      yield* chunks;
    })(),
    async () => {},
    { maxHeaderBytes: options.maxHeaderBytes },
  );
  const pixelData = header.pixelData;
  if (header.sopInstanceUid !== instance.sopInstanceUid || header.transferSyntaxUid !== target || pixelData === undefined || pixelData.frames.length !== fragments.length) {
    throw new AppError('INTERNAL', 'The recompressed file does not scan as written');
  }
  return { syntax: target, chunks, size, checksum: hash.digest('hex'), pixelData, planarChanged: planar };
}

/**
 * Every frame coded in `target` and decoded again: the fragments, or undefined when a frame does not come
 * back byte for byte (lossless means the stored bytes come back, checked before anything is written).
 */
function encodeFrames(frames: readonly Buffer[], attributes: PixelAttributes, target: LosslessSyntax, planar: boolean): Buffer[] | undefined {
  const frameLength = decodedFrameLength(attributes);
  const after = { ...attributes, planarConfiguration: 0 };
  // HTJ2K's decoder reads the samples with the data set's Pixel Representation: signed data is coded
  // signed (the same 16 or 8 bits, two's complement); JPEG-LS carries no sign and decodes the bytes.
  const signed = target === HTJ2K_LOSSLESS && attributes.pixelRepresentation === 1;
  const fragments: Buffer[] = [];
  for (const [index, stored] of frames.entries()) {
    const raw = stored.subarray(0, frameLength);
    const expected = planar ? interleave(raw, attributes) : raw;
    let decoded: Buffer;
    let encoded: Buffer;
    try {
      encoded = encodeLossless(target, attributes, { pixels: raw, photometricInterpretation: attributes.photometricInterpretation, planarConfiguration: attributes.planarConfiguration }, index + 1, signed);
      decoded = decodeFrame(target, after, encoded, index + 1).pixels;
    } catch {
      return undefined;
    }
    if (!decoded.equals(expected)) return undefined;
    fragments.push(encoded.length % 2 === 1 ? Buffer.concat([encoded, Buffer.alloc(1)]) : encoded);
  }
  return fragments;
}

/** Stored Explicit VR Little Endian: ranged reads of the header, each frame and the trailer. */
export async function explicitSource(blobs: BlobStore, instance: StoredInstance): Promise<Source> {
  const location = instance.pixelData!;
  const headerStart = location.valueOffset - 12;
  const head = await blobs.getRange(instance.blobKey, { start: 0, end: location.valueOffset - 1 });
  const element = head.subarray(headerStart);
  const vr = element.toString('latin1', 4, 6);
  if (element.readUInt16LE(0) !== 0x7fe0 || element.readUInt16LE(2) !== 0x0010 || (vr !== 'OB' && vr !== 'OW')) {
    throw new AppError('NOT_ACCEPTABLE', 'Pixel Data is not where the index says: the instance is kept as received');
  }
  const frames = await readFrames(blobs, instance, location.frames.map((_, i) => i + 1));
  const valueEnd = location.valueOffset + (location.valueLength ?? 0);
  const trailer = valueEnd < instance.blobSize ? await blobs.getRange(instance.blobKey, { start: valueEnd, end: instance.blobSize - 1 }) : Buffer.alloc(0);
  return { prefix: head.subarray(0, headerStart), frames, trailer };
}

/** Implicit VR or big endian: the whole file rewritten as Explicit VR Little Endian by transcode.ts, then scanned. */
export async function rewrittenSource(blobs: BlobStore, instance: StoredInstance, options: { maxBytes: number; maxHeaderBytes: number }): Promise<Source> {
  const stored = await readWholeInstance(blobs, instance, options.maxBytes);
  const file = await transcodeToExplicitLittleEndian(instance, stored, options.maxBytes);
  const header = await scanPart10(
    (async function* () {
      yield file;
    })(),
    async () => {},
    { maxHeaderBytes: options.maxHeaderBytes },
  );
  const location = header.pixelData;
  if (location === undefined || location.encapsulated || location.valueLength === undefined || location.frames.length !== instance.pixelData?.frames.length) {
    throw new AppError('NOT_ACCEPTABLE', 'The rewritten data set has no native Pixel Data matching the stored one');
  }
  const valueEnd = location.valueOffset + location.valueLength;
  return {
    prefix: file.subarray(0, location.valueOffset - 12),
    frames: location.frames.map((spans) => file.subarray(spans[0]![0], spans[0]![0] + spans[0]![1])),
    trailer: file.subarray(valueEnd),
  };
}

// ---------------------------------------------------------------------------------------------------
// Encoding helpers (Explicit VR Little Endian, PS3.5 §7.1.2)

export const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export interface MetaElement {
  tag: number;
  bytes: Buffer;
}

/** The 128-byte preamble with "DICM", the File Meta elements, and where the data set starts. */
export function fileMeta(prefix: Buffer): { preamble: Buffer; meta: MetaElement[]; datasetStart: number } {
  if (prefix.length < 132 || prefix.toString('latin1', 128, 132) !== 'DICM') throw new AppError('NOT_ACCEPTABLE', 'The stored file has no File Meta Information (PS3.10 §7.1): kept as received');
  const meta: MetaElement[] = [];
  let pos = 132;
  while (pos + 8 <= prefix.length && prefix.readUInt16LE(pos) === 0x0002) {
    const vr = prefix.toString('latin1', pos + 4, pos + 6);
    if (!/^[A-Z]{2}$/.test(vr)) throw new AppError('NOT_ACCEPTABLE', 'The File Meta Information is not explicit VR: kept as received');
    const long = LONG_VRS.has(vr);
    const length = long ? prefix.readUInt32LE(pos + 8) : prefix.readUInt16LE(pos + 6);
    const end = pos + (long ? 12 : 8) + length;
    if (length === 0xffffffff || end > prefix.length) throw new AppError('NOT_ACCEPTABLE', 'The File Meta Information could not be read: kept as received');
    meta.push({ tag: (0x0002 << 16) | prefix.readUInt16LE(pos + 2), bytes: prefix.subarray(pos, end) });
    pos = end;
  }
  return { preamble: prefix.subarray(0, 132), meta, datasetStart: pos };
}

function shortElement(element: number, vr: string, value: string): Buffer {
  const padded = value.length % 2 === 1 ? `${value}${vr === 'UI' ? '\0' : ' '}` : value;
  const out = Buffer.alloc(8 + padded.length);
  out.writeUInt16LE(0x0002, 0);
  out.writeUInt16LE(element, 2);
  out.write(vr, 4, 'latin1');
  out.writeUInt16LE(padded.length, 6);
  out.write(padded, 8, 'latin1');
  return out;
}

/** File Meta with the new Transfer Syntax and our implementation, its group length (0002,0000) recomputed. */
export function metaGroup(meta: readonly MetaElement[], target: string, sopInstanceUid?: string): Buffer {
  const replaced = new Map<number, Buffer>([
    ...(sopInstanceUid === undefined ? [] : [[0x00020003, shortElement(0x0003, 'UI', sopInstanceUid)] as [number, Buffer]]),
    [0x00020010, shortElement(0x0010, 'UI', target)],
    [0x00020012, shortElement(0x0012, 'UI', IMPLEMENTATION_CLASS_UID)],
    [0x00020013, shortElement(0x0013, 'SH', IMPLEMENTATION_VERSION_NAME)],
  ]);
  const elements = meta.filter((e) => e.tag !== 0x00020000 && !replaced.has(e.tag)).map((e) => ({ tag: e.tag, bytes: e.bytes }));
  for (const [tag, bytes] of replaced) elements.push({ tag, bytes });
  elements.sort((a, b) => a.tag - b.tag);
  const body = Buffer.concat(elements.map((e) => e.bytes));
  const length = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00, 0, 0, 0, 0]);
  length.writeUInt32LE(body.length, 8);
  return Buffer.concat([length, body]);
}

export function itemHeader(length: number): Buffer {
  const header = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0]);
  header.writeUInt32LE(length, 4);
  return header;
}

/** The Basic Offset Table item: each frame's first fragment offset (PS3.5 A.4); empty when they pass 4 GiB. */
export function basicOffsetTable(fragments: readonly Buffer[]): Buffer {
  const offsets: number[] = [];
  let at = 0;
  for (const fragment of fragments) {
    offsets.push(at);
    at += 8 + fragment.length;
  }
  if (at > 0xffffffff) return itemHeader(0);
  const table = Buffer.alloc(4 * offsets.length);
  offsets.forEach((offset, i) => table.writeUInt32LE(offset, i * 4));
  return Buffer.concat([itemHeader(table.length), table]);
}

/**
 * Offset of the value of a top-level element of an Explicit VR Little Endian data set (sequences
 * skipped whatever their length encoding), or undefined when absent or the data set cannot be walked.
 */
export function findTopLevelValue(dataset: Buffer, tag: number): number | undefined {
  let pos = 0;
  while (pos + 8 <= dataset.length) {
    const current = ((dataset.readUInt16LE(pos) << 16) | dataset.readUInt16LE(pos + 2)) >>> 0;
    const vr = dataset.toString('latin1', pos + 4, pos + 6);
    const long = LONG_VRS.has(vr);
    const headerLength = long ? 12 : 8;
    if (pos + headerLength > dataset.length) return undefined;
    const length = long ? dataset.readUInt32LE(pos + 8) : dataset.readUInt16LE(pos + 6);
    if (current === tag) return pos + headerLength;
    if (current > tag) return undefined;
    if (length === 0xffffffff) {
      if (vr !== 'SQ') return undefined;
      const end = skipUndefinedSequence(dataset, pos + headerLength);
      if (end === undefined) return undefined;
      pos = end;
    } else {
      pos += headerLength + length;
    }
  }
  return undefined;
}

/** Position after the Sequence Delimitation Item of an undefined-length sequence starting at `pos`. */
export function skipUndefinedSequence(buf: Buffer, pos: number): number | undefined {
  while (pos + 8 <= buf.length) {
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const length = buf.readUInt32LE(pos + 4);
    if (group !== 0xfffe) return undefined;
    if (element === 0xe0dd) return pos + 8;
    if (element !== 0xe000) return undefined;
    if (length !== 0xffffffff) {
      pos += 8 + length;
      continue;
    }
    // An undefined-length item: its elements up to the Item Delimitation Item.
    pos += 8;
    for (;;) {
      if (pos + 8 > buf.length) return undefined;
      if (buf.readUInt16LE(pos) === 0xfffe && buf.readUInt16LE(pos + 2) === 0xe00d) {
        pos += 8;
        break;
      }
      const vr = buf.toString('latin1', pos + 4, pos + 6);
      const long = LONG_VRS.has(vr);
      const headerLength = long ? 12 : 8;
      const valueLength = long ? buf.readUInt32LE(pos + 8) : buf.readUInt16LE(pos + 6);
      if (valueLength === 0xffffffff) {
        if (vr !== 'SQ') return undefined;
        const end = skipUndefinedSequence(buf, pos + headerLength);
        if (end === undefined) return undefined;
        pos = end;
      } else {
        pos += headerLength + valueLength;
      }
    }
  }
  return undefined;
}

/** Planar (RRR…GGG…BBB…) colour samples → interleaved (RGBRGB…). */
export function interleave(pixels: Buffer, a: PixelAttributes): Buffer {
  const bytes = Math.ceil(a.bitsAllocated / 8);
  const plane = a.rows * a.columns;
  const out = Buffer.alloc(plane * a.samplesPerPixel * bytes);
  for (let i = 0; i < plane; i += 1) {
    for (let s = 0; s < a.samplesPerPixel; s += 1) pixels.copy(out, (i * a.samplesPerPixel + s) * bytes, (s * plane + i) * bytes, (s * plane + i + 1) * bytes);
  }
  return out;
}
