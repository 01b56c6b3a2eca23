/** Positive tiles of a classification job merged into regions, each outlined along the tile borders. */
import { describe, expect, it } from 'vitest';
import { AnnotationBuffer, recordsOf } from './annotations/records.js';
import { tileRegions } from './tile-regions.js';

/** Records for a grid drawn as text: '#' positive tile of group 0, '2' of group 1; tiles 10×10 base px. */
function tiles(...rows: string[]): Float32Array {
  const buffer = new AnnotationBuffer();
  rows.forEach((line, row) =>
    [...line].forEach((ch, col) => {
      if (ch === '#' || ch === '2') buffer.push(col, row, col * 10, row * 10, col * 10 + 10, row * 10 + 10, ch === '#' ? 0.8 : 0.6, ch === '#' ? 0 : 1);
    }),
  );
  return recordsOf(buffer.toBuffer());
}
async function* units(...list: Float32Array[]): AsyncGenerator<Float32Array> {
  yield* list;
}

describe('merging positive tiles into regions', () => {
  it('outlines an L-shaped group of tiles as one polygon of its 6 corners, clockwise, first point not repeated', async () => {
    const [region, ...rest] = await tileRegions(units(tiles('#.', '##')));
    expect(rest).toHaveLength(0);
    expect(region).toMatchObject({ group: 0, windows: 3, holes: [] });
    expect(region!.meanScore).toBeCloseTo(0.8, 5);
    expect(region!.outer).toEqual([0, 0, 10, 0, 10, 10, 20, 10, 20, 20, 0, 20]);
  });

  it('keeps tiles that only touch at a corner apart, and separates groups (labels)', async () => {
    const regions = await tileRegions(units(tiles('#.2', '.#2')));
    expect(regions.map((r) => [r.group, r.windows])).toEqual([[0, 1], [0, 1], [1, 2]]);
    expect(regions[2]!.outer).toEqual([20, 0, 30, 0, 30, 20, 20, 20]);
  });

  it('merges tiles recorded by different units, and gives a ring of tiles its hole', async () => {
    const regions = await tileRegions(units(tiles('###', '#.#'), tiles('', '', '###')));
    expect(regions).toHaveLength(1);
    expect(regions[0]!.windows).toBe(8);
    expect(regions[0]!.outer).toEqual([0, 0, 30, 0, 30, 30, 0, 30]);
    expect(regions[0]!.holes).toHaveLength(1);
    expect([...regions[0]!.holes[0]!].sort((a, b) => a - b)).toEqual([10, 10, 10, 10, 20, 20, 20, 20]);
  });

  it('leaves out a hole that touches the outside at a corner: the outline goes round it, touching itself there', async () => {
    // The empty tile (1,1) touches the empty (2,2) at their shared corner (20,20): for a 4-connected
    // region that is not a hole but a bay, so the outline covers exactly the 7 positive tiles.
    const regions = await tileRegions(units(tiles('###', '#.#', '##.')));
    expect(regions).toHaveLength(1);
    const [region] = regions;
    expect(region!.holes).toHaveLength(0);
    expect(region!.outer).toEqual([0, 0, 30, 0, 30, 20, 20, 20, 20, 10, 10, 10, 10, 20, 20, 20, 20, 30, 0, 30]);
    let area = 0;
    const p = region!.outer;
    for (let i = 0; i < p.length; i += 2) area += p[i]! * p[(i + 3) % p.length]! - p[(i + 2) % p.length]! * p[i + 1]!;
    expect(area / 2).toBe(700);
  });
});
