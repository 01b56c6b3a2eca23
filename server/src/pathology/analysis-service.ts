/**
 * Slide analysis jobs: a model run over a whole-slide pyramid, in steps that go through a JobQueue
 * (in-process or BullMQ) and whose state lives in the JobStore (SQL), so any process with the same
 * blob store and index can take any step, and a restart loses nothing:
 *
 *   POST → job `queued` → plan (level, tissue mask, windows, units) → `running` → units (read tiles by
 *   ranged reads, batch windows through the model queue, keep what each window's core holds) → the last
 *   unit moves the job to `finalizing` → finalize (one ANN instance stored through the archive's ingest)
 *   → `completed`. Failures end the job as `failed` with the reason; DELETE `cancelled`.
 *
 * This file is the job lifecycle only. What depends on the model's task (window overlap, what a batch of
 * windows becomes, how the records become annotation groups and GeoJSON) is an AnalysisTask
 * (tasks/analysis-task.ts): detection (tasks/detection-task.ts: overlapping windows, POINT annotations)
 * or classification (tasks/classification-task.ts: windows that do not overlap, positive ones merged
 * into regions, one POLYGON annotation per region), picked by `model.task` (tasks/task-for-model.ts).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { JobView, Region } from '../contracts/ai.js';
import { patientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { AppError, isAppError, ServiceBusyError } from '../errors.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import type { ModelSpec } from '../inference/model-manifest.js';
import { buildAnnotationInstance } from './annotations/ann-writer.js';
import { AnnotationBuffer, recordsOf } from './annotations/records.js';
import type { JobQueue, QueueMessage } from './job-queue.js';
import { ACTIVE_STATES, type JobParams, type JobRecord, type JobStore } from './job-store.js';
import { planSlide, tissueLevel, tissueMask, type PlannedWindow, type Rect } from './plan.js';
import { RegionReader } from './region-reader.js';
import { chooseLevel, loadSlide, type Slide } from './slide.js';
import type { WindowModel } from './tasks/analysis-task.js';
import { analysisTask } from './tasks/task-for-model.js';

export interface AnalysisOptions {
  windowsPerUnit: number;
  /** Windows submitted to the model queue at once (its batch size: they run as one batch). */
  windowsInFlight: number;
  /** Names this process in the unit rows it completes. */
  workerId?: string;
}

/** A job as the API shows it, and a region of the base level: the AI API's wire contract (contracts/ai.ts). */
export type { JobView, Region } from '../contracts/ai.js';

const regionKey = (region: Region | undefined) => (region === undefined ? '' : `${region.x},${region.y},${region.width},${region.height}`);
const regionOf = (key: string): Region | null => {
  if (key === '') return null;
  const [x, y, width, height] = key.split(',').map(Number) as [number, number, number, number];
  return { x, y, width, height };
};
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
/** How long a unit waits for room in a busy model queue before the job fails (PACS_AI_QUEUE_DEPTH too small). */
const BUSY_WAIT_LIMIT_MS = 10 * 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]!.slice(0, 500);
  return 'unknown error';
}

export class AnalysisService {
  private readonly slides = new Map<string, Promise<Slide>>();
  private closing = false;
  private readonly workerId: string;
  /** The model as the tasks call it: every call waits out a full model queue. */
  private readonly windowModel: WindowModel;

