/**
 * Rendering use case (WADO-RS rendered and thumbnail resources, PS3.18 §10.4.1.1.3-4, §9.5): one frame
 * of a stored instance as a consumer image (JPEG or PNG), with the rendering parameters of PS3.18
 * §8.3.5 (window, viewport, quality).
 *
 * Pixel decoding and the grayscale/colour pipeline (Modality LUT, VOI LUT or window, Presentation
 * LUT, palette colour, YBR → RGB) are dcmjs-imaging's; encoding and resizing are sharp's.
 * dcmjs-imaging parses a whole Part-10 data set from one ArrayBuffer, so the stored file is read into
 * memory whole: files above MAX_RENDER_BYTES are refused instead (406) rather than risk the process.
 */
import { createRequire } from 'node:module';
import imaging from 'dcmjs-imaging';
import sharp, { type Sharp } from 'sharp';
import type { Logger } from 'pino';
import type { BlobStore } from '../storage/blob-store.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { AppError, NotFoundError } from '../errors.js';
import { WSI_SOP_CLASS } from '../dicom/sop-classes.js';
import { JPEG_BASELINE_8BIT } from '../dicom/transfer-syntax.js';
import { readFrames } from './retrieve.js';

const { DicomImage, NativePixelDecoder, WindowLevel } = imaging;

interface Loglevel {
  getLevel(): number;
  setLevel(level: number | string, persist?: boolean): void;
  getLogger(name: string): Loglevel;
}

/**
 * dcmjs-imaging parses with its own nested copy of dcmjs, which logs (console) every tolerated defect
 * of a data set. Its loggers, and dcmjs-imaging's own, are muted around the synchronous parse + render,
 * so nobody else is affected (as dicom/header-json.ts does for our dcmjs).
 */
const quietLoggers: Loglevel[] = (() => {
  const loggers: Loglevel[] = [imaging.log as unknown as Loglevel];
  try {
    const nested = createRequire(createRequire(import.meta.url).resolve('dcmjs-imaging'))('dcmjs') as { log?: Loglevel };
    if (nested.log !== undefined) loggers.push(nested.log, nested.log.getLogger('validation.dcmjs'));
  } catch {
    // No nested dcmjs to mute: only noise is at stake.
  }
  return loggers;
})();

function quietly<T>(work: () => T): T {
  const levels = quietLoggers.map((l) => l.getLevel());
  for (const l of quietLoggers) l.setLevel('silent', false);
  try {
    return work();
  } finally {
    quietLoggers.forEach((l, i) => l.setLevel(levels[i]!, false));
  }
}

/** Largest stored file we read whole into memory to render (dcmjs-imaging needs the whole data set). */
export const MAX_RENDER_BYTES = 256 * 1024 * 1024;

/**
 * Default largest frame rendered (Rows × Columns; PACS_RENDER_MAX_PIXELS): 8192 × 8192. dcmjs-imaging
 * decodes the frame and renders it to RGBA (4 bytes a pixel) before sharp encodes it, so memory and time
 * follow the declared matrix, not the file size: a 1 KB file claiming 65535 × 65535 would need 16 GiB.
 */
export const DEFAULT_RENDER_MAX_PIXELS = 8192 * 8192;

export type VoiLutFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface RenderWindow {
  center: number;
  width: number;
  /** VOI LUT Function (PS3.3 C.11.2.1.3); the data set's own, else LINEAR, when absent. */
  function?: VoiLutFunction;
}

export interface RenderOptions {
  /** 1-based frame number. */
  frame: number;
  format: 'jpeg' | 'png';
  /** Grayscale only: replaces the data set's VOI LUT / window (ignored for colour images). */
  window?: RenderWindow;
  /** Fit inside this box, keeping the aspect ratio, never enlarging. */
  viewport?: { width: number; height: number };
  /** JPEG quality 1-100 (default DEFAULT_JPEG_QUALITY); ignored for PNG. */
  quality?: number;
  /** Draw the overlay planes (default true); false for a frame encoded as JPEG (encode-frames.ts). */
  overlays?: boolean;
}

