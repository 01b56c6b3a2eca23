/**
 * The inference engine: one onnxruntime-node session per registered model, each in a thread of its own
 * (onnx-thread.ts: a model run never blocks the main thread), created and warmed up at start, each
 * behind a bounded batching queue (model-queue.ts). `detect` is the whole pipeline for one
 * image: letterbox (sharp) → queue → model → mask components → boxes in source pixels, with the time
 * spent in each stage, so the HTTP API, the stored-frame use case and the live stream share one path.
 * `classify` is the same path for tile classifiers (task "classification"): letterbox → queue → model →
 * the image's class probabilities and its positive score.
 */
import type { Logger } from 'pino';
import { AppError, NotFoundError, ServiceBusyError } from '../errors.js';
import { letterbox, type RawImage } from './letterbox.js';
import { componentBox, maskComponents, type Box, type MaskComponent } from './mask-components.js';
import type { BoxVerifierSpec, ClassificationModelSpec, DetectionModelSpec, ModelSpec } from './model-manifest.js';
import { verifierCrops } from './box-verifier.js';
import { ModelQueue, type BatchRunner, type QueueStats } from './model-queue.js';
import { ModelThreadStoppedError, OnnxThread } from './onnx-thread.js';
import type { RegisteredModel } from './model-registry.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface EngineOptions {
  executionProvider: ExecutionProvider;
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (all cores). */
  threads: number;
  /** false: idle onnxruntime threads sleep instead of spinning (`session.intra_op.allow_spinning = 0`). */
  threadSpinning?: boolean;
  maxBatch: number;
  /** Requests allowed to wait per model before SERVICE_BUSY. */
  queueDepth: number;
}

export interface Detection {
  label: string;
  score: number;
  box: Box;
}

export interface DetectionTimings {
  preprocessMs: number;
  queueMs: number;
  modelMs: number;
  postprocessMs: number;
}

export interface DetectionResult {
  model: { id: string; version: string };
  width: number;
  height: number;
  detections: Detection[];
  timings: DetectionTimings;
}

export interface ClassificationResult {
  model: { id: string; version: string };
  width: number;
  height: number;
  /** One probability per label, in the manifest's label order. */
  probabilities: number[];
  /** Sum of the probabilities of the model's `output.positiveLabels`. */
  positiveScore: number;
  /** The most probable label overall. */
  label: string;
  timings: DetectionTimings;
}

/**
 * One output per input, with the time the batch spent in the model: a mask (detection, [N,1,h,w]) or
 * the class probabilities (classification, [N,C]: `width` = C, `height` = 1).
 */
export interface MaskOutput {
  /** channels × height × width values: channel 0 the mask (detection), then any others (a seed map). */
  prob: Float32Array;
  width: number;
  height: number;
  channels: number;
  modelMs: number;
  startedAt: number;
}

/** Runs a batch of letterboxed uint8 NHWC images through one model's onnxruntime session (in its thread). */
export class OnnxBatchRunner implements BatchRunner<Buffer, MaskOutput> {
  constructor(
    private readonly session: OnnxThread,
    private readonly spec: ModelSpec,
  ) {}

  async run(inputs: Buffer[]): Promise<MaskOutput[]> {
    const size = this.spec.input.width;
    const data = inputs.length === 1 ? inputs[0]! : Buffer.concat(inputs);
    const startedAt = performance.now();
    let output;
    try {
      output = await this.session.run(data, [inputs.length, size, size, 3]);
    } catch (err) {
      // The thread died under this batch (out of memory, a native crash) and is started again for the
      // next one: the callers may retry (503 + Retry-After; a live frame counts as not analysed).
      if (err instanceof ModelThreadStoppedError) throw new ServiceBusyError(`Model "${this.spec.id}" was restarted while it ran this request; retry`, 1);
      throw err;
    }
    // The time in the model itself (measured on its thread), not the hand-over to and from it.
    const modelMs = output.runMs;
    const dims = output.dims;
    const classes = dims.length === 2;
    const height = classes ? 1 : dims[2]!;
    const width = classes ? dims[1]! : dims[3]!;
    const channels = classes ? 1 : dims[1]!;
    const all = output.data as Float32Array;
    const cells = width * height * channels;
    return inputs.map((_, i) => ({ prob: all.subarray(i * cells, (i + 1) * cells), width, height, channels, modelMs, startedAt }));
  }
}

