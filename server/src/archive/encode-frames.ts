/**
 * Frames encoded in a compressed transfer syntax the client asked for (WADO-RS frames, PS3.18
 * §8.7.3.5 / §10.4.1.1.3), from any stored syntax the archive can decode (native, or the codecs of
 * transcode.ts): the light forms a thin link needs.
 *
 * - JPEG Baseline (1.2.840.10008.1.2.4.50, `image/jpeg`), lossy, 8 bits a sample, quality 1–100. Sources
 *   of at most 8 bits (colour RGB after decoding, or unsigned MONOCHROME2) keep their sample values
 *   (only JPEG's loss). Greyscale of more than 8 bits cannot be carried by JPEG Baseline: it is taken
 *   through the Modality LUT (rescale) and the VOI window of the data set (PS3.3 C.11.2.1.2; the window
 *   the data set gives, else the frame's min–max), like DCMTK's `dcmcjpeg` windowed lossy mode: an
 *   8-bit presentation of the frame, not its stored values. What the linear window cannot express
 *   (Modality or VOI LUT sequences, MONOCHROME1 of more than 8 bits with a LUT, palette colour, native
 *   YBR) goes through the rendering pipeline of render.ts (dcmjs-imaging) without overlays.
 * - JPEG-LS Lossless (1.2.840.10008.1.2.4.80, `image/jls`) and HTJ2K Lossless
 *   (1.2.840.10008.1.2.4.201, `image/jphc`), encoded by dcmjs-codecs (CharLS, OpenJPH). The codestream
 *   holds the frame's bytes as unsigned samples of BitsAllocated bits, so decoding it gives back exactly
 *   the raw little-endian pixels (what `transfer-syntax=1.2.840.10008.1.2.1` serves), whatever Bits
 *   Stored, sign and padding bits say; colour decoded from YBR JPEG is RGB, as for decoded frames.
 *
 * Synchronous CPU work on the event loop (measured: 5–15 ms for a 512×512 16-bit frame): callers bound
 * the frames per request.
 */
import sharp from 'sharp';
import codecsPackage from 'dcmjs-codecs';
import type { Logger } from 'pino';
import type { StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, HTJ2K_LOSSLESS, JPEG_BASELINE_8BIT, JPEG_LS_LOSSLESS } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { DEFAULT_JPEG_QUALITY, renderFrame } from './render.js';
import { readFrames } from './retrieve.js';
import { canDecodeFrames, decodedFrameLength, decodeFrame, initializeCodecs, swapToLittleEndian, type PixelAttributes } from './transcode.js';

/** Syntaxes frames can be encoded to, whatever they are stored in. */
export const FRAME_ENCODINGS = [JPEG_BASELINE_8BIT, JPEG_LS_LOSSLESS, HTJ2K_LOSSLESS] as const;
export type FrameEncodingSyntax = (typeof FRAME_ENCODINGS)[number];

export function isFrameEncoding(syntax: string | undefined): syntax is FrameEncodingSyntax {
  return (FRAME_ENCODINGS as readonly string[]).includes(syntax ?? '');
}

export interface FrameEncoding {
  syntax: FrameEncodingSyntax;
  /** JPEG Baseline quality, 1–100 (default DEFAULT_JPEG_QUALITY). */
  quality?: number;
}

/**
 * Whether the frames of `instance` can be encoded at all: native pixel data (little or big endian), or
 * an encapsulated syntax the codecs decode; not video, float or bit-packed pixel data.
 */
export function canEncodeFramesOf(instance: StoredInstance): boolean {
  const pixelData = instance.pixelData;
  if (pixelData === undefined || pixelData.isVideo || pixelData.tag !== '7FE00010' || pixelData.frames.length === 0) return false;
  if (pixelData.encapsulated) return canDecodeFrames(instance.transferSyntaxUid);
  return true;
}

export interface RawFrame {
  pixels: Buffer;
  photometricInterpretation: string;
  planarConfiguration: number;
}

export interface EncodeFramesOptions {
  /** Decoded bytes one request may hold (PACS_DECODE_MAX_BYTES). */
  maxBytes: number;
  /** Largest frame rendered through render.ts (PACS_RENDER_MAX_PIXELS). */
  renderMaxPixels: number;
  log?: Logger;
}

/**
 * The given 1-based frames encoded as asked, in request order. `dataset` is the instance's indexed
 * DICOM JSON (window, rescale, LUT presence). A bitstream the decoder rejects is a 406 naming the frame.
 */
