/**
 * The annotation groups of a slide analysis result: one group per label, its annotations' coordinates
 * and scores as typed arrays, the form the annotation writer (ann-writer.ts) encodes. Built from the
 * packed records of every unit (detections: POINT groups) or from merged tile regions (tile classifiers:
 * POLYGON groups).
 */
import { ANNOTATION_FLOATS } from './records.js';

export interface LabelGroup {
  label: string;
  /** POINT (default): one x, y pair per annotation. POLYGON: each annotation's outline, `pointIndex` says where each starts. */
  graphicType?: 'POINT' | 'POLYGON';
  /** x, y pairs in base pixels. */
  points: Float32Array;
  /**
   * POLYGON: per annotation, the 1-based index into `points` (counted in values, not pairs) of its
   * first coordinate, as LongPrimitivePointIndexList (PS3.3 C.37.1.2; highdicom writes it so).
   */
  pointIndex?: Int32Array;
  /** POINT: detection score. POLYGON: mean positive probability of the region's tiles. */
  scores: Float32Array;
  /** POLYGON: the highest tile probability and the number of tiles of each region. */
  maxScores?: Float32Array;
  tiles?: Float32Array;
}

/** One POLYGON group per label from merged tile regions (tile-regions.ts), regions in the order given. */
export function polygonGroups(labels: readonly string[], regions: ReadonlyArray<{ group: number; outer: number[]; windows: number; meanScore: number; maxScore: number }>): LabelGroup[] {
  return labels.map((label, index) => {
    const mine = regions.filter((r) => r.group === index);
    const points = new Float32Array(mine.reduce((n, r) => n + r.outer.length, 0));
    const pointIndex = new Int32Array(mine.length);
    let offset = 0;
    mine.forEach((r, i) => {
      pointIndex[i] = offset + 1;
      points.set(r.outer, offset);
      offset += r.outer.length;
    });
    return {
      label,
      graphicType: 'POLYGON' as const,
      points,
      pointIndex,
      scores: Float32Array.from(mine, (r) => r.meanScore),
      maxScores: Float32Array.from(mine, (r) => r.maxScore),
      tiles: Float32Array.from(mine, (r) => r.windows),
    };
  });
}

/** Splits packed records (from every unit, in order) into one group per label. */
export async function groupByLabel(labels: readonly string[], units: AsyncIterable<Float32Array>): Promise<LabelGroup[]> {
  const points = labels.map(() => new GrowableFloats());
  const scores = labels.map(() => new GrowableFloats());
  for await (const records of units) {
    for (let i = 0; i + ANNOTATION_FLOATS <= records.length; i += ANNOTATION_FLOATS) {
      const label = Math.min(labels.length - 1, Math.max(0, Math.round(records[i + 7]!)));
      points[label]!.push(records[i]!, records[i + 1]!);
      scores[label]!.push(records[i + 6]!);
    }
  }
  return labels.map((label, i) => ({ label, points: points[i]!.values(), scores: scores[i]!.values() }));
}

class GrowableFloats {
  private data = new Float32Array(256);
  private length = 0;
  push(...values: number[]): void {
    if (this.length + values.length > this.data.length) {
      const grown = new Float32Array(Math.max(this.data.length * 2, this.length + values.length));
      grown.set(this.data);
      this.data = grown;
    }
    for (const v of values) this.data[this.length++] = v;
  }
  values(): Float32Array {
    return this.data.slice(0, this.length);
  }
}
