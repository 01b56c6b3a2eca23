/**
 * Slide analysis with a detector (task "detection"): overlapping windows, so that an object cut by one
 * window's border is whole in a neighbour; a window keeps the detections whose centre lies in its core
 * (the cores partition the region, so each object is reported once). Each detection is a POINT
 * annotation (its centre) in the group of its label; the GeoJSON view also has its box.
 */
import type { DetectionModelSpec } from '../../inference/model-manifest.js';
import { geoJsonChunks } from '../annotations/geojson.js';
import { groupByLabel } from '../annotations/groups.js';
import { inCore } from '../plan.js';
import type { AnalysisTask } from './analysis-task.js';

export function detectionTask(spec: DetectionModelSpec): AnalysisTask {
  return {
    windowOverlap: (windowSize) => 2 * Math.round(windowSize / 16),

    async runWindows(model, { windows, images, level }, out) {
      const results = await Promise.all(
        windows.map((w, k) => model.whenNotBusy(() => model.engine.detect(spec.id, { pixels: images[k]!, width: w.size, height: w.size, channels: 3 }))),
      );
      windows.forEach((w, k) => {
        for (const d of results[k]!.detections) {
          const cx = w.x + d.box.x + d.box.width / 2;
          const cy = w.y + d.box.y + d.box.height / 2;
          if (!inCore(w.core, cx, cy)) continue; // another window owns this object
          const label = Math.max(0, spec.labels.indexOf(d.label));
          out.push(
            cx * level.scaleX,
            cy * level.scaleY,
            (w.x + d.box.x) * level.scaleX,
            (w.y + d.box.y) * level.scaleY,
            (w.x + d.box.x + d.box.width) * level.scaleX,
            (w.y + d.box.y + d.box.height) * level.scaleY,
            d.score,
            label,
          );
        }
      });
    },

    annotationGroups: (units) => groupByLabel(spec.labels, units),

    geoJson: async (header, units) => geoJsonChunks(spec.labels, header, units),
  };
}
