/**
 * The results of one unit of a slide analysis as packed float32 records (never one JS object per point):
 * what a unit stores in the job store, and what grouping (groups.ts), region merging (../tile-regions.ts)
 * and GeoJSON (geojson.ts) read back, unit by unit.
 */

/**
 * One annotation: centre x, y; box x0, y0, x1, y1 (base pixels); score; label index. For a tile
 * classifier, one positive window: column, row on the window grid; its core x0, y0, x1, y1 (base
 * pixels); positive score; group index.
 */
export const ANNOTATION_FLOATS = 8;

/** A growable float32 record list (amortised doubling; no per-annotation objects). */
export class AnnotationBuffer {
  private data = new Float32Array(ANNOTATION_FLOATS * 64);
  count = 0;

  push(cx: number, cy: number, x0: number, y0: number, x1: number, y1: number, score: number, label: number): void {
    if ((this.count + 1) * ANNOTATION_FLOATS > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set([cx, cy, x0, y0, x1, y1, score, label], this.count * ANNOTATION_FLOATS);
    this.count += 1;
  }

  /** Little-endian bytes (every supported platform is little-endian; checked at start). */
  toBuffer(): Buffer {
    return Buffer.from(this.data.buffer, 0, this.count * ANNOTATION_FLOATS * 4);
  }
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('slide analysis results assume a little-endian platform');

/** The float32 records stored for one unit. */
export function recordsOf(bytes: Buffer | null): Float32Array {
  if (bytes === null || bytes.length === 0) return new Float32Array(0);
  // Copy into an aligned buffer: a Buffer from the database may start at any byte offset.
  const aligned = new Float32Array(bytes.length / 4);
  new Uint8Array(aligned.buffer).set(bytes);
  return aligned;
}
