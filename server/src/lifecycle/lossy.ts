/**
 * The optional lossy policy of the storage lifecycle (docs/architecture.md, "Storage lifecycle", "Lossy
 * policy"; PACS_LIFECYCLE_LOSSY, off by default): a stored image is replaced by a lossy compressed copy.
 *
 * - 8-bit images (Bits Allocated and Bits Stored 8, unsigned; MONOCHROME1/2 or RGB, e.g. endoscopy stills
 *   and Video Endoscopic / ultrasound frames stored uncompressed): JPEG Baseline (Process 1,
 *   1.2.840.10008.1.2.4.50, PS3.5 A.4.1) by dcmjs-codecs' libjpeg (quality PACS_LIFECYCLE_LOSSY_JPEG_QUALITY),
 *   colour with horizontal 4:2:2 chroma subsampling, hence Photometric Interpretation YBR_FULL_422 (PS3.5
 *   8.2.1; PS3.3 C.7.6.3.1.2), the value the Secondary Capture and VL IODs allow (dciodvfy refuses
 *   YBR_FULL there). dcmjs-codecs labels its JPEG YBR_FULL_422 unless told 4:4:4, so 4:2:2 is asked for
 *   explicitly to make the label true;
 * - greyscale of more than 8 bits (Bits Allocated 16): JPEG 2000 (1.2.840.10008.1.2.4.91, PS3.5 A.4.4)
 *   irreversible by dcmjs-codecs' OpenJPEG at the compression ratio PACS_LIFECYCLE_LOSSY_J2K_RATIO (its
 *   `rate`). dcmjs-codecs 0.0.8 also encodes HTJ2K lossy (1.2.840.10008.1.2.4.203) but takes no rate
 *   for it, so the ratio could not be chosen: JPEG 2000 is used.
 *
 * The new instance is a new SOP Instance (PS3.2 Table N.5-9 "Transcoding of Transfer Syntaxes": NEW_UID,
 * "e.g., due to lossy compression"; PS3.3 C.7.6.1.1.5: Lossy Image Compression 01 once lossy compressed,
 * never reset; PS3.4 B.4.1: Storage Level 2 keeps every attribute, which lossy compression does not do
 * to Pixel Data). Its data set is the stored one, with (top-level, PS3.3 C.7.6.1):
 *
 * - SOP Instance UID (0008,0018) and Media Storage SOP Instance UID (0002,0003): derivedUid(original),
 *   a name-based UUID (ISO/IEC 9834-8 version 5, as PS3.5 B.2 allows under the 2.25 root) of the original
 *   UID, so an interrupted conversion done again gives the same instance, never a second copy;
 * - Lossy Image Compression (0028,2110) = 01; Lossy Image Compression Ratio (0028,2112) and Method
 *   (0028,2114, ISO_10918_1 or ISO_15444_1) with this compression's values appended to any there
 *   (C.7.6.1.1.5.1/.2: one value per successive lossy compression);
 * - Source Image Sequence (0008,2112): one item, the original (Referenced SOP Class / Instance UID) with
 *   Purpose of Reference (121320, DCM, "Uncompressed predecessor") (C.7.6.1.1.4, CID 7202); Derivation
 *   Code Sequence (0008,9215) = (113040, DCM, "Lossy Compression") (CID 7203); Derivation Description
 *   (0008,2111) saying what was done (C.7.6.1.1.3); Image Type is kept;
 * - Photometric Interpretation YBR_FULL_422 and Planar Configuration 0 for colour JPEG.
 *
 * Every frame is decoded again and its PSNR against the source frame computed before anything is
 * stored: below PACS_LIFECYCLE_LOSSY_MIN_PSNR the instance is kept as it is. Memory: the instance's
 * frames raw and encoded at once, bounded by PACS_DECODE_MAX_BYTES like recompress.ts.
 */
import { createHash } from 'node:crypto';
import codecsPackage from 'dcmjs-codecs';
import type { StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, HTJ2K_LOSSLESS, JPEG_2000, JPEG_BASELINE_8BIT, JPEG_LS_LOSSLESS } from '../dicom/transfer-syntax.js';
import { readFrames } from '../archive/retrieve.js';
import { decodedFrameLength, decodeFrame, initializeCodecs, pixelAttributesFromJson, type PixelAttributes } from '../archive/transcode.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { basicOffsetTable, explicitSource, fileMeta, interleave, itemHeader, LONG_VRS, metaGroup, recompressionEligibility, rewrittenSource, skipUndefinedSequence, type Source } from './recompress.js';

