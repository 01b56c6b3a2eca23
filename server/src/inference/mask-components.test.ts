import { describe, expect, it } from 'vitest';
import { componentBox, maskComponents } from './mask-components.js';

function mask(rows: string[]): { prob: Float32Array; width: number; height: number } {
  const height = rows.length;
  const width = rows[0]!.length;
  const prob = new Float32Array(width * height);
  rows.forEach((row, y) => [...row].forEach((c, x) => (prob[y * width + x] = c === '.' ? 0.1 : Number(c) / 10)));
  return { prob, width, height };
}

const params = { maskThreshold: 0.5, minAreaFraction: 0 };

describe('turning a probability mask into scored boxes', () => {
  it('finds each separate region with its bounding cells and mean probability as score', () => {
    const m = mask(['99....', '97....', '....6.', '....66']);
    const found = maskComponents(m.prob, m.width, m.height, params);
    expect(found).toHaveLength(2);
    expect(found[0]).toMatchObject({ x0: 0, y0: 0, x1: 2, y1: 2, area: 4 });
    expect(found[0]!.score).toBeCloseTo((0.9 * 3 + 0.7) / 4, 5);
    expect(found[1]).toMatchObject({ x0: 4, y0: 2, x1: 6, y1: 4, area: 3 });
    expect(found[1]!.score).toBeCloseTo(0.6, 5);
  });

  it('joins cells that touch only at a corner (8-connectivity)', () => {
    const m = mask(['9...', '.9..', '..9.']);
    expect(maskComponents(m.prob, m.width, m.height, params)).toHaveLength(1);
  });

  it('drops specks smaller than the minimum area', () => {
    const m = mask(['9.....', '......', '...999', '...999']);
    const found = maskComponents(m.prob, m.width, m.height, { maskThreshold: 0.5, minAreaFraction: 2 / 24 });
    expect(found).toHaveLength(1);
    expect(found[0]!.area).toBe(6);
  });

  it('finds nothing in an empty mask', () => {
    const m = mask(['....', '....']);
    expect(maskComponents(m.prob, m.width, m.height, params)).toEqual([]);
  });

  it('maps mask cells back to source pixels through stride and letterbox scale, clamped to the image', () => {
    // A 200×100 source letterboxed into 64×64: scale 0.32, the image fills rows 0..32.
    const placement = { sourceWidth: 200, sourceHeight: 100, scale: 0.32 };
    expect(componentBox({ score: 1, x0: 8, y0: 4, x1: 16, y1: 12, area: 64 }, 2, placement)).toEqual({ x: 50, y: 25, width: 50, height: 50 });
    // Cells in the padding beyond the image are clamped to its edge.
    expect(componentBox({ score: 1, x0: 60, y0: 30, x1: 64, y1: 40, area: 40 }, 1, placement)).toEqual({ x: 187.5, y: 93.75, width: 12.5, height: 6.25 });
  });
});

describe('splitting touching objects with seeds (models/nuclei-detector.md, "Splitting touching nuclei with seeds")', () => {
  // Two nuclei that touch: one mask component, each with its own peak.
  const touching = mask(['.........', '.67876...', '.6898776.', '.67876986', '...678776', '.....676.']);

  it('reports touching objects as one box without seeds, and as one box each with them', () => {
    expect(maskComponents(touching.prob, touching.width, touching.height, params)).toHaveLength(1);
    const split = maskComponents(touching.prob, touching.width, touching.height, { ...params, seedThreshold: 0.85 });
    expect(split).toHaveLength(2);
    expect(split.map((c) => c.area).reduce((a, b) => a + b)).toBe(maskComponents(touching.prob, touching.width, touching.height, params)[0]!.area);
    const [left, right] = [...split].sort((a, b) => a.x0 - b.x0);
    expect(left).toMatchObject({ x0: 1, y0: 1 });
    expect(right).toMatchObject({ x1: 9, y1: 6 });
    expect(left!.x1).toBeLessThanOrEqual(6);
    expect(right!.x0).toBeGreaterThanOrEqual(4);
  });

  it('keeps a region that has no seed as it is', () => {
    const m = mask(['66....99', '66....99']);
    const found = maskComponents(m.prob, m.width, m.height, { ...params, seedThreshold: 0.85 });
    expect(found.map((c) => ({ x0: c.x0, area: c.area }))).toEqual([{ x0: 6, area: 4 }, { x0: 0, area: 4 }]);
  });

  it('takes the seeds from a separate map (a core channel) when given one', () => {
    const flat = mask(['.66666666.', '.66666666.']);
    const cores = mask(['..9....9..', '..........']);
    const found = maskComponents(flat.prob, flat.width, flat.height, { ...params, seedThreshold: 0.5 }, cores.prob);
    expect(found).toHaveLength(2);
    expect([...found].sort((a, b) => a.x0 - b.x0).map((c) => [c.x0, c.x1])).toEqual([[1, 5], [5, 9]]);
    // Without the seed map, the mask's own values are all below the seed threshold's 0.7: nothing to split.
    expect(maskComponents(flat.prob, flat.width, flat.height, { ...params, seedThreshold: 0.7 })).toHaveLength(1);
  });

  it('drops specks after the split, and a seed outside the mask seeds nothing', () => {
    const m = mask(['9.', '..']);
    const seeds = mask(['.9', '..']);
    expect(maskComponents(m.prob, m.width, m.height, { maskThreshold: 0.5, minAreaFraction: 0, seedThreshold: 0.5 }, seeds.prob)).toMatchObject([{ x0: 0, area: 1 }]);
    expect(maskComponents(m.prob, m.width, m.height, { maskThreshold: 0.5, minAreaFraction: 0.5, seedThreshold: 0.5 }, seeds.prob)).toEqual([]);
  });
});
