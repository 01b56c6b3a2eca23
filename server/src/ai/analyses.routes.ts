/**
 * Whole-slide analysis jobs over HTTP (docs/api.md, "Slide analysis"): create (202 + Location), state and
 * progress, progress as Server-Sent Events, cancel, and the result as GeoJSON. The work itself runs in
 * pathology/analysis-service.ts through the configured queue.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { Config } from '../config.js';
import { dicomwebBaseUrl } from '../dicomweb/base-url.js';
import { checkUidParam } from '../dicomweb/uid-param.js';
import { AppError, BadQueryError } from '../errors.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import { AnalysisService, type JobView, type Region } from '../pathology/analysis-service.js';
import { BullmqQueue } from '../pathology/bullmq-queue.js';
import { InProcessQueue, type JobQueue } from '../pathology/job-queue.js';
import { JobStore } from '../pathology/job-store.js';
import { requires } from '../auth/principal.js';

export interface AnalysesRoutesOptions {
  archive: Archive;
  engine: InferenceEngine;
  config: Readonly<Config>;
  log: Logger;
  /** Milliseconds between progress checks of an event stream. */
  eventIntervalMs?: number;
}

export function createJobQueue(config: Readonly<Config>): JobQueue {
  return config.jobs.queue === 'bullmq'
    ? new BullmqQueue({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds })
    : new InProcessQueue();
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function parseRegion(raw: unknown): Region | undefined {
  if (raw === undefined || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const values = ['x', 'y', 'width', 'height'].map((k) => r[k]);
  if (typeof raw !== 'object' || !values.every((v) => typeof v === 'number' && Number.isInteger(v))) {
    throw new AppError('BAD_REQUEST', 'region must be {"x","y","width","height"}: whole numbers, in pixels of the slide\'s base level');
  }
  const [x, y, width, height] = values as number[];
  return { x: x!, y: y!, width: width!, height: height! };
}

export async function analysesRoutes(app: FastifyInstance, options: AnalysesRoutesOptions): Promise<void> {
  const { config } = options;
  const store = await JobStore.open(config.index);
  const queue = createJobQueue(config);
  const service = new AnalysisService(options.archive, options.engine, store, queue, options.log, {
    windowsPerUnit: config.jobs.windowsPerUnit,
    windowsInFlight: config.ai.maxBatch,
  });
  const streams = new Set<() => void>();
  const interval = options.eventIntervalMs ?? 250;

  app.addHook('onClose', async () => {
    for (const stop of streams) stop();
    await service.close();
    await store.close();
  });

  await service.recover();
  if (config.jobs.workersInProcess) await queue.startWorkers(service.handle, config.jobs.concurrency);

  const links = (request: FastifyRequest, view: JobView) => {
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

  app.post<{ Params: { study: string; series: string }; Querystring: Record<string, unknown>; Body: unknown }>('/studies/:study/series/:series/analyses', requires('ai'), async (request, reply) => {
    checkUidParam(request.params.study, 'StudyInstanceUID');
    checkUidParam(request.params.series, 'SeriesInstanceUID');
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body)) throw new AppError('BAD_REQUEST', 'The body must be a JSON object such as {"model":"dark-spot"}');
    const model = body['model'] ?? request.query['model'];
    if (typeof model !== 'string' || model === '') throw new BadQueryError('model', 'is required (in the JSON body or the query): the id of a model from GET /ai/models');
    const recomputeRaw = request.query['recompute'];
    if (recomputeRaw !== undefined && recomputeRaw !== 'true' && recomputeRaw !== 'false') throw new BadQueryError('recompute', 'must be true or false');
    const { job, created } = await service.create(request.params.study, request.params.series, model, parseRegion(body['region']), recomputeRaw === 'true');
    const view = links(request, await service.view(job));
    void reply.header('location', view.links.self);
    // 202: accepted, running; 200: the existing result (same model, version and region) is returned.
    void reply.code(created || job.state !== 'completed' ? 202 : 200);
    return { created, ...view };
  });

  app.get<{ Params: { study: string; series: string } }>('/studies/:study/series/:series/analyses', requires('read'), async (request) => {
    checkUidParam(request.params.study, 'StudyInstanceUID');
    checkUidParam(request.params.series, 'SeriesInstanceUID');
    const jobs = (await store.listForSeries(request.params.series)).filter((j) => j.studyInstanceUid === request.params.study);
    return { analyses: await Promise.all(jobs.map(async (j) => links(request, await service.view(j)))) };
  });

  app.get<{ Params: { id: string } }>('/analyses/:id', requires('read'), async (request) => links(request, await service.view(await service.get(request.params.id))));

  app.delete<{ Params: { id: string } }>('/analyses/:id', requires('ai'), async (request, reply) => {
    const before = await service.get(request.params.id);
    if (TERMINAL.has(before.state)) throw new AppError('CONFLICT', `Analysis job ${before.id} has ended already (${before.state}): nothing to cancel`);
    const job = await service.cancel(request.params.id);
    void reply.code(200);
    return links(request, await service.view(job));
  });

  app.get<{ Params: { id: string } }>('/analyses/:id/result', requires('read'), async (request, reply) => {
    const chunks = await service.geoJson(request.params.id);
    void reply.header('content-type', 'application/geo+json');
    return reply.send(Readable.from(chunks));
  });

  // Server-Sent Events: `progress` whenever the counters move, then one of `completed`, `failed`,
  // `cancelled` with the final state, and the stream ends. Polls the job store, so progress made by
  // worker processes (BullMQ) shows as well.
  app.get<{ Params: { id: string } }>('/analyses/:id/events', requires('read', { tokenInQuery: true }), async (request, reply) => {
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
  });
}
