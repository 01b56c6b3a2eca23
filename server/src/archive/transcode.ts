/**
 * Decoding for WADO-RS (PS3.18 §8.7.3, §10.4): stored instances rewritten as Explicit VR Little
 * Endian, and single compressed frames decoded to raw little-endian pixels. Compressed bitstreams are
 * decoded by dcmjs-codecs (WebAssembly: libjpeg, CharLS, OpenJPEG, OpenJPH, RLE); the data set is read
 * and written with dcmjs. Everything here is synchronous CPU work on buffers held in memory, so callers
 * bound the sizes (MAX_TRANSCODE_BYTES) and decode one instance at a time.
 */
import { createRequire } from 'node:module';
import '../dicom/dcmjs-fixes.js';
import dcmjs, { type DcmjsDict } from 'dcmjs';
import codecsPackage from 'dcmjs-codecs';
import type { StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { HeaderChanges } from '../dicom/identity-rewrite.js';
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  HTJ2K,
  HTJ2K_LOSSLESS,
  HTJ2K_LOSSLESS_RPCL,
  IMPLICIT_VR_LITTLE_ENDIAN,
  JPEG_2000,
  JPEG_2000_LOSSLESS,
  JPEG_BASELINE_8BIT,
  JPEG_EXTENDED_12BIT,
  JPEG_LOSSLESS,
  JPEG_LOSSLESS_SV1,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  RLE_LOSSLESS,
} from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';

/**
 * Largest instance (stored file, and its decoded pixel data) transcoded in memory; larger ones are a
 * 406 that says to ask for them as stored. The same bound applies to the decoded frames of one request.
 */
export const MAX_TRANSCODE_BYTES = 512 * 1024 * 1024;

/**
 * Compressed syntaxes the codecs decode, each mapped to the dcmjs-codecs codec that does it. JPEG
 * Extended (12-bit) and JPEG Lossless Process 14 (any predictor) go through the same libjpeg decoder as
 * Process 14 SV1: dcmjs-codecs only lacks the table entry for them. JPEG 2000 Part 2 (.92/.93), JPEG XL,
 * JPIP and video are not decoded.
 */
const CODEC_FOR: Readonly<Record<string, string>> = {
  [JPEG_BASELINE_8BIT]: JPEG_BASELINE_8BIT,
  [JPEG_EXTENDED_12BIT]: JPEG_LOSSLESS_SV1,
  [JPEG_LOSSLESS]: JPEG_LOSSLESS_SV1,
  [JPEG_LOSSLESS_SV1]: JPEG_LOSSLESS_SV1,
  [JPEG_LS_LOSSLESS]: JPEG_LS_LOSSLESS,
  [JPEG_LS_NEAR_LOSSLESS]: JPEG_LS_NEAR_LOSSLESS,
  [JPEG_2000_LOSSLESS]: JPEG_2000_LOSSLESS,
  [JPEG_2000]: JPEG_2000,
  [HTJ2K_LOSSLESS]: HTJ2K_LOSSLESS,
  [HTJ2K_LOSSLESS_RPCL]: HTJ2K_LOSSLESS_RPCL,
  [HTJ2K]: HTJ2K,
  [RLE_LOSSLESS]: RLE_LOSSLESS,
};

const LOSSY = new Set([JPEG_BASELINE_8BIT, JPEG_EXTENDED_12BIT, JPEG_LS_NEAR_LOSSLESS, JPEG_2000, HTJ2K]);

/** Native syntaxes rewritten (not decoded) as Explicit VR LE. */
const NATIVE_REWRITE = new Set([IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]);

/** Whether an encapsulated frame stored in `syntax` can be decoded to raw pixels. */
export function canDecodeFrames(syntax: string): boolean {
  return CODEC_FOR[syntax] !== undefined;
}

/** Whether an instance stored in `syntax` can be transcoded to Explicit VR Little Endian. */
export function canTranscodeToExplicitLittleEndian(syntax: string): boolean {
  return syntax === EXPLICIT_VR_LITTLE_ENDIAN || NATIVE_REWRITE.has(syntax) || canDecodeFrames(syntax);
}

