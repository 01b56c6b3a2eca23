/**
 * Evaluates a detection model through the server's HTTP API, exactly as a client would call it:
 * every image of the split is POSTed to /ai/models/{id}/detect with minScore=0 (all candidates), and
 * the answers are scored against the ground truth (average-precision.ts).
 */
import { readFile } from 'node:fs/promises';
import { averagePrecision, averagePrecision50to95, countsAt, type ImageResult } from './average-precision.js';
import { kvasirSplit, type LabelledImage } from './kvasir.js';

export interface Evaluation {
  model: { id: string; version: string };
  images: number;
  boxes: number;
  ap50: number;
  ap50_95: number;
  operatingThreshold: number;
  atThreshold: ReturnType<typeof countsAt>;
  perImage: ImageResult[];
}

/** `images`: a Kvasir-SEG split (the default) or any labelled images (JPEG or PNG files). */
export async function evaluateOverHttp(baseUrl: string, modelId: string, images: 'train' | 'test' | LabelledImage[] = 'test', concurrency = 2): Promise<Evaluation> {
  const modelResponse = await fetch(`${baseUrl}/ai/models/${modelId}`);
  if (!modelResponse.ok) throw new Error(`GET /ai/models/${modelId}: ${modelResponse.status} ${await modelResponse.text()}`);
  const model = (await modelResponse.json()) as { id: string; version: string; operatingThreshold: number };
  if (typeof images === 'string') images = await kvasirSplit(images);
  const results: ImageResult[] = new Array(images.length);
  let next = 0;
  const worker = async () => {
    while (next < images.length) {
      const index = next++;
      const image = images[index]!;
      const response = await fetch(`${baseUrl}/ai/models/${modelId}/detect?minScore=0`, {
        method: 'POST',
        headers: { 'content-type': image.file.endsWith('.png') ? 'image/png' : 'image/jpeg' },
        body: await readFile(image.file),
      });
      if (!response.ok) throw new Error(`detect ${image.id}: ${response.status} ${await response.text()}`);
      const body = (await response.json()) as { width: number; height: number; detections: ImageResult['detections'] };
      if (body.width !== image.width || body.height !== image.height) throw new Error(`detect ${image.id}: size ${body.width}×${body.height}, expected ${image.width}×${image.height}`);
      results[index] = { id: image.id, truth: image.truth, detections: body.detections };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    model: { id: model.id, version: model.version },
    images: images.length,
    boxes: images.reduce((n, i) => n + i.truth.length, 0),
    ap50: averagePrecision(results, 0.5),
    ap50_95: averagePrecision50to95(results),
    operatingThreshold: model.operatingThreshold,
    atThreshold: countsAt(results, model.operatingThreshold),
    perImage: results,
  };
}

/** The Markdown table eval-polyp.ts and eval-nuclei.ts print (`units`: what an image and a box are called). */
export function detectionTable(e: Evaluation, dataset: string, units: { images: string; boxes: string }, seconds: number): string {
  const f = (v: number) => v.toFixed(4);
  return [
    `| model | split | ${units.images} | ${units.boxes} | AP50 | AP50:95 | threshold | precision (IoU ≥ 0.5) | recall | TP | FP | FN |`,
    `|---|---|---|---|---|---|---|---|---|---|---|---|`,
    `| ${e.model.id} ${e.model.version} | ${dataset} | ${e.images} | ${e.boxes} | ${f(e.ap50)} | ${f(e.ap50_95)} | ${e.operatingThreshold} | ${f(e.atThreshold.precision)} | ${f(e.atThreshold.recall)} | ${e.atThreshold.tp} | ${e.atThreshold.fp} | ${e.atThreshold.fn} |`,
    '',
    `(${e.images} HTTP detect calls in ${seconds.toFixed(1)} s)`,
    '',
  ].join('\n');
}
