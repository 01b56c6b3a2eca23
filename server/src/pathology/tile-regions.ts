/**
 * Positive tiles of a classification job → regions. Each unit records its positive windows (one
 * packed record per window, annotations/records.ts layout: column, row on the window grid; the
 * window's core x0, y0, x1, y1 in base pixels; positive score; group index). Here the windows of
 * every unit are merged into 4-connected regions per group (windows sharing an edge), and each
 * region's outline is traced along the window borders: an outer ring (clockwise on screen, y down;
 * first point not repeated, collinear points dropped) and its holes (negative windows enclosed by
 * the region). The DICOM POLYGON of a region is its outer ring (PS3.3 C.37.1.2 polygons have no
 * holes); the GeoJSON view also has the holes. Where two of a region's tiles touch only at a corner,
 * the trace turns into the tile it came along, so negative tiles reaching the outside through that
 * corner stay outside: the outline touches itself there.
 */
import { ANNOTATION_FLOATS } from './annotations/records.js';

export interface TileRegion {
  /** Index of the annotation group (label). */
  group: number;
  /** Outer ring: x, y pairs in base pixels, clockwise on screen, first point not repeated. */
  outer: number[];
  /** Hole rings, same form (counter-clockwise on screen). */
  holes: number[][];
  windows: number;
  meanScore: number;
  maxScore: number;
}

interface Cell {
  col: number;
  row: number;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  score: number;
  group: number;
}

const key = (col: number, row: number) => `${col},${row}`;

/** Merges the positive windows of all units into regions, ordered by group, then top row, then left column. */
export async function tileRegions(units: AsyncIterable<Float32Array>): Promise<TileRegion[]> {
  const cells = new Map<string, Cell>();
  for await (const records of units) {
    for (let i = 0; i + ANNOTATION_FLOATS <= records.length; i += ANNOTATION_FLOATS) {
      const col = Math.round(records[i]!);
      const row = Math.round(records[i + 1]!);
      cells.set(key(col, row), {
        col,
        row,
        x0: records[i + 2]!,
        y0: records[i + 3]!,
        x1: records[i + 4]!,
        y1: records[i + 5]!,
        score: records[i + 6]!,
        group: Math.max(0, Math.round(records[i + 7]!)),
      });
    }
  }
  const ordered = [...cells.values()].sort((a, b) => a.group - b.group || a.row - b.row || a.col - b.col);
  const seen = new Set<string>();
  const regions: TileRegion[] = [];
  for (const start of ordered) {
    if (seen.has(key(start.col, start.row))) continue;
    // Flood fill (4-connected, same group).
    const component: Cell[] = [];
    const stack = [start];
    seen.add(key(start.col, start.row));
    while (stack.length > 0) {
      const cell = stack.pop()!;
      component.push(cell);
      for (const [dc, dr] of [[1, 0], [-1, 0], [0, 1], [0, -1]] as const) {
        const k = key(cell.col + dc, cell.row + dr);
        const next = cells.get(k);
        if (next !== undefined && next.group === start.group && !seen.has(k)) {
          seen.add(k);
          stack.push(next);
        }
      }
    }
    regions.push(regionOf(component, start.group));
  }
  return regions;
}

/** Traces the outline of one component along the window-grid edges. */
function regionOf(component: Cell[], group: number): TileRegion {
  const inside = new Set(component.map((c) => key(c.col, c.row)));
  // Grid vertex → base-pixel coordinate: every ring vertex is a corner of one of the component's cells.
  const xs = new Map<number, number>();
  const ys = new Map<number, number>();
  for (const c of component) {
    xs.set(c.col, c.x0);
    xs.set(c.col + 1, c.x1);
    ys.set(c.row, c.y0);
    ys.set(c.row + 1, c.y1);
  }
  // Directed boundary edges, clockwise around each cell on screen (interior on the right): start → end.
  const outgoing = new Map<string, Array<[number, number]>>();
  const addEdge = (ax: number, ay: number, bx: number, by: number) => {
    const k = key(ax, ay);
    const list = outgoing.get(k);
    if (list === undefined) outgoing.set(k, [[bx, by]]);
    else list.push([bx, by]);
  };
  for (const { col: x, row: y } of component) {
    if (!inside.has(key(x, y - 1))) addEdge(x, y, x + 1, y);
    if (!inside.has(key(x + 1, y))) addEdge(x + 1, y, x + 1, y + 1);
    if (!inside.has(key(x, y + 1))) addEdge(x + 1, y + 1, x, y + 1);
    if (!inside.has(key(x - 1, y))) addEdge(x, y + 1, x, y);
  }
  const rings: Array<Array<[number, number]>> = [];
  for (;;) {
    if (outgoing.size === 0) break;
    // Start where the ring cannot branch (not at a pinch), so each ring is traced hugging its cells.
    let startKey: string | undefined;
    for (const [k, list] of outgoing) {
      if (list.length === 1) {
        startKey = k;
        break;
      }
    }
    startKey ??= outgoing.keys().next().value!;
    const [sx, sy] = startKey.split(',').map(Number) as [number, number];
    const ring: Array<[number, number]> = [];
    let [px, py] = [sx, sy];
    let dir: [number, number] | undefined;
    for (;;) {
      ring.push([px, py]);
      const k = key(px, py);
      const options = outgoing.get(k)!;
      let pick = 0;
      if (options.length > 1 && dir !== undefined) {
        // A pinch (two cells touching at a corner): turn right, hugging the cell we came along.
        const right: [number, number] = [-dir[1], dir[0]];
        const found = options.findIndex(([nx, ny]) => nx - px === right[0] && ny - py === right[1]);
        if (found >= 0) pick = found;
      }
      const [nx, ny] = options.splice(pick, 1)[0]!;
      if (options.length === 0) outgoing.delete(k);
      dir = [nx - px, ny - py];
      [px, py] = [nx, ny];
      if (px === sx && py === sy) break;
    }
    rings.push(simplify(ring));
  }
  // Signed area on screen (y down): positive = clockwise as seen. The largest clockwise ring is the outline.
  const area = (ring: Array<[number, number]>) => {
    let sum = 0;
    for (let i = 0; i < ring.length; i += 1) {
      const [ax, ay] = ring[i]!;
      const [bx, by] = ring[(i + 1) % ring.length]!;
      sum += ax * by - bx * ay;
    }
    return sum / 2;
  };
  rings.sort((a, b) => area(b) - area(a));
  const toBase = (ring: Array<[number, number]>) => ring.flatMap(([gx, gy]) => [xs.get(gx)!, ys.get(gy)!]);
  let total = 0;
  let max = 0;
  for (const c of component) {
    total += c.score;
    max = Math.max(max, c.score);
  }
  return {
    group,
    outer: toBase(rings[0]!),
    holes: rings.slice(1).filter((r) => area(r) < 0).map(toBase),
    windows: component.length,
    meanScore: total / component.length,
    maxScore: max,
  };
}

/** Drops points where the ring goes straight on; starts at the top-left-most corner. */
function simplify(ring: Array<[number, number]>): Array<[number, number]> {
  const n = ring.length;
  const corners = ring.filter((p, i) => {
    const [ax, ay] = ring[(i - 1 + n) % n]!;
    const [bx, by] = ring[(i + 1) % n]!;
    return (p[0] - ax) * (by - p[1]) - (p[1] - ay) * (bx - p[0]) !== 0;
  });
  let start = 0;
  corners.forEach(([x, y], i) => {
    const [bx, by] = corners[start]!;
    if (y < by || (y === by && x < bx)) start = i;
  });
  return [...corners.slice(start), ...corners.slice(0, start)];
}