interface LoadedModel {
  spec: ModelSpec;
  session: OnnxThread;
  queue: ModelQueue<Buffer, MaskOutput>;
  /** A detector's box verifier (manifest `output.verifier`), in a thread of its own. */
  verifier?: { spec: BoxVerifierSpec; session: OnnxThread };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** The seed map of a seeded split: the manifest's `seedChannel` of the output (default the mask itself). */
function seedMap(spec: DetectionModelSpec, mask: MaskOutput): Float32Array {
  const channel = spec.output.seedChannel ?? 0;
  if (channel >= mask.channels) throw new AppError('CONFIG_INVALID', `model "${spec.id}": the manifest takes seeds from output channel ${channel} ("seedChannel"), output "${spec.output.name}" has ${mask.channels} channel(s)`);
  const cells = mask.width * mask.height;
  return mask.prob.subarray(channel * cells, (channel + 1) * cells);
}

/** The candidates the box verifier keeps (probability ≥ its gate), in their order; its time counts as post-processing. */
async function verified(verifier: NonNullable<LoadedModel['verifier']>, pixels: Uint8Array, spec: DetectionModelSpec, candidates: MaskComponent[]): Promise<MaskComponent[]> {
  const stride = spec.output.stride;
  const boxes = candidates.map((c) => ({ x0: c.x0 * stride, y0: c.y0 * stride, x1: c.x1 * stride, y1: c.y1 * stride }));
  const size = verifier.spec.size;
  let out;
  try {
    out = await verifier.session.run(verifierCrops(pixels, spec.input.width, boxes, verifier.spec), [boxes.length, size, size, 3]);
  } catch (err) {
    if (err instanceof ModelThreadStoppedError) throw new ServiceBusyError(`Model "${spec.id}"'s box verifier was restarted while it ran this request; retry`, 1);
    throw err;
  }
  return candidates.filter((_, i) => out.data[i]! >= verifier.spec.gate);
}

export class InferenceEngine {
  private constructor(
    private readonly models: Map<string, LoadedModel>,
    readonly executionProvider: ExecutionProvider,
  ) {}

