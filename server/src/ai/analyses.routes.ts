/**
 * Whole-slide analysis jobs over HTTP (docs/api.md, "Slide analysis"): create (202 + Location), state and
 * progress, progress as Server-Sent Events, cancel, and the result as GeoJSON. The work itself runs in
 * pathology/analysis-service.ts through the configured queue.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { checkUidParam } from '../http/uid-param.js';
import { AnalysisJob, AnalysisJobList, CreateAnalysisBody, CreateAnalysisQuery, CreatedAnalysisJob, ErrorBody, IdParams, StudySeriesParams, type JobView, type Region } from '../contracts/ai.js';
import { AppError, BadQueryError } from '../errors.js';
import type { AnalysisService } from '../pathology/analysis-service.js';
import type { JobStore } from '../pathology/job-store.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';

const requires = routeAccess('ai');

export interface AnalysesRoutesOptions {
  /** The job lifecycle (services.ts builds it, with its queue, and resumes unfinished jobs). */
  service: AnalysisService;
  store: JobStore;
  publicBaseUrl: string;
  dicomwebPrefix: string;
  /** Milliseconds between progress checks of an event stream. */
  eventIntervalMs?: number;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const errors = { 400: ErrorBody, 404: ErrorBody };

export async function analysesRoutes(app: FastifyInstance, options: AnalysesRoutesOptions): Promise<void> {
  const { service, store } = options;
  const config = { publicBaseUrl: options.publicBaseUrl, dicomwebPrefix: options.dicomwebPrefix };
  const streams = new Set<() => void>();
  const interval = options.eventIntervalMs ?? 250;

  // The event streams end with the server; the service and job store are closed by their owner.
  app.addHook('onClose', async () => {
    for (const stop of streams) stop();
  });

  const links = (request: FastifyRequest, view: JobView): AnalysisJob => {
    const dicomweb = dicomwebBaseUrl(request, config.publicBaseUrl, config.dicomwebPrefix);
    const origin = dicomweb.slice(0, dicomweb.length - config.dicomwebPrefix.length);
    const self = `${origin}/ai/analyses/${view.id}`;
    return {
      ...view,
      links: {
        self,
        events: `${self}/events`,
        ...(view.result === null
          ? {}
          : {
              geojson: `${self}/result`,
              annotations: `${dicomweb}/studies/${view.studyInstanceUid}/series/${view.result.seriesInstanceUid}/instances/${view.result.sopInstanceUid}`,
            }),
      },
    };
  };

  type CreateBody = { model?: string; region?: Region | null } | null;
  app.post<{ Params: { study: string; series: string }; Querystring: { model?: string; recompute?: 'true' | 'false' }; Body: CreateBody }>(
    '/studies/:study/series/:series/analyses',
    {
      ...requires('ai', { audit: 'ai-run' }),
      ...withSchema({
        tags: ['slide analysis'],
        summary: 'Start a slide analysis job on a whole-slide series (202 + Location), or return the finished one for the same model, version and region (200)',
        params: StudySeriesParams,
        querystring: CreateAnalysisQuery,
        // No body at all is allowed: the model may come as ?model=.
        body: CreateAnalysisBody,
        response: { 200: CreatedAnalysisJob, 202: CreatedAnalysisJob, 409: ErrorBody, 503: ErrorBody, ...errors },
      }),
    },
    async (request, reply) => {
      checkUidParam(request.params.study, 'StudyInstanceUID');
      checkUidParam(request.params.series, 'SeriesInstanceUID');
      const body = request.body ?? {};
      const model = body.model ?? request.query.model;
      if (model === undefined || model === '') throw new BadQueryError('model', 'is required (in the JSON body or the query): the id of a model from GET /ai/models');
      const { job, created } = await service.create(request.params.study, request.params.series, model, body.region ?? undefined, request.query.recompute === 'true');
      const view = links(request, await service.view(job));
      void reply.header('location', view.links.self);
      // 202: accepted, running; 200: the existing result (same model, version and region) is returned.
      void reply.code(created || job.state !== 'completed' ? 202 : 200);
      return { created, ...view };
    },
  );

  app.get<{ Params: { study: string; series: string } }>(
    '/studies/:study/series/:series/analyses',
    {
      ...requires('read', { audit: 'retrieve' }),
      ...withSchema({ tags: ['slide analysis'], summary: 'The analysis jobs of a series', params: StudySeriesParams, response: { 200: AnalysisJobList, ...errors } }),
    },
    async (request) => {
      checkUidParam(request.params.study, 'StudyInstanceUID');
      checkUidParam(request.params.series, 'SeriesInstanceUID');
      const jobs = (await store.listForSeries(request.params.series)).filter((j) => j.studyInstanceUid === request.params.study);
      return { analyses: await Promise.all(jobs.map(async (j) => links(request, await service.view(j)))) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/analyses/:id',
    { ...requires('read', { audit: 'retrieve' }), ...withSchema({ tags: ['slide analysis'], summary: "A job's state and progress", params: IdParams, response: { 200: AnalysisJob, 404: ErrorBody } }) },
    async (request) => links(request, await service.view(await service.get(request.params.id))),
  );

  app.delete<{ Params: { id: string } }>(
    '/analyses/:id',
    {
      ...requires('ai', { audit: 'ai-cancel' }),
      ...withSchema({ tags: ['slide analysis'], summary: 'Cancel a running job (409 when it has ended)', params: IdParams, response: { 200: AnalysisJob, 404: ErrorBody, 409: ErrorBody } }),
    },
    async (request, reply) => {
      const before = await service.get(request.params.id);
      if (TERMINAL.has(before.state)) throw new AppError('CONFLICT', `Analysis job ${before.id} has ended already (${before.state}): nothing to cancel`);
      const job = await service.cancel(request.params.id);
      void reply.code(200);
      return links(request, await service.view(job));
    },
  );

  // The result is streamed as GeoJSON (application/geo+json): no response schema to serialize through.
  app.get<{ Params: { id: string } }>('/analyses/:id/result', { ...requires('read', { audit: 'retrieve' }), ...withSchema({ tags: ['slide analysis'], summary: 'The result as GeoJSON (application/geo+json)', params: IdParams }) }, async (request, reply) => {
    const chunks = await service.geoJson(request.params.id);
    void reply.header('content-type', 'application/geo+json');
    return reply.send(Readable.from(chunks));
  });

  // Server-Sent Events: `progress` whenever the counters move, then one of `completed`, `failed`,
  // `cancelled` with the final state, and the stream ends. Polls the job store, so progress made by
  // worker processes (BullMQ) shows as well.
  app.get<{ Params: { id: string } }>(
    '/analyses/:id/events',
    { ...requires('read', { audit: 'retrieve', tokenInQuery: true }), ...withSchema({ tags: ['slide analysis'], summary: 'Progress as Server-Sent Events (text/event-stream)', params: IdParams }) },
    async (request, reply) => {
      const first = await service.get(request.params.id);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        if (stopped) return;
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        streams.delete(stop);
        raw.end();
      };
      streams.add(stop);
      request.raw.on('close', stop);
      let last = '';
      const tick = async (jobId: string) => {
        if (stopped) return;
        try {
          const view = links(request, await service.view(await service.get(jobId)));
          const key = `${view.state}/${view.progress.unitsDone}/${view.progress.unitsTotal}`;
          if (key !== last) {
            last = key;
            raw.write(`event: progress\ndata: ${JSON.stringify(view)}\n\n`);
          }
          if (TERMINAL.has(view.state)) {
            raw.write(`event: ${view.state}\ndata: ${JSON.stringify(view)}\n\n`);
            stop();
            return;
          }
        } catch (err) {
          raw.write(`event: error\ndata: ${JSON.stringify({ message: err instanceof Error ? err.message : 'error' })}\n\n`);
          stop();
          return;
        }
        timer = setTimeout(() => void tick(jobId), interval);
      };
      raw.write(`retry: ${Math.max(1000, interval)}\n\n`);
      await tick(first.id);
    },
  );
}
