/**
 * The server an evaluation script talks to over HTTP: the one at `url` when given, else a fresh one in
 * this process (embedded storage in a temporary folder, the models of `modelsDir`), closed and removed
 * by `close`. Shared by eval-polyp.ts and eval-lesion.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApp } from '../../server/src/app.js';
import { loadConfig } from '../../server/src/config.js';
import { createServices } from '../../server/src/services.js';

export async function evalServer(url: string, modelsDir: string): Promise<{ baseUrl: string; close: () => Promise<void> }> {
  if (url !== '') return { baseUrl: url, close: async () => {} };
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-eval-'));
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'warn', PACS_MODELS_DIR: modelsDir, PACS_PORT: '0' });
  const app = await buildApp(config, await createServices(config, { logger: pino({ level: 'warn' }) }));
  const baseUrl = (await app.listen({ host: '127.0.0.1', port: 0 })).replace('[::1]', '127.0.0.1');
  return {
    baseUrl,
    close: async () => {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