  /** Creates every session (falling back to CPU with one log line if the provider is missing) and warms it up. */
  static async start(registered: RegisteredModel[], options: EngineOptions, log: Logger): Promise<InferenceEngine> {
    const models = new Map<string, LoadedModel>();
    let provider = options.executionProvider;
    // Every thread started so far: released if the start fails at any model, so none is left idle.
    const started: OnnxThread[] = [];
    try {
      for (const { spec, path, verifierPath } of registered) {
        // The card's figures hold only with the verifier: a detector that names one never runs without it.
        if (spec.task === 'detection' && spec.output.verifier !== undefined && verifierPath === undefined) {
          throw new AppError('CONFIG_INVALID', `model "${spec.id}": its box verifier ${spec.output.verifier.file} was not registered (loadModelRegistry checks and passes it)`);
        }
        const start = (ep: ExecutionProvider) =>
          OnnxThread.start(path, { input: spec.input.name, output: spec.output.name }, {
            executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
            ...(options.threads > 0 ? { intraOpNumThreads: options.threads } : {}),
            threadSpinning: options.threadSpinning !== false,
          });
        let session: OnnxThread;
        try {
          session = await start(provider);
        } catch (err) {
          if (provider === 'cpu') throw new Error(`model "${spec.id}" cannot be loaded by onnxruntime: ${(err as Error).message}`);
          log.warn({ requested: provider, reason: (err as Error).message.split('\n')[0] }, 'execution provider unavailable: running models on CPU');
          provider = 'cpu';
          session = await start('cpu');
        }
        started.push(session);
        const runner = new OnnxBatchRunner(session, spec);
        const [warm] = await runner.run([Buffer.alloc(spec.input.width * spec.input.height * 3, spec.input.padValue)]);
        if (spec.task === 'classification' && (warm!.height !== 1 || warm!.width !== spec.labels.length)) {
          throw new AppError(
            'CONFIG_INVALID',
            `model "${spec.id}": output "${spec.output.name}" gives ${warm!.width * warm!.height} values per image, the manifest lists ${spec.labels.length} labels (a classification model must output [N, labels])`,
          );
        }
        if (spec.task === 'detection') seedMap(spec, warm!); // a seed channel the output lacks stops the start, naming it
        let verifier: LoadedModel['verifier'];
        const verifierSpec = spec.task === 'detection' ? spec.output.verifier : undefined;
        if (verifierSpec !== undefined && verifierPath !== undefined) {
          // One intra-op thread, not spinning: a few 64² crops per frame are too little work to share out, and
          // idle threads spinning beside the detector's would take the cores it runs on.
          const verifierSession = await OnnxThread.start(verifierPath, { input: verifierSpec.input, output: verifierSpec.output }, {
            executionProviders: provider === 'cpu' ? ['cpu'] : [provider, 'cpu'],
            intraOpNumThreads: 1,
            threadSpinning: false,
          }).catch((err: unknown) => {
            throw new Error(`model "${spec.id}": its box verifier ${verifierSpec.file} cannot be loaded by onnxruntime: ${(err as Error).message}`);
          });
          started.push(verifierSession);
          verifier = { spec: verifierSpec, session: verifierSession };
          // Warm-up, and the output's shape checked: one probability per crop.
          const out = await verifierSession.run(Buffer.alloc(verifierSpec.size * verifierSpec.size * 3), [1, verifierSpec.size, verifierSpec.size, 3]);
          if (out.data.length !== 1) {
            throw new AppError('CONFIG_INVALID', `model "${spec.id}": box verifier output "${verifierSpec.output}" gives ${out.data.length} values per crop, 1 expected (a probability)`);
          }
        }
        models.set(spec.id, { spec, session, queue: new ModelQueue(spec.id, runner, options.maxBatch, options.queueDepth), ...(verifier ? { verifier } : {}) });
      }
    } catch (err) {
      await Promise.all(started.map((thread) => thread.release().catch(() => undefined)));
      throw err;
    }
    log.info({ models: [...models.keys()], executionProvider: provider }, 'inference models ready');
    return new InferenceEngine(models, provider);
  }

  /** Replaces a model's batch runner (tests hold a batch to fill the queue; benchmarks wrap it). */
  wrapRunner(id: string, wrap: (runner: BatchRunner<Buffer, MaskOutput>) => BatchRunner<Buffer, MaskOutput>, options: Pick<EngineOptions, 'maxBatch' | 'queueDepth'>): void {
    const model = this.loaded(id);
    model.queue = new ModelQueue(id, wrap(new OnnxBatchRunner(model.session, model.spec)), options.maxBatch, options.queueDepth);
  }

  list(): ModelSpec[] {
    return [...this.models.values()].map((m) => m.spec);
  }

  spec(id: string): ModelSpec {
    return this.loaded(id).spec;
  }

  queueStats(id: string): QueueStats {
    return this.loaded(id).queue.stats();
  }

