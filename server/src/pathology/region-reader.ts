/**
 * Reads rectangles of one slide level as RGB pixels, tile by tile through the frame index: each tile
 * is one ranged read of its frame (Archive.readDecodedFrames) decoded to raw pixels, never the whole
 * instance. A small LRU of decoded tiles serves neighbouring windows (windows overlap and a unit's
 * windows are adjacent), so memory is bounded by `maxCachedTiles` tiles whatever the slide size.
 * Pixels outside the matrix or in tiles a sparse level does not have are white (glass).
 */
import type { Archive } from '../archive/archive.js';
import type { SlideLevel } from './slide.js';

export const BACKGROUND = 255;

export class RegionReader {
  private readonly cache = new Map<number, Buffer | null>();

  constructor(
    private readonly archive: Archive,
    private readonly level: SlideLevel,
    private readonly maxCachedTiles = 24,
  ) {}

  /** RGB (3 bytes per pixel, row-major) of the rectangle x..x+width, y..y+height of the level. */
  async read(x: number, y: number, width: number, height: number): Promise<Buffer> {
    const { level } = this;
    const out = Buffer.alloc(width * height * 3, BACKGROUND);
    const c0 = Math.max(0, Math.floor(x / level.tileWidth));
    const r0 = Math.max(0, Math.floor(y / level.tileHeight));
    const c1 = Math.min(level.tilesAcross - 1, Math.floor((x + width - 1) / level.tileWidth));
    const r1 = Math.min(level.tilesDown - 1, Math.floor((y + height - 1) / level.tileHeight));
    const needed: number[] = [];
    for (let r = r0; r <= r1; r += 1) for (let c = c0; c <= c1; c += 1) needed.push(r * level.tilesAcross + c);
    await this.load(needed.filter((key) => !this.cache.has(key)));
    for (const key of needed) {
      const tile = this.cache.get(key);
      // Refresh LRU order.
      this.cache.delete(key);
      this.cache.set(key, tile ?? null);
      if (tile === null || tile === undefined) continue;
      const tileX = (key % level.tilesAcross) * level.tileWidth;
      const tileY = Math.floor(key / level.tilesAcross) * level.tileHeight;
      const sx0 = Math.max(x, tileX);
      const sx1 = Math.min(x + width, tileX + level.tileWidth, level.width);
      const sy0 = Math.max(y, tileY);
      const sy1 = Math.min(y + height, tileY + level.tileHeight, level.height);
      if (sx1 <= sx0) continue;
      for (let sy = sy0; sy < sy1; sy += 1) {
        const from = ((sy - tileY) * level.tileWidth + (sx0 - tileX)) * 3;
        tile.copy(out, ((sy - y) * width + (sx0 - x)) * 3, from, from + (sx1 - sx0) * 3);
      }
    }
    while (this.cache.size > this.maxCachedTiles) this.cache.delete(this.cache.keys().next().value!);
    return out;
  }

  /** Decodes the given tiles (one ranged read per frame), grouped by instance. */
  private async load(keys: number[]): Promise<void> {
    const byInstance = new Map<number, { key: number; frame: number }[]>();
    for (const key of keys) {
      const location = this.level.tiles.get(key);
      if (location === undefined) {
        this.cache.set(key, null);
        continue;
      }
      const list = byInstance.get(location.instance) ?? [];
      list.push({ key, frame: location.frame });
      byInstance.set(location.instance, list);
    }
    for (const [index, wanted] of byInstance) {
      const { instance, pixel } = this.level.instances[index]!;
      const frames = await this.archive.readDecodedFrames(instance, pixel, wanted.map((w) => w.frame));
      wanted.forEach((w, i) => this.cache.set(w.key, toRgb(frames[i]!, pixel.samplesPerPixel, pixel.bitsAllocated)));
    }
  }
}

/** Decoded frame → 8-bit RGB (greyscale expanded, 16-bit scaled down by its high byte). */
function toRgb(pixels: Buffer, samples: number, bitsAllocated: number): Buffer {
  if (samples === 3 && bitsAllocated === 8) return pixels;
  const bytes = bitsAllocated > 8 ? 2 : 1;
  const count = pixels.length / (samples * bytes);
  const out = Buffer.alloc(count * 3);
  for (let i = 0; i < count; i += 1) {
    for (let c = 0; c < 3; c += 1) {
      const sample = samples === 3 ? c : 0;
      const at = (i * samples + sample) * bytes;
      out[i * 3 + c] = bytes === 2 ? pixels[at + 1]! : pixels[at]!;
    }
  }
  return out;
}