export type LossySyntax = typeof JPEG_BASELINE_8BIT | typeof JPEG_2000;

/** Stored syntaxes the lossy policy starts from: native ones, and the lossless ones lifecycle writes. */
const LOSSLESS_SOURCES = [JPEG_LS_LOSSLESS, HTJ2K_LOSSLESS] as const;

export interface LossyOptions {
  jpegQuality: number;
  j2kRatio: number;
  minPsnr: number;
  maxBytes: number;
  maxHeaderBytes: number;
}

export type LossyEligibility = { ok: true; attributes: PixelAttributes; syntax: LossySyntax } | { ok: false; reason: string };

/** Whether the instance can be compressed lossily, from its row and indexed header alone. */
export function lossyEligibility(instance: StoredInstance, dataset: DicomJsonDataset, maxBytes: number): LossyEligibility {
  let attributes: PixelAttributes;
  if ((LOSSLESS_SOURCES as readonly string[]).includes(instance.transferSyntaxUid)) {
    const pixelData = instance.pixelData;
    if (pixelData === undefined || pixelData.tag !== '7FE00010' || !pixelData.encapsulated || pixelData.frames.length === 0) return { ok: false, reason: 'frames not located' };
    try {
      attributes = pixelAttributesFromJson(dataset);
    } catch (err) {
      return { ok: false, reason: err instanceof Error ? err.message : 'no image pixel module' };
    }
    if (decodedFrameLength(attributes) * pixelData.frames.length > maxBytes) return { ok: false, reason: `larger than ${maxBytes} bytes (PACS_DECODE_MAX_BYTES)` };
  } else {
    const lossless = recompressionEligibility(instance, dataset, maxBytes);
    if (!lossless.ok) return lossless;
    attributes = lossless.attributes;
  }
  const photometric = attributes.photometricInterpretation.toUpperCase();
  if (photometric === 'PALETTE COLOR') return { ok: false, reason: 'palette colour kept as received (a lossy code of indices is meaningless)' };
  if (!['MONOCHROME1', 'MONOCHROME2', 'RGB'].includes(photometric)) return { ok: false, reason: `photometric interpretation ${photometric} kept as received` };
  if (attributes.bitsAllocated === 8 && attributes.bitsStored === 8 && attributes.pixelRepresentation === 0) return { ok: true, attributes, syntax: JPEG_BASELINE_8BIT };
  if (attributes.bitsAllocated === 16 && attributes.samplesPerPixel === 1 && attributes.bitsStored <= 16) return { ok: true, attributes, syntax: JPEG_2000 };
  return { ok: false, reason: `no lossy codec here for ${attributes.bitsAllocated}-bit ${attributes.samplesPerPixel > 1 ? 'colour' : 'greyscale'} (Bits Stored ${attributes.bitsStored})` };
}

/**
 * The SOP Instance UID of the lossy copy of `sopInstanceUid`: 2.25 + a name-based (SHA-1, version 5)
 * UUID of it (PS3.5 B.2), the same every time, so a conversion redone after a crash finds its result.
 */