export async function encodeFrames(
  blobs: BlobStore,
  instance: StoredInstance,
  dataset: DicomJsonDataset,
  attributes: PixelAttributes,
  frameNumbers: readonly number[],
  encoding: FrameEncoding,
  options: EncodeFramesOptions,
): Promise<Buffer[]> {
  const total = decodedFrameLength(attributes) * frameNumbers.length;
  if (total > options.maxBytes) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The ${frameNumbers.length} frames asked for decode to ${total} bytes before encoding, over the ${options.maxBytes}-byte limit per request (PACS_DECODE_MAX_BYTES); ask for fewer frames`,
    );
  }
  if (!canEncodeFramesOf(instance)) {
    throw new AppError('NOT_ACCEPTABLE', `Frames of this instance (${instance.transferSyntaxUid}) cannot be decoded, so they cannot be encoded to ${encoding.syntax}; ask with transfer-syntax=* to receive them as stored`);
  }
  const stored = await readFrames(blobs, instance, frameNumbers);
  const encapsulated = instance.pixelData?.encapsulated === true;
  if (encapsulated) await initializeCodecs();
  const out: Buffer[] = [];
  for (const [index, bitstream] of stored.entries()) {
    const frameNumber = frameNumbers[index]!;
    const raw: RawFrame = encapsulated
      ? decodeFrame(instance.transferSyntaxUid, attributes, bitstream, frameNumber)
      : {
          pixels: instance.transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN ? swapToLittleEndian(bitstream, attributes.bitsAllocated) : bitstream,
          photometricInterpretation: attributes.photometricInterpretation,
          planarConfiguration: attributes.planarConfiguration,
        };
    if (encoding.syntax === JPEG_BASELINE_8BIT) {
      out.push(await encodeJpegBaseline(blobs, instance, dataset, attributes, raw, frameNumber, encoding.quality ?? DEFAULT_JPEG_QUALITY, options));
    } else {
      await initializeCodecs();
      out.push(encodeLossless(encoding.syntax, attributes, raw, frameNumber));
    }
  }
  return out;
}

const { Transcoder } = codecsPackage;

/**
 * JPEG-LS or HTJ2K lossless of the frame's bytes (samples of BitsAllocated bits, unsigned unless
 * `signed`: storage lifecycle codes signed data as signed for HTJ2K, whose decoder follows the data set's
 * Pixel Representation; lifecycle/recompress.ts).
 */
export function encodeLossless(syntax: typeof JPEG_LS_LOSSLESS | typeof HTJ2K_LOSSLESS, attributes: PixelAttributes, raw: RawFrame, frameNumber: number, signed = false): Buffer {
  const bits = attributes.bitsAllocated;
  const pixels = attributes.samplesPerPixel > 1 && raw.planarConfiguration === 1 ? interleave(raw.pixels, attributes) : raw.pixels;
  const elements: Record<string, unknown> = {
    Rows: attributes.rows,
    Columns: attributes.columns,
    BitsAllocated: bits,
    // All of the sample's bits, unsigned: the codestream then reproduces the stored bytes exactly, also
    // sign-extended values and whatever sits in the bits above Bits Stored.
    BitsStored: bits,
    HighBit: bits - 1,
    PixelRepresentation: signed ? 1 : 0,
    SamplesPerPixel: attributes.samplesPerPixel,
    PhotometricInterpretation: raw.photometricInterpretation,
    PlanarConfiguration: 0,
    NumberOfFrames: 1,
    PixelData: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + decodedFrameLength(attributes))],
  };
  try {
    const transcoder = new Transcoder(elements, EXPLICIT_VR_LITTLE_ENDIAN);
    transcoder.transcode(syntax);
    const encoded = transcoder.getElements()['PixelData'];
    const fragments = (Array.isArray(encoded) ? encoded : [encoded]).filter((f): f is ArrayBuffer => f instanceof ArrayBuffer);
    if (fragments.length === 0) throw new Error('no codestream');
    return Buffer.concat(fragments.map((f) => Buffer.from(f)));
  } catch (err) {
    throw new AppError('NOT_ACCEPTABLE', `Frame ${frameNumber} could not be encoded to ${syntax}: ${err instanceof Error ? err.message.trim() : 'encoder failure'}`, { cause: err });
  }
}

/** Planar (RRR…GGG…BBB…) colour samples → interleaved (RGBRGB…), 8 or 16 bits a sample. */
function interleave(pixels: Buffer, a: PixelAttributes): Buffer {
  const bytes = Math.ceil(a.bitsAllocated / 8);
  const plane = a.rows * a.columns;
  const out = Buffer.alloc(plane * a.samplesPerPixel * bytes);
  for (let i = 0; i < plane; i += 1) {
    for (let s = 0; s < a.samplesPerPixel; s += 1) pixels.copy(out, (i * a.samplesPerPixel + s) * bytes, (s * plane + i) * bytes, (s * plane + i + 1) * bytes);
  }
  return out;
}

const first = (dataset: DicomJsonDataset, tag: string): unknown => (dataset[tag] as { Value?: unknown[] } | undefined)?.Value?.[0];
const numberOf = (dataset: DicomJsonDataset, tag: string): number | undefined => {
  const value = first(dataset, tag);
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
};
const present = (dataset: DicomJsonDataset, tag: string): boolean => dataset[tag] !== undefined;

async function encodeJpegBaseline(
  blobs: BlobStore,
  instance: StoredInstance,
  dataset: DicomJsonDataset,
  a: PixelAttributes,
  raw: RawFrame,
  frameNumber: number,
  quality: number,
  options: EncodeFramesOptions,
): Promise<Buffer> {
  const photometric = raw.photometricInterpretation.toUpperCase();
  const plane = a.rows * a.columns;
  const jpeg = (pixels: Buffer, channels: 1 | 3) => {
    const image = sharp(pixels, { raw: { width: a.columns, height: a.rows, channels } });
    // One-component JPEG for greyscale (sharp writes three components otherwise).
    return (channels === 1 ? image.toColourspace('b-w') : image).jpeg({ quality }).toBuffer();
  };
  // Colour decoded to (or stored as) RGB, 8 bits: its samples as they are.
  if (a.samplesPerPixel === 3 && a.bitsAllocated === 8 && photometric === 'RGB') {
    return jpeg(raw.planarConfiguration === 1 ? interleave(raw.pixels, a) : raw.pixels.subarray(0, plane * 3), 3);
  }
  // Unsigned 8-bit greyscale shown as stored: its values as they are (rescale and window stay valid).
  if (a.samplesPerPixel === 1 && a.bitsAllocated === 8 && a.pixelRepresentation === 0 && photometric === 'MONOCHROME2') {
    return jpeg(raw.pixels.subarray(0, plane), 1);
  }
  // Other greyscale: Modality LUT (rescale) and the linear VOI window to 8 bits.
  const simple =
    a.samplesPerPixel === 1 &&
    (photometric === 'MONOCHROME2' || photometric === 'MONOCHROME1') &&
    !present(dataset, '00283000') && // Modality LUT Sequence
    !present(dataset, '00283010') && // VOI LUT Sequence
    !present(dataset, '52009229') && // Shared Functional Groups (enhanced multi-frame: window per frame)
    !present(dataset, '52009230');
  if (simple) return jpeg(windowTo8Bit(raw.pixels, a, dataset, photometric === 'MONOCHROME1'), 1);
  // Palette colour, native YBR, LUT sequences, enhanced multi-frame: the rendering pipeline (whole file).
  const rendered = await renderFrame(blobs, instance, { frame: frameNumber, format: 'jpeg', quality, overlays: false }, options.log, options.renderMaxPixels);
  return rendered.body;
}

/**
 * Greyscale samples → 8 bits: Bits Stored with its sign, Rescale Slope / Intercept, then the first
 * Window Center / Width of the data set with its VOI LUT Function (PS3.3 C.11.2.1.2: LINEAR,
 * LINEAR_EXACT, SIGMOID), else a min–max window of the frame; MONOCHROME1 inverted.
 */
export function windowTo8Bit(pixels: Buffer, a: PixelAttributes, dataset: DicomJsonDataset, invert: boolean): Buffer {
  const n = a.rows * a.columns;
  const slope = numberOf(dataset, '00281053') ?? 1;
  const intercept = numberOf(dataset, '00281052') ?? 0;
  const stored = Math.min(a.bitsStored, a.bitsAllocated);
  const shift = 32 - stored;
  const values = new Float64Array(n);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i += 1) {
    let v = a.bitsAllocated === 16 ? pixels.readUInt16LE(i * 2) : (pixels[i] ?? 0);
    v = a.pixelRepresentation === 1 ? (v << shift) >> shift : (v << shift) >>> shift;
    const m = v * slope + intercept;
    values[i] = m;
    if (m < min) min = m;
    if (m > max) max = m;
  }
  let center = numberOf(dataset, '00281050');
  let width = numberOf(dataset, '00281051');
  const fn = String(first(dataset, '00281056') ?? 'LINEAR').trim().toUpperCase();
  if (center === undefined || width === undefined || width < 1) {
    center = (min + max) / 2;
    width = Math.max(1, max - min);
  }
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += 1) {
    const x = values[i]!;
    let y: number;
    if (fn === 'SIGMOID') y = 255 / (1 + Math.exp((-4 * (x - center)) / width));
    else if (fn === 'LINEAR_EXACT') y = x <= center - width / 2 ? 0 : x > center + width / 2 ? 255 : ((x - center) / width + 0.5) * 255;
    else if (width <= 1) y = x <= center - 0.5 ? 0 : 255;
    else y = x <= center - 0.5 - (width - 1) / 2 ? 0 : x > center - 0.5 + (width - 1) / 2 ? 255 : ((x - (center - 0.5)) / (width - 1) + 0.5) * 255;
    const byte = Math.max(0, Math.min(255, Math.round(y)));
    out[i] = invert ? 255 - byte : byte;
  }
  return out;
}
