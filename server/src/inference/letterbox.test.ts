import sharp, { type Sharp } from 'sharp';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../errors.js';
import { letterbox, type RawImage } from './letterbox.js';

/** The manifest's "letterbox-top-left" contract written with sharp's own extend: the reference. */
async function reference(input: Sharp, width: number, height: number, size: number, pad: number): Promise<Buffer> {
  const scale = size / Math.max(width, height);
  const w = Math.max(1, Math.min(size, Math.round(width * scale)));
  const h = Math.max(1, Math.min(size, Math.round(height * scale)));
  return input
    .removeAlpha()
    .toColourspace('srgb')
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .extend({ right: size - w, bottom: size - h, background: { r: pad, g: pad, b: pad } })
    .raw()
    .toBuffer();
}

function gradient(width: number, height: number, channels: 1 | 3 | 4): Buffer {
  const px = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      for (let c = 0; c < channels; c += 1) px[(y * width + x) * channels + c] = (x * 3 + y * 5 + c * 70) & 255;
    }
  }
  return px;
}

describe('letterbox: what a model sees of an image', () => {
  it('gives the same pixels as the manifest contract (resize, then pad right and bottom) for JPEG, PNG with alpha, grey and raw frames', async () => {
    const cases: Array<{ name: string; source: Buffer | RawImage; make: () => Sharp; width: number; height: number; size: number; pad: number }> = [];
    const landscape = await sharp(gradient(720, 576, 3), { raw: { width: 720, height: 576, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    cases.push({ name: 'landscape JPEG, pad 0', source: landscape, make: () => sharp(landscape), width: 720, height: 576, size: 256, pad: 0 });
    const portrait = await sharp(gradient(300, 500, 4), { raw: { width: 300, height: 500, channels: 4 } }).png().toBuffer();
    cases.push({ name: 'portrait PNG with alpha, pad 255', source: portrait, make: () => sharp(portrait), width: 300, height: 500, size: 224, pad: 255 });
    const grey = await sharp(gradient(200, 120, 1), { raw: { width: 200, height: 120, channels: 1 } }).png().toBuffer();
    cases.push({ name: 'greyscale PNG', source: grey, make: () => sharp(grey), width: 200, height: 120, size: 320, pad: 0 });
    const raw: RawImage = { pixels: gradient(640, 480, 4), width: 640, height: 480, channels: 4 };
    cases.push({ name: 'raw RGBA frame', source: raw, make: () => sharp(raw.pixels, { raw: { width: 640, height: 480, channels: 4 } }), width: 640, height: 480, size: 256, pad: 0 });
    const square = await sharp(gradient(512, 512, 3), { raw: { width: 512, height: 512, channels: 3 } }).png().toBuffer();
    cases.push({ name: 'square PNG (no padding)', source: square, make: () => sharp(square), width: 512, height: 512, size: 256, pad: 0 });

    for (const c of cases) {
      const got = await letterbox(c.source, c.size, c.pad);
      const want = await reference(c.make(), c.width, c.height, c.size, c.pad);
      expect(got.pixels.length, c.name).toBe(c.size * c.size * 3);
      expect(got.pixels.equals(want), c.name).toBe(true);
      expect(got.placement, c.name).toEqual({ sourceWidth: c.width, sourceHeight: c.height, scale: c.size / Math.max(c.width, c.height) });
    }
  });

  it('fills the padding with the model’s pad value and leaves the image at the top left', async () => {
    const white = await sharp({ create: { width: 400, height: 100, channels: 3, background: { r: 200, g: 100, b: 50 } } }).png().toBuffer();
    const { pixels } = await letterbox(white, 64, 7);
    // 400×100 → 64×16: rows 0–15 are the image, rows 16–63 the pad value.
    expect([...pixels.subarray(0, 3)]).toEqual([200, 100, 50]);
    expect([...pixels.subarray((15 * 64 + 63) * 3, (15 * 64 + 63) * 3 + 3)]).toEqual([200, 100, 50]);
    expect(pixels.subarray(16 * 64 * 3).every((v) => v === 7)).toBe(true);
  });

  it('refuses bytes that are not an image with a 400-class error, not a crash', async () => {
    const err = await letterbox(Buffer.from('not an image at all'), 256, 0).catch((e: unknown) => e);
    expect(isAppError(err) && err.code).toBe('BAD_REQUEST');
    const jpeg = await sharp(gradient(64, 64, 3), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
    const truncated = await letterbox(jpeg.subarray(0, jpeg.length >> 1), 256, 0).catch((e: unknown) => e);
    expect(isAppError(truncated) && truncated.code).toBe('BAD_REQUEST');
  });
});
