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

export function openSideDatabase<DB>(index: IndexConfig, poolSize: number): SideDatabase<DB> {
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
  const pool = new pg.Pool({ connectionString: index.connectionString, max: poolSize, options: `-c search_path=${index.schema}` });
  // An idle client's error (server restart) must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
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
