/**
 * Post-processing of a probability-mask model (PS: the same algorithm as scripts/polyp/common.py, which
 * computed the model card's metrics): binarise at the mask threshold, label 8-connected components,
 * drop specks, and turn each component into a box in source-image pixels with the mean probability of
 * its cells as score. Written by hand: no maintained npm package does connected components on a
 * Float32Array without pulling in OpenCV (tens of MB of WASM).
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
}

/** Connected components (8-neighbourhood) of `prob >= threshold` in one h×w mask. */
export function maskComponents(prob: Float32Array, width: number, height: number, params: MaskParameters): MaskComponent[] {
  const cells = width * height;
  const labels = new Int32Array(cells); // 0 = unvisited
  const stack = new Int32Array(cells);
  const minArea = params.minAreaFraction * cells;
  const components: MaskComponent[] = [];
  let next = 1;
  for (let start = 0; start < cells; start += 1) {
    if (labels[start] !== 0 || !(prob[start]! >= params.maskThreshold)) continue;
    const label = next++;
    let top = 0;
    stack[top++] = start;
    labels[start] = label;
    let sum = 0;
    let area = 0;
    let x0 = width;
    let y0 = height;
    let x1 = -1;
    let y1 = -1;
    while (top > 0) {
      const cell = stack[--top]!;
      const cx = cell % width;
      const cy = (cell - cx) / width;
      sum += prob[cell]!;
      area += 1;
      if (cx < x0) x0 = cx;
      if (cx > x1) x1 = cx;
      if (cy < y0) y0 = cy;
      if (cy > y1) y1 = cy;
      for (let dy = -1; dy <= 1; dy += 1) {
        const ny = cy + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx += 1) {
          const nx = cx + dx;
          if (nx < 0 || nx >= width) continue;
          const neighbour = ny * width + nx;
          if (labels[neighbour] === 0 && prob[neighbour]! >= params.maskThreshold) {
            labels[neighbour] = label;
            stack[top++] = neighbour;
          }
        }
      }
    }
    if (area < minArea) continue;
    components.push({ score: sum / area, x0, y0, x1: x1 + 1, y1: y1 + 1, area });
  }
  return components.sort((a, b) => b.score - a.score);
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