export function derivedUid(sopInstanceUid: string): string {
  const hash = createHash('sha1').update('filmless-pacs lossy compression of ').update(sopInstanceUid).digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

export interface LossyFile {
  sopInstanceUid: string;
  syntax: LossySyntax;
  chunks: Buffer[];
  size: number;
  /** Uncompressed frame bytes / encoded bytes (what 0028,2112 says). */
  ratio: number;
  method: string;
  /** Lowest PSNR of a frame, in dB (Infinity when identical). */
  psnr: number;
}

const { Transcoder, constants } = codecsPackage as unknown as {
  Transcoder: new (elements: Record<string, unknown>, syntax: string) => { transcode(syntax: string, options?: Record<string, unknown>): void; getElements(): Record<string, unknown> };
  constants: { JpegSampleFactor: { Sf422: number } };
};

/** The lossy copy of `instance` (eligible by lossyEligibility), checked; nothing is written here. */
export async function lossyCompressInstance(blobs: BlobStore, instance: StoredInstance, dataset: DicomJsonDataset, eligible: Extract<LossyEligibility, { ok: true }>, options: LossyOptions): Promise<LossyFile> {
  const { attributes, syntax } = eligible;
  await initializeCodecs();
  const source = await sourceOf(blobs, instance, attributes, options);
  const frameLength = decodedFrameLength(attributes);
  const planar = attributes.samplesPerPixel > 1 && attributes.planarConfiguration === 1 && !(LOSSLESS_SOURCES as readonly string[]).includes(instance.transferSyntaxUid);
  const fragments: Buffer[] = [];
  let photometric = attributes.photometricInterpretation;
  let psnr = Infinity;
  for (const [index, stored] of source.frames.entries()) {
    const raw = planar ? interleave(stored.subarray(0, frameLength), attributes) : stored.subarray(0, frameLength);
    const elements: Record<string, unknown> = {
      Rows: attributes.rows,
      Columns: attributes.columns,
      BitsAllocated: attributes.bitsAllocated,
      BitsStored: attributes.bitsStored,
      HighBit: attributes.bitsStored - 1,
      PixelRepresentation: attributes.pixelRepresentation,
      SamplesPerPixel: attributes.samplesPerPixel,
      PhotometricInterpretation: attributes.photometricInterpretation,
      PlanarConfiguration: 0,
      NumberOfFrames: 1,
      PixelData: [raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)],
    };
    let encoded: Buffer;
    try {
      const transcoder = new Transcoder(elements, EXPLICIT_VR_LITTLE_ENDIAN);
      transcoder.transcode(syntax, syntax === JPEG_BASELINE_8BIT ? { quality: options.jpegQuality, sampleFactor: constants.JpegSampleFactor.Sf422 } : { rate: options.j2kRatio });
      const out = transcoder.getElements();
      const pieces = (Array.isArray(out['PixelData']) ? out['PixelData'] : [out['PixelData']]).filter((f): f is ArrayBuffer => f instanceof ArrayBuffer);
      if (pieces.length === 0) throw new Error('no codestream');
      encoded = Buffer.concat(pieces.map((f) => Buffer.from(f)));
      // dcmjs-codecs 0.0.8 relabels its own YBR_FULL_422 output RGB (it mutates the elements it then
      // tests); libjpeg coded YCbCr 4:2:2 (JFIF's colour transform), so that is what is written.
      photometric = attributes.samplesPerPixel > 1 && syntax === JPEG_BASELINE_8BIT ? 'YBR_FULL_422' : String(out['PhotometricInterpretation'] ?? photometric);
    } catch (err) {
      throw new AppError('NOT_ACCEPTABLE', `Frame ${index + 1} could not be encoded to ${syntax}: ${err instanceof Error ? err.message.trim() : 'encoder failure'}`, { cause: err });
    }
    const decoded = decodeFrame(syntax, { ...attributes, photometricInterpretation: photometric, planarConfiguration: 0 }, encoded, index + 1).pixels;
    psnr = Math.min(psnr, framePsnr(raw, decoded, attributes));
    fragments.push(encoded.length % 2 === 1 ? Buffer.concat([encoded, Buffer.alloc(1)]) : encoded);
  }
  if (psnr < options.minPsnr) throw new AppError('NOT_ACCEPTABLE', `PSNR ${psnr.toFixed(1)} dB below PACS_LIFECYCLE_LOSSY_MIN_PSNR (${options.minPsnr} dB): kept as received`);
  const encodedBytes = fragments.reduce((sum, f) => sum + f.length, 0);
  const ratio = (frameLength * fragments.length) / encodedBytes;
  const method = syntax === JPEG_BASELINE_8BIT ? 'ISO_10918_1' : 'ISO_15444_1';
  const sopInstanceUid = derivedUid(instance.sopInstanceUid);
  const { preamble, meta, datasetStart } = fileMeta(source.prefix);
  const description =
    syntax === JPEG_BASELINE_8BIT
      ? `Lossy JPEG Baseline (quality ${options.jpegQuality}) of SOP Instance ${instance.sopInstanceUid} by storage lifecycle`
      : `Lossy JPEG 2000 irreversible (ratio ${options.j2kRatio}:1) of SOP Instance ${instance.sopInstanceUid} by storage lifecycle`;
  const edits = new Map<number, Buffer>([
    [0x00080018, element(0x00080018, 'UI', sopInstanceUid)],
    [0x00082111, element(0x00082111, 'ST', appendText(stringValue(dataset, '00082111'), description, 1024))],
    [0x00082112, sourceImageSequence(instance.sopClassUid, instance.sopInstanceUid)],
    [0x00089215, derivationCodeSequence()],
    [0x00280004, element(0x00280004, 'CS', photometric)],
    [0x00282110, element(0x00282110, 'CS', '01')],
    [0x00282112, element(0x00282112, 'DS', appendValues(dataset, '00282112', formatDs(ratio)))],
    [0x00282114, element(0x00282114, 'CS', appendValues(dataset, '00282114', method))],
  ]);
  if (attributes.samplesPerPixel > 1) edits.set(0x00280006, usElement(0x00280006, 0));
  const newDataset = editTopLevel(source.prefix.subarray(datasetStart), edits);
  const newMeta = metaGroup(meta, syntax, sopInstanceUid);
  const pixelHeader = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const items = fragments.flatMap((fragment) => [itemHeader(fragment.length), fragment]);
  const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const chunks = [preamble, newMeta, newDataset, pixelHeader, basicOffsetTable(fragments), ...items, delimiter].filter((c) => c.length > 0);
  return { sopInstanceUid, syntax, chunks, size: chunks.reduce((sum, c) => sum + c.length, 0), ratio, method, psnr };
}

