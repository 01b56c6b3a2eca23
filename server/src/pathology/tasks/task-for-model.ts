/**
 * Which AnalysisTask runs a model on slides, by its `task`: the only place that maps one to the other. A
 * new task (e.g. segmentation) is one new file in this folder and one line here; the type of `TASKS`
 * makes the compiler ask for that line as soon as ModelSpec has the new task.
 */
import type { ModelSpec } from '../../inference/model-manifest.js';
import type { AnalysisTask } from './analysis-task.js';
import { classificationTask } from './classification-task.js';
import { detectionTask } from './detection-task.js';

const TASKS: { [T in ModelSpec['task']]: (spec: Extract<ModelSpec, { task: T }>) => AnalysisTask } = {
  detection: detectionTask,
  classification: classificationTask,
};

/** The analysis task of a model. */
export function analysisTask(spec: ModelSpec): AnalysisTask {
  return (TASKS[spec.task] as (spec: ModelSpec) => AnalysisTask)(spec);
}
