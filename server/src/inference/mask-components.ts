/**
 * Post-processing of a probability-mask model (PS: the same algorithm as scripts/polyp/common.py, which
 * computed the model card's metrics): binarise at the mask threshold, label 8-connected components,
 * drop specks, and turn each component into a box in source-image pixels with the mean probability of
 * its cells as score. With a seed threshold, touching objects merged into one component are split first
 * (a marker-controlled watershed, the same as scripts/polyp/common.py `seeded_components`). Written by
 * hand: no maintained npm package does connected components or a seeded watershed on a Float32Array
 * without pulling in OpenCV (tens of MB of WASM).
 */

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface MaskComponent {
  score: number;
  /** Cells, in mask coordinates: x0/y0 inclusive, x1/y1 exclusive. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  area: number;
}

export interface MaskParameters {
  maskThreshold: number;
  minAreaFraction: number;
  /**
   * Optional: split the mask by seeds first. Seeds are the 8-connected components of `seed >= seedThreshold`
   * inside the mask; they grow over the mask one cell at a time, always from the frontier cell with the
   * highest seed value (ties: the cell reached first), so two touching objects with a seed each become two
   * components. Mask cells no seed reaches keep their own components.
   */
  seedThreshold?: number;
}

/**
 * Connected components (8-neighbourhood) of `prob >= threshold` in one h×w mask, best score first; with
 * `params.seedThreshold`, split by the seeds of `seed` (another h×w map, e.g. a core channel; default the
 * mask itself).
 */
export function maskComponents(prob: Float32Array, width: number, height: number, params: MaskParameters, seed: Float32Array = prob): MaskComponent[] {
  const grid = new LabelGrid(width, height);
  const inMask = (cell: number) => prob[cell]! >= params.maskThreshold;
  const { seedThreshold } = params;
  if (seedThreshold !== undefined) {
    grid.labelRegions((cell) => inMask(cell) && seed[cell]! >= seedThreshold);
    grid.growSeeds(seed, inMask);
  }
  // The mask's components (without seeds), or the mask cells no seed reached.
  grid.labelRegions(inMask);
  return grid.components(prob, params.minAreaFraction);
}

const NEIGHBOURS_8 = [-1, -1, -1, 0, -1, 1, 0, -1, 0, 1, 1, -1, 1, 0, 1, 1] as const;

/** Cell labels of one h×w map (0 = none yet), filled region by region, then read out as components. */
class LabelGrid {
  readonly labels: Int32Array;
  private readonly stack: Int32Array;
  private next = 1;

  constructor(
    private readonly width: number,
    private readonly height: number,
  ) {
    this.labels = new Int32Array(width * height);
    this.stack = new Int32Array(width * height);
  }

  /** Gives each 8-connected region of unlabelled cells where `inside` holds a new label, in raster order of its first cell. */
  labelRegions(inside: (cell: number) => boolean): void {
    const { labels, stack } = this;
    let top = 0;
    const reached = (cell: number) => {
      stack[top++] = cell;
    };
    for (let start = 0; start < labels.length; start += 1) {
      if (labels[start] !== 0 || !inside(start)) continue;
      const label = this.next++;
      labels[start] = label;
      reached(start);
      while (top > 0) this.labelNeighbours(stack[--top]!, label, inside, reached);
    }
  }

  /**
   * Grows the labelled cells (the seeds) over the unlabelled cells where `inside` holds, always from the
   * frontier cell with the highest `seed` value (ties: the cell reached first; seed cells enter in raster
   * order, as in scripts/polyp/common.py `seeded_components`).
   */
  growSeeds(seed: Float32Array, inside: (cell: number) => boolean): void {
    const { labels } = this;
    const frontier = new Frontier(labels.length);
    const reached = (cell: number) => frontier.push(cell, seed[cell]!);
    for (let cell = 0; cell < labels.length; cell += 1) if (labels[cell] !== 0) reached(cell);
    while (frontier.length > 0) {
      const cell = frontier.pop();
      this.labelNeighbours(cell, labels[cell]!, inside, reached);
    }
  }

  /** Labels `cell`'s unlabelled 8-neighbours where `inside` holds with `label`, handing each to `reached`. */
  private labelNeighbours(cell: number, label: number, inside: (cell: number) => boolean, reached: (cell: number) => void): void {
    const { width, height, labels } = this;
    const cx = cell % width;
    const cy = (cell - cx) / width;
    for (let k = 0; k < 16; k += 2) {
      const ny = cy + NEIGHBOURS_8[k]!;
      const nx = cx + NEIGHBOURS_8[k + 1]!;
      if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
      const neighbour = ny * width + nx;
      if (labels[neighbour] === 0 && inside(neighbour)) {
        labels[neighbour] = label;
        reached(neighbour);
      }
    }
  }