export interface RenderedImage {
  body: Buffer;
  mediaType: 'image/jpeg' | 'image/png';
  width: number;
  height: number;
}

export const DEFAULT_JPEG_QUALITY = 90;

let decoderReady: Promise<void> | undefined;

/**
 * Registers dcmjs-imaging's WebAssembly decoders (JPEG, JPEG-LS, JPEG 2000, RLE, ...) once per
 * process; concurrent first callers share the promise. A failed initialisation is retried next time.
 */
export function initializeRenderer(): Promise<void> {
  if (decoderReady === undefined) {
    decoderReady = NativePixelDecoder.initializeAsync({ logNativeDecodersMessages: false }).catch((err: unknown) => {
      decoderReady = undefined;
      throw err;
    });
  }
  return decoderReady;
}

/**
 * Frames of an instance as far as rendering is concerned; throws the documented 400/404/406. With
 * `maxPixels`, a frame whose declared matrix (Rows × Columns, as indexed) is larger is a 406 before any
 * byte is read or decoded.
 */
export function checkRenderable(instance: StoredInstance, frame: number, maxPixels?: number): void {
  const pixelData = instance.pixelData;
  if (pixelData === undefined) {
    throw new AppError('BAD_REQUEST', 'The instance has no pixel data (e.g. a structured report): it cannot be rendered');
  }
  if (pixelData.isVideo) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The instance is a video (${instance.transferSyntaxUid}): rendering video frames is not supported yet; retrieve the instance instead`,
    );
  }
  if (pixelData.tag !== '7FE00010') {
    throw new AppError('NOT_ACCEPTABLE', 'The instance has float pixel data: rendering it is not supported yet');
  }
  const count = Math.max(1, instance.numberOfFrames);
  if (frame < 1) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
  if (frame > count) throw new NotFoundError(`Frame ${frame} does not exist: the instance has ${count} frame${count === 1 ? '' : 's'}`);
  if (instance.blobSize > MAX_RENDER_BYTES) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The instance is ${instance.blobSize} bytes; rendering reads the whole file into memory and is limited to ${MAX_RENDER_BYTES} bytes. Retrieve frames instead`,
    );
  }
  if (maxPixels !== undefined) {
    const { rows, columns } = instance;
    if (rows === undefined || columns === undefined) {
      throw new AppError('NOT_ACCEPTABLE', 'The instance has no Rows / Columns in its image pixel module: it cannot be rendered; retrieve the instance instead');
    }
    if (rows * columns > maxPixels) {
      throw new AppError(
        'NOT_ACCEPTABLE',
        `The instance declares frames of ${rows} x ${columns} pixels, over the rendering limit of ${maxPixels} pixels (PACS_RENDER_MAX_PIXELS); retrieve its frames or the instance instead`,
      );
    }
  }
}