/** The image pixel module attributes a decoder needs (PS3.3 C.7.6.3). */
export interface PixelAttributes {
  rows: number;
  columns: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  planarConfiguration: number;
}

export interface DecodedFrame {
  pixels: Buffer;
  /** After decoding, e.g. YBR_FULL_422 JPEG → RGB, YBR_RCT/ICT JPEG 2000 → RGB. */
  photometricInterpretation: string;
  planarConfiguration: number;
}

/** Bytes of one decoded frame: rows × columns × samples × bytes per sample. */
export function decodedFrameLength(a: Pick<PixelAttributes, 'rows' | 'columns' | 'samplesPerPixel' | 'bitsAllocated'>): number {
  return a.rows * a.columns * a.samplesPerPixel * Math.ceil(a.bitsAllocated / 8);
}

/** Pixel attributes from indexed DICOM JSON (or undefined values where absent). */
export function pixelAttributesFromJson(dataset: DicomJsonDataset): PixelAttributes {
  const num = (tag: string) => {
    const value = (dataset[tag] as { Value?: unknown[] } | undefined)?.Value?.[0];
    return typeof value === 'number' ? value : Number(value ?? NaN);
  };
  const str = (tag: string) => String((dataset[tag] as { Value?: unknown[] } | undefined)?.Value?.[0] ?? '').trim();
  return pixelAttributes(num, str);
}

function pixelAttributesFromDict(dict: DcmjsDict): PixelAttributes {
  const num = (tag: string) => Number(dict[tag]?.Value?.[0] ?? NaN);
  const str = (tag: string) => String(dict[tag]?.Value?.[0] ?? '').trim();
  return pixelAttributes(num, str);
}

function pixelAttributes(num: (tag: string) => number, str: (tag: string) => string): PixelAttributes {
  const attributes: PixelAttributes = {
    rows: num('00280010'),
    columns: num('00280011'),
    bitsAllocated: num('00280100'),
    bitsStored: num('00280101'),
    highBit: num('00280102'),
    pixelRepresentation: num('00280103'),
    samplesPerPixel: num('00280002'),
    photometricInterpretation: str('00280004'),
    planarConfiguration: Number.isNaN(num('00280006')) ? 0 : num('00280006'),
  };
  if (Number.isNaN(attributes.bitsStored)) attributes.bitsStored = attributes.bitsAllocated;
  if (Number.isNaN(attributes.highBit)) attributes.highBit = attributes.bitsStored - 1;
  if (Number.isNaN(attributes.pixelRepresentation)) attributes.pixelRepresentation = 0;
  if (Number.isNaN(attributes.samplesPerPixel)) attributes.samplesPerPixel = 1;
  for (const key of ['rows', 'columns', 'bitsAllocated'] as const) {
    const value = attributes[key];
    if (!Number.isInteger(value) || value <= 0) {
      throw new AppError('NOT_ACCEPTABLE', `The instance has no valid ${key} in its image pixel module: its pixel data cannot be decoded`);
    }
  }
  if (attributes.bitsAllocated !== 8 && attributes.bitsAllocated !== 16) {
    throw new AppError('NOT_ACCEPTABLE', `Decoding supports BitsAllocated 8 and 16 only (the instance has ${attributes.bitsAllocated})`);
  }
  return attributes;
}

// ---------------------------------------------------------------------------------------------------
// dcmjs-codecs

const { NativeCodecs, Transcoder } = codecsPackage;
let ready: Promise<void> | undefined;

