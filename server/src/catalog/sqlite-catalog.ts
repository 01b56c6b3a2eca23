/**
 * Catalog in an embedded SQLite file (better-sqlite3). One connection, so Kysely serialises all
 * statements; write transactions start with BEGIN IMMEDIATE so they take the write lock up front
 * instead of failing on a read→write upgrade when another process holds the file. They run in the
 * process's write gate of the file and never wait in SQLite's busy handler (sqlite-write-gate.ts): the
 * other stores of the process have connections of their own to the same file.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyCatalog } from './kysely-catalog.js';
import { migrateToLatest } from './migrations.js';
import { withStatementCache } from './sqlite-statement-cache.js';
import type { CatalogDatabase } from './schema.js';
import { useBackgroundCheckpoints } from './wal-checkpointer.js';
import { sqliteWriteTransaction, SQLITE_WRITE_WAIT_MS, useWriteGate, withWriteGate, type WriteGateKey } from './sqlite-write-gate.js';

/** Migrations only (at open, before the server serves): another process migrating may hold the lock. */
const MIGRATION_BUSY_TIMEOUT_MS = 5000;

function openDatabase(file: string): Database.Database {
  const inMemory = file === ':memory:';
  if (!inMemory) mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const database = new Database(file);
  if (!inMemory) database.pragma('journal_mode = WAL');
  // Checkpoints run in a worker thread, not inside this connection's commits (wal-checkpointer.ts).
  if (!inMemory) useBackgroundCheckpoints(database);
  // In WAL mode NORMAL never corrupts the database; a power cut can only forget the last commits,
  // whose blobs then stay unreferenced (harmless). It saves an fsync per ingested instance. Orthanc
  // runs its SQLite index the same way.
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  // LIKE is case-insensitive in SQLite by default; QIDO matching of non-PN strings is case-sensitive
  // (PS3.4 §C.2.2.2.1), as it is in PostgreSQL. Person names use an upper-cased column instead.
  database.pragma('case_sensitive_like = ON');
  return database;
}

function sqliteCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

export class SqliteCatalog extends KyselyCatalog {
  private readonly database: Database.Database;
  private readonly gate: WriteGateKey;

  /** @param file path of the database file (its folder is created), or ':memory:'. */
  constructor(file: string) {
    const database = openDatabase(file);
    super(new Kysely<CatalogDatabase>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) }), 'sqlite', { groupCommit: true });
    this.database = database;
    this.gate = useWriteGate(database);
  }

  /**
   * Kysely's migrator runs its statements on its own (SQLite: no transactional DDL in Kysely), so it
   * cannot be tried again as a whole: it runs in the gate, and only here SQLite's busy handler waits for
   * another process (at open, before anything is served; nothing to wait for once migrated).
   */
  async migrate(): Promise<void> {
    await withWriteGate(this.gate, Date.now() + SQLITE_WRITE_WAIT_MS, async () => {
      this.database.pragma(`busy_timeout = ${MIGRATION_BUSY_TIMEOUT_MS}`);
      try {
        await migrateToLatest(this.db as Kysely<unknown>, 'sqlite');
      } finally {
        this.database.pragma('busy_timeout = 0');
      }
    });
  }

  protected inTransaction<T>(work: (trx: Kysely<CatalogDatabase>) => Promise<T>): Promise<T> {
    return sqliteWriteTransaction(this.db, this.gate, work);
  }

  /**
   * A unique-constraint race. Not SQLITE_BUSY: the write gate has already waited its whole budget for
   * the lock (another process's writer), asynchronously; trying again would only wait again.
   */
  protected isRetryable(error: unknown): boolean {
    return sqliteCode(error) === 'SQLITE_CONSTRAINT_UNIQUE';
  }
}