/** Reads the whole stored file (bounded by MAX_RENDER_BYTES, re-checked while reading). */
async function readWhole(blobs: BlobStore, instance: StoredInstance): Promise<Buffer> {
  const stream = await blobs.get(instance.blobKey);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > MAX_RENDER_BYTES) {
      stream.destroy();
      throw new AppError('NOT_ACCEPTABLE', `The instance is larger than the rendering limit of ${MAX_RENDER_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** Whether dcmjs-imaging renders the instance through its grayscale pipeline (one sample, not palette). */
function isGrayscale(photometric: unknown): boolean {
  return typeof photometric === 'string' && photometric.trim().toUpperCase().startsWith('MONOCHROME');
}

/** One frame after the display pipeline: RGBA, 8 bits per sample (dcmjs-imaging's output). */
export interface DisplayPixels {
  width: number;
  height: number;
  /** width × height × 4 bytes. */
  pixels: Buffer;
  grayscale: boolean;
}

/**
 * One frame decoded and taken through the grayscale/colour display pipeline (VOI LUT or window from
 * the data set, palette, YBR → RGB): what a viewer shows, and what a detection model is given.
 */
export async function renderFramePixels(
  blobs: BlobStore,
  instance: StoredInstance,
  frame: number,
  log?: Logger,
  maxPixels: number = DEFAULT_RENDER_MAX_PIXELS,
): Promise<DisplayPixels> {
  const { rendered, grayscale } = await decodeForDisplay(blobs, instance, frame, undefined, maxPixels, true, log);
  return { width: rendered.width, height: rendered.height, pixels: Buffer.from(rendered.pixels), grayscale };
}

async function decodeForDisplay(
  blobs: BlobStore,
  instance: StoredInstance,
  frame: number,
  requestedWindow: RenderWindow | undefined,
  maxPixels: number,
  overlays: boolean,
  log?: Logger,
): Promise<{ rendered: { width: number; height: number; pixels: ArrayBuffer }; grayscale: boolean }> {
  checkRenderable(instance, frame, maxPixels);
  const [bytes] = await Promise.all([readWhole(blobs, instance), initializeRenderer()]);
  try {
    return quietly(() => {
      const image = new DicomImage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
      const frames = Math.max(1, image.getNumberOfFrames());
      if (frame > frames) {
        throw new NotFoundError(`Frame ${frame} does not exist: the instance has ${frames} frame${frames === 1 ? '' : 's'}`);
      }
      // The parsed file is what dcmjs-imaging allocates for; it must agree with the index checked above.
      if (image.getWidth() * image.getHeight() > maxPixels) {
        throw new AppError('NOT_ACCEPTABLE', `The instance declares frames over the rendering limit of ${maxPixels} pixels (PACS_RENDER_MAX_PIXELS); retrieve its frames or the instance instead`);
      }
      const gray = isGrayscale(image.getElement('PhotometricInterpretation'));
      const window = gray ? requestedWindow : undefined;
      if (window?.function !== undefined) image.setElement('VOILUTFunction', window.function);
      const result = image.render({
        frame: frame - 1,
        renderOverlays: overlays,
        ...(window === undefined ? {} : { windowLevel: new WindowLevel(window.width, window.center) }),
      });
      return { rendered: result, grayscale: gray };
    });
  } catch (err) {
    if (err instanceof AppError) throw err;
    log?.warn({ err: { type: err instanceof Error ? err.name : typeof err, message: err instanceof Error ? err.message : undefined } }, 'rendering an instance failed');
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The pixel data of this instance (stored as ${instance.transferSyntaxUid}) cannot be rendered; retrieve the instance instead`,
      { cause: err },
    );
  }
}

/**
 * Renders one frame of a stored instance: decode (dcmjs-imaging), VOI/colour pipeline, then encode
 * (sharp). Failures of the decoder on odd data (unsupported syntax, malformed pixel data) are a 406
 * that says the instance cannot be rendered, never a 500.
 */
export async function renderFrame(
  blobs: BlobStore,
  instance: StoredInstance,
  options: RenderOptions,
  log?: Logger,
  maxPixels: number = DEFAULT_RENDER_MAX_PIXELS,
): Promise<RenderedImage> {
  const tile = await renderColourJpegTile(blobs, instance, options, maxPixels, log);
  if (tile !== undefined) return tile;
  const { rendered, grayscale } = await decodeForDisplay(blobs, instance, options.frame, options.window, maxPixels, options.overlays ?? true, log);

  // dcmjs-imaging always hands back RGBA; grayscale images become one-channel JPEG/PNG (luminance,
  // so coloured overlay pixels stay visible).
  let pipeline = sharp(Buffer.from(rendered.pixels), { raw: { width: rendered.width, height: rendered.height, channels: 4 } }).removeAlpha();
  if (grayscale) pipeline = pipeline.toColourspace('b-w');
  return encode(pipeline, rendered.width, rendered.height, options);
}

