/**
 * The AI API (docs/api.md): the model registry, detection on an uploaded JPEG/PNG, and detection on a
 * stored frame kept as a DICOM SR. Routes only translate HTTP ↔ use cases (inference-engine.ts,
 * frame-detections.ts); every error is a typed AppError mapped once by the error handler.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ClassificationResult, DetectQuery, DetectionResult, ErrorBody, FrameDetectionOutcome, FrameDetectionQuery, FrameParams, FrameReports, IdParams, ModelInfo, ModelList } from '../contracts/ai.js';
import type { FrameReport as FrameReportJson } from '../contracts/ai.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { checkUidParam } from '../http/uid-param.js';
import { AppError } from '../errors.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import type { FrameDetections, FrameRef, FrameReport } from '../inference/frame-detections.js';
import type { ModelSpec } from '../inference/model-manifest.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';

const requires = routeAccess('ai');

export interface AiRoutesOptions {
  engine: InferenceEngine;
  /** Detection on stored frames, kept as DICOM SR (built by services.ts). */
  frameDetections: FrameDetections;
  maxImageBytes: number;
  publicBaseUrl: string;
  dicomwebPrefix: string;
  /** Told of the stored detections returned to a user ("shown" of the AI usage figures, ai-usage/); never fails the request. */
  findingsShown?: (reports: FrameReport[]) => void | Promise<void>;
}

type FramePath = { study: string; series: string; instance: string; frame: string };

function publicModel(spec: ModelSpec): ModelInfo {
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

function parseFrameRef(params: FramePath): FrameRef {
  checkUidParam(params.study, 'StudyInstanceUID');
  checkUidParam(params.series, 'SeriesInstanceUID');
  checkUidParam(params.instance, 'SOPInstanceUID');
  if (!/^\d{1,9}$/.test(params.frame)) throw new AppError('BAD_REQUEST', `Frame number "${params.frame}" is not a positive whole number`);
  const frame = Number(params.frame);
  if (frame < 1) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
  return { studyInstanceUid: params.study, seriesInstanceUid: params.series, sopInstanceUid: params.instance, frame };
}

const errors = { 400: ErrorBody, 404: ErrorBody };

/** The JPEG or PNG image a model-run request carries as its body (415 for another type, 400 when empty). */
function imageBody(request: FastifyRequest): Buffer {
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType !== 'image/jpeg' && mediaType !== 'image/png') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Unsupported Content-Type "${mediaType}": send the image as image/jpeg or image/png`);
  }
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new AppError('BAD_REQUEST', 'The request body must be a JPEG or PNG image (Content-Type image/jpeg or image/png)');
  return body;
}

export async function aiRoutes(app: FastifyInstance, options: AiRoutesOptions): Promise<void> {
  const { engine, frameDetections } = options;
  const reportUrl = (request: FastifyRequest, report: FrameReport) =>
    `${dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPrefix)}/studies/${report.report.studyInstanceUid}/series/${report.report.seriesInstanceUid}/instances/${report.report.sopInstanceUid}`;
  const withUrl = (request: FastifyRequest, report: FrameReport): FrameReportJson => ({ ...report, report: { ...report.report, url: reportUrl(request, report) } });

  // Image bodies arrive whole (a frame is a few MB at most) and are bounded by maxImageBytes (413).
  app.addContentTypeParser(['image/jpeg', 'image/png'], { parseAs: 'buffer', bodyLimit: options.maxImageBytes }, (_request, body, done) => {
    done(null, body);
  });

  app.get('/models', { ...requires('ai', { audit: 'ai-read' }), ...withSchema({ tags: ['ai'], summary: 'The models this server runs', response: { 200: ModelList } }) }, async () => ({
    models: engine.list().map(publicModel),
  }));

  app.get<{ Params: { id: string } }>(
    '/models/:id',
    { ...requires('ai', { audit: 'ai-read' }), ...withSchema({ tags: ['ai'], summary: 'One model: task, labels, input, licence, card, metrics', params: IdParams, response: { 200: ModelInfo, 404: ErrorBody } }) },
    async (request) => publicModel(engine.spec(request.params.id)),
  );

  app.post<{ Params: { id: string }; Querystring: { minScore?: number } }>(
    '/models/:id/detect',
    {
      ...requires('ai', { audit: 'ai-run' }),
      ...withSchema({
        tags: ['ai'],
        summary: 'Run a detection model on a JPEG or PNG image (the body, image/jpeg or image/png)',
        params: IdParams,
        querystring: DetectQuery,
        response: { 200: DetectionResult, ...errors },
      }),
    },
    async (request) => {
      const spec = engine.spec(request.params.id);
      return engine.detect(spec.id, imageBody(request), request.query.minScore);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/models/:id/classify',
    {
      ...requires('ai', { audit: 'ai-run' }),
      ...withSchema({
        tags: ['ai'],
        summary: 'Run a tile classifier (task "classification") on a JPEG or PNG image (the body, image/jpeg or image/png): class probabilities in label order',
        params: IdParams,
        response: { 200: ClassificationResult, ...errors },
      }),
    },
    async (request) => {
      const spec = engine.spec(request.params.id);
      return engine.classify(spec.id, imageBody(request));
    },
  );

  app.post<{ Params: FramePath; Querystring: { model: string } }>(
    '/studies/:study/series/:series/instances/:instance/frames/:frame/detections',
    {
      ...requires('ai', { audit: 'ai-run' }),
      ...withSchema({
        tags: ['ai'],
        summary: 'Run a detection model on a stored frame and keep the result as a DICOM SR (201), or return the one stored before (200)',
        params: FrameParams,
        querystring: FrameDetectionQuery,
        response: { 200: FrameDetectionOutcome, 201: FrameDetectionOutcome, ...errors },
      }),
    },
    async (request, reply) => {
      const ref = parseFrameRef(request.params);
      const model = request.query.model;
      const outcome = await frameDetections.detectAndStore(ref, model);
      await options.findingsShown?.([outcome.report]);
      // Audit: the frame analysed (from the URL) and the report stored.
      request.auditObjects = [{ study: outcome.report.report.studyInstanceUid, series: outcome.report.report.seriesInstanceUid, instance: outcome.report.report.sopInstanceUid }];
      request.auditDetail = { model, created: outcome.created };
      const body = { created: outcome.created, ...withUrl(request, outcome.report), ...(outcome.run === undefined ? {} : { timings: outcome.run.timings }) };
      void reply.code(outcome.created ? 201 : 200);
      if (outcome.created) void reply.header('location', body.report.url);
      return body;
    },
  );

  app.get<{ Params: FramePath }>(
    '/studies/:study/series/:series/instances/:instance/frames/:frame/detections',
    {
      ...requires('read', { audit: 'retrieve' }),
      ...withSchema({ tags: ['ai'], summary: 'The stored detection reports of a frame', params: FrameParams, response: { 200: FrameReports, ...errors } }),
    },
    async (request) => {
      const ref = parseFrameRef(request.params);
      const reports = await frameDetections.list(ref);
      await options.findingsShown?.(reports);
      return { results: reports.map((r) => withUrl(request, r)) };
    },
  );
}