  /** Each label's cells as a component (bounding cells, area, mean `prob`), specks dropped, best score first. */
  components(prob: Float32Array, minAreaFraction: number): MaskComponent[] {
    const { width, height, labels } = this;
    const count = this.next - 1;
    const sum = new Float64Array(count + 1);
    const area = new Int32Array(count + 1);
    const x0 = new Int32Array(count + 1).fill(width);
    const y0 = new Int32Array(count + 1).fill(height);
    const x1 = new Int32Array(count + 1).fill(-1);
    const y1 = new Int32Array(count + 1).fill(-1);
    for (let cell = 0; cell < labels.length; cell += 1) {
      const label = labels[cell]!;
      if (label === 0) continue;
      const cx = cell % width;
      const cy = (cell - cx) / width;
      sum[label] = sum[label]! + prob[cell]!;
      area[label] = area[label]! + 1;
      if (cx < x0[label]!) x0[label] = cx;
      if (cx > x1[label]!) x1[label] = cx;
      if (cy < y0[label]!) y0[label] = cy;
      if (cy > y1[label]!) y1[label] = cy;
    }
    const minArea = minAreaFraction * labels.length;
    const found: MaskComponent[] = [];
    for (let label = 1; label <= count; label += 1) {
      if (area[label]! < minArea) continue;
      found.push({ score: sum[label]! / area[label]!, x0: x0[label]!, y0: y0[label]!, x1: x1[label]! + 1, y1: y1[label]! + 1, area: area[label]! });
    }
    return found.sort((a, b) => b.score - a.score);
  }
}

/**
 * A binary min-heap of cells keyed by (−seed value, order of arrival): the frontier of the seeded growth.
 * Keys are compared exactly as scripts/polyp/common.py's heapq compares its tuples.
 */
class Frontier {
  private readonly cells: Int32Array;
  private readonly keys: Float64Array;
  private readonly order: Int32Array;
  private size = 0;
  private arrivals = 0;

  constructor(capacity: number) {
    this.cells = new Int32Array(capacity);
    this.keys = new Float64Array(capacity);
    this.order = new Int32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  push(cell: number, value: number): void {
    let i = this.size++;
    const key = -value;
    const order = this.arrivals++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(key, order, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.cells[i] = cell;
    this.keys[i] = key;
    this.order[i] = order;
  }

  pop(): number {
    const top = this.cells[0]!;
    const last = --this.size;
    if (last === 0) return top;
    // Sift the last entry down from the root.
    const cell = this.cells[last]!;
    const key = this.keys[last]!;
    const order = this.order[last]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.before(this.keys[child + 1]!, this.order[child + 1]!, child)) child += 1;
      if (!Frontier.precedes(this.keys[child]!, this.order[child]!, key, order)) break;
      this.move(child, i);
      i = child;
    }
    this.cells[i] = cell;
    this.keys[i] = key;
    this.order[i] = order;
    return top;
  }

  /** Is (key, order) before the entry at index `at`? */
  private before(key: number, order: number, at: number): boolean {
    return Frontier.precedes(key, order, this.keys[at]!, this.order[at]!);
  }

  private static precedes(key: number, order: number, otherKey: number, otherOrder: number): boolean {
    return key < otherKey || (key === otherKey && order < otherOrder);
  }

  private move(from: number, to: number): void {
    this.cells[to] = this.cells[from]!;
    this.keys[to] = this.keys[from]!;
    this.order[to] = this.order[from]!;
  }
}

/** How a source image was placed in the model input (letterbox.ts). */
export interface Placement {
  sourceWidth: number;
  sourceHeight: number;
  /** Model-input pixels per source pixel. */
  scale: number;
}

/** A component's cells → a box in source-image pixels, clamped to the image. */
export function componentBox(component: MaskComponent, stride: number, placement: Placement): Box {
  const toSource = (cells: number, limit: number) => Math.min(limit, Math.max(0, (cells * stride) / placement.scale));
  const x0 = toSource(component.x0, placement.sourceWidth);
  const y0 = toSource(component.y0, placement.sourceHeight);
  const x1 = toSource(component.x1, placement.sourceWidth);
  const y1 = toSource(component.y1, placement.sourceHeight);
  const round = (v: number) => Math.round(v * 100) / 100;
  return { x: round(x0), y: round(y0), width: round(x1 - x0), height: round(y1 - y0) };
}
