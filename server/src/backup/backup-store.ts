/**
 * The backup's own tables in the index database (a Kysely connection of its own, created idempotently
 * at start like the FHIR outbox):
 *
 * - `backup_blob_copies`: the durable outbox of the blob replication, one row per blob key the index
 *   references or referenced. `pending` until the copy on the backup store is verified (`copied`), then
 *   `removed` once no index row references the key any more (a purge, a DELETE, a recompressed
 *   original): the copy is kept PACS_BACKUP_KEEP_DELETED_DAYS after `removed_at`, then deleted from the
 *   backup store and the row forgotten. Rows come from the index itself (the replicator pages through
 *   the instances and adds the keys it does not know), so a crash at any point loses no pending copy:
 *   the next pass finds the key again.
 * - `backup_index_runs`: the index backups taken (or failed), for the status API.
 *
 * Every write is one conditional statement through the side database's `write` (on SQLite in the
 * process's write gate of the file; catalog/sqlite-write-gate.ts).
 */
import { sql, type Kysely } from 'kysely';
import { openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';
import { AppError, isAppError } from '../errors.js';

export type CopyState = 'pending' | 'copied' | 'removed';

interface CopyTable {
  blob_key: string;
  size: number | string;
  checksum: string | null;
  state: CopyState;
  attempts: number;
  next_attempt_at: number | string;
  lease_until: number | string | null;
  /** Why the last attempt failed (error codes, no patient data). */
  last_error: string | null;
  queued_at: number | string;
  copied_at: number | string | null;
  removed_at: number | string | null;
}

interface IndexRunTable {
  id: string;
  started_at: number | string;
  finished_at: number | string | null;
  state: 'running' | 'done' | 'failed';
  object_key: string | null;
  bytes: number | string | null;
  instances: number | null;
  error: string | null;
}

interface BackupDatabase {
  backup_blob_copies: CopyTable;
  backup_index_runs: IndexRunTable;
}

export interface CopyEntry {
  blobKey: string;
  size: number;
  checksum: string | undefined;
  state: CopyState;
  attempts: number;
}

export interface IndexRun {
  id: string;
  startedAt: number;
  finishedAt: number | undefined;
  state: 'running' | 'done' | 'failed';
  objectKey: string | undefined;
  bytes: number | undefined;
  instances: number | undefined;
  error: string | undefined;
}

export interface CopyCounts {
  pending: number;
  copied: number;
  removedKept: number;
  /** Pending rows whose last attempt failed (they are retried with back-off). */
  failing: number;
  oldestPendingAt: number | undefined;
  lastCopiedAt: number | undefined;
  lastError: string | undefined;
  bytesCopied: number;
}

const num = (value: number | string | null): number | undefined => (value === null ? undefined : Number(value));

function storeFailure(err: unknown): unknown {
  return isAppError(err) ? err : new AppError('INDEX_FAILURE', 'Index database error in the backup tables', { cause: err });
}

export class BackupStore {
  private readonly db: Kysely<BackupDatabase>;

  private constructor(private readonly side: SideDatabase<BackupDatabase>) {
    this.db = side.db;
  }

  static async open(index: IndexConfig): Promise<BackupStore> {
    const store = new BackupStore(openSideDatabase<BackupDatabase>(index));
    try {
      await store.run(() => store.migrate());
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw storeFailure(err);
    }
  }

  private write<T>(work: (db: Kysely<BackupDatabase>) => Promise<T>): Promise<T> {
    return this.run(() => this.side.write(work));
  }

  private async migrate(): Promise<void> {
    const create = async (db: Kysely<BackupDatabase>) => {
      await db.schema
        .createTable('backup_blob_copies')
        .ifNotExists()
        .addColumn('blob_key', 'varchar(1024)', (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('checksum', 'varchar(64)')
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_until', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('queued_at', 'bigint', (c) => c.notNull())
        .addColumn('copied_at', 'bigint')
        .addColumn('removed_at', 'bigint')
        .execute();
      await db.schema.createIndex('backup_blob_copies_due').ifNotExists().on('backup_blob_copies').columns(['state', 'next_attempt_at']).execute();
      await db.schema
        .createTable('backup_index_runs')
        .ifNotExists()
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('object_key', 'varchar(1024)')
        .addColumn('bytes', 'bigint')
        .addColumn('instances', 'integer')
        .addColumn('error', 'text')
        .execute();
    };
    if (this.side.dialect === 'postgres') {
      await this.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('filmless-pacs backup schema'))`.execute(trx);
        await create(trx);
      });
    } else {
      await this.side.write(create);
    }
  }

  /** The subset of `keys` that has a row (any state). */
  async knownKeys(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    return this.run(async () => {
      const rows = await this.db.selectFrom('backup_blob_copies').select('blob_key').where('blob_key', 'in', [...keys]).execute();
      return new Set(rows.map((row) => row.blob_key));
    });
  }

  /** Adds pending rows for blobs the index references (a key already known is left as it is). */
  async addPending(blobs: ReadonlyArray<{ blobKey: string; size: number; checksum: string | undefined }>, now = Date.now()): Promise<void> {
    if (blobs.length === 0) return;
    await this.write((db) =>
      db
        .insertInto('backup_blob_copies')
        .values(
          blobs.map((blob) => ({
            blob_key: blob.blobKey,
            size: blob.size,
            checksum: blob.checksum ?? null,
            state: 'pending' as const,
            attempts: 0,
            next_attempt_at: now,
            lease_until: null,
            last_error: null,
            queued_at: now,
            copied_at: null,
            removed_at: null,
          })),
        )
        .onConflict((oc) => oc.column('blob_key').doNothing())
        .execute(),
    );
  }

  /** Keys of pending rows that are due and not leased, oldest first. */
  async due(now: number, limit: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.db
        .selectFrom('backup_blob_copies')
        .select('blob_key')
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .execute();
      return rows.map((row) => row.blob_key);
    });
  }

  /** Claims a due pending row for `leaseMs` (one conditional UPDATE, atomic across processes). */
  async claim(blobKey: string, now: number, leaseMs: number): Promise<CopyEntry | undefined> {
    const result = await this.write((db) =>
      db
        .updateTable('backup_blob_copies')
        .set({ lease_until: now + leaseMs, attempts: sql`${sql.ref('attempts')} + 1` })
        .where('blob_key', '=', blobKey)
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .executeTakeFirst(),
    );
    if (Number(result.numUpdatedRows) !== 1) return undefined;
    return this.get(blobKey);
  }

  async get(blobKey: string): Promise<CopyEntry | undefined> {
    return this.run(async () => {
      const row = await this.db.selectFrom('backup_blob_copies').selectAll().where('blob_key', '=', blobKey).executeTakeFirst();
      return row === undefined ? undefined : { blobKey: row.blob_key, size: Number(row.size), checksum: row.checksum ?? undefined, state: row.state, attempts: Number(row.attempts) };
    });
  }

  /** Every pending row due now (at start: failures before a restart are retried at once). */
  async retryAllNow(now = Date.now()): Promise<void> {
    await this.write((db) => db.updateTable('backup_blob_copies').set({ next_attempt_at: now, lease_until: null }).where('state', '=', 'pending').where('next_attempt_at', '>', now).execute());
  }

  async markCopied(blobKey: string, now = Date.now()): Promise<void> {
    await this.write((db) =>
      db
        .updateTable('backup_blob_copies')
        .set({ state: 'copied', copied_at: now, lease_until: null, last_error: null })
        .where('blob_key', '=', blobKey)
        .where('state', '=', 'pending')
        .execute(),
    );
  }

  async markAttemptFailed(blobKey: string, error: string, retryAt: number): Promise<void> {
    await this.write((db) =>
      db
        .updateTable('backup_blob_copies')
        .set({ last_error: error.slice(0, 500), next_attempt_at: retryAt, lease_until: null })
        .where('blob_key', '=', blobKey)
        .where('state', '=', 'pending')
        .execute(),
    );
  }

  /** Keys of rows not yet `removed`, in key order after `after` (the reconcile's pass over deletions). */
  async livePage(after: string | undefined, limit: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.db
        .selectFrom('backup_blob_copies')
        .select('blob_key')
        .where('state', '!=', 'removed')
        .$if(after !== undefined, (qb) => qb.where('blob_key', '>', after!))
        .orderBy('blob_key')
        .limit(limit)
        .execute();
      return rows.map((row) => row.blob_key);
    });
  }

  /**
   * The index no longer references these keys: `removed` from now (the copy kept for the retention).
   * Returns the keys whose copy was made (those need a tombstone on the backup store).
   */
  async markRemoved(keys: readonly string[], now = Date.now()): Promise<string[]> {
    if (keys.length === 0) return [];
    return this.write(async (db) => {
      const rows = await db.selectFrom('backup_blob_copies').select(['blob_key', 'state']).where('blob_key', 'in', [...keys]).where('state', '!=', 'removed').execute();
      if (rows.length === 0) return [];
      await db
        .updateTable('backup_blob_copies')
        .set({ state: 'removed', removed_at: now, lease_until: null })
        .where('blob_key', 'in', rows.map((row) => row.blob_key))
        .execute();
      return rows.filter((row) => row.state === 'copied').map((row) => row.blob_key);
    });
  }

  /** Records a key the index never had (a restore re-indexed its blob under a new key): removed now. */
  async addRemoved(blobKey: string, size: number, now = Date.now()): Promise<void> {
    await this.write((db) =>
      db
        .insertInto('backup_blob_copies')
        .values({ blob_key: blobKey, size, checksum: null, state: 'removed', attempts: 0, next_attempt_at: now, lease_until: null, last_error: null, queued_at: now, copied_at: now, removed_at: now })
        .onConflict((oc) => oc.column('blob_key').doUpdateSet({ state: 'removed', removed_at: now }))
        .execute(),
    );
  }

  /** Whether the key is known as removed (deleted on purpose) in this index. */
  async isRemoved(blobKey: string): Promise<boolean> {
    const entry = await this.get(blobKey);
    return entry?.state === 'removed';
  }

  /** Removed rows whose retention ended (removed before `before`). */
  async dueRemovals(before: number, limit: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.db
        .selectFrom('backup_blob_copies')
        .select('blob_key')
        .where('state', '=', 'removed')
        .where('removed_at', '<=', before)
        .orderBy('removed_at')
        .limit(limit)
        .execute();
      return rows.map((row) => row.blob_key);
    });
  }

  async forget(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.write((db) => db.deleteFrom('backup_blob_copies').where('blob_key', 'in', [...keys]).where('state', '=', 'removed').execute());
  }

  async counts(): Promise<CopyCounts> {
    return this.run(async () => {
      const byState = await this.db
        .selectFrom('backup_blob_copies')
        .select((eb) => ['state', eb.fn.countAll<number | string>().as('n'), eb.fn.min('queued_at').as('oldest'), eb.fn.max('copied_at').as('last'), eb.fn.sum<number | string | null>('size').as('bytes')])
        .groupBy('state')
        .execute();
      const failing = await this.db
        .selectFrom('backup_blob_copies')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('state', '=', 'pending')
        .where('last_error', 'is not', null)
        .executeTakeFirst();
      const lastError = await this.db
        .selectFrom('backup_blob_copies')
        .select('last_error')
        .where('state', '=', 'pending')
        .where('last_error', 'is not', null)
        .orderBy('next_attempt_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      const of = (state: CopyState) => byState.find((row) => row.state === state);
      const lastCopied = [of('copied')?.last, of('removed')?.last].map((v) => num((v ?? null) as number | string | null)).filter((v): v is number => v !== undefined);
      return {
        pending: Number(of('pending')?.n ?? 0),
        copied: Number(of('copied')?.n ?? 0),
        removedKept: Number(of('removed')?.n ?? 0),
        failing: Number(failing?.n ?? 0),
        oldestPendingAt: num((of('pending')?.oldest ?? null) as number | string | null),
        lastCopiedAt: lastCopied.length === 0 ? undefined : Math.max(...lastCopied),
        lastError: lastError?.last_error ?? undefined,
        bytesCopied: Number(of('copied')?.bytes ?? 0),
      };
    });
  }

  /** Records a finished index backup (taken or failed); written once, at the end, so no run is left `running`. */
  async finishIndexRun(id: string, outcome: { objectKey: string; bytes: number; instances: number | undefined } | { error: string }, now: number, startedAt: number): Promise<void> {
    await this.write((db) =>
      db
        .insertInto('backup_index_runs')
        .values(
          'error' in outcome
            ? { id, started_at: startedAt, finished_at: now, state: 'failed', object_key: null, bytes: null, instances: null, error: outcome.error.slice(0, 500) }
            : { id, started_at: startedAt, finished_at: now, state: 'done', object_key: outcome.objectKey, bytes: outcome.bytes, instances: outcome.instances ?? null, error: null },
        )
        .onConflict((oc) => oc.column('id').doNothing())
        .execute(),
    );
  }

  /** The newest index runs, newest first. */
  async indexRuns(limit: number): Promise<IndexRun[]> {
    return this.run(async () => {
      const rows = await this.db.selectFrom('backup_index_runs').selectAll().orderBy('started_at', 'desc').limit(limit).execute();
      return rows.map((row) => ({
        id: row.id,
        startedAt: Number(row.started_at),
        finishedAt: num(row.finished_at),
        state: row.state,
        objectKey: row.object_key ?? undefined,
        bytes: num(row.bytes),
        instances: row.instances ?? undefined,
        error: row.error ?? undefined,
      }));
    });
  }
}
