/**
 * Inference benchmark: the server's detection pipeline (sharp decode + letterbox, bounded queue,
 * onnxruntime, mask post-processing) against the same model run through a bare onnxruntime session on
 * the same pre-letterboxed tensors, in the same run.
 *
 *   npm run bench:inference                          # polyp-detector from models/, CPU
 *   options: --model ID  --models-dir DIR  --images 40  --rounds 3  --provider cpu|cuda|webgpu
 *            --frames live|stored (default live)
 *
 * Frames: issue 23's live budget is per 720×576 frame at batch 1, so by default each Kvasir test image
 * is letterboxed into a 720×576 camera frame and encoded as JPEG q90, as `npm run eval:live` streams
 * them (scripts/live/held-frames.ts). `--frames stored` sends the JPEGs as stored (332×487 … 1920×1072,
 * most ~620×530), as this benchmark did until 2026-12-08: smaller than a camera frame for most images, so
 * that mode's decode is ~1 ms cheaper at p50 (docs/benchmarks.md, "Inference").
 *
 * Reports per-frame latency p50/p99 at batch 1 split into pre-process / model / post-process, the
 * bare session's latency, the pipeline's overhead ratio, and throughput (frames/s) at each batch size.
 * Output: markdown on stdout and in .bench/inference-results.md.
 */
import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import pino from 'pino';
import { BUNDLED_MODELS_DIR } from '../server/src/config.js';
import { InferenceEngine, type ExecutionProvider } from '../server/src/inference/inference-engine.js';
import { letterbox } from '../server/src/inference/letterbox.js';
import { loadModelRegistry } from '../server/src/inference/model-registry.js';
import { kvasirSplit } from './eval/kvasir.js';
import { CANVAS, holdStill } from './live/held-frames.js';
import { option } from './bench/cli.js';
import { percentile } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (line: string) => process.stderr.write(`${line}\n`);

const ms = (v: number) => v.toFixed(1);

