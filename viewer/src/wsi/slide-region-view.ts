/**
 * A region on a whole-slide image, for an answer's figures (consults/region-figure.ts): the part of the
 * slide around the region, from the pyramid level where that part is at most `maxPx` pixels across
 * (the finest such level), composed from its tiles on a canvas; and the SVG viewBox, in the region's own
 * coordinates (the total pixel matrix of its instance, slide-regions.ts), that lays the region over it.
 */
import { seriesMetadata } from '../dicomweb/client.js';
import { buildPyramid, tileKey, type Level, type TileRef } from './pyramid.js';
import { TileLoader } from './tile-loader.js';

export interface SlideRegionCrop {
  canvas: HTMLCanvasElement;
  /** `x y width height` in the region's coordinates. */
  viewBox: string;
  /** The pyramid level shown (0 = full resolution). */
  level: number;
  /** Settles once every tile is drawn (or failed). */
  done: Promise<void>;
}

/** Undefined when the series has no pyramid holding `sop`. */
export async function slideRegionCrop(study: string, series: string, sop: string, points: readonly number[], maxPx = 512): Promise<SlideRegionCrop | undefined> {
  const levels = buildPyramid(await seriesMetadata(study, series));
  const base = levels[0];
  const own = levels.find((level) => level.instances.includes(sop));
  if (base === undefined || own === undefined || points.length < 2) return undefined;
  // Region coordinates → base pixels.
  const k = own.downsample;
  const xs = points.filter((_, i) => i % 2 === 0).map((v) => v * k);
  const ys = points.filter((_, i) => i % 2 === 1).map((v) => v * k);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = Math.max(32, 0.3 * Math.max(maxX - minX, maxY - minY));
  const x0 = Math.max(0, Math.floor(minX - pad));
  const y0 = Math.max(0, Math.floor(minY - pad));
  const x1 = Math.min(base.width, Math.ceil(maxX + pad));
  const y1 = Math.min(base.height, Math.ceil(maxY + pad));
  let li = levels.findIndex((level) => (x1 - x0) / level.downsample <= maxPx && (y1 - y0) / level.downsample <= maxPx);
  if (li < 0) li = levels.length - 1;
  const level = levels[li] as Level;
  const ds = level.downsample;
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round((x1 - x0) / ds));
  canvas.height = Math.max(1, Math.round((y1 - y0) / ds));
  const tiles: Array<{ ref: TileRef; c: number; r: number }> = [];
  for (let r = Math.floor(y0 / ds / level.tileHeight); r <= Math.min(level.tilesDown - 1, Math.floor((y1 / ds - 1e-6) / level.tileHeight)); r += 1) {
    for (let c = Math.floor(x0 / ds / level.tileWidth); c <= Math.min(level.tilesAcross - 1, Math.floor((x1 / ds - 1e-6) / level.tileWidth)); c += 1) {
      const ref = level.tiles.get(tileKey(c, r));
      if (ref !== undefined) tiles.push({ ref, c, r });
    }
  }
  const loader = new TileLoader(study, series);
  const done = new Promise<void>((resolve) => {
    const paint = () => {
      const ctx = canvas.getContext('2d');
      if (ctx === null) return resolve();
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      for (const { ref, c, r } of tiles) {
        const bitmap = loader.get(ref);
        if (bitmap === undefined) continue;
        // Edge tiles may be padded: only the part inside the matrix.
        const tw = Math.min(level.tileWidth, level.width - c * level.tileWidth);
        const th = Math.min(level.tileHeight, level.height - r * level.tileHeight);
        ctx.drawImage(bitmap, 0, 0, tw, th, c * level.tileWidth - x0 / ds, r * level.tileHeight - y0 / ds, tw, th);
      }
      if (tiles.every(({ ref }) => loader.settled(ref))) {
        loader.destroy();
        resolve();
      }
    };
    loader.onLoaded = paint;
    loader.onError = paint;
    loader.want(tiles.map((tile) => tile.ref));
    paint();
  });
  return { canvas, viewBox: `${x0 / k} ${y0 / k} ${(x1 - x0) / k} ${(y1 - y0) / k}`, level: li, done };
}
