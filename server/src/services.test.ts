/**
 * Start-up tells the operator about index-engine settings that degrade the archive as it grows
 * (Catalog.engineWarnings: PostgreSQL with autovacuum off), and a failing check never keeps the server
 * from starting.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteCatalog } from './catalog/sqlite-catalog.js';
import { loadConfig } from './config.js';
import { createServices } from './services.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function start(engineWarnings: () => Promise<string[]>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-services-'));
  dirs.push(dir);
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const catalog = Object.assign(new SqliteCatalog(':memory:'), { engineWarnings });
  await catalog.migrate();
  const services = await createServices(loadConfig({ PACS_DATA_DIR: dir, PACS_LOG_LEVEL: 'silent' }), { catalog, logger, audit: null, inference: null });
  await services.close();
  return lines;
}

describe('engine settings at start-up', () => {
  it('logs each warning of the index engine once, as a warning', async () => {
    const lines = await start(async () => ['PostgreSQL autovacuum is off (test)']);
    expect(lines.filter((l) => l.msg === 'PostgreSQL autovacuum is off (test)').map((l) => l.level)).toEqual([40]);
  });

  it('starts anyway when the check itself fails', async () => {
    const lines = await start(async () => {
      throw new Error('permission denied for current_setting');
    });
    expect(lines.some((l) => l.msg.includes('autovacuum'))).toBe(false);
  });
});
