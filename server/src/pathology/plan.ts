/**
 * Planning a slide analysis: a tissue mask from a low-resolution level (background glass is skipped),
 * then square windows over the analysis level with overlap, each owning a "core" so that every object
 * is reported once. Cores tile the analysed region exactly (half-open intervals): an object whose
 * centre lies in a window's core is kept from that window only; objects up to `overlap` level pixels
 * across that straddle a window border lie whole in the neighbour that owns their centre.
 */
import type { Archive } from '../archive/archive.js';
import { RegionReader } from './region-reader.js';
import type { Slide, SlideLevel } from './slide.js';

/** A rectangle in level pixels, half-open: x0 ≤ x < x1. */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** One model window: its top-left corner and size in level pixels, and the core it reports for. */
export interface PlannedWindow {
  x: number;
  y: number;
  size: number;
  core: Rect;
}

/** Windows start every `size - overlap` pixels; the first/last cores reach the region's edges. */
export function planWindows(region: Rect, size: number, overlap: number): PlannedWindow[] {
  const stride = size - overlap;
  const margin = Math.floor(overlap / 2);
  const starts = (from: number, to: number): number[] => {
    const count = Math.max(1, Math.ceil((to - from - overlap) / stride));
    return Array.from({ length: count }, (_, k) => from + k * stride);
  };
  const xs = starts(region.x0, region.x1);
  const ys = starts(region.y0, region.y1);
  const coreRange = (list: number[], k: number, from: number, to: number): [number, number] => [
    k === 0 ? from : list[k]! + margin,
    k === list.length - 1 ? to : list[k]! + size - (overlap - margin),
  ];
  const windows: PlannedWindow[] = [];
  ys.forEach((y, j) => {
    const [cy0, cy1] = coreRange(ys, j, region.y0, region.y1);
    xs.forEach((x, i) => {
      const [cx0, cx1] = coreRange(xs, i, region.x0, region.x1);
      windows.push({ x, y, size, core: { x0: cx0, y0: cy0, x1: cx1, y1: cy1 } });
    });
  });
  return windows;
}

export const inCore = (core: Rect, x: number, y: number): boolean => x >= core.x0 && x < core.x1 && y >= core.y0 && y < core.y1;

/** Tissue (1) / glass (0) per pixel of one low-resolution level, with that level's scale to the base. */
export interface TissueMask {
  width: number;
  height: number;
  /** Base pixels per mask pixel. */
  scaleX: number;
  scaleY: number;
  mask: Uint8Array;
}

/** Coloured (H&E stains are saturated) or dark: tissue. Near-white, grey glass: not. */
export function isTissuePixel(r: number, g: number, b: number): boolean {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  return max - min > 15 || (r + g + b) / 3 < 180;
}

/** The coarsest level at least `minSize` pixels on its long side, capped at 16 Mpx (the base otherwise). */
export function tissueLevel(slide: Slide, minSize = 512): SlideLevel {
  const fitting = slide.levels.filter((l) => Math.max(l.width, l.height) >= minSize && l.width * l.height <= 16_000_000);
  return fitting[fitting.length - 1] ?? slide.levels[slide.levels.length - 1]!;
}

/** Reads the tissue level one tile row at a time (bounded memory) into a mask. */
export async function tissueMask(archive: Archive, level: SlideLevel): Promise<TissueMask> {
  const mask = new Uint8Array(level.width * level.height);
  const reader = new RegionReader(archive, level, level.tilesAcross + 1);
  for (let row = 0; row < level.tilesDown; row += 1) {
    const y = row * level.tileHeight;
    const height = Math.min(level.tileHeight, level.height - y);
    const rgb = await reader.read(0, y, level.width, height);
    for (let i = 0; i < level.width * height; i += 1) {
      mask[y * level.width + i] = isTissuePixel(rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!) ? 1 : 0;
    }
  }
  return { width: level.width, height: level.height, scaleX: level.scaleX, scaleY: level.scaleY, mask };
}

/** Fraction of tissue pixels of the mask inside a rectangle given in base pixels (rounded outwards). */
export function tissueFraction(tissue: TissueMask, base: Rect): number {
  const x0 = Math.max(0, Math.floor(base.x0 / tissue.scaleX));
  const y0 = Math.max(0, Math.floor(base.y0 / tissue.scaleY));
  const x1 = Math.min(tissue.width, Math.ceil(base.x1 / tissue.scaleX));
  const y1 = Math.min(tissue.height, Math.ceil(base.y1 / tissue.scaleY));
  if (x1 <= x0 || y1 <= y0) return 0;
  let count = 0;
  for (let y = y0; y < y1; y += 1) for (let x = x0; x < x1; x += 1) count += tissue.mask[y * tissue.width + x]!;
  return count / ((x1 - x0) * (y1 - y0));
}

/** Windows whose core holds less tissue than this fraction are skipped as background. */
export const MIN_TISSUE_FRACTION = 0.01;

export interface SlidePlan {
  /** Windows to run, row-major. */
  windows: PlannedWindow[];
  /** Windows skipped as background. */
  skipped: number;
}

/** Windows over `region` (level pixels) of `level`, background ones removed using `tissue`. */
export function planSlide(level: SlideLevel, region: Rect, size: number, overlap: number, tissue: TissueMask | undefined): SlidePlan {
  const all = planWindows(region, size, overlap);
  if (tissue === undefined) return { windows: all, skipped: 0 };
  const windows = all.filter((w) => {
    const base = { x0: w.core.x0 * level.scaleX, y0: w.core.y0 * level.scaleY, x1: w.core.x1 * level.scaleX, y1: w.core.y1 * level.scaleY };
    return tissueFraction(tissue, base) >= MIN_TISSUE_FRACTION;
  });
  return { windows, skipped: all.length - windows.length };
}
