/** Window planning: cores tile the region exactly (each object kept once), background skipped. */
import { describe, expect, it } from 'vitest';
import { inCore, isTissuePixel, planSlide, planWindows, tissueFraction, type TissueMask } from './plan.js';
import type { SlideLevel } from './slide.js';

describe('planning windows with overlap', () => {
  it('covers the region with windows whose cores partition it: every pixel centre is owned by exactly one window', () => {
    for (const [width, height, size, overlap] of [
      [1000, 700, 256, 32],
      [256, 256, 256, 32],
      [100, 50, 256, 32],
      [2220, 2967, 257, 32],
    ] as const) {
      const region = { x0: 0, y0: 0, x1: width, y1: height };
      const windows = planWindows(region, size, overlap);
      for (const w of windows) {
        expect(w.core.x0).toBeGreaterThanOrEqual(w.x);
        expect(w.core.x1).toBeLessThanOrEqual(Math.max(w.x + w.size, width));
        expect(w.core.y0).toBeGreaterThanOrEqual(w.y);
      }
      const step = width > 1000 ? 23 : 7;
      for (let y = 0.5; y < height; y += step) {
        for (let x = 0.5; x < width; x += step) {
          expect(windows.filter((w) => inCore(w.core, x, y)).length, `${x},${y} in ${width}x${height}`).toBe(1);
        }
      }
      // Neighbours overlap by `overlap` pixels, and each core keeps at least overlap/2 from its window's inner edges.
      if (windows.length > 1 && windows[1]!.y === windows[0]!.y) expect(windows[0]!.x + size - windows[1]!.x).toBe(overlap);
    }
  });

  it('keeps an object that straddles a window border once: from the window owning its centre', () => {
    const windows = planWindows({ x0: 0, y0: 0, x1: 1000, y1: 256 }, 256, 32);
    // An object 20 px wide centred on the first window's right edge (x 246..266) lies whole in window 2.
    const centre = { x: 256, y: 100 };
    const seenBy = windows.filter((w) => centre.x - 10 >= w.x && centre.x + 10 <= w.x + w.size);
    expect(seenBy.length).toBe(1);
    const owners = windows.filter((w) => inCore(w.core, centre.x, centre.y));
    expect(owners).toEqual(seenBy);
    // An object inside both windows' overlap is reported by one of them only.
    const shared = { x: 236, y: 100 };
    expect(windows.filter((w) => shared.x >= w.x && shared.x < w.x + w.size).length).toBe(2);
    expect(windows.filter((w) => inCore(w.core, shared.x, shared.y)).length).toBe(1);
  });

  it('plans a sub-region only, and skips windows whose core is glass', () => {
    const level = { width: 1024, height: 1024, scaleX: 2, scaleY: 2 } as SlideLevel;
    // Tissue mask at a quarter of the level's resolution (8 base pixels per mask pixel): left half tissue.
    const mask: TissueMask = { width: 256, height: 256, scaleX: 8, scaleY: 8, mask: new Uint8Array(256 * 256) };
    for (let y = 0; y < 256; y += 1) for (let x = 0; x < 128; x += 1) mask.mask[y * 256 + x] = 1;
    expect(tissueFraction(mask, { x0: 0, y0: 0, x1: 2048, y1: 2048 })).toBeCloseTo(0.5);
    const all = planSlide(level, { x0: 0, y0: 0, x1: 1024, y1: 1024 }, 256, 32, undefined);
    const planned = planSlide(level, { x0: 0, y0: 0, x1: 1024, y1: 1024 }, 256, 32, mask);
    expect(planned.windows.length + planned.skipped).toBe(all.windows.length);
    expect(planned.skipped).toBeGreaterThan(0);
    for (const w of planned.windows) expect(w.core.x0).toBeLessThan(512);
    const part = planSlide(level, { x0: 100, y0: 200, x1: 300, y1: 260 }, 256, 32, undefined);
    expect(part.windows).toHaveLength(1);
    expect(part.windows[0]!.core).toEqual({ x0: 100, y0: 200, x1: 300, y1: 260 });
  });

  it('calls stained or dark pixels tissue and white or grey glass background', () => {
    expect(isTissuePixel(240, 240, 240)).toBe(false);
    expect(isTissuePixel(200, 200, 205)).toBe(false);
    expect(isTissuePixel(200, 120, 180)).toBe(true); // eosin pink
    expect(isTissuePixel(90, 60, 140)).toBe(true); // haematoxylin
    expect(isTissuePixel(40, 40, 40)).toBe(true);
  });
});
