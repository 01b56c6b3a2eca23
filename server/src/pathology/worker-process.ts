/**
 * The body of a slide-analysis worker process (server/src/worker.ts): services from the configuration,
 * the job store, the BullMQ queue, and the analysis service as the queue's handler. `prepare` lets a
 * test wrap the engine (e.g. slow every batch down) before the first step is taken.
 */
import { Archive } from '../archive/archive.js';
import { createServices } from '../app.js';
import type { Config } from '../config.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import { AnalysisService } from './analysis-service.js';
import { BullmqQueue } from './bullmq-queue.js';
import { JobStore } from './job-store.js';

export interface RunningWorker {
  close(): Promise<void>;
}

export async function runWorker(config: Readonly<Config>, options: { workerId?: string; prepare?: (engine: InferenceEngine) => void } = {}): Promise<RunningWorker> {
  if (config.jobs.queue !== 'bullmq') {
    throw new Error('A separate worker needs PACS_JOBS_QUEUE=bullmq (the in-process queue lives inside the server)');
  }
  const services = await createServices(config);
  const engine = services.inference;
  if (engine === undefined) {
    await services.audit?.close();
    await services.catalog.close();
    await services.blobStore.close();
    throw new Error('A worker needs the models: PACS_AI_ENABLED must not be false');
  }
  options.prepare?.(engine);
  const archive = new Archive(services.blobStore, services.catalog, services.logger, {
    maxHeaderBytes: config.stow.maxHeaderBytes,
    maxNesting: config.limits.dicomMaxNesting,
    decodeMaxBytes: config.limits.decodeMaxBytes,
    renderMaxPixels: config.limits.renderMaxPixels,
  });
  const store = await JobStore.open(config.index);
  const queue = new BullmqQueue({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds });
  const service = new AnalysisService(archive, engine, store, queue, services.logger, {
    windowsPerUnit: config.jobs.windowsPerUnit,
    windowsInFlight: config.ai.maxBatch,
    ...(options.workerId === undefined ? {} : { workerId: options.workerId }),
  });
  await queue.startWorkers(service.handle, config.jobs.concurrency);
  services.logger.info({ queue: 'bullmq', concurrency: config.jobs.concurrency }, 'slide analysis worker ready');
  return {
    async close() {
      await service.close();
      await store.close();
      await engine.close();
      await services.audit?.close();
      await services.catalog.close();
      await services.blobStore.close();
    },
  };
}
