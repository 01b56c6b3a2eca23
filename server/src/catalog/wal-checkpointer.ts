/**
 * SQLite WAL checkpoints off the request path.
 *
 * In WAL mode (https://www.sqlite.org/wal.html §"Automatic Checkpoint") the connection whose COMMIT takes
 * the log past `wal_autocheckpoint` pages (default 1,000) copies the log back into the database file and
 * fsyncs it, inside that COMMIT. better-sqlite3 is synchronous, so that commit held the event loop: every
 * request of the process waited. Measured here (3,000 commits of 6 indexed rows): p99 commit 13 ms,
 * max 30 ms with the default; 0.6 ms / 6 ms without checkpoints in the commit. On the archive that was
 * one small STOW-RS in ~25 paying it (p95 12.5 ms against Orthanc's 6.1, docs/benchmarks.md).
 *
 * So every connection to the index file raises its own threshold to a fallback (`useBackgroundCheckpoints`)
 * and one worker thread per index file, in the process that runs the background duties, runs
 * `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own every `intervalMs`: PASSIVE copies what
 * no reader still needs and never waits for a writer or reader, so commits on the event loop go on while
 * it copies and fsyncs. When the log is fully copied, the next writer restarts it from the beginning;
 * under steady ingest that moment may not come, so a copied-back log longer than `RESTART_LOG_PAGES` is
 * restarted by the worker (`RESTART` with no busy wait: when a commit is under way it reports busy and
 * the next tick tries again; a commit arriving meanwhile waits in the write gate's retry, sqlite-write-gate.ts),
 * and `journal_size_limit` truncates a log left large by a burst. Should the worker be absent (fsck, a
 * process without the duties, a test), a committing connection checkpoints at the fallback threshold as
 * SQLite always did, so the log stays bounded either way.
 * Written by hand: better-sqlite3 has no background checkpointing, and a thread needs its own connection.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** Pages (4 KiB) after which a committing connection checkpoints itself: only when the worker is absent or stuck. */
export const FALLBACK_AUTOCHECKPOINT_PAGES = 20_000;
/** A log fully copied back and longer than this many pages is restarted by the worker (RESTART, not waiting). */
export const RESTART_LOG_PAGES = 4_000;
/** A log longer than this is truncated to it when it restarts (bytes). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/** How often the worker checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 100;

/** Settings for every connection to a WAL index file that the background checkpointer serves. */
export function useBackgroundCheckpoints(database: Database.Database): void {
  database.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT_PAGES}`);
  database.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
}

/** What one PASSIVE checkpoint reported (https://www.sqlite.org/pragma.html#pragma_wal_checkpoint). */
export interface CheckpointResult {
  /** 1 when another checkpoint (another process's) held the lock. */
  busy: number;
  /** Frames in the log. */
  log: number;
  /** Frames of it copied into the database file. */
  checkpointed: number;
}

// Runs in the worker (CommonJS, eval'd): its own connection, never waiting on a lock (busy_timeout 0).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
let timer;
function tick() {
  try {
    let row = db.pragma('wal_checkpoint(PASSIVE)')[0];
    // Copied back but long: restart it now, in a gap between commits (busy when a writer is in one: next tick).
    if (row.log >= workerData.restartPages && row.checkpointed === row.log) row = db.pragma('wal_checkpoint(RESTART)')[0];
    parentPort.postMessage({ kind: 'checkpoint', busy: row.busy, log: row.log, checkpointed: row.checkpointed });
  } catch (err) {
    parentPort.postMessage({ kind: 'error', message: String(err && err.message) });
  }
  timer = setTimeout(tick, workerData.intervalMs);
}
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
tick();
`;

export interface WalCheckpointer {
  /** The latest checkpoint's report (undefined before the first). */
  readonly last: CheckpointResult | undefined;
  /** Checkpoints run so far. */
  readonly count: number;
  /** Stops the worker and closes its connection. */
  stop(): Promise<void>;
}

/**
 * Starts the checkpointing thread for the WAL index `file` (which must exist). `onError` hears a failed
 * checkpoint (e.g. the disk is full), at most once a minute; checkpoints go on being tried.
 */
export function startWalCheckpointer(
  file: string,
  options: { intervalMs?: number; onError?: (message: string) => void; onCheckpoint?: (result: CheckpointResult) => void } = {},
): WalCheckpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { driver, file, intervalMs: options.intervalMs ?? CHECKPOINT_INTERVAL_MS, restartPages: RESTART_LOG_PAGES } });
  // Never keeps the process alive on its own: closing the services stops it.
  worker.unref();
  let last: CheckpointResult | undefined;
  let count = 0;
  let lastErrorAt = 0;
  const report = (message: string) => {
    if (Date.now() - lastErrorAt < 60_000) return;
    lastErrorAt = Date.now();
    options.onError?.(message);
  };
  worker.on('message', (message: { kind: string; busy: number; log: number; checkpointed: number; message?: string }) => {
    if (message.kind === 'checkpoint') {
      last = { busy: message.busy, log: message.log, checkpointed: message.checkpointed };
      count++;
      options.onCheckpoint?.(last);
    } else {
      report(message.message ?? 'unknown error');
    }
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('error', (err) => report(err.message));
  return {
    get last() {
      return last;
    },
    get count() {
      return count;
    },
    async stop() {
      worker.postMessage('stop');
      const timeout = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timeout);
    },
  };
}
