/**
 * The GeoJSON view of a slide analysis result, streamed as text chunks, in the coordinates of the
 * annotation instance (base-level slide pixels: x right, y down; not geographic): detections as Point
 * features, tile-classifier regions as Polygon features with their holes.
 */
import { ANNOTATION_FLOATS } from './records.js';

/** The FeatureCollection's text up to and including the `[` that opens its features. */
const collectionHead = (header: Record<string, unknown>) => JSON.stringify({ type: 'FeatureCollection', ...header, features: [] }).slice(0, -2);
/** Coordinates to 1/100 pixel. */
const r = (v: number) => Math.round(v * 100) / 100;

/**
 * The GeoJSON FeatureCollection of a job's annotations, as text chunks (one per unit, so a slide with
 * tens of thousands of features is never one string in memory). Coordinates are base-level slide pixels
 * (x right, y down; not geographic): Point = the detection's centre, `box` = [x0, y0, x1, y1].
 */
export async function* geoJsonChunks(labels: readonly string[], header: Record<string, unknown>, units: AsyncIterable<Float32Array>): AsyncGenerator<string> {
  yield collectionHead(header);
  let first = true;
  for await (const records of units) {
    const parts: string[] = [];
    for (let i = 0; i + ANNOTATION_FLOATS <= records.length; i += ANNOTATION_FLOATS) {
      const label = labels[Math.min(labels.length - 1, Math.max(0, Math.round(records[i + 7]!)))]!;
      parts.push(
        JSON.stringify({
          type: 'Feature',
          geometry: { type: 'Point', coordinates: [r(records[i]!), r(records[i + 1]!)] },
          properties: { label, score: Math.round(records[i + 6]! * 10_000) / 10_000, box: [r(records[i + 2]!), r(records[i + 3]!), r(records[i + 4]!), r(records[i + 5]!)] },
        }),
      );
    }
    if (parts.length === 0) continue;
    yield (first ? '' : ',') + parts.join(',');
    first = false;
  }
  yield ']}';
}

/**
 * The GeoJSON FeatureCollection of a classification job: one `Polygon` feature per positive region, in
 * base-level slide pixels (x right, y down; not geographic). Its first ring is the outline (the POLYGON of
 * the annotation instance, closed here as GeoJSON requires), the others its holes (enclosed negative tiles).
 */
export async function* geoJsonRegionChunks(
  labels: readonly string[],
  header: Record<string, unknown>,
  regions: ReadonlyArray<{ group: number; outer: number[]; holes: number[][]; windows: number; meanScore: number; maxScore: number }>,
): AsyncGenerator<string> {
  yield collectionHead(header);
  const ring = (flat: number[]) => {
    const points: number[][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) points.push([r(flat[i]!), r(flat[i + 1]!)]);
    if (points.length > 0) points.push(points[0]!);
    return points;
  };
  let first = true;
  for (const region of regions) {
    const feature = {
      type: 'Feature',
      geometry: { type: 'Polygon', coordinates: [ring(region.outer), ...region.holes.map(ring)] },
      properties: {
        label: labels[region.group] ?? labels[0],
        score: Math.round(region.meanScore * 10_000) / 10_000,
        maxScore: Math.round(region.maxScore * 10_000) / 10_000,
        tiles: region.windows,
      },
    };
    yield (first ? '' : ',') + JSON.stringify(feature);
    first = false;
  }
  yield ']}';
}
