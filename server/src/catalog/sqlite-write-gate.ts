/**
 * SQLite: one writer at a time, waited for asynchronously.
 *
 * Several modules keep their own better-sqlite3 connection to the index file (the catalog; the job
 * store, audit trail, hospital link, reports and FHIR outbox through open-side-database.ts). SQLite lets
 * one connection write at a time, and better-sqlite3 is synchronous: a connection that finds the write
 * lock taken waits in SQLite's busy handler, which *sleeps on the event loop's thread*. When the holder
 * is another connection of the same process in a transaction that spans awaits (the hospital link
 * linking a stored series to its order, the catalog's ingest), it cannot go on while the loop sleeps:
 * the whole process stalls for the busy timeout and then the write fails "database is locked".
 *
 * So, for every SQLite connection of the process:
 * - **One gate per database file** (keyed by its real path; an in-memory database has its own): every
 *   write of every connection runs inside it, as one `BEGIN IMMEDIATE … COMMIT` transaction
 *   (`sqliteWriteTransaction`). Writers of one process queue here, in order, asynchronously, and never
 *   meet inside SQLite. Reads never take it: in WAL mode they run beside the writer.
 * - **No busy handler** (`busy_timeout = 0`, `useWriteGate`): a write lock held by *another process*
 *   (a worker, fsck, a second server on the file) makes `BEGIN IMMEDIATE` fail at once with SQLITE_BUSY;
 *   it is tried again after a timer with back-off, the connection released meanwhile so that this
 *   store's reads go on. Gate wait and retries share one budget (`SQLITE_WRITE_WAIT_MS`); past it the
 *   SQLITE_BUSY error surfaces as it did before (the catalog's INDEX_FAILURE, 503).
 *
 * A write must not wait for another write of the same file while it holds the gate (a store's
 * transaction calling another store's write): that would wait for itself, and fails after the budget.
 * PostgreSQL connections do not use any of this.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';

/** How long a write may wait, for this process's other writers and for other processes, before it fails. */
export const SQLITE_WRITE_WAIT_MS = 30_000;

/** Identifies a database file's gate: its real path, or a symbol of its own for a private database. */
export type WriteGateKey = string | symbol;

/** What a write that waited too long throws: SQLite's own code, so callers treat it as before. */
export class SqliteBusyError extends Error {
  readonly code = 'SQLITE_BUSY';
  constructor(message: string) {
    super(message);
    this.name = 'SqliteBusyError';
  }
}

/** SQLITE_BUSY and its extended codes (SQLITE_BUSY_SNAPSHOT, _RECOVERY, _TIMEOUT), SQLITE_LOCKED. */
export function isSqliteBusy(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED');
}

interface Waiter {
  grant(): void;
  timer: NodeJS.Timeout;
}

/** A FIFO mutex whose waits are bounded. */
class WriteGate {
  private held = false;
  private readonly waiting: Waiter[] = [];

  get idle(): boolean {
    return !this.held && this.waiting.length === 0;
  }

  acquire(deadline: number): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new SqliteBusyError("database is locked (waited for this process's other writers of the file)"));
        }, Math.max(0, deadline - Date.now())),
      };
      this.waiting.push(waiter);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) {
      this.held = false;
      return;
    }
    clearTimeout(next.timer);
    next.grant(); // the gate passes on without being free in between
  }
}

// On globalThis so that the process has one set of gates even if this module is loaded twice.
const REGISTRY = Symbol.for('filmless-pacs.sqlite-write-gates');
const gates: Map<WriteGateKey, WriteGate> = ((globalThis as { [REGISTRY]?: Map<WriteGateKey, WriteGate> })[REGISTRY] ??= new Map());

/** Runs `work` holding the gate of `key` (waiting at most until `deadline`, epoch ms). */
export async function withWriteGate<T>(key: WriteGateKey, deadline: number, work: () => Promise<T>): Promise<T> {
  let gate = gates.get(key);
  if (gate === undefined) {
    gate = new WriteGate();
    gates.set(key, gate);
  }
  await gate.acquire(deadline);
  try {
    return await work();
  } finally {
    gate.release();
    // An idle gate is forgotten (the next writer makes a new one): nothing accumulates per file ever opened.
    if (gate.idle && gates.get(key) === gate) gates.delete(key);
  }
}

/**
 * Prepares a freshly opened connection: from now on it never waits in SQLite's busy handler. Returns the
 * key of its file's gate, which every write of the connection must go through.
 */
export function useWriteGate(database: Database.Database): WriteGateKey {
  database.pragma('busy_timeout = 0');
  if (database.memory) return Symbol('private SQLite database');
  const file = path.resolve(database.name);
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

const LOCKED_ELSEWHERE = Symbol('locked by another process');

/**
 * One write transaction on a Kysely instance over a single better-sqlite3 connection: in the gate,
 * `BEGIN IMMEDIATE` (tried again with back-off while another process holds the write lock), `work` on
 * the connection (use the Kysely it is given: the store's own instance waits for this connection),
 * `COMMIT`; rolled back when `work` throws. `work` runs once.
 */
export async function sqliteWriteTransaction<DB, T>(
  db: Kysely<DB>,
  key: WriteGateKey,
  work: (trx: Kysely<DB>) => Promise<T>,
  options: { waitMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.waitMs ?? SQLITE_WRITE_WAIT_MS);
  return withWriteGate(key, deadline, async () => {
    for (let attempt = 1; ; attempt += 1) {
      const outcome = await db.connection().execute(async (connection) => {
        try {
          await sql`begin immediate`.execute(connection);
        } catch (error) {
          if (isSqliteBusy(error) && Date.now() < deadline) return LOCKED_ELSEWHERE;
          throw error;
        }
        try {
          const result = await work(connection);
          await sql`commit`.execute(connection);
          return { result };
        } catch (error) {
          // SQLite may have rolled back on its own already (SQLITE_FULL…): then there is nothing to roll back.
          await sql`rollback`.execute(connection).catch(() => undefined);
          throw error;
        }
      });
      if (outcome !== LOCKED_ELSEWHERE) return outcome.result;
      // Another process writes: wait on a timer, the event loop free, this connection free for reads.
      const backoff = Math.min(250, 4 * 2 ** attempt) * (0.5 + Math.random());
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
    }
  });
}