  constructor(
    private readonly archive: Archive,
    private readonly engine: InferenceEngine,
    readonly store: JobStore,
    private readonly queue: JobQueue,
    private readonly log: Logger,
    private readonly options: AnalysisOptions,
  ) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}`;
    this.windowModel = { engine, whenNotBusy: (call) => this.busyRetry(call) };
  }

  /** The model's contract for slides: a registered model that declares its training resolution. */
  private slideModel(modelId: string): ModelSpec & { input: { pixelSpacingMm: number } } {
    const spec = this.engine.spec(modelId);
    if (spec.input.pixelSpacingMm === undefined) {
      throw new AppError('BAD_REQUEST', `Model "${modelId}" declares no training resolution (input.pixelSpacingMm in its manifest entry): it cannot be run on slides`);
    }
    return spec as ModelSpec & { input: { pixelSpacingMm: number } };
  }

  /**
   * Creates a job, or returns the existing one for the same series, model, version and region (running
   * or completed) unless `recompute`. Checks everything a client can get wrong first (4xx).
   */
  async create(studyUid: string, seriesUid: string, modelId: string, region: Region | undefined, recompute: boolean): Promise<{ job: JobRecord; created: boolean }> {
    const spec = this.slideModel(modelId);
    const slide = await loadSlide(this.archive, studyUid, seriesUid);
    chooseLevel(slide, spec.input.pixelSpacingMm);
    const base = slide.levels[0]!;
    if (region !== undefined) {
      if (region.width < 1 || region.height < 1 || region.x < 0 || region.y < 0 || region.x + region.width > base.width || region.y + region.height > base.height) {
        throw new AppError('BAD_REQUEST', `The region must lie inside the slide's base level (${base.width}×${base.height} pixels) and be at least 1×1`);
      }
    }
    const key = regionKey(region);
    if (!recompute) {
      const existing = (await this.store.listForSeries(seriesUid, modelId)).find(
        (j) => j.modelVersion === spec.version && j.region === key && j.studyInstanceUid === studyUid && (j.state === 'completed' || ACTIVE_STATES.includes(j.state)),
      );
      if (existing !== undefined) return { job: existing, created: false };
    }
    const id = randomUUID();
    await this.store.create({ id, studyInstanceUid: studyUid, seriesInstanceUid: seriesUid, modelId, modelVersion: spec.version, region: key, createdAt: Date.now() });
    try {
      await this.queue.add([{ kind: 'plan', jobId: id }]);
    } catch (err) {
      await this.store.end(id, 'failed', `the job queue is unavailable: ${errorMessage(err)}`, Date.now());
      throw new ServiceBusyError('The job queue (Redis) is unavailable: the analysis was not started; retry later', 30);
    }
    return { job: (await this.store.get(id))!, created: true };
  }

  async get(id: string): Promise<JobRecord> {
    const job = await this.store.get(id);
    if (job === undefined) throw new AppError('NOT_FOUND', `Analysis job ${id} not found`);
    return job;
  }

  async view(job: JobRecord): Promise<JobView> {
    const progress = await this.store.progress(job.id);
    const now = Date.now();
    const elapsedMs = job.startedAt === null ? 0 : (job.finishedAt ?? now) - job.startedAt;
    const remainingWindows = job.windowsTotal - progress.windowsDone;
    const estimatedRemainingMs =
      job.state === 'completed' ? 0 : job.state !== 'running' || progress.windowsDone === 0 ? null : Math.round((elapsedMs / progress.windowsDone) * remainingWindows);
    const p = job.params;
    return {
      id: job.id,
      state: job.state,
      reason: job.reason,
      studyInstanceUid: job.studyInstanceUid,
      seriesInstanceUid: job.seriesInstanceUid,
      model: { id: job.modelId, version: job.modelVersion },
      region: regionOf(job.region),
      level: p === null ? null : { index: p.levelIndex, spacingMm: p.levelSpacingMm, windowSize: p.windowSize, overlap: p.overlap },
      progress: {
        unitsDone: progress.unitsDone,
        unitsTotal: job.unitsTotal,
        tilesDone: progress.windowsDone,
        tilesTotal: job.windowsTotal,
        tilesSkippedAsBackground: job.windowsSkipped,
        annotations: progress.annotations,
        fraction: job.state === 'completed' ? 1 : job.windowsTotal === 0 ? 0 : Math.round((progress.windowsDone / job.windowsTotal) * 1000) / 1000,
      },
      createdAt: iso(job.createdAt)!,
      startedAt: iso(job.startedAt),
      finishedAt: iso(job.finishedAt),
      elapsedMs,
      estimatedRemainingMs,
      result: job.resultSopUid === null ? null : { seriesInstanceUid: job.resultSeriesUid!, sopInstanceUid: job.resultSopUid },
      duplicateCompletions: job.duplicateCompletions,
    };
  }

  /** Cancels an active job (waiting steps dropped, running ones stop at the next unit). */
  async cancel(id: string): Promise<JobRecord> {
    const job = await this.get(id);
    if (ACTIVE_STATES.includes(job.state)) {
      await this.store.end(id, 'cancelled', 'cancelled by a DELETE request', Date.now());
      await this.queue.discard(id);
    }
    return this.get(id);
  }

  /**
   * After a restart: every unfinished job is resumed (its remaining steps queued again; done units are
   * kept) or, when its model is gone or changed version, failed with that reason. Never silently lost.
   */
  async recover(): Promise<number> {
    let resumed = 0;
    for (const job of await this.store.listActive()) {
      const problem = this.modelProblem(job);
      if (problem !== undefined) {
        await this.store.end(job.id, 'failed', `${problem} (found when the server restarted)`, Date.now());
        continue;
      }
      resumed += 1;
      if (job.state === 'queued') await this.queue.add([{ kind: 'plan', jobId: job.id }]);
      else if (job.state === 'finalizing') await this.queue.add([{ kind: 'finalize', jobId: job.id }]);
      else {
        const pending = await this.store.pendingUnits(job.id);
        if (pending.length === 0) await this.maybeFinalize(job.id);
        else await this.queue.add(pending.map((unit) => ({ kind: 'unit', jobId: job.id, unit })));
      }
    }
    if (resumed > 0) this.log.info({ jobs: resumed }, 'slide analysis jobs resumed');
    return resumed;
  }

  private modelProblem(job: JobRecord): string | undefined {
    let spec: ModelSpec;
    try {
      spec = this.engine.spec(job.modelId);
    } catch {
      return `model "${job.modelId}" is no longer registered`;
    }
    if (spec.version !== job.modelVersion) return `model "${job.modelId}" is now version ${spec.version}, the job was for ${job.modelVersion}`;
    return undefined;
  }

  /** The queue's handler: one step of one job. Failures end the job with the reason (unless shutting down). */
  handle = async (message: QueueMessage): Promise<void> => {
    if (this.closing) throw new Error('shutting down');
    try {
      if (message.kind === 'plan') await this.plan(message.jobId);
      else if (message.kind === 'unit') await this.runUnit(message.jobId, message.unit);
      else await this.finalize(message.jobId);
    } catch (err) {
      if (this.closing) throw err; // left for recovery after the restart
      this.log.error({ jobId: message.jobId, step: message.kind, err: { type: (err as Error)?.name, message: errorMessage(err) } }, 'slide analysis step failed');
      await this.store.end(message.jobId, 'failed', `${message.kind} step failed: ${errorMessage(err)}`, Date.now()).catch(() => undefined);
    }
  };

  private slide(job: JobRecord): Promise<Slide> {
    let slide = this.slides.get(job.id);
    if (slide === undefined) {
      slide = loadSlide(this.archive, job.studyInstanceUid, job.seriesInstanceUid);
      slide.catch(() => this.slides.delete(job.id));
      this.slides.set(job.id, slide);
      while (this.slides.size > 4) this.slides.delete(this.slides.keys().next().value!);
    }
    return slide;
  }

  private async plan(jobId: string): Promise<void> {
    const job = await this.store.get(jobId);
    if (job === undefined) return;
    if (job.state === 'running') {
      // A plan delivered again after it was saved: make sure the units are queued.
      await this.queue.add((await this.store.pendingUnits(jobId)).map((unit) => ({ kind: 'unit', jobId, unit })));
      return;
    }
    if (job.state !== 'queued') return;
    const problem = this.modelProblem(job);
    if (problem !== undefined) throw new AppError('CONFLICT', problem);
    const spec = this.slideModel(job.modelId);
    const slide = await this.slide(job);
    const level = chooseLevel(slide, spec.input.pixelSpacingMm);
    const levelSpacing = level.spacingMm!;
    // Level pixels per window side: the model's field of view at its training resolution. Within 2% of
    // it (scanners report 0.499 µm/px for "0.5"), windows are read at the model's size, not resampled.
    const ratio = spec.input.pixelSpacingMm / levelSpacing;
    const windowSize = Math.abs(ratio - 1) < 0.02 ? spec.input.width : Math.max(8, Math.round(spec.input.width * ratio));
    const overlap = analysisTask(spec).windowOverlap(windowSize);
    const region = regionOf(job.region);
    const levelRegion: Rect =
      region === null
        ? { x0: 0, y0: 0, x1: level.width, y1: level.height }
        : {
            x0: Math.floor(region.x / level.scaleX),
            y0: Math.floor(region.y / level.scaleY),
            x1: Math.min(level.width, Math.ceil((region.x + region.width) / level.scaleX)),
            y1: Math.min(level.height, Math.ceil((region.y + region.height) / level.scaleY)),
          };
    const maskLevel = tissueLevel(slide);
    const mask = await tissueMask(this.archive, maskLevel);
    const { windows, skipped } = planSlide(level, levelRegion, windowSize, overlap, mask);
    const units: { windows: string; windowCount: number }[] = [];
    for (let i = 0; i < windows.length; i += this.options.windowsPerUnit) {
      const chunk = windows.slice(i, i + this.options.windowsPerUnit);
      units.push({ windows: JSON.stringify(chunk), windowCount: chunk.length });
    }
    const params: JobParams = {
      levelIndex: level.index,
      windowSize,
      overlap,
      modelInputSize: spec.input.width,
      levelSpacingMm: levelSpacing,
      modelSpacingMm: spec.input.pixelSpacingMm,
      region: levelRegion,
      tissueLevelIndex: maskLevel.index,
    };
    if (!(await this.store.savePlan(jobId, params, units, skipped, Date.now()))) return;
    this.log.info({ jobId, level: level.index, windows: windows.length, skipped, units: units.length }, 'slide analysis planned');
    if (units.length === 0) await this.maybeFinalize(jobId);
    else await this.queue.add(units.map((_, unit) => ({ kind: 'unit', jobId, unit })));
  }

  private async runUnit(jobId: string, unitIndex: number): Promise<void> {
    const job = await this.store.get(jobId);
    if (job === undefined || job.state !== 'running' || job.params === null) {
      if (job?.state === 'finalizing') await this.queue.add([{ kind: 'finalize', jobId }]);
      return;
    }
    const unit = await this.store.getUnit(jobId, unitIndex);
    if (unit === undefined) return;
    if (unit.state === 'done') {
      await this.maybeFinalize(jobId);
      return;
    }
    const spec = this.slideModel(job.modelId);
    const slide = await this.slide(job);
    const level = slide.levels[job.params.levelIndex];
    if (level === undefined) throw new AppError('CONFLICT', 'the slide changed since the job was planned (its level is gone)');
    const reader = new RegionReader(this.archive, level);
    const windows = JSON.parse(unit.windows) as PlannedWindow[];
    const out = new AnnotationBuffer();
    const inFlight = Math.max(1, this.options.windowsInFlight);
    const task = analysisTask(spec);
    for (let i = 0; i < windows.length; i += inFlight) {
      const chunk = windows.slice(i, i + inFlight);
      const images: Buffer[] = [];
      for (const w of chunk) images.push(await reader.read(w.x, w.y, w.size, w.size));
      await task.runWindows(this.windowModel, { windows: chunk, images, level, region: job.params.region }, out);
    }
    await this.store.completeUnit(jobId, unitIndex, out.toBuffer(), out.count, this.workerId, Date.now());
    await this.maybeFinalize(jobId);
  }

  /** One call through the shared model queue; a full queue (503 for HTTP callers) is waited out. */
  private async busyRetry<T>(run: () => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + BUSY_WAIT_LIMIT_MS;
    for (;;) {
      try {
        return await run();
      } catch (err) {
        if (isAppError(err) && err.code === 'SERVICE_BUSY' && !this.closing && Date.now() < giveUpAt) {
          await sleep(50 + Math.random() * 100);
          continue;
        }
        throw err;
      }
    }
  }

  private async maybeFinalize(jobId: string): Promise<void> {
    if (await this.store.claimFinalization(jobId)) {
      await this.queue.add([{ kind: 'finalize', jobId }]);
      return;
    }
    const job = await this.store.get(jobId);
    if (job?.state === 'finalizing') await this.queue.add([{ kind: 'finalize', jobId }]);
  }

  private async *unitRecords(jobId: string): AsyncGenerator<Float32Array> {
    for await (const unit of this.store.units(jobId)) yield recordsOf(unit.annotations);
  }

  private async finalize(jobId: string): Promise<void> {
    const job = await this.store.get(jobId);
    if (job === undefined || job.state !== 'finalizing') return;
    const spec = this.engine.spec(job.modelId);
    const slide = await this.slide(job);
    const groups = await analysisTask(spec).annotationGroups(this.unitRecords(jobId));
    const { part10, seriesInstanceUid, sopInstanceUid } = buildAnnotationInstance({
      jobId,
      slide,
      model: spec,
      groups,
      patientStudy: patientStudyAttributes(slide.baseAttributes),
    });
    const scanned = await this.archive.scanAndStore(
      (async function* () {
        yield part10;
      })(),
    );
    const stored = await scanned.completion;
    if (!stored.ok) throw new AppError('CONFLICT', `the annotation instance could not be stored: ${stored.failure.message}`);
    await this.store.complete(jobId, seriesInstanceUid, sopInstanceUid, Date.now());
    this.slides.delete(jobId);
    this.log.info({ jobId, annotations: groups.reduce((n, g) => n + g.scores.length, 0) }, 'slide analysis completed');
  }

  /** The result as GeoJSON text chunks (404 until the job has completed). */
  async geoJson(id: string): Promise<AsyncGenerator<string>> {
    const job = await this.get(id);
    if (job.state !== 'completed') throw new AppError('NOT_FOUND', `Analysis job ${id} has no result (state ${job.state})`);
    const spec = this.engine.spec(job.modelId);
    const header = {
      properties: {
        job: job.id,
        model: { id: job.modelId, version: job.modelVersion },
        studyInstanceUid: job.studyInstanceUid,
        seriesInstanceUid: job.seriesInstanceUid,
        coordinates: 'base-level total pixel matrix: x = column, y = row, 0,0 = top-left corner of the top-left pixel',
        annotationInstance: { seriesInstanceUid: job.resultSeriesUid, sopInstanceUid: job.resultSopUid },
      },
    };
    return analysisTask(spec).geoJson(header, this.unitRecords(job.id));
  }

  /** Stops taking steps; running ones finish or are left to recovery. */
  async close(): Promise<void> {
    this.closing = true;
    await this.queue.close();
  }
}
