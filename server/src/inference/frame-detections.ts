/**
 * The stored-frame use case: run a model on one frame of an archived image and keep the result in the
 * same study as a TID 1500 SR (detection-report.ts), stored through the archive's ordinary ingest path
 * so it is searchable (QIDO-RS) and retrievable (WADO-RS) like any other instance. Idempotent: the
 * report's UIDs derive from model, version, instance and frame, and an existing report is returned.
 */
import type { Archive } from '../archive/archive.js';
import { checkRenderable } from '../archive/render.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { patientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { AppError, isAppError } from '../errors.js';
import { buildDetectionReport, readDetectionReport, reportUids, type SourceFrame, type StoredDetectionReport } from './detection-report.js';
import type { Detection, DetectionResult, InferenceEngine } from './inference-engine.js';

export interface FrameRef {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  frame: number;
}

/** A stored report as the per-frame API shows it: the frame and its detections. */
export interface FrameReport {
  model: StoredDetectionReport['model'];
  source: SourceFrame;
  report: StoredDetectionReport['report'];
  detections: Detection[];
}

function frameReport(stored: StoredDetectionReport, frame: number): FrameReport {
  return { model: stored.model, source: { ...stored.source, frame }, report: stored.report, detections: stored.frames.find((f) => f.frame === frame)?.detections ?? [] };
}

export interface FrameDetectionOutcome {
  /** False when an earlier identical request had already stored the report. */
  created: boolean;
  report: FrameReport;
  /** Present when the model ran in this request. */
  run?: DetectionResult;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class FrameDetections {
  constructor(
    private readonly archive: Archive,
    private readonly engine: InferenceEngine,
  ) {}

  async detectAndStore(ref: FrameRef, modelId: string): Promise<FrameDetectionOutcome> {
    const spec = this.engine.spec(modelId);
    const [found] = await this.archive.findInstancesWithAttributes({
      studyInstanceUid: ref.studyInstanceUid,
      seriesInstanceUid: ref.seriesInstanceUid,
      sopInstanceUid: ref.sopInstanceUid,
    });
    const { instance, attributes } = found!;
    this.checkFrame(instance, ref.frame);
    const source = sourceOf(instance, ref.frame);
    const existing = await this.storedReport(spec, source);
    if (existing !== undefined) return { created: false, report: existing };

    const pixels = await this.archive.renderFramePixels(instance, ref.frame);
    const run = await this.engine.detect(modelId, { pixels: pixels.pixels, width: pixels.width, height: pixels.height, channels: 4 });
    const { frame, ...image } = source;
    const { part10 } = buildDetectionReport({ model: spec, source: image, multiFrame: instance.numberOfFrames > 1, frames: [{ frame, detections: run.detections }], patientStudy: patientStudyAttributes(attributes), minScore: spec.operatingThreshold });
    const scanned = await this.archive.scanAndStore(oneChunk(part10));
    const stored = await scanned.completion;
    if (!stored.ok) throw new AppError('CONFLICT', `The detection report could not be stored: ${stored.failure.message}`);
    return { created: true, report: frameReport(readDetectionReport(part10), ref.frame), run };
  }

  /** Reports stored for this frame by the registered models. */
  async list(ref: FrameRef): Promise<FrameReport[]> {
    const [found] = await this.archive.findInstancesWithAttributes({
      studyInstanceUid: ref.studyInstanceUid,
      seriesInstanceUid: ref.seriesInstanceUid,
      sopInstanceUid: ref.sopInstanceUid,
    });
    this.checkFrame(found!.instance, ref.frame);
    const source = sourceOf(found!.instance, ref.frame);
    const reports: FrameReport[] = [];
    for (const spec of this.engine.list()) {
      const report = await this.storedReport(spec, source);
      if (report !== undefined) reports.push(report);
    }
    return reports;
  }

  private checkFrame(instance: StoredInstance, frame: number): void {
    if (instance.pixelData === undefined) {
      throw new AppError('BAD_REQUEST', 'The instance has no pixel data (e.g. a structured report): there is no frame to run a model on');
    }
    checkRenderable(instance, frame);
  }

  private async storedReport(spec: { id: string; version: string }, source: SourceFrame): Promise<FrameReport | undefined> {
    const uids = reportUids(spec, source);
    let instances: StoredInstance[];
    try {
      instances = await this.archive.findInstances({ studyInstanceUid: source.studyInstanceUid, seriesInstanceUid: uids.seriesInstanceUid, sopInstanceUid: uids.sopInstanceUid });
    } catch (err) {
      if (isAppError(err) && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
    const stored = instances[0];
    if (stored === undefined) return undefined;
    return frameReport(readDetectionReport(await readAll(await this.archive.openInstance(stored))), source.frame);
  }
}

async function* oneChunk(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

function sourceOf(instance: StoredInstance, frame: number): SourceFrame {
  return {
    studyInstanceUid: instance.studyInstanceUid,
    seriesInstanceUid: instance.seriesInstanceUid,
    sopInstanceUid: instance.sopInstanceUid,
    sopClassUid: instance.sopClassUid,
    frame,
  };
}
