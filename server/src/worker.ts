/**
 * Entry point of a slide-analysis worker process: takes steps of slide analysis jobs from the BullMQ
 * queue and runs them with the same blob store, index and models as the server (same PACS_*
 * environment; services.ts builds them with the `worker` role). Start any number beside servers run
 * with PACS_JOBS_QUEUE=bullmq and PACS_JOBS_WORKERS_IN_PROCESS=false:
 *   PACS_JOBS_QUEUE=bullmq node server/dist/worker.js
 * SIGINT/SIGTERM finish the running steps and exit; the step of a killed worker is taken over by another
 * worker after PACS_JOBS_STALLED_SECONDS. PACS_WORKER_ID names the worker in the job store (default
 * host:pid).
 */
import { loadConfigOrExit } from './config.js';
import { createServices } from './services.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const workerId = process.env['PACS_WORKER_ID'];
  const services = await createServices(config, { role: { kind: 'worker', ...(workerId ? { workerId } : {}) } });
  const shutdown = async () => {
    await services.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
}

main().catch((err: unknown) => {
  process.stderr.write(`Worker startup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
