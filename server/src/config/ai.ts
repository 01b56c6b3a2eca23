/**
 * Model sections: the AI engine (PACS_AI_*, PACS_MODELS_DIR), the live endoscopy stream
 * (PACS_LIVE_*) and the slide analysis jobs (PACS_JOBS_*, PACS_REDIS_*).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GiB, MiB, type EnvReader } from './env-reader.js';
import { DEFAULT_TRACKING, validateTracking, type TrackingConfig } from './tracking.js';

/** The models shipped with the product: `models/` at the repository root (from src/config/ or dist/config/). */
export const BUNDLED_MODELS_DIR = fileURLToPath(new URL('../../../models/', import.meta.url));

export interface AiConfig {
  /** Off: no model is loaded and the /ai routes answer 404. */
  enabled: boolean;
  /** Folder holding manifest.json and the .onnx files it pins. */
  modelsDir: string;
  executionProvider: 'cpu' | 'cuda' | 'webgpu';
  /** onnxruntime intra-op threads per session; 0 = all cores. */
  threads: number;
  /**
   * Whether onnxruntime's idle intra-op threads spin (busy-wait) for the next task instead of sleeping
   * (`session.intra_op.allow_spinning`). Spinning saves microseconds per run and burns whole cores
   * between frames, which the other live rooms and the archive need. Default false: measured with one
   * live room at 25 fps while another process kept one core busy, p99 29.8 ms without spinning against
   * 48.4 ms with it (alone: 28.5 against 24.3; docs/benchmarks.md, "Live stream").
   */
  threadSpinning: boolean;
  maxBatch: number;
  /** Requests allowed to wait per model before 503 + Retry-After. */
  queueDepth: number;
  /** Largest image body accepted by the detect endpoint, in bytes. */
  maxImageBytes: number;
}

export function readAiConfig(read: EnvReader, cwd: string): AiConfig {
  return {
    enabled: read.boolean('PACS_AI_ENABLED', true),
    modelsDir: path.resolve(cwd, read.string('PACS_MODELS_DIR', BUNDLED_MODELS_DIR)),
    executionProvider: read.oneOf('PACS_AI_EXECUTION_PROVIDER', ['cpu', 'cuda', 'webgpu'] as const, 'cpu'),
    threads: read.integer('PACS_AI_THREADS', 0, 0, 256),
    threadSpinning: read.boolean('PACS_AI_THREAD_SPINNING', false),
    maxBatch: read.integer('PACS_AI_MAX_BATCH', 4, 1, 64),
    queueDepth: read.integer('PACS_AI_QUEUE_DEPTH', 16, 0, 10_000),
    maxImageBytes: read.integer('PACS_AI_MAX_IMAGE_BYTES', 32 * MiB, 1024, GiB),
  };
}

/** The live endoscopy stream (server/src/live). */
export interface LiveConfig {
  /** Largest frame accepted on the live stream, in bytes (larger ones are refused with an error message). */
  maxFrameBytes: number;
  /** Latency bound: a frame that waited longer than this for the model is dropped instead of analysed. */
  maxWaitMs: number;
  /** Steady live alerts (live/tracker.ts): which boxes are shown, and for how long. */
  tracking: TrackingConfig;
}

export function readLiveConfig(read: EnvReader): LiveConfig {
  const d = DEFAULT_TRACKING;
  const percent = (name: string, fallback: number, min: number) => read.integer(name, Math.round(fallback * 100), min, 100) / 100;
  const confirmWindow = read.integer('PACS_LIVE_TRACK_CONFIRM_WINDOW', d.confirmWindow, 1, 30);
  return {
    maxFrameBytes: read.integer('PACS_LIVE_MAX_FRAME_BYTES', 8 * MiB, 1024, 256 * MiB),
    maxWaitMs: read.integer('PACS_LIVE_MAX_WAIT_MS', 50, 1, 60_000),
    tracking: validateTracking({
      confirmHits: read.integer('PACS_LIVE_TRACK_CONFIRM_HITS', d.confirmHits, 1, confirmWindow),
      confirmWindow,
      maxMisses: read.integer('PACS_LIVE_TRACK_MAX_MISSES', d.maxMisses, 0, 250),
      instantShare: percent('PACS_LIVE_TRACK_INSTANT_PERCENT', d.instantShare, 0),
      keepRatio: percent('PACS_LIVE_TRACK_KEEP_PERCENT', d.keepRatio, 0),
      minIou: percent('PACS_LIVE_TRACK_MIN_IOU_PERCENT', d.minIou, 0),
      maxCentreDistance: read.integer('PACS_LIVE_TRACK_MAX_CENTRE_DISTANCE_PERCENT', Math.round(d.maxCentreDistance * 100), 0, 1000) / 100,
      smoothing: percent('PACS_LIVE_TRACK_SMOOTHING_PERCENT', d.smoothing, 1),
    }),
  };
}

/** Slide analysis jobs (server/src/pathology): where their steps queue and who runs them. */
export interface JobsConfig {
  /** `inprocess` (embedded: a queue in memory, resumed from the job store at start) or `bullmq` (Redis). */
  queue: 'inprocess' | 'bullmq';
  redisUrl: string;
  /** Redis key prefix of the BullMQ queue. */
  redisPrefix: string;
  /** Run steps in the server process too; false when separate worker processes (server/src/worker.ts) do. */
  workersInProcess: boolean;
  /** Steps one process runs at once. */
  concurrency: number;
  /** Model windows per queued unit (the unit of progress, retry and exactly-once recording). */
  windowsPerUnit: number;
  /** BullMQ: seconds without a lock renewal before another worker takes a step of a dead worker. */
  stalledSeconds: number;
}

export function readJobsConfig(read: EnvReader): JobsConfig {
  return {
    queue: read.oneOf('PACS_JOBS_QUEUE', ['inprocess', 'bullmq'] as const, 'inprocess'),
    redisUrl: read.string('PACS_REDIS_URL', 'redis://127.0.0.1:6379'),
    redisPrefix: read.string('PACS_REDIS_PREFIX', 'filmless'),
    workersInProcess: read.boolean('PACS_JOBS_WORKERS_IN_PROCESS', true),
    concurrency: read.integer('PACS_JOBS_CONCURRENCY', 1, 1, 64),
    windowsPerUnit: read.integer('PACS_JOBS_WINDOWS_PER_UNIT', 16, 1, 4096),
    stalledSeconds: read.integer('PACS_JOBS_STALLED_SECONDS', 30, 1, 3600),
  };
}
