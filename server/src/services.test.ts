/**
 * Start-up tells the operator about index-engine settings that degrade the archive as it grows
 * (Catalog.engineWarnings: PostgreSQL with autovacuum off), and a failing check never keeps the server
 * from starting.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteCatalog } from './catalog/sqlite-catalog.js';
import { useBackgroundCheckpoints } from './catalog/wal-checkpointer.js';
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

/**
 * mxFrame (frames in the log) and nBackfill (frames copied back into the database file) from the
 * wal-index in `<file>-shm`: https://www.sqlite.org/walformat.html §2.1 (header at 0, mxFrame at 16;
 * the checkpoint info after the two 48-byte header copies, nBackfill at 96; native byte order).
 */
function walIndex(file: string): { mxFrame: number; nBackfill: number } {
  const fd = openSync(`${file}-shm`, 'r');
  try {
    const b = Buffer.alloc(100);
    readSync(fd, b, 0, 100, 0);
    return { mxFrame: b.readUInt32LE(16), nBackfill: b.readUInt32LE(96) };
  } finally {
    closeSync(fd);
  }
}

describe('the embedded index at run time', () => {
  it('a server on its SQLite file copies the log back in a worker thread, though no commit reached the checkpoint threshold', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-services-'));
    dirs.push(dir);
    const config = loadConfig({ PACS_DATA_DIR: dir, PACS_LOG_LEVEL: 'silent' });
    if (config.index.kind !== 'sqlite') throw new Error('the default index is SQLite');
    const services = await createServices(config, { audit: null, inference: null });
    // Commits on the index file, as the stores make them (their connections leave checkpoints to the worker).
    const writer = new Database(config.index.file);
    useBackgroundCheckpoints(writer);
    writer.exec('create table scratch (id integer primary key, payload blob)');
    const insert = writer.prepare('insert into scratch (payload) values (?)');
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(3000, i));
    const written = walIndex(config.index.file);
    expect(written.mxFrame).toBeGreaterThan(200);
    let copied = written.nBackfill;
    for (let waited = 0; copied < written.mxFrame && waited < 5000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      copied = walIndex(config.index.file).nBackfill;
    }
    expect(copied).toBe(written.mxFrame);
    writer.close();
    await services.close();
  }, 30_000);
});