async function main(): Promise<void> {
  const modelId = option('model', 'polyp-detector');
  const modelsDir = path.resolve(option('models-dir', BUNDLED_MODELS_DIR));
  const imageCount = Number(option('images', '40'));
  const rounds = Number(option('rounds', '3'));
  const provider = option('provider', 'cpu') as ExecutionProvider;
  const registered = (await loadModelRegistry(modelsDir)).filter((m) => m.spec.id === modelId);
  if (registered.length === 0) throw new Error(`model ${modelId} not in ${modelsDir}`);
  const { spec, path: modelPath } = registered[0]!;
  const frames = option('frames', 'live');
  if (frames !== 'live' && frames !== 'stored') throw new Error(`--frames takes live or stored, got "${frames}"`);
  const files = (await kvasirSplit('test')).slice(0, imageCount);
  const images =
    frames === 'stored'
      ? await Promise.all(files.map((i) => readFile(i.file)))
      : await Promise.all(files.map(async (i) => (await holdStill({ file: i.file, truth: [] }, 1, false))[0]!.jpeg));
  const silent = pino({ level: 'silent' });
  const described = frames === 'stored' ? `${images.length} Kvasir test JPEGs as stored (332×487 … 1920×1072)` : `${images.length} Kvasir test images letterboxed into ${CANVAS.width}×${CANVAS.height} frames, JPEG q90 (as eval:live streams them)`;
  log(`model ${spec.id} ${spec.version}, ${described}, ${rounds} rounds, provider ${provider}`);

  // (1) The pipeline at batch 1: one request at a time, as a single endoscopy room would send them.
  const engine = await InferenceEngine.start(registered, { executionProvider: provider, threads: 0, maxBatch: 1, queueDepth: 64 }, silent);
  const pipeline = { total: [] as number[], pre: [] as number[], model: [] as number[], post: [] as number[] };
  for (let round = 0; round < rounds; round += 1) {
    for (const image of images) {
      const started = performance.now();
      const result = await engine.detect(spec.id, image);
      pipeline.total.push(performance.now() - started);
      pipeline.pre.push(result.timings.preprocessMs);
      pipeline.model.push(result.timings.modelMs);
      pipeline.post.push(result.timings.postprocessMs);
    }
  }
  await engine.close();

  // (2) The same model through a bare onnxruntime session on tensors letterboxed beforehand.
  const tensors = await Promise.all(images.map(async (image) => (await letterbox(image, spec.input.width, spec.input.padValue)).pixels));
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: provider === 'cpu' ? ['cpu'] : [provider, 'cpu'], graphOptimizationLevel: 'all' });
  const size = spec.input.width;
  const runBare = async (batch: Buffer[]) => {
    const data = Buffer.concat(batch);
    await session.run({ [spec.input.name]: new ort.Tensor('uint8', new Uint8Array(data.buffer, data.byteOffset, data.length), [batch.length, size, size, 3]) });
  };
  await runBare([tensors[0]!]);
  const bare: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    for (const tensor of tensors) {
      const started = performance.now();
      await runBare([tensor]);
      bare.push(performance.now() - started);
    }
  }

  // (3) Throughput at each batch size: every image submitted at once, the queue forms the batches.
  const throughput: Array<{ batch: number; pipelineFps: number; bareFps: number }> = [];
  for (const batch of [1, 2, 4, 8]) {
    const batched = await InferenceEngine.start(registered, { executionProvider: provider, threads: 0, maxBatch: batch, queueDepth: images.length * 2 }, silent);
    const started = performance.now();
    for (let round = 0; round < rounds; round += 1) await Promise.all(images.map((image) => batched.detect(spec.id, image)));
    const pipelineFps = (images.length * rounds) / ((performance.now() - started) / 1000);
    await batched.close();
    const bareStarted = performance.now();
    for (let round = 0; round < rounds; round += 1) {
      for (let i = 0; i < tensors.length; i += batch) await runBare(tensors.slice(i, i + batch));
    }
    const bareFps = (tensors.length * rounds) / ((performance.now() - bareStarted) / 1000);
    throughput.push({ batch, pipelineFps, bareFps });
    log(`batch ${batch}: pipeline ${pipelineFps.toFixed(1)} frames/s, bare ${bareFps.toFixed(1)} frames/s`);
  }
  await session.release();

  const p50 = (v: number[]) => percentile(v, 50);
  const p99 = (v: number[]) => percentile(v, 99);
  const withoutDecode = pipeline.total.map((t, i) => t - pipeline.pre[i]!);
  const best = throughput.reduce((a, b) => (b.pipelineFps > a.pipelineFps ? b : a));
  const lines = [
    `### Inference: ${spec.id} ${spec.version}, ${spec.input.width}² input, provider ${provider}`,
    '',
    `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}; ${described} × ${rounds} rounds, sequential, batch 1.`,
    '',
    '| stage (batch 1) | p50 ms | p99 ms |',
    '|---|---|---|',
    `| decode + letterbox (sharp) | ${ms(p50(pipeline.pre))} | ${ms(p99(pipeline.pre))} |`,
    `| model (inside the pipeline) | ${ms(p50(pipeline.model))} | ${ms(p99(pipeline.model))} |`,
    `| post-process (mask components) | ${ms(p50(pipeline.post))} | ${ms(p99(pipeline.post))} |`,
    `| **pipeline, end to end** | **${ms(p50(pipeline.total))}** | **${ms(p99(pipeline.total))}** |`,
    `| pipeline without decode (queue + model + post) | ${ms(p50(withoutDecode))} | ${ms(p99(withoutDecode))} |`,
    `| bare onnxruntime session.run | ${ms(p50(bare))} | ${ms(p99(bare))} |`,
    '',
    `Overhead of the pipeline around the model (queue + model + post-process vs bare session, p50): **${(p50(withoutDecode) / p50(bare)).toFixed(2)}×**; end to end including JPEG decode and letterbox: ${(p50(pipeline.total) / p50(bare)).toFixed(2)}×.`,
    '',
    '| batch | pipeline frames/s | bare session frames/s |',
    '|---|---|---|',
    ...throughput.map((t) => `| ${t.batch} | ${t.pipelineFps.toFixed(1)} | ${t.bareFps.toFixed(1)} |`),
    '',
    `Best pipeline throughput: ${best.pipelineFps.toFixed(1)} frames/s at batch ${best.batch}.`,
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(text);
  fs.mkdirSync(path.join(repoRoot, '.bench'), { recursive: true });
  fs.writeFileSync(path.join(repoRoot, '.bench', 'inference-results.md'), text);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
