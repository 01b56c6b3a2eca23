/** The AI API (`/ai`, docs/api.md "AI inference"): model list and stored-frame detections. */
import type { AnalysisJob, FrameDetectionOutcome, ModelInfo, ModelList } from '../../../server/src/contracts/ai.js';
import { AI_ROOT, request, ViewerError } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';

/** A model as `GET /ai/models` describes it (the server's wire contract). */
export type AiModel = ModelInfo;

/** Detection models, or [] when the server has no AI (404) — the viewer then hides the action. */
export async function listModels(): Promise<AiModel[]> {
  try {
    const res = await request(`${AI_ROOT}/models`, { what: t('ai:what.models'), headers: { Accept: 'application/json' } });
    const body = (await res.json()) as Partial<ModelList>;
    return (body.models ?? []).filter((m) => m.task === 'detection');
  } catch (err) {
    if (err instanceof ViewerError && err.status === 404) return [];
    throw err;
  }
}

/**
 * Models that can run on a whole slide ("Analyse slide"): those whose manifest states the resolution they
 * were trained at (input.pixelSpacingMm), detectors and tile classifiers alike; [] without AI (404).
 */
export async function listSlideModels(): Promise<AiModel[]> {
  try {
    const res = await request(`${AI_ROOT}/models`, { what: t('ai:what.models'), headers: { Accept: 'application/json' } });
    const body = (await res.json()) as Partial<ModelList>;
    return (body.models ?? []).filter((m) => m.input.pixelSpacingMm !== undefined);
  } catch (err) {
    if (err instanceof ViewerError && err.status === 404) return [];
    throw err;
  }
}

/** Starts (or finds, when the same model already analysed this slide) a slide analysis job. */
export async function startSlideAnalysis(study: string, series: string, model: string): Promise<AnalysisJob> {
  const res = await request(`${AI_ROOT}/studies/${study}/series/${series}/analyses`, {
    method: 'POST',
    what: t('ai:what.analysis', { model }),
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify({ model }),
  });
  return (await res.json()) as AnalysisJob;
}

/** A slide analysis job's state and progress. */
export async function analysisJob(id: string): Promise<AnalysisJob> {
  const res = await request(`${AI_ROOT}/analyses/${encodeURIComponent(id)}`, { what: t('ai:what.analysisState'), headers: { Accept: 'application/json' } });
  return (await res.json()) as AnalysisJob;
}

export type StoredReportRef = Pick<FrameDetectionOutcome['report'], 'studyInstanceUid' | 'seriesInstanceUid' | 'sopInstanceUid'>;

/** Runs `model` on a stored frame; the server stores the result as a TID 1500 SR and returns where. */
export async function detectOnFrame(study: string, series: string, sop: string, frame: number, model: string, signal?: AbortSignal): Promise<StoredReportRef> {
  const url = `${AI_ROOT}/studies/${study}/series/${series}/instances/${sop}/frames/${frame}/detections?model=${encodeURIComponent(model)}`;
  const res = await request(url, { method: 'POST', what: t('ai:what.detection', { model }), headers: { Accept: 'application/json' }, ...(signal ? { signal } : {}) });
  const body = (await res.json()) as Partial<FrameDetectionOutcome>;
  if (body.report === undefined) throw new ViewerError(t('ai:noStoredReport'));
  return body.report;
}