/** Loads the codecs WebAssembly once per process (~40 ms) and silences the libraries' console logging. */
export function initializeCodecs(): Promise<void> {
  ready ??= (async () => {
    codecsPackage.log.setLevel('silent', false);
    // dcmjs-codecs brings its own dcmjs, which logs every unknown tag to the console.
    try {
      const require = createRequire(import.meta.url);
      const nested = createRequire(require.resolve('dcmjs-codecs'))('dcmjs') as { log?: { setLevel(level: string, persist?: boolean): void } };
      nested.log?.setLevel('silent', false);
    } catch {
      // Its dcmjs is the top-level one: nothing more to silence.
    }
    await NativeCodecs.initializeAsync();
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

const toArrayBuffer = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/**
 * Decodes one compressed frame (its fragments concatenated) stored in `syntax` to raw little-endian
 * pixels: a one-frame in-memory data set holding only the image pixel module goes through the
 * dcmjs-codecs codec for the syntax (which also converts YBR colour to RGB where the decoder does).
 * Call initializeCodecs() first. A bitstream the decoder rejects is a 406 naming the syntax.
 */
export function decodeFrame(syntax: string, attributes: PixelAttributes, bitstream: Buffer, frameNumber = 1): DecodedFrame {
  const codec = CODEC_FOR[syntax];
  if (codec === undefined) throw new AppError('NOT_ACCEPTABLE', `Pixel data stored as ${syntax} cannot be decoded by this server`);
  const elements: Record<string, unknown> = {
    Rows: attributes.rows,
    Columns: attributes.columns,
    BitsAllocated: attributes.bitsAllocated,
    BitsStored: attributes.bitsStored,
    HighBit: attributes.highBit,
    PixelRepresentation: attributes.pixelRepresentation,
    SamplesPerPixel: attributes.samplesPerPixel,
    PhotometricInterpretation: attributes.photometricInterpretation,
    PlanarConfiguration: attributes.planarConfiguration,
    NumberOfFrames: 1,
    PixelData: [toArrayBuffer(bitstream)],
  };
  let decoded: Record<string, unknown>;
  try {
    const transcoder = new Transcoder(elements, codec);
    transcoder.transcode(EXPLICIT_VR_LITTLE_ENDIAN);
    decoded = transcoder.getElements();
  } catch (err) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `Frame ${frameNumber} (stored as ${syntax}) could not be decoded: ${err instanceof Error ? err.message.trim() : 'decoder failure'}; ` +
        'ask with transfer-syntax=* to receive it as stored',
      { cause: err },
    );
  }
  const pixelData = decoded['PixelData'];
  const first = Array.isArray(pixelData) ? pixelData[0] : pixelData;
  if (!(first instanceof ArrayBuffer)) throw new AppError('INTERNAL', `Decoding frame ${frameNumber} (${syntax}) returned no pixel data`);
  let pixels = Buffer.from(first);
  const expected = decodedFrameLength(attributes);
  // The codecs pad odd lengths to even; the frame itself is exactly rows × columns × samples × bytes.
  if (pixels.length === expected + 1) pixels = pixels.subarray(0, expected);
  if (pixels.length !== expected) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `Frame ${frameNumber} (stored as ${syntax}) decoded to ${pixels.length} bytes, not the ${expected} its image pixel module describes; ` +
        'ask with transfer-syntax=* to receive it as stored',
    );
  }
  return {
    pixels,
    photometricInterpretation: String(decoded['PhotometricInterpretation'] ?? attributes.photometricInterpretation),
    planarConfiguration: Number(decoded['PlanarConfiguration'] ?? attributes.planarConfiguration),
  };
}

/** Native big-endian frame bytes → little-endian (16-bit words swapped; 8-bit samples unchanged). */
export function swapToLittleEndian(pixels: Buffer, bitsAllocated: number): Buffer {
  if (bitsAllocated <= 8) return pixels;
  if (bitsAllocated !== 16) throw new AppError('NOT_ACCEPTABLE', `Big-endian pixel data with BitsAllocated ${bitsAllocated} cannot be converted`);
  const copy = Buffer.from(pixels);
  return copy.length % 2 === 0 ? copy.swap16() : Buffer.concat([copy.subarray(0, copy.length - 1).swap16(), copy.subarray(copy.length - 1)]);
}

