/**
 * A detector's second look at its candidate boxes (manifest `output.verifier`; models/polyp-detector.md,
 * "A second look at each box: a crop verifier"): each box is cut from the detector's own letterboxed
 * input as a square of `context` × the box's longer side around its centre (at least `minSide` input
 * pixels), sampled bilinearly to `size` × `size` (outside the input: 0), and a small classifier gives the
 * probability that it shows the object; a candidate is kept only if that probability reaches `gate`.
 *
 * The crop is written by hand because it must be the one the verifier was trained on, value for value:
 * `scripts/polyp/verifier.py` `crop_box` (sample positions at pixel centres, weights from the floor, the
 * interpolation in float32 as numpy does it, rounded half to even as `np.round`). A library resize (sharp)
 * filters differently when it shrinks.
 */
import type { BoxVerifierSpec } from './model-manifest.js';

/** Rounds to the nearest integer, exact halves to the even one (numpy's `round`). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A candidate in model-input pixels: x0/y0 inclusive, x1/y1 exclusive. */
export interface InputBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * The verifier's input for `boxes`: N × size × size × 3 uint8 (NHWC RGB), cut from `pixels`, the
 * detector's letterboxed input (inputSize × inputSize × 3).
 */
export function verifierCrops(pixels: Uint8Array, inputSize: number, boxes: readonly InputBox[], spec: Pick<BoxVerifierSpec, 'size' | 'context' | 'minSide'>): Buffer {
  const n = spec.size;
  const out = Buffer.alloc(boxes.length * n * n * 3);
  const xf = new Int32Array(n);
  const yf = new Int32Array(n);
  const ax = new Float32Array(n);
  const ay = new Float32Array(n);
  const f = Math.fround;
  const at = (y: number, x: number, c: number) => (y < 0 || x < 0 || y >= inputSize || x >= inputSize ? 0 : pixels[(y * inputSize + x) * 3 + c]!);
  let o = 0;
  for (const box of boxes) {
    const side = Math.max(Math.max(box.x1 - box.x0, box.y1 - box.y0) * spec.context, spec.minSide);
    const cx = (box.x0 + box.x1) / 2;
    const cy = (box.y0 + box.y1) / 2;
    const step = side / n;
    for (let i = 0; i < n; i++) {
      const sx = cx - side / 2 + (i + 0.5) * step - 0.5;
      const sy = cy - side / 2 + (i + 0.5) * step - 0.5;
      xf[i] = Math.floor(sx);
      yf[i] = Math.floor(sy);
      ax[i] = sx - xf[i]!;
      ay[i] = sy - yf[i]!;
    }
    for (let j = 0; j < n; j++) {
      const y = yf[j]!;
      const wy = ay[j]!;
      for (let i = 0; i < n; i++) {
        const x = xf[i]!;
        const wx = ax[i]!;
        const ux = f(1 - wx);
        const uy = f(1 - wy);
        for (let c = 0; c < 3; c++) {
          const top = f(f(at(y, x, c) * ux) + f(at(y, x + 1, c) * wx));
          const bottom = f(f(at(y + 1, x, c) * ux) + f(at(y + 1, x + 1, c) * wx));
          out[o++] = Math.min(255, Math.max(0, roundHalfEven(f(f(top * uy) + f(bottom * wy)))));
        }
      }
    }
  }
  return out;
}
