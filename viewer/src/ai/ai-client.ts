/** The AI API (`/ai`, docs/api.md "AI inference"): model list and stored-frame detections. */
import { AI_ROOT, request, ViewerError } from '../dicomweb/client.js';

export interface AiModel {
  id: string;
  version: string;
  task: string;
  description?: string;
  labels?: string[];
}

/** Detection models, or [] when the server has no AI (404) — the viewer then hides the action. */
export async function listModels(): Promise<AiModel[]> {
  try {
    const res = await request(`${AI_ROOT}/models`, { what: 'AI model list', headers: { Accept: 'application/json' } });
    const body = (await res.json()) as { models?: AiModel[] };
    return (body.models ?? []).filter((m) => m.task === 'detection');
  } catch (err) {
    if (err instanceof ViewerError && err.status === 404) return [];
    throw err;
  }
}

export interface StoredReportRef {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

/** Runs `model` on a stored frame; the server stores the result as a TID 1500 SR and returns where. */
export async function detectOnFrame(study: string, series: string, sop: string, frame: number, model: string, signal?: AbortSignal): Promise<StoredReportRef> {
  const url = `${AI_ROOT}/studies/${study}/series/${series}/instances/${sop}/frames/${frame}/detections?model=${encodeURIComponent(model)}`;
  const res = await request(url, { method: 'POST', what: `Detection (${model})`, headers: { Accept: 'application/json' }, ...(signal ? { signal } : {}) });
  const body = (await res.json()) as { report?: StoredReportRef };
  if (body.report === undefined) throw new ViewerError('Detection answered without a stored report');
  return body.report;
}