// ---------------------------------------------------------------------------------------------------
// Whole instances

/**
 * The stored Part-10 file `file` of `instance` rewritten as Explicit VR Little Endian: compressed frames
 * decoded (the frame spans indexed at ingest locate them), big-endian pixel data byte-swapped, implicit
 * VR and deflated data sets re-encoded. Every other attribute is kept; PhotometricInterpretation /
 * PlanarConfiguration follow the decoder, and a lossy source gets LossyImageCompression "01".
 * Throws a 406 when the syntax is not decodable or the decoded pixel data would exceed the limit.
 */
export async function transcodeToExplicitLittleEndian(
  instance: StoredInstance,
  file: Buffer,
  maxBytes: number = MAX_TRANSCODE_BYTES,
  changes?: HeaderChanges,
): Promise<Buffer> {
  const syntax = instance.transferSyntaxUid;
  if (!canTranscodeToExplicitLittleEndian(syntax)) {
    throw new AppError('NOT_ACCEPTABLE', `An instance is stored as ${syntax}, which this server cannot decode to Explicit VR Little Endian; ask with transfer-syntax=* to receive it as stored`);
  }
  const encapsulated = instance.pixelData?.encapsulated === true;
  if (encapsulated) await initializeCodecs();
  const parsed = readPart10(file);
  const dict = parsed.dict;
  const pixelData = instance.pixelData;

  if (pixelData !== undefined && encapsulated) {
    if (pixelData.frames.length === 0 || pixelData.isVideo) {
      throw new AppError('NOT_ACCEPTABLE', `The frames of this instance (${syntax}) cannot be located: it cannot be decoded; ask with transfer-syntax=* to receive it as stored`);
    }
    const attributes = pixelAttributesFromDict(dict);
    const total = decodedFrameLength(attributes) * pixelData.frames.length;
    if (total > maxBytes) throw tooLarge(total, maxBytes);
    const decoded: Buffer[] = [];
    let last: DecodedFrame | undefined;
    pixelData.frames.forEach((spans, index) => {
      const bitstream = spans.length === 1 ? file.subarray(spans[0]![0], spans[0]![0] + spans[0]![1]) : Buffer.concat(spans.map(([offset, length]) => file.subarray(offset, offset + length)));
      last = decodeFrame(syntax, attributes, bitstream, index + 1);
      decoded.push(last.pixels);
    });
    let pixels = Buffer.concat(decoded);
    if (pixels.length % 2 === 1) pixels = Buffer.concat([pixels, Buffer.alloc(1)]);
    dict[pixelData.tag] = { vr: attributes.bitsAllocated > 8 ? 'OW' : 'OB', Value: [toArrayBuffer(pixels)] };
    if (last !== undefined) {
      dict['00280004'] = { vr: 'CS', Value: [last.photometricInterpretation] };
      if (attributes.samplesPerPixel > 1) dict['00280006'] = { vr: 'US', Value: [last.planarConfiguration] };
    }
    if (LOSSY.has(syntax)) dict['00282110'] = { vr: 'CS', Value: ['01'] };
  }
  if (syntax === EXPLICIT_VR_BIG_ENDIAN) {
    // dcmjs reads every big-endian OW/OF/OL/OD/OV value as raw bytes: the other words (palette LUT data,
    // overlay data, …) get their byte order here, pixel data below (PS3.5 §7.3).
    swapOtherWords(dict, pixelData?.tag);
  }
  if (!encapsulated && syntax === EXPLICIT_VR_BIG_ENDIAN && pixelData !== undefined) {
    // dcmjs reads big-endian OW values as raw bytes: swap the pixel data's words.
    const element = dict[pixelData.tag];
    const value = element?.Value?.[0];
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      const raw = value instanceof ArrayBuffer ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      const bitsAllocated = pixelData.tag === '7FE00010' ? pixelAttributesFromDict(dict).bitsAllocated : 32;
      if (pixelData.tag !== '7FE00010') {
        throw new AppError('NOT_ACCEPTABLE', 'Big-endian float pixel data cannot be converted; ask with transfer-syntax=* to receive it as stored');
      }
      dict[pixelData.tag] = { vr: bitsAllocated > 8 ? 'OW' : 'OB', Value: [toArrayBuffer(swapToLittleEndian(raw, bitsAllocated))] };
    }
  }

  if (changes !== undefined) applyChangesToDict(dict, changes);

  const meta: DcmjsDict = { ...parsed.meta, '00020010': { vr: 'UI', Value: [EXPLICIT_VR_LITTLE_ENDIAN] } };
  delete meta['00020000'];
  const out = new dcmjs.data.DicomDict(meta);
  out.dict = dict;
  return Buffer.from(withSilentDcmjs(() => out.write({ allowInvalidVRLength: true })));
}

