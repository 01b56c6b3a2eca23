/**
 * Catalog in PostgreSQL. Tables live in a configurable schema, created when missing; every pooled
 * connection starts with that schema as its search_path (a startup parameter, so no query can run on a
 * connection before it is set). Write transactions run at READ COMMITTED: store-instance.ts relies on
 * its per-statement snapshots after waiting for a row lock.
 */
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { AppError } from '../errors.js';
import { KyselyCatalog } from './kysely-catalog.js';
import { migrateToLatest } from './migrations.js';
import type { CatalogDatabase } from './schema.js';

export interface PostgresCatalogOptions {
  connectionString: string;
  /** Lower-case SQL identifier; default 'public'. */
  schema?: string;
  poolSize?: number;
}

/** unique_violation, serialization_failure, deadlock_detected, lock_not_available. */
const RETRYABLE_CODES = new Set(['23505', '40001', '40P01', '55P03']);
/** duplicate_schema / unique_violation: a concurrent CREATE SCHEMA IF NOT EXISTS won the race. */
const SCHEMA_RACE_CODES = new Set(['42P06', '23505']);

function pgCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

function checkSchemaName(schema: string): string {
  // Unquoted identifiers fold to lower case in PostgreSQL; accepting only these keeps the search_path
  // startup option and the quoted CREATE SCHEMA naming the same schema.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new AppError('CONFIG_INVALID', `PostgreSQL schema must be a lower-case identifier, got "${schema}"`);
  }
  return schema;
}

/**
 * What the operator must fix in the engine's settings. Autovacuum off: every stored instance updates its
 * study and series counters, so without VACUUM those rows bloat (a 100k-instance index measured 25 MB of
 * heap for 1,000 study rows; 5 MB with autovacuum on), and without ANALYZE the planner has no statistics
 * and picks worse plans (docs/benchmarks.md, "Index growth"). PostgreSQL's default is on.
 */
export function warningsOfSettings(settings: { autovacuum: string; trackCounts: string }): string[] {
  const warnings: string[] = [];
  if (settings.autovacuum !== 'on' || settings.trackCounts !== 'on') {
    warnings.push(
      `PostgreSQL autovacuum is off (autovacuum=${settings.autovacuum}, track_counts=${settings.trackCounts}): the index's study and series rows bloat and query plans degrade as it grows; turn it on (the default), or run VACUUM ANALYZE on the catalog's tables regularly`,
    );
  }
  return warnings;
}

export class PostgresCatalog extends KyselyCatalog {
  private readonly schema: string;

  constructor(options: PostgresCatalogOptions) {
    const schema = checkSchemaName(options.schema ?? 'public');
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? 10,
      options: `-c search_path=${schema}`,
      // What pg_stat_activity shows: an operator counting a server's connections tells the pools apart.
      application_name: 'filmless-pacs index',
    });
    // An idle pooled connection that fails (server restart) is discarded by the pool; without a
    // listener the 'error' event would crash the process. The next query reconnects, and a lasting
    // outage surfaces as INDEX_FAILURE from that query.
    pool.on('error', () => undefined);
    super(new Kysely<CatalogDatabase>({ dialect: new PostgresDialect({ pool }) }), 'postgres');
    this.schema = schema;
  }

  async migrate(): Promise<void> {
    try {
      await sql`create schema if not exists ${sql.id(this.schema)}`.execute(this.db);
    } catch (error) {
      if (!SCHEMA_RACE_CODES.has(pgCode(error) ?? '')) throw error;
    }
    await migrateToLatest(this.db as Kysely<unknown>, 'postgres', this.schema);
  }

  async engineWarnings(): Promise<string[]> {
    const result = await sql<{ autovacuum: string; track_counts: string }>`select current_setting('autovacuum') as autovacuum, current_setting('track_counts') as track_counts`.execute(this.db);
    const row = result.rows[0];
    return row === undefined ? [] : warningsOfSettings({ autovacuum: row.autovacuum, trackCounts: row.track_counts });
  }

  protected inTransaction<T>(work: (trx: Kysely<CatalogDatabase>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  protected isRetryable(error: unknown): boolean {
    return RETRYABLE_CODES.has(pgCode(error) ?? '');
  }
}
