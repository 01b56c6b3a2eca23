/**
 * A Kysely connection to the index database for modules that keep their own tables beside the catalog
 * (slide analysis jobs, the audit trail, the hospital link, reports, the FHIR outbox): same file or
 * server and schema as the catalog, own pool.
 *
 * Writes go through `write` / `transaction`, never straight to `db`: on SQLite they run in the process's
 * write gate of the file, as one `BEGIN IMMEDIATE` transaction, and the connection never waits in
 * SQLite's busy handler (sqlite-write-gate.ts). Reads use `db`.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { IndexConfig } from '../config.js';
import { withStatementCache } from './sqlite-statement-cache.js';
import { sqliteWriteTransaction, useWriteGate } from './sqlite-write-gate.js';
import { useBackgroundCheckpoints } from './wal-checkpointer.js';

export interface SideDatabase<DB> {
  db: Kysely<DB>;
  dialect: 'sqlite' | 'postgres';
  /**
   * Runs the writes of `work` on the Kysely instance it is given (not `db`: on SQLite that one waits for
   * this connection until `work` is done). SQLite: in the write gate, one `BEGIN IMMEDIATE` transaction.
   * PostgreSQL: `work(db)`, each statement on its own as before.
   */
  write<T>(work: (db: Kysely<DB>) => Promise<T>): Promise<T>;
  /** One transaction on both engines: SQLite as `write`; PostgreSQL `db.transaction()`. */
  transaction<T>(work: (trx: Kysely<DB>) => Promise<T>): Promise<T>;
}

/**
 * PostgreSQL connections all side stores of a process share (per database and schema). Each store had a
 * pool of its own (2–4 connections, nine stores): a server could hold ~26 connections and three servers
 * with their workers came near PostgreSQL's default max_connections (100); past it, ingest answered
 * 0xA700 (measured: 77 connections at the peak of server/src/scale/multi-process.test.ts). A side store's
 * transaction only ever uses its own connection (none waits for another store's while holding one), so
 * one shared pool cannot deadlock; a store waits for a free connection instead.
 */
export const SIDE_POOL_SIZE = 4;
/** What PostgreSQL shows in pg_stat_activity.application_name for these connections. */
export const SIDE_POOL_APPLICATION_NAME = 'filmless-pacs side stores';

const sharedPools = new Map<string, { pool: pg.Pool; users: number }>();

/** The process's shared pool for this database and schema; `end()` ends it when its last user does. */
function sharedSidePool(connectionString: string, schema: string): { connect(): Promise<pg.PoolClient>; end(): Promise<void> } {
  const key = `${connectionString}\u0000${schema}`;
  let entry = sharedPools.get(key);
  if (entry === undefined) {
    const pool = new pg.Pool({ connectionString, max: SIDE_POOL_SIZE, options: `-c search_path=${schema}`, application_name: SIDE_POOL_APPLICATION_NAME });
    // An idle client's error (server restart) must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    entry = { pool, users: 0 };
    sharedPools.set(key, entry);
  }
  const shared = entry;
  shared.users += 1;
  let ended = false;
  return {
    connect: () => shared.pool.connect(),
    async end() {
      if (ended) return;
      ended = true;
      shared.users -= 1;
      if (shared.users > 0) return;
      if (sharedPools.get(key) === shared) sharedPools.delete(key);
      await shared.pool.end();
    },
  };
}

/** Opens a side store's database: SQLite, its own connection to the index file; PostgreSQL, the process's shared side pool. */
export function openSideDatabase<DB>(index: IndexConfig): SideDatabase<DB> {
  if (index.kind === 'sqlite') {
    if (index.file !== ':memory:') mkdirSync(path.dirname(path.resolve(index.file)), { recursive: true });
    const database = new Database(index.file);
    // WAL: the catalog's connection and this one read and write the same file concurrently.
    if (index.file !== ':memory:') database.pragma('journal_mode = WAL');
    // Its commits leave checkpoints to the worker thread too (wal-checkpointer.ts).
    if (index.file !== ':memory:') useBackgroundCheckpoints(database);
    database.pragma('synchronous = NORMAL');
    const gate = useWriteGate(database);
    const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
    const write = <T>(work: (db: Kysely<DB>) => Promise<T>) => sqliteWriteTransaction(db, gate, work);
    return { db, dialect: 'sqlite', write, transaction: write };
  }
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: sharedSidePool(index.connectionString, index.schema) }) });
  return {
    db,
    dialect: 'postgres',
    write: (work) => work(db),
    transaction: (work) => db.transaction().execute(work),
  };
}

/**
 * Creates a side store's tables once, however many servers start together: on SQLite in the write gate
 * (one BEGIN IMMEDIATE transaction); on PostgreSQL in one transaction that first takes the advisory lock
 * named `lockName`, so one process creates and the others wait, then find the tables there.
 */
export async function createSideTables<DB>(side: SideDatabase<DB>, lockName: string, createTables: (db: Kysely<DB>) => Promise<void>): Promise<void> {
  if (side.dialect === 'sqlite') {
    await side.write(createTables);
    return;
  }
  await side.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${lockName}))`.execute(trx);
    await createTables(trx);
  });
}

/** A store just built on its side database, once `prepare` (its migration) has run; closed when that fails. */
export async function opened<S extends { close(): Promise<void> }>(store: S, prepare: () => Promise<void>): Promise<S> {
  try {
    await prepare();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