/** Fits the image into the viewport (never enlarging) and encodes it as the options ask. */
async function encode(pipeline: Sharp, width: number, height: number, options: RenderOptions): Promise<RenderedImage> {
  if (options.viewport !== undefined) {
    const scale = Math.min(1, options.viewport.width / width, options.viewport.height / height);
    if (scale < 1) {
      width = Math.max(1, Math.round(width * scale));
      height = Math.max(1, Math.round(height * scale));
      pipeline = pipeline.resize(width, height, { fit: 'fill' });
    }
  }
  if (options.format === 'png') return { body: await pipeline.png().toBuffer(), mediaType: 'image/png', width, height };
  return { body: await pipeline.jpeg({ quality: options.quality ?? DEFAULT_JPEG_QUALITY }).toBuffer(), mediaType: 'image/jpeg', width, height };
}

/**
 * Fast path for slide tiles: a colour JPEG baseline frame of a VL Whole Slide Microscopy image is
 * read alone (one ranged read through the frame index, not the whole level, which can be gigabytes)
 * and decoded by sharp (libjpeg-turbo, off the event loop) instead of dcmjs-imaging.
 *
 * Equivalent to the general path: colour images take no window (PS3.18 §8.3.5.1.3 applies VOI to
 * grayscale only), the WSI IOD (PS3.3 A.32.8) has no Overlay Plane module, and libjpeg-turbo applies
 * the same YCbCr → RGB conversion that a browser does when a viewer shows the stored tile itself.
 * Anything else (grayscale JPEG, other syntaxes, a frame that is not 3-component) returns undefined:
 * the caller renders through dcmjs-imaging.
 */
async function renderColourJpegTile(
  blobs: BlobStore,
  instance: StoredInstance,
  options: RenderOptions,
  maxPixels: number,
  log?: Logger,
): Promise<RenderedImage | undefined> {
  if (instance.sopClassUid !== WSI_SOP_CLASS || instance.transferSyntaxUid !== JPEG_BASELINE_8BIT) return undefined;
  if (instance.pixelData === undefined || !instance.pixelData.encapsulated || instance.pixelData.frames.length === 0) return undefined;
  const { rows, columns } = instance;
  if (rows === undefined || columns === undefined || rows * columns > maxPixels) return undefined;
  const [frame] = await readFrames(blobs, instance, [options.frame]);
  try {
    const source = sharp(frame!, { limitInputPixels: maxPixels });
    const info = await source.metadata();
    if (info.format !== 'jpeg' || info.channels !== 3 || info.width !== columns || info.height !== rows) return undefined;
    return await encode(source, columns, rows, options);
  } catch (err) {
    log?.warn({ err: { type: err instanceof Error ? err.name : typeof err, message: err instanceof Error ? err.message : undefined } }, 'rendering a slide tile failed');
    throw new AppError('NOT_ACCEPTABLE', `Frame ${options.frame} of this slide holds no decodable JPEG tile; retrieve the frame instead`, { cause: err });
  }
}

/**
 * The instance that stands for a study or series in a thumbnail: among the instances (in retrieval
 * order: series, then instance number) of the first series that has renderable pixel data, the middle
 * one. Video instances are used only when nothing else has pixel data. Undefined when none has pixel data.
 */
export function representativeInstance(instances: readonly StoredInstance[]): StoredInstance | undefined {
  const pick = (accept: (i: StoredInstance) => boolean): StoredInstance | undefined => {
    const first = instances.find(accept);
    if (first === undefined) return undefined;
    const inSeries = instances.filter((i) => i.seriesInstanceUid === first.seriesInstanceUid && accept(i));
    return inSeries[Math.floor((inSeries.length - 1) / 2)];
  };
  return pick((i) => i.pixelData !== undefined && !i.pixelData.isVideo) ?? pick((i) => i.pixelData !== undefined);
}

/** The frame a thumbnail shows: the middle one (frame 1 of a single-frame instance). */
export function representativeFrame(instance: StoredInstance): number {
  return Math.ceil(Math.max(1, instance.numberOfFrames) / 2);
}
