/**
 * The server an evaluation script talks to over HTTP: the one at `url` when given, else a fresh one in
 * this process (embedded storage in a temporary folder, the models of `modelsDir`), closed and removed
 * by `close`; and `runEvaluation`, the command-line frame of eval-polyp.ts, eval-nuclei.ts and
 * eval-lesion.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApp } from '../../server/src/app.js';
import { BUNDLED_MODELS_DIR, loadConfig } from '../../server/src/config.js';
import { createServices } from '../../server/src/services.js';
import { option } from '../bench/cli.js';

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

/**
 * Runs one evaluation script: options `--model` (default `defaultModel`), `--split` (default test), `--url`
 * and `--models-dir`; the server from evalServer around `report`, whose text is printed; any error is
 * printed and exits 1.
 */
export function runEvaluation(defaultModel: string, report: (baseUrl: string, modelId: string, split: string) => Promise<string>): void {
  const main = async () => {
    const { baseUrl, close } = await evalServer(option('url', ''), option('models-dir', BUNDLED_MODELS_DIR));
    try {
      process.stdout.write(await report(baseUrl, option('model', defaultModel), option('split', 'test')));
    } finally {
      await close();
    }
  };
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