  /**
   * Detections in one image (JPEG/PNG bytes or raw decoded pixels), in source-image pixels; those
   * scoring below `minScore` (default: the model's operating threshold) are left out. A request for
   * which `isStale()` is true when its batch is formed fails with DeadlineExpiredError, unrun.
   */
  async detect(id: string, source: Buffer | RawImage, minScore?: number, isStale?: () => boolean): Promise<DetectionResult> {
    const model = this.loaded(id);
    const spec = this.ofTask(model.spec, 'detection');
    const t0 = performance.now();
    const input = await letterbox(source, spec.input.width, spec.input.padValue);
    const queuedAt = performance.now();
    const mask = await model.queue.submit(input.pixels, isStale);
    const t2 = performance.now();
    const threshold = minScore ?? spec.operatingThreshold;
    let candidates = maskComponents(mask.prob, mask.width, mask.height, spec.output, seedMap(spec, mask)).filter((c) => c.score >= threshold);
    if (model.verifier !== undefined && candidates.length > 0) candidates = await verified(model.verifier, input.pixels, spec, candidates);
    const detections = candidates
      .map((c) => ({ label: spec.labels[0]!, score: Math.round(c.score * 10_000) / 10_000, box: componentBox(c, spec.output.stride, input.placement) }));
    const t3 = performance.now();
    return {
      model: { id: spec.id, version: spec.version },
      width: input.placement.sourceWidth,
      height: input.placement.sourceHeight,
      detections,
      timings: {
        preprocessMs: round(queuedAt - t0),
        queueMs: round(Math.max(0, mask.startedAt - queuedAt)),
        modelMs: round(mask.modelMs),
        postprocessMs: round(t3 - t2),
      },
    };
  }

  /**
   * The class probabilities of one image (JPEG/PNG bytes or raw decoded pixels) from a classification
   * model, through the same letterbox and bounded batching queue as `detect`.
   */
  async classify(id: string, source: Buffer | RawImage, isStale?: () => boolean): Promise<ClassificationResult> {
    const model = this.loaded(id);
    const spec = this.ofTask(model.spec, 'classification');
    const t0 = performance.now();
    const input = await letterbox(source, spec.input.width, spec.input.padValue);
    const queuedAt = performance.now();
    const out = await model.queue.submit(input.pixels, isStale);
    const t2 = performance.now();
    const probabilities = Array.from(out.prob, (p) => Math.round(p * 1_000_000) / 1_000_000);
    let positiveScore = 0;
    for (const positive of spec.output.positiveLabels) positiveScore += out.prob[spec.labels.indexOf(positive)] ?? 0;
    let best = 0;
    for (let c = 1; c < out.prob.length; c += 1) if (out.prob[c]! > out.prob[best]!) best = c;
    const t3 = performance.now();
    return {
      model: { id: spec.id, version: spec.version },
      width: input.placement.sourceWidth,
      height: input.placement.sourceHeight,
      probabilities,
      positiveScore: Math.min(1, Math.round(positiveScore * 1_000_000) / 1_000_000),
      label: spec.labels[best]!,
      timings: {
        preprocessMs: round(queuedAt - t0),
        queueMs: round(Math.max(0, out.startedAt - queuedAt)),
        modelMs: round(out.modelMs),
        postprocessMs: round(t3 - t2),
      },
    };
  }

  /** The spec when the model does `task`; otherwise a 400 naming what the model does. */
  private ofTask(spec: ModelSpec, task: 'detection'): DetectionModelSpec;
  private ofTask(spec: ModelSpec, task: 'classification'): ClassificationModelSpec;
  private ofTask(spec: ModelSpec, task: ModelSpec['task']): ModelSpec {
    if (spec.task !== task) {
      const what = spec.task === 'classification' ? 'a tile classifier (task "classification"): it gives class probabilities, not boxes; run it on a slide (POST …/analyses)' : 'a detector (task "detection"), not a classifier';
      throw new AppError('BAD_REQUEST', `Model "${spec.id}" is ${what}`);
    }
    return spec;
  }

  async close(): Promise<void> {
    for (const model of this.models.values()) {
      await model.session.release();
      await model.verifier?.session.release();
    }
    this.models.clear();
  }

  private loaded(id: string): LoadedModel & { queue: ModelQueue<Buffer, MaskOutput> } {
    const model = this.models.get(id);
    if (model === undefined) throw new NotFoundError(`Unknown model "${id}"; GET /ai/models lists the models`);
    return model;
  }
}
