/**
 * An app on embedded storage in a fresh temp folder (blob folder + SQLite file), with its log lines
 * captured so tests can check what the server writes about patients (nothing).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../app.js';
import { createServices, type Services } from '../services.js';
import { loadConfig, type Config } from '../config.js';
import { loggerOptions } from '../http/logger.js';
import { testLogDestination } from './log-capture.js';

export interface TestApp {
  app: FastifyInstance;
  config: Readonly<Config>;
  dataDir: string;
  services: Services;
  logLines: string[];
  close(): Promise<void>;
}

/**
 * The hand-wired test model (test-fixtures/models, scripts/make-test-model.py): tests get exact,
 * deterministic boxes; those about the trained polyp model set PACS_MODELS_DIR to models/.
 */
export const TEST_MODELS_DIR = fileURLToPath(new URL('../../../test-fixtures/models/', import.meta.url));

export async function buildTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-test-'));
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'info', PACS_MODELS_DIR: TEST_MODELS_DIR, ...env });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(chunk.toString('utf8'));
      callback();
    },
  });
  // Lines go to the test (logLines) and to the run's capture checked for patient data at the end.
  const capture = testLogDestination();
  const logger = pino(loggerOptions(config), capture === undefined ? sink : pino.multistream([{ stream: sink }, { stream: capture }]));
  const services = await createServices(config, { logger });
  const app = await buildApp(config, services, { checkResponses: true });
  await app.ready();
  return {
    app,
    config,
    dataDir,
    services,
    logLines,
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
