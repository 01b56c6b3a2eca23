/**
 * The AI API (docs/api.md): the model registry, detection on an uploaded JPEG/PNG, and detection on a
 * stored frame kept as a DICOM SR. Routes only translate HTTP ↔ use cases (inference-engine.ts,
 * frame-detections.ts); every error is a typed AppError mapped once by the error handler.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { dicomwebBaseUrl } from '../dicomweb/base-url.js';
import { checkUidParam } from '../dicomweb/uid-param.js';
import { AppError, BadQueryError } from '../errors.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import { FrameDetections, type FrameRef, type FrameReport } from '../inference/frame-detections.js';
import type { ModelSpec } from '../inference/model-manifest.js';
import { requires } from '../auth/principal.js';

export interface AiRoutesOptions {
  archive: Archive;
  engine: InferenceEngine;
  maxImageBytes: number;
  publicBaseUrl: string;
  dicomwebPrefix: string;
}

interface FrameParams {
  study: string;
  series: string;
  instance: string;
  frame: string;
}

function publicModel(spec: ModelSpec) {
  return {
    id: spec.id,
    version: spec.version,
    task: spec.task,
    description: spec.description,
    labels: spec.labels,
    input: { width: spec.input.width, height: spec.input.height, layout: spec.input.layout, colorSpace: spec.input.colorSpace, resize: spec.input.resize, ...(spec.input.pixelSpacingMm === undefined ? {} : { pixelSpacingMm: spec.input.pixelSpacingMm }) },
    output: spec.output,
    operatingThreshold: spec.operatingThreshold,
    sha256: spec.sha256,
    licence: spec.licence,
    trainingData: spec.trainingData,
    card: spec.card,
    metrics: spec.metrics,
  };
}

function parseMinScore(raw: unknown): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isFinite(value) || value < 0 || value > 1) throw new BadQueryError('minScore', 'must be a number between 0 and 1');
  return value;
}

function parseFrameRef(params: FrameParams): FrameRef {
  checkUidParam(params.study, 'StudyInstanceUID');
  checkUidParam(params.series, 'SeriesInstanceUID');
  checkUidParam(params.instance, 'SOPInstanceUID');
  if (!/^\d{1,9}$/.test(params.frame)) throw new AppError('BAD_REQUEST', `Frame number "${params.frame}" is not a positive whole number`);
  const frame = Number(params.frame);
  if (frame < 1) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
  return { studyInstanceUid: params.study, seriesInstanceUid: params.series, sopInstanceUid: params.instance, frame };
}

function modelParam(query: unknown): string {
  const model = (query as Record<string, unknown>)['model'];
  if (typeof model !== 'string' || model === '') throw new BadQueryError('model', 'is required: the id of a model from GET /ai/models');
  return model;
}

export async function aiRoutes(app: FastifyInstance, options: AiRoutesOptions): Promise<void> {
  const { engine } = options;
  const frameDetections = new FrameDetections(options.archive, engine);
  const reportUrl = (request: FastifyRequest, report: FrameReport) =>
    `${dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPrefix)}/studies/${report.report.studyInstanceUid}/series/${report.report.seriesInstanceUid}/instances/${report.report.sopInstanceUid}`;
  const withUrl = (request: FastifyRequest, report: FrameReport) => ({ ...report, report: { ...report.report, url: reportUrl(request, report) } });

  // Image bodies arrive whole (a frame is a few MB at most) and are bounded by maxImageBytes (413).
  app.addContentTypeParser(['image/jpeg', 'image/png'], { parseAs: 'buffer', bodyLimit: options.maxImageBytes }, (_request, body, done) => {
    done(null, body);
  });

  app.get('/models', requires('ai'), async () => ({ models: engine.list().map(publicModel) }));

  app.get<{ Params: { id: string } }>('/models/:id', requires('ai'), async (request) => publicModel(engine.spec(request.params.id)));

  app.post<{ Params: { id: string }; Querystring: Record<string, unknown> }>('/models/:id/detect', requires('ai'), async (request) => {
    const spec = engine.spec(request.params.id);
    const minScore = parseMinScore(request.query['minScore']);
    const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== 'image/jpeg' && mediaType !== 'image/png') {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Unsupported Content-Type "${mediaType}": send the image as image/jpeg or image/png`);
    }
    const body = request.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new AppError('BAD_REQUEST', 'The request body must be a JPEG or PNG image (Content-Type image/jpeg or image/png)');
    return engine.detect(spec.id, body, minScore);
  });

  app.post<{ Params: FrameParams; Querystring: Record<string, unknown> }>('/studies/:study/series/:series/instances/:instance/frames/:frame/detections', requires('ai'), async (request, reply) => {
    const ref = parseFrameRef(request.params);
    const outcome = await frameDetections.detectAndStore(ref, modelParam(request.query));
    // Audit: the frame analysed (from the URL) and the report stored.
    request.auditObjects = [{ study: outcome.report.report.studyInstanceUid, series: outcome.report.report.seriesInstanceUid, instance: outcome.report.report.sopInstanceUid }];
    request.auditDetail = { model: modelParam(request.query), created: outcome.created };
    const body = { created: outcome.created, ...withUrl(request, outcome.report), ...(outcome.run === undefined ? {} : { timings: outcome.run.timings }) };
    void reply.code(outcome.created ? 201 : 200);
    if (outcome.created) void reply.header('location', body.report.url);
    return body;
  });

  app.get<{ Params: FrameParams }>('/studies/:study/series/:series/instances/:instance/frames/:frame/detections', requires('read'), async (request) => {
    const ref = parseFrameRef(request.params);
    return { results: (await frameDetections.list(ref)).map((r) => withUrl(request, r)) };
  });
}
