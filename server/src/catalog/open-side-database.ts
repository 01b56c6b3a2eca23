/**
 * A Kysely connection to the index database for modules that keep their own tables beside the catalog
 * (slide analysis jobs, the audit trail): same file or server and schema as the catalog, own pool.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { IndexConfig } from '../config.js';

export interface SideDatabase<DB> {
  db: Kysely<DB>;
  dialect: 'sqlite' | 'postgres';
}

export function openSideDatabase<DB>(index: IndexConfig, poolSize: number): SideDatabase<DB> {
  if (index.kind === 'sqlite') {
    if (index.file !== ':memory:') mkdirSync(path.dirname(path.resolve(index.file)), { recursive: true });
    const database = new Database(index.file);
    // WAL: the catalog's connection and this one read and write the same file concurrently.
    if (index.file !== ':memory:') database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    database.pragma('busy_timeout = 10000');
    return { db: new Kysely<DB>({ dialect: new SqliteDialect({ database }) }), dialect: 'sqlite' };
  }
  const pool = new pg.Pool({ connectionString: index.connectionString, max: poolSize, options: `-c search_path=${index.schema}` });
  // An idle client's error (server restart) must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  return { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), dialect: 'postgres' };
}
