/**
 * Pre-processing with sharp: decode (JPEG/PNG bytes, or raw pixels of a decoded DICOM frame), drop
 * alpha, force sRGB (greyscale becomes three equal channels), resize to fit the model's square input
 * keeping the aspect ratio, and pad right/bottom with the model's pad value: the "letterbox-top-left"
 * contract of the model manifest, which the training script reproduces with PIL's bilinear resize.
 */
import sharp from 'sharp';
import { AppError } from '../errors.js';
import type { Placement } from './mask-components.js';

export interface RawImage {
  pixels: Buffer;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

export interface Letterboxed {
  /** size × size × 3 bytes, RGB, row-major (NHWC without N). */
  pixels: Buffer;
  placement: Placement;
}

/** Largest source image accepted (pixels): a decompression bomb is refused, not decoded. */
export const MAX_SOURCE_PIXELS = 100_000_000;

export async function letterbox(source: Buffer | RawImage, size: number, padValue: number): Promise<Letterboxed> {
  const input = Buffer.isBuffer(source)
    ? sharp(source, { limitInputPixels: MAX_SOURCE_PIXELS, failOn: 'error' })
    : sharp(source.pixels, { raw: { width: source.width, height: source.height, channels: source.channels } });
  let width: number;
  let height: number;
  try {
    const meta = await input.metadata();
    if (meta.width === undefined || meta.height === undefined) throw new Error('no dimensions');
    width = meta.width;
    height = meta.height;
  } catch (err) {
    throw new AppError('BAD_REQUEST', 'The body is not a decodable JPEG or PNG image', { cause: err });
  }
  const scale = size / Math.max(width, height);
  const resizedWidth = Math.max(1, Math.min(size, Math.round(width * scale)));
  const resizedHeight = Math.max(1, Math.min(size, Math.round(height * scale)));
  let resized: Buffer;
  try {
    resized = await input
      .removeAlpha()
      .toColourspace('srgb')
      .resize(resizedWidth, resizedHeight, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new AppError('BAD_REQUEST', 'The image could not be decoded (truncated or corrupt data)', { cause: err });
  }
  if (resized.length !== resizedWidth * resizedHeight * 3) {
    throw new AppError('BAD_REQUEST', `The image decoded to an unexpected layout (${resized.length} bytes for ${resizedWidth}×${resizedHeight} RGB)`);
  }
  const pixels = padTopLeft(resized, resizedWidth, resizedHeight, size, padValue);
  return { pixels, placement: { sourceWidth: width, sourceHeight: height, scale } };
}

/**
 * Pastes rows of `width` RGB pixels at the top-left of a size × size canvas filled with `padValue`.
 * Done here rather than with sharp's `extend`: the same bytes, but extend adds a libvips stage that
 * cost ~1 ms of a 720×576 live frame's ~6.5 ms of decode + resize (docs/benchmarks.md, "Live endoscopy stream").
 */
export function padTopLeft(rows: Buffer, width: number, height: number, size: number, padValue: number): Buffer {
  if (width === size && height === size) return rows;
  const out = Buffer.alloc(size * size * 3, padValue);
  const rowBytes = width * 3;
  for (let y = 0; y < height; y += 1) rows.copy(out, y * size * 3, y * rowBytes, (y + 1) * rowBytes);
  return out;
}
