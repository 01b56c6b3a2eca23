/** The GeoJSON view of slide analysis results (geojson.ts). */
import { describe, expect, it } from 'vitest';
import { geoJsonChunks, geoJsonRegionChunks } from './geojson.js';
import { AnnotationBuffer, recordsOf } from './records.js';

async function* units(...list: Float32Array[]): AsyncGenerator<Float32Array> {
  yield* list;
}

describe('slide annotations as GeoJSON', () => {
  it('streams GeoJSON features unit by unit', async () => {
    const a = new AnnotationBuffer();
    a.push(10, 20, 5, 15, 15, 25, 0.8, 0);
    let text = '';
    for await (const chunk of geoJsonChunks(['nucleus'], { properties: { job: 'x' } }, units(new Float32Array(0), recordsOf(a.toBuffer()), recordsOf(a.toBuffer())))) text += chunk;
    const geo = JSON.parse(text);
    expect(geo.properties.job).toBe('x');
    expect(geo.features).toHaveLength(2);
    expect(geo.features[0]).toEqual({ type: 'Feature', geometry: { type: 'Point', coordinates: [10, 20] }, properties: { label: 'nucleus', score: 0.8, box: [5, 15, 15, 25] } });
    let empty = '';
    for await (const chunk of geoJsonChunks(['nucleus'], {}, units())) empty += chunk;
    expect(JSON.parse(empty)).toEqual({ type: 'FeatureCollection', features: [] });
  });

  it('streams tile regions as GeoJSON Polygon features with closed rings and holes', async () => {
    const regions = [{ group: 0, outer: [0, 0, 30, 0, 30, 30, 0, 30], holes: [[10, 10, 10, 20, 20, 20, 20, 10]], windows: 8, meanScore: 0.75, maxScore: 0.8 }];
    let text = '';
    for await (const chunk of geoJsonRegionChunks(['lesion'], { properties: { job: 'x' } }, regions)) text += chunk;
    const geo = JSON.parse(text);
    expect(geo.features).toEqual([
      {
        type: 'Feature',
        geometry: { type: 'Polygon', coordinates: [[[0, 0], [30, 0], [30, 30], [0, 30], [0, 0]], [[10, 10], [10, 20], [20, 20], [20, 10], [10, 10]]] },
        properties: { label: 'lesion', score: 0.75, maxScore: 0.8, tiles: 8 },
      },
    ]);
  });
});
