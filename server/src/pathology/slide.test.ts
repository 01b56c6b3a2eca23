/**
 * Slide geometry from the index on both shared CMU-1 pyramids: TILED_FULL (row-major frames) and
 * TILED_SPARSE (per-frame positions, frames not in raster order, PixelSpacing with swapped axes), and
 * pixels read through the frame index agree between the two encodings of the same tissue.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archive } from '../archive/archive.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance, stow } from '../test-support/shared-instance.js';
import { RegionReader } from './region-reader.js';
import { chooseLevel, loadSlide, type Slide } from './slide.js';
import { tissueLevel, tissueMask } from './plan.js';

let t: TestApp;
let archive: Archive;
const slides: Slide[] = [];

beforeAll(async () => {
  t = await buildTestApp({ PACS_AI_ENABLED: 'false' });
  archive = t.services.archive;
  for (const name of ['tiled-full-gcp-wsi2dcm', 'tiled-sparse-orthanc-wsi']) {
    const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', name);
    const files = await Promise.all((await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort().map((n) => readFile(path.join(folder, n))));
    expect((await stow(t.app, files)).statusCode).toBe(200);
    const { study, series } = describeInstance(files[0]!);
    slides.push(await loadSlide(archive, study, series));
  }
}, 60_000);
afterAll(async () => t?.close());

describe('slide geometry from the index', () => {
  it('finds every level, its tile grid and every tile of the TILED_FULL pyramid', () => {
    const slide = slides[0]!;
    expect(slide.levels).toHaveLength(12);
    const base = slide.levels[0]!;
    expect(base).toMatchObject({ width: 2220, height: 2967, tileWidth: 500, tileHeight: 500, tilesAcross: 5, tilesDown: 6, scaleX: 1, scaleY: 1 });
    expect(base.tiles.size).toBe(30);
    expect(base.spacingMm).toBeCloseTo(0.000499, 6);
    expect(slide.levels[1]!.spacingMm).toBeCloseTo(0.000998, 6);
    expect(slide.frameOfReferenceUid).toMatch(/^1\.2\.276\./);
    expect(slide.allInstances).toHaveLength(12);
  });

  it('places the TILED_SPARSE tiles by their positions and corrects its swapped PixelSpacing', () => {
    const slide = slides[1]!;
    expect(slide.levels).toHaveLength(5);
    const base = slide.levels[0]!;
    expect(base).toMatchObject({ width: 2220, height: 2967, tileWidth: 256, tileHeight: 256, tilesAcross: 9, tilesDown: 12 });
    expect(base.tiles.size).toBe(108);
    // Frames are not in raster order: tile (0,0) is not frame 1.
    expect(base.tiles.get(0)!.frame).not.toBe(1);
    // PixelSpacing says 0.000373\0.000667 (axes swapped); the imaged volume says 0.499 µm/px.
    expect(base.spacingMm).toBeCloseTo(0.000499, 5);
    expect(slide.frameOfReferenceUid).toBeUndefined();
  });

  it('chooses the coarsest level not coarser than the model resolution', () => {
    expect(chooseLevel(slides[0]!, 0.0005).index).toBe(0);
    expect(chooseLevel(slides[0]!, 0.001).index).toBe(1);
    expect(chooseLevel(slides[0]!, 0.0019).index).toBe(1);
    expect(chooseLevel(slides[1]!, 0.002).index).toBe(2);
    expect(chooseLevel(slides[0]!, 0.0001).index).toBe(0); // finer than the base: the base
  });

  it('reads the same tissue from both encodings through the frame index', async () => {
    const [full, sparse] = await Promise.all(slides.map((s) => new RegionReader(archive, s.levels[0]!).read(700, 900, 300, 300)));
    let diff = 0;
    for (let i = 0; i < full!.length; i += 1) diff += Math.abs(full![i]! - sparse![i]!);
    // Two JPEG encodings of one image: close, not equal. A misplaced tile would differ by tens of levels.
    expect(diff / full!.length).toBeLessThan(8);
    const other = await new RegionReader(archive, slides[1]!.levels[0]!).read(1400, 200, 300, 300);
    let diffOther = 0;
    for (let i = 0; i < full!.length; i += 1) diffOther += Math.abs(full![i]! - other[i]!);
    expect(diffOther / full!.length).toBeGreaterThan(diff / full!.length);
  });

  it('finds tissue on a low-resolution level', async () => {
    const level = tissueLevel(slides[0]!);
    expect(level.index).toBe(2);
    const mask = await tissueMask(archive, level);
    const fraction = mask.mask.reduce((n, v) => n + v, 0) / mask.mask.length;
    expect(fraction).toBeGreaterThan(0.2);
    expect(fraction).toBeLessThan(0.95);
  });
});
