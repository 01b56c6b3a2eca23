/**
 * A slide-analysis worker (services.ts with the `worker` role, as server/src/worker.ts) whose model batches each take
 * PACS_TEST_BATCH_DELAY_MS longer, so a test can kill it mid-job. Same environment as server/src/worker.ts.
 */
import { loadConfig } from '../config.js';
import type { MaskOutput } from '../inference/inference-engine.js';
import type { BatchRunner } from '../inference/model-queue.js';
import { createServices } from '../services.js';

const delay = Number(process.env['PACS_TEST_BATCH_DELAY_MS'] ?? '0');
const config = loadConfig();
await createServices(config, {
  role: {
    kind: 'worker',
    workerId: process.env['PACS_WORKER_ID'] ?? `worker-${process.pid}`,
    prepareEngine(engine) {
      for (const spec of engine.list()) {
        engine.wrapRunner(
          spec.id,
          (runner): BatchRunner<Buffer, MaskOutput> => ({
            async run(inputs) {
              await new Promise((resolve) => setTimeout(resolve, delay));
              return runner.run(inputs);
            },
          }),
          { maxBatch: config.ai.maxBatch, queueDepth: config.ai.queueDepth },
        );
      }
    },
  },
});
