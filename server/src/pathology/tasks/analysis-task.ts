/**
 * What a slide analysis does that depends on the model's task (detection, classification, …), behind one
 * interface: how the windows are laid out, what one batch of windows becomes (packed records,
 * ../annotations/records.ts), and how the records of every unit become the annotation groups of the
 * result instance and its GeoJSON view. The job lifecycle (../analysis-service.ts) plans, runs units and
 * finalizes through this interface alone; task-for-model.ts picks the implementation by `model.task`.
 */
import type { InferenceEngine } from '../../inference/inference-engine.js';
import type { LabelGroup } from '../annotations/groups.js';
import type { AnnotationBuffer } from '../annotations/records.js';
import type { PlannedWindow, Rect } from '../plan.js';
import type { SlideLevel } from '../slide.js';

/** The model as a unit's windows reach it: the shared engine, each call waiting out a full queue. */
export interface WindowModel {
  engine: InferenceEngine;
  /** Runs one model call; a full model queue (SERVICE_BUSY) is waited out, up to a limit. */
  whenNotBusy<T>(call: () => Promise<T>): Promise<T>;
}

/** One batch of a unit's windows (submitted to the model queue at once), read from the level. */
export interface WindowBatch {
  /** The windows, in level pixels, in the order of `images`. */
  windows: readonly PlannedWindow[];
  /** Each window's pixels: RGB, `size` × `size`. */
  images: readonly Buffer[];
  /** The level the windows lie on (its scale to base pixels). */
  level: Pick<SlideLevel, 'scaleX' | 'scaleY'>;
  /** The analysed region of that level, as planned. */
  region: Rect;
}

export interface AnalysisTask {
  /** Level pixels that neighbouring windows of `windowSize` share (their cores never overlap). */
  windowOverlap(windowSize: number): number;
  /** Runs the model on one batch of windows and appends what it found to `out` as packed records. */
  runWindows(model: WindowModel, batch: WindowBatch, out: AnnotationBuffer): Promise<void>;
  /** The annotation groups of the result instance, from the records of every unit in unit order. */
  annotationGroups(units: AsyncIterable<Float32Array>): Promise<LabelGroup[]>;
  /** The result as GeoJSON text chunks; `header` holds the collection's own members. */
  geoJson(header: Record<string, unknown>, units: AsyncIterable<Float32Array>): Promise<AsyncGenerator<string>>;
}