const WORD_BYTES: Readonly<Record<string, number>> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

/** Big-endian "other" word values (except the pixel data, swapped by the caller) to little endian, at any depth. */
function swapOtherWords(dict: DcmjsDict, pixelTag: string | undefined): void {
  for (const [tag, element] of Object.entries(dict)) {
    if (element === undefined || tag === pixelTag) continue;
    if (element.vr === 'SQ') {
      for (const item of element.Value ?? []) if (item !== null && typeof item === 'object') swapOtherWords(item as DcmjsDict, undefined);
      continue;
    }
    const width = WORD_BYTES[element.vr ?? ''];
    if (width === undefined) continue;
    element.Value = (element.Value ?? []).map((value) => {
      if (!(value instanceof ArrayBuffer)) return value;
      const bytes = Buffer.from(value.slice(0));
      const whole = bytes.length - (bytes.length % width);
      const part = bytes.subarray(0, whole);
      if (width === 2) part.swap16();
      else if (width === 4) part.swap32();
      else part.swap64();
      return toArrayBuffer(bytes);
    });
  }
}

/**
 * The patient's identity of record and a moved instance's study of record in place of the stored ones
 * (identity-on-read.ts `readChangesOf`). dcmjs writes every text value as UTF-8: a name outside ASCII
 * in a data set without a Specific Character Set declares ISO_IR 192 (dcmjs already rewrote an existing
 * one to it when reading).
 */
function applyChangesToDict(dict: DcmjsDict, { set, remove }: HeaderChanges): void {
  for (const tag of remove) delete dict[tag];
  for (const [tag, element] of Object.entries(set)) dict[tag] = { vr: element.vr, Value: (element.Value ?? []) as unknown[] };
  if (dict['00080005'] === undefined && /[^\x00-\x7f]/.test(JSON.stringify(set))) dict['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'] };
}

function tooLarge(bytes: number, maxBytes: number): AppError {
  return new AppError(
    'NOT_ACCEPTABLE',
    `Transcoding this instance would need ${bytes} bytes in memory, over the limit of ${maxBytes} (PACS_DECODE_MAX_BYTES); ask with transfer-syntax=* to receive it as stored`,
  );
}

function readPart10(file: Buffer): { meta: DcmjsDict; dict: DcmjsDict } {
  try {
    return withSilentDcmjs(() => dcmjs.data.DicomMessage.readFile(toArrayBuffer(file), { ignoreErrors: true }));
  } catch (err) {
    throw new AppError('NOT_ACCEPTABLE', `The stored file could not be parsed for transcoding; ask with transfer-syntax=* to receive it as stored`, { cause: err });
  }
}

/** dcmjs logs every tolerated defect to the console; its calls here are synchronous. */
function withSilentDcmjs<T>(fn: () => T): T {
  const loggers = [dcmjs.log, dcmjs.log.getLogger('validation.dcmjs')];
  const levels = loggers.map((l) => l.getLevel());
  for (const l of loggers) l.setLevel('silent', false);
  try {
    return fn();
  } finally {
    loggers.forEach((l, i) => l.setLevel(levels[i]!, false));
  }
}