/** The stored data set before Pixel Data (Explicit VR Little Endian) and each frame's raw pixels. */
async function sourceOf(blobs: BlobStore, instance: StoredInstance, attributes: PixelAttributes, options: LossyOptions): Promise<Source> {
  if (!(LOSSLESS_SOURCES as readonly string[]).includes(instance.transferSyntaxUid)) {
    return instance.transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN ? explicitSource(blobs, instance) : rewrittenSource(blobs, instance, options);
  }
  const location = instance.pixelData!;
  const head = await blobs.getRange(instance.blobKey, { start: 0, end: location.valueOffset - 1 });
  const element = head.subarray(location.valueOffset - 12);
  if (element.readUInt16LE(0) !== 0x7fe0 || element.readUInt16LE(2) !== 0x0010) throw new AppError('NOT_ACCEPTABLE', 'Pixel Data is not where the index says: the instance is kept as received');
  const encoded = await readFrames(blobs, instance, location.frames.map((_, i) => i + 1));
  const frames = encoded.map((bitstream, i) => decodeFrame(instance.transferSyntaxUid, attributes, bitstream, i + 1).pixels);
  return { prefix: head.subarray(0, location.valueOffset - 12), frames, trailer: Buffer.alloc(0) };
}

/** PSNR in dB of `decoded` against `raw` (samples of Bits Stored bits; signed when Pixel Representation 1). */
export function framePsnr(raw: Buffer, decoded: Buffer, a: PixelAttributes): number {
  const wide = a.bitsAllocated > 8;
  const count = Math.floor(Math.min(raw.length, decoded.length) / (wide ? 2 : 1));
  const mask = a.bitsStored >= 32 ? 0xffffffff : 2 ** a.bitsStored - 1;
  const value = (b: Buffer, i: number): number => {
    if (!wide) return b[i]!;
    const v = b.readUInt16LE(i * 2) & mask;
    return a.pixelRepresentation === 1 && v >= 2 ** (a.bitsStored - 1) ? v - 2 ** a.bitsStored : v;
  };
  let squared = 0;
  for (let i = 0; i < count; i += 1) squared += (value(raw, i) - value(decoded, i)) ** 2;
  if (squared === 0) return Infinity;
  return 10 * Math.log10((mask * mask) / (squared / count));
}

// ---------------------------------------------------------------------------------------------------
// Data set edits (Explicit VR Little Endian, top level only)

export function stringValue(dataset: DicomJsonDataset, tag: string): string | undefined {
  const value = (dataset[tag] as { Value?: unknown[] } | undefined)?.Value;
  return value === undefined || value.length === 0 ? undefined : value.map((v) => String(v)).join('\\');
}

export function appendValues(dataset: DicomJsonDataset, tag: string, value: string): string {
  const existing = stringValue(dataset, tag);
  return existing === undefined || existing.trim() === '' ? value : `${existing}\\${value}`;
}

export function appendText(existing: string | undefined, text: string, max: number): string {
  return (existing === undefined || existing.trim() === '' ? text : `${existing.trim()}; ${text}`).slice(-max);
}

