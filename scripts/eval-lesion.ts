/**
 * Reproduces the lesion classifier's model card (models/lesion-classifier.md) from the committed .onnx
 * through the HTTP API: each of the 94 EBHI-Seg test images (case-disjoint split,
 * ../shared/data/histo-ebhi-seg-colon) is POSTed as its PNG to /ai/models/{id}/classify, and the
 * answers are scored: non-neoplastic vs neoplastic (the server's positive score, at the manifest's
 * operating threshold), normal vs neoplastic (polyp images left out), normal vs abnormal, per-class
 * one-vs-rest, 6-class accuracy and confusion matrix.
 *
 *   npm run eval:lesion                      # starts the server in-process on embedded temp storage
 *   npm run eval:lesion -- --url http://127.0.0.1:8080   # against a running server
 *   options: --model lesion-classifier  --split test|train  --models-dir models  --json out.json
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { argmax, binaryReport, confusionMatrix, rocAuc } from './eval/classification-metrics.js';
import { option } from './bench/cli.js';
import { runEvaluation } from './eval/eval-server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ebhiDir = path.join(process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data'), 'histo-ebhi-seg-colon');

interface ModelInfo {
  id: string;
  version: string;
  labels: string[];
  operatingThreshold: number;
  output: { positiveLabels: string[] };
}

async function split(name: string): Promise<Array<{ image: string; label: string; case: string }>> {
  const [header, ...rows] = (await readFile(path.join(ebhiDir, 'index.csv'), 'utf8')).trim().split('\n').map((l) => l.split(','));
  const col = (n: string) => header!.indexOf(n);
  return rows
    .filter((r) => r[col('split')] === name)
    .map((r) => ({ image: r[col('image')]!, label: r[col('class')]!, case: r[col('case')]! }))
    .sort((a, b) => (a.image < b.image ? -1 : a.image > b.image ? 1 : 0));
}

async function evaluate(baseUrl: string, modelId: string, splitName: string) {
  const modelResponse = await fetch(`${baseUrl}/ai/models/${modelId}`);
  if (!modelResponse.ok) throw new Error(`GET /ai/models/${modelId}: ${modelResponse.status} ${await modelResponse.text()}`);
  const model = (await modelResponse.json()) as ModelInfo;
  const images = await split(splitName);
  const probabilities: number[][] = new Array(images.length);
  const positiveScores: number[] = new Array(images.length);
  let next = 0;
  const worker = async () => {
    while (next < images.length) {
      const i = next++;
      const response = await fetch(`${baseUrl}/ai/models/${modelId}/classify`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: await readFile(path.join(ebhiDir, images[i]!.image)),
      });
      if (!response.ok) throw new Error(`classify ${images[i]!.image}: ${response.status} ${await response.text()}`);
      const body = (await response.json()) as { probabilities: number[]; positiveScore: number };
      probabilities[i] = body.probabilities;
      positiveScores[i] = body.positiveScore;
    }
  };
  await Promise.all(Array.from({ length: 2 }, worker));
  const labels = model.labels;
  const truth = images.map((im) => {
    const k = labels.indexOf(im.label);
    if (k < 0) throw new Error(`${im.image}: class "${im.label}" is not one of the model's labels ${labels.join(', ')}`);
    return k;
  });
  const positive = new Set(model.output.positiveLabels.map((l) => labels.indexOf(l)));
  const isNeoplastic = truth.map((k) => positive.has(k));
  const normal = labels.indexOf('normal');
  const strict = truth.map((k, i) => (k === normal || positive.has(k) ? i : -1)).filter((i) => i >= 0);
  const perClass = Object.fromEntries(
    labels.map((label, k) => {
      const pos = truth.map((t) => t === k);
      const called = probabilities.map((p) => argmax(p) === k);
      const n = pos.filter(Boolean).length;
      const tp = pos.filter((p, i) => p && called[i]).length;
      const tn = pos.filter((p, i) => !p && !called[i]).length;
      return [label, { n, sensitivity: tp / Math.max(n, 1), specificity: tn / Math.max(pos.length - n, 1), auc: rocAuc(probabilities.map((p) => p[k]!), pos) }];
    }),
  );
  const confusion = confusionMatrix(probabilities, truth, labels.length);
  return {
    model: { id: model.id, version: model.version },
    split: splitName,
    images: images.length,
    cases: new Set(images.map((im) => im.case)).size,
    operatingThreshold: model.operatingThreshold,
    positiveLabels: model.output.positiveLabels,
    nonNeoplasticVsNeoplastic: binaryReport(positiveScores, isNeoplastic, model.operatingThreshold),
    normalVsNeoplastic: binaryReport(strict.map((i) => positiveScores[i]!), strict.map((i) => isNeoplastic[i]!), model.operatingThreshold),
    normalVsAbnormal: binaryReport(probabilities.map((p) => 1 - p[normal]!), truth.map((k) => k !== normal), 0.5),
    accuracy: truth.filter((k, i) => argmax(probabilities[i]!) === k).length / truth.length,
    perClass,
    labels,
    confusionRowsTrueColsPred: confusion,
  };
}

runEvaluation('lesion-classifier', async (baseUrl, modelId, splitName) => {
  const jsonOut = option('json', '');
  const started = performance.now();
  const e = await evaluate(baseUrl, modelId, splitName);
  const seconds = (performance.now() - started) / 1000;
  if (jsonOut !== '') await writeFile(jsonOut, `${JSON.stringify(e, null, 1)}\n`);
  const f = (v: number) => v.toFixed(3);
  const row = (name: string, b: ReturnType<typeof binaryReport>) =>
    `| ${name} | ${b.threshold} | ${f(b.sensitivity)} | ${f(b.specificity)} | ${f(b.auc)} | ${b.tp} / ${b.fn} / ${b.tn} / ${b.fp} |`;
  return [
    `${e.model.id} ${e.model.version}, EBHI-Seg ${e.split} split: ${e.images} images, ${e.cases} cases; 6-class accuracy ${f(e.accuracy)}`,
    '',
    '| grouping | cut | sensitivity | specificity | AUC | TP / FN / TN / FP |',
    '|---|---|---|---|---|---|',
    row('non-neoplastic vs neoplastic', e.nonNeoplasticVsNeoplastic),
    row('normal vs neoplastic (polyp left out)', e.normalVsNeoplastic),
    row('normal vs abnormal', e.normalVsAbnormal),
    '',
    '| class | n | sensitivity | specificity | AUC |',
    '|---|---|---|---|---|',
    ...Object.entries(e.perClass).map(([label, c]) => `| ${label} | ${c.n} | ${f(c.sensitivity)} | ${f(c.specificity)} | ${f(c.auc)} |`),
    '',
    `confusion (rows = truth, columns = prediction; ${e.labels.join(', ')}): ${JSON.stringify(e.confusionRowsTrueColsPred)}`,
    '',
    `(${e.images} HTTP classify calls in ${seconds.toFixed(1)} s)`,
    '',
  ].join('\n');
});
