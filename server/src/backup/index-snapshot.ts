/**
 * A consistent copy of the index, as a stream for the backup store, without stopping the server.
 *
 * - SQLite: `VACUUM INTO` a temporary file, in a worker thread with a read-only connection of its own,
 *   so the server's event loop never waits for it. SQLite documents the output as "a consistent
 *   snapshot of the original database" (sqlite.org/lang_vacuum.html#vacuuminto); in WAL mode it is one
 *   read transaction, so writers go on meanwhile. The file holds every table of the index file: the
 *   catalog's and those of the side stores (hospital link, reports, sharing, FHIR outbox, slide jobs,
 *   audit trail, backup), which all live in it (catalog/open-side-database.ts). The snapshot is checked
 *   (`PRAGMA quick_check`), its instances counted, then gzip-streamed.
 * - PostgreSQL: `pg_dump --format=custom` of the index schema (every table of the catalog and the side
 *   stores is in it), streamed from its stdout; one transaction with a snapshot, so consistent too.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createGzip } from 'node:zlib';
import type { IndexConfig } from '../config.js';
import { AppError } from '../errors.js';

export interface IndexSnapshot {
  /** The bytes to store (gzip of the SQLite file, or pg_dump's custom format). */
  stream: Readable;
  extension: 'sqlite.gz' | 'pgdump';
  instances: number | undefined;
  tables: string[];
  /** Resolves when the producer finished well (pg_dump exited 0), rejects otherwise; then removes temp files. */
  done: Promise<void>;
}

// Runs in the worker (CommonJS, eval'd): VACUUM INTO, then check and count in the copy.
const SQLITE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
try {
  const source = new Database(workerData.source, { readonly: true, fileMustExist: true });
  source.pragma('busy_timeout = 30000');
  source.prepare('VACUUM INTO ?').run(workerData.target);
  source.close();
  const copy = new Database(workerData.target, { readonly: true, fileMustExist: true });
  const check = copy.pragma('quick_check', { simple: true });
  const tables = copy.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => r.name);
  const instances = tables.includes('instances') ? copy.prepare('SELECT count(*) AS n FROM instances').get().n : null;
  copy.close();
  parentPort.postMessage({ ok: check === 'ok', check, tables, instances });
} catch (err) {
  parentPort.postMessage({ ok: false, check: String(err && err.code || err && err.message || err) });
}
`;

interface WorkerResult {
  ok: boolean;
  check: string;
  tables?: string[];
  instances?: number | null;
}

async function sqliteSnapshot(file: string): Promise<IndexSnapshot> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-index-backup-'));
  const target = path.join(dir, 'index.sqlite');
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  let result: WorkerResult;
  try {
    result = await new Promise<WorkerResult>((resolve, reject) => {
      const worker = new Worker(SQLITE_WORKER, { eval: true, workerData: { driver, source: file, target } });
      worker.once('message', (message: WorkerResult) => resolve(message));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`index snapshot worker exited with ${code}`)));
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new AppError('INDEX_FAILURE', 'The index snapshot could not be made', { cause: err });
  }
  if (!result.ok) {
    await rm(dir, { recursive: true, force: true });
    throw new AppError('INDEX_FAILURE', `The index snapshot failed its check: ${result.check.slice(0, 200)}`);
  }
  const gzip = createGzip();
  const source = createReadStream(target);
  source.on('error', (err) => gzip.destroy(err));
  const done = new Promise<void>((resolve, reject) => {
    gzip.once('end', resolve);
    gzip.once('error', reject);
    gzip.once('close', () => resolve());
  }).finally(() => rm(dir, { recursive: true, force: true }));
  return { stream: source.pipe(gzip), extension: 'sqlite.gz', instances: result.instances ?? undefined, tables: result.tables ?? [], done };
}

function pgSnapshot(index: Extract<IndexConfig, { kind: 'postgres' }>): IndexSnapshot {
  const child = spawn('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--schema=${index.schema}`, `--dbname=${index.connectionString}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString();
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new AppError('INDEX_FAILURE', `pg_dump could not be started (${(err as { code?: string }).code ?? err.name}): install postgresql-client`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new AppError('INDEX_FAILURE', `pg_dump failed (exit ${code}): ${stderr.trim().split('\n')[0]?.slice(0, 200) ?? ''}`))));
  });
  done.catch(() => child.stdout.destroy());
  return { stream: child.stdout, extension: 'pgdump', instances: undefined, tables: [], done };
}

export async function snapshotIndex(index: IndexConfig): Promise<IndexSnapshot> {
  if (index.kind === 'sqlite') {
    if (index.file === ':memory:') throw new AppError('BAD_REQUEST', 'An in-memory index cannot be backed up');
    return sqliteSnapshot(index.file);
  }
  return pgSnapshot(index);
}