/** DS (at most 16 characters, PS3.5 Table 6.2-1). */
export function formatDs(ratio: number): string {
  return ratio >= 1e6 ? ratio.toExponential(3) : ratio.toFixed(3);
}

export function element(tag: number, vr: string, value: string): Buffer {
  const pad = vr === 'UI' ? '\0' : ' ';
  const text = value.length % 2 === 1 ? `${value}${pad}` : value;
  const out = Buffer.alloc(8 + text.length);
  out.writeUInt16LE(tag >>> 16, 0);
  out.writeUInt16LE(tag & 0xffff, 2);
  out.write(vr, 4, 'latin1');
  out.writeUInt16LE(text.length, 6);
  out.write(text, 8, 'latin1');
  return out;
}

export function usElement(tag: number, value: number): Buffer {
  const out = Buffer.alloc(10);
  out.writeUInt16LE(tag >>> 16, 0);
  out.writeUInt16LE(tag & 0xffff, 2);
  out.write('US', 4, 'latin1');
  out.writeUInt16LE(2, 6);
  out.writeUInt16LE(value, 8);
  return out;
}

/** A sequence of defined length with the given items (each a list of encoded elements in tag order). */
export function sequence(tag: number, items: Buffer[][]): Buffer {
  const encodedItems = items.map((elements) => {
    const body = Buffer.concat(elements);
    return Buffer.concat([itemHeader(body.length), body]);
  });
  const body = Buffer.concat(encodedItems);
  const header = Buffer.alloc(12);
  header.writeUInt16LE(tag >>> 16, 0);
  header.writeUInt16LE(tag & 0xffff, 2);
  header.write('SQ', 4, 'latin1');
  header.writeUInt32LE(body.length, 8);
  return Buffer.concat([header, body]);
}

export function code(value: string, scheme: string, meaning: string): Buffer[] {
  return [element(0x00080100, 'SH', value), element(0x00080102, 'SH', scheme), element(0x00080104, 'LO', meaning)];
}

function sourceImageSequence(sopClassUid: string, sopInstanceUid: string): Buffer {
  return sequence(0x00082112, [[element(0x00081150, 'UI', sopClassUid), element(0x00081155, 'UI', sopInstanceUid), sequence(0x0040a170, [code('121320', 'DCM', 'Uncompressed predecessor')])]]);
}

function derivationCodeSequence(): Buffer {
  return sequence(0x00089215, [code('113040', 'DCM', 'Lossy Compression')]);
}

/** The top-level data set with the given elements replaced or inserted in tag order. */
export function editTopLevel(dataset: Buffer, edits: ReadonlyMap<number, Buffer>): Buffer {
  const pending = [...edits.entries()].sort((a, b) => a[0] - b[0]);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos + 8 <= dataset.length) {
    const tag = ((dataset.readUInt16LE(pos) << 16) | dataset.readUInt16LE(pos + 2)) >>> 0;
    const vr = dataset.toString('latin1', pos + 4, pos + 6);
    const long = LONG_VRS.has(vr);
    if (!/^[A-Z]{2}$/.test(vr)) throw new AppError('NOT_ACCEPTABLE', 'The data set could not be walked: kept as received');
    const headerLength = long ? 12 : 8;
    const length = long ? dataset.readUInt32LE(pos + 8) : dataset.readUInt16LE(pos + 6);
    let end: number;
    if (length === 0xffffffff) {
      if (vr !== 'SQ') throw new AppError('NOT_ACCEPTABLE', 'An undefined length outside a sequence: kept as received');
      const after = skipUndefinedSequence(dataset, pos + headerLength);
      if (after === undefined) throw new AppError('NOT_ACCEPTABLE', 'A sequence could not be walked: kept as received');
      end = after;
    } else {
      end = pos + headerLength + length;
    }
    if (end > dataset.length) throw new AppError('NOT_ACCEPTABLE', 'The data set is truncated: kept as received');
    while (pending.length > 0 && pending[0]![0] < tag) out.push(pending.shift()![1]);
    if (pending.length > 0 && pending[0]![0] === tag) out.push(pending.shift()![1]);
    else out.push(dataset.subarray(pos, end));
    pos = end;
  }
  for (const [, bytes] of pending) out.push(bytes);
  return Buffer.concat(out);
}
