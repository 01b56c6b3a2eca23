/**
 * Slide analysis with a tile classifier (task "classification"): a grid of windows without overlap, each
 * classified once. A unit records its positive windows (positive score ≥ the model's operating
 * threshold) with their place on the grid; the result merges them into connected regions
 * (../tile-regions.ts), one POLYGON annotation per region, in the group of the model's region label or
 * of each tile's most probable positive label.
 */
import type { ClassificationModelSpec } from '../../inference/model-manifest.js';
import { geoJsonRegionChunks } from '../annotations/geojson.js';
import { polygonGroups } from '../annotations/groups.js';
import { tileRegions } from '../tile-regions.js';
import type { AnalysisTask } from './analysis-task.js';

/** The annotation groups of a classification model: its `regionLabel`, or one per positive label. */
function regionGroupLabels(spec: ClassificationModelSpec): string[] {
  return spec.output.regionLabel !== undefined ? [spec.output.regionLabel] : spec.output.positiveLabels;
}

export function classificationTask(spec: ClassificationModelSpec): AnalysisTask {
  const groupLabels = regionGroupLabels(spec);
  return {
    windowOverlap: () => 0,

    async runWindows(model, { windows, images, level, region }, out) {
      const results = await Promise.all(
        windows.map((w, k) => model.whenNotBusy(() => model.engine.classify(spec.id, { pixels: images[k]!, width: w.size, height: w.size, channels: 3 }))),
      );
      windows.forEach((w, k) => {
        const result = results[k]!;
        if (result.positiveScore < spec.operatingThreshold) return;
        // The group: the region label, or the most probable positive label of this window.
        let group = 0;
        if (spec.output.regionLabel === undefined) {
          let best = -1;
          spec.output.positiveLabels.forEach((label, g) => {
            const p = result.probabilities[spec.labels.indexOf(label)] ?? 0;
            if (p > best) [best, group] = [p, g];
          });
        }
        out.push(
          Math.round((w.x - region.x0) / w.size),
          Math.round((w.y - region.y0) / w.size),
          w.core.x0 * level.scaleX,
          w.core.y0 * level.scaleY,
          w.core.x1 * level.scaleX,
          w.core.y1 * level.scaleY,
          result.positiveScore,
          Math.min(group, groupLabels.length - 1),
        );
      });
    },

    annotationGroups: async (units) => polygonGroups(groupLabels, await tileRegions(units)),

    geoJson: async (header, units) => geoJsonRegionChunks(groupLabels, header, await tileRegions(units)),
  };
}
