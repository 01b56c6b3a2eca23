/**
 * The inference engine: one onnxruntime-node session per registered model, created and warmed up at
 * start, each behind a bounded batching queue (model-queue.ts). `detect` is the whole pipeline for one
 * image: letterbox (sharp) → queue → model → mask components → boxes in source pixels, with the time
 * spent in each stage, so the HTTP API, the stored-frame use case and the live stream share one path.
 */
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { NotFoundError } from '../errors.js';
import { letterbox, type RawImage } from './letterbox.js';
import { componentBox, maskComponents, type Box } from './mask-components.js';
import type { ModelSpec } from './model-manifest.js';
import { ModelQueue, type BatchRunner, type QueueStats } from './model-queue.js';
import type { RegisteredModel } from './model-registry.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface EngineOptions {
  executionProvider: ExecutionProvider;
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (all cores). */
  threads: number;
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

/** One mask per input, with the time the batch spent in the model. */
export interface MaskOutput {
  prob: Float32Array;
  width: number;
  height: number;
  modelMs: number;
  startedAt: number;
}

/** Runs a batch of letterboxed uint8 NHWC images through one onnxruntime session. */
export class OnnxBatchRunner implements BatchRunner<Buffer, MaskOutput> {
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
  ) {}

  async run(inputs: Buffer[]): Promise<MaskOutput[]> {
    const size = this.spec.input.width;
    const data = inputs.length === 1 ? inputs[0]! : Buffer.concat(inputs);
    const tensor = new ort.Tensor('uint8', new Uint8Array(data.buffer, data.byteOffset, data.length), [inputs.length, size, size, 3]);
    const startedAt = performance.now();
    const results = await this.session.run({ [this.spec.input.name]: tensor });
    const modelMs = performance.now() - startedAt;
    const output = results[this.spec.output.name];
    if (output === undefined) throw new Error(`model ${this.spec.id} has no output "${this.spec.output.name}"`);
    const dims = output.dims;
    const height = dims[2]!;
    const width = dims[3]!;
    const all = output.data as Float32Array;
    const cells = width * height;
    return inputs.map((_, i) => ({ prob: all.subarray(i * cells, (i + 1) * cells), width, height, modelMs, startedAt }));
  }
}

interface LoadedModel {
  spec: ModelSpec;
  session: ort.InferenceSession;
  queue: ModelQueue<Buffer, MaskOutput>;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

export class InferenceEngine {
  private constructor(
    private readonly models: Map<string, LoadedModel>,
    readonly executionProvider: ExecutionProvider,
  ) {}

  /** Creates every session (falling back to CPU with one log line if the provider is missing) and warms it up. */
  static async start(registered: RegisteredModel[], options: EngineOptions, log: Logger): Promise<InferenceEngine> {
    const models = new Map<string, LoadedModel>();
    let provider = options.executionProvider;
    for (const { spec, path } of registered) {
      const sessionOptions = (ep: ExecutionProvider): ort.InferenceSession.SessionOptions => ({
        executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
        graphOptimizationLevel: 'all',
        ...(options.threads > 0 ? { intraOpNumThreads: options.threads } : {}),
      });
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(path, sessionOptions(provider));
      } catch (err) {
        if (provider === 'cpu') throw new Error(`model "${spec.id}" cannot be loaded by onnxruntime: ${(err as Error).message}`);
        log.warn({ requested: provider, reason: (err as Error).message.split('\n')[0] }, 'execution provider unavailable: running models on CPU');
        provider = 'cpu';
        session = await ort.InferenceSession.create(path, sessionOptions('cpu'));
      }
      const runner = new OnnxBatchRunner(session, spec);
      await runner.run([Buffer.alloc(spec.input.width * spec.input.height * 3, spec.input.padValue)]);
      models.set(spec.id, { spec, session, queue: new ModelQueue(spec.id, runner, options.maxBatch, options.queueDepth) });
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
    const { spec } = model;
    const t0 = performance.now();
    const input = await letterbox(source, spec.input.width, spec.input.padValue);
    const queuedAt = performance.now();
    const mask = await model.queue.submit(input.pixels, isStale);
    const t2 = performance.now();
    const threshold = minScore ?? spec.operatingThreshold;
    const detections = maskComponents(mask.prob, mask.width, mask.height, spec.output)
      .filter((c) => c.score >= threshold)
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

  async close(): Promise<void> {
    for (const model of this.models.values()) await model.session.release();
    this.models.clear();
  }

  private loaded(id: string): LoadedModel & { queue: ModelQueue<Buffer, MaskOutput> } {
    const model = this.models.get(id);
    if (model === undefined) throw new NotFoundError(`Unknown model "${id}"; GET /ai/models lists the models`);
    return model;
  }
}
