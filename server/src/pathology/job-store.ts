/**
 * Persistent state of slide analysis jobs: two tables in the archive's own database (the SQLite file
 * or the PostgreSQL schema of PACS_INDEX) through a Kysely instance of their own, so the catalog's
 * schema and migrations stay untouched.
 *
 * Why SQL and not a JSON file per job under PACS_DATA_DIR: inference workers may run as separate
 * processes, on other machines in production (BullMQ), and must (1) see the same jobs — a shared
 * PostgreSQL does that, a local folder does not — and (2) record a unit's completion exactly once even
 * when a unit is delivered twice (a worker killed after finishing it): a conditional
 * `UPDATE … WHERE state = 'pending'` is atomic across processes, which file writes are not.
 *
 * Writes are single conditional statements (a plan's unit rows: a few), so processes need no more
 * coordination than the database's own locking; on SQLite each write method runs in the process's write
 * gate as one transaction (open-side-database.ts `write`). Progress counters are aggregated from the unit
 * rows when read.
 */
import { sql, type Kysely } from 'kysely';
import { openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';

export type JobState = 'queued' | 'running' | 'finalizing' | 'completed' | 'failed' | 'cancelled';
export const ACTIVE_STATES: readonly JobState[] = ['queued', 'running', 'finalizing'];

interface JobTable {
  id: string;
  study_uid: string;
  series_uid: string;
  model_id: string;
  model_version: string;
  /** '' (whole slide) or "x,y,width,height" in base pixels: part of the reuse key. */
  region: string;
  /** JSON: level, window size, overlap… (JobParams). */
  params: string;
  state: JobState;
  reason: string | null;
  units_total: number;
  windows_total: number;
  windows_skipped: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  result_series_uid: string | null;
  result_sop_uid: string | null;
  /** Unit deliveries that found the unit already done (at-least-once queues): counted, not recorded. */
  duplicate_completions: number;
}

interface UnitTable {
  job_id: string;
  unit_index: number;
  /** JSON list of PlannedWindow. */
  windows: string;
  window_count: number;
  state: 'pending' | 'done';
  /** Float32 little-endian, ANNOTATION_FLOATS per annotation (annotations/records.ts). */
  annotations: Buffer | null;
  annotation_count: number;
  completed_by: string | null;
  completed_at: number | null;
}

interface JobDatabase {
  analysis_job: JobTable;
  analysis_unit: UnitTable;
}

export interface JobParams {
  levelIndex: number;
  /** Level pixels per window side (read, then resized to the model input). */
  windowSize: number;
  overlap: number;
  modelInputSize: number;
  levelSpacingMm: number;
  modelSpacingMm: number;
  /** Analysed region in level pixels. */
  region: { x0: number; y0: number; x1: number; y1: number };
  tissueLevelIndex: number | null;
}

export interface JobRecord {
  id: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modelId: string;
  modelVersion: string;
  region: string;
  params: JobParams | null;
  state: JobState;
  reason: string | null;
  unitsTotal: number;
  windowsTotal: number;
  windowsSkipped: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  resultSeriesUid: string | null;
  resultSopUid: string | null;
  duplicateCompletions: number;
}

export interface JobProgress {
  unitsDone: number;
  windowsDone: number;
  annotations: number;
}

export interface UnitRecord {
  jobId: string;
  unitIndex: number;
  windows: string;
  windowCount: number;
  state: 'pending' | 'done';
  annotations: Buffer | null;
  annotationCount: number;
  completedBy: string | null;
  completedAt: number | null;
}

const toJob = (row: JobTable): JobRecord => ({
  id: row.id,
  studyInstanceUid: row.study_uid,
  seriesInstanceUid: row.series_uid,
  modelId: row.model_id,
  modelVersion: row.model_version,
  region: row.region,
  params: row.params === '' ? null : (JSON.parse(row.params) as JobParams),
  state: row.state,
  reason: row.reason,
  unitsTotal: Number(row.units_total),
  windowsTotal: Number(row.windows_total),
  windowsSkipped: Number(row.windows_skipped),
  createdAt: Number(row.created_at),
  startedAt: row.started_at === null ? null : Number(row.started_at),
  finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  resultSeriesUid: row.result_series_uid,
  resultSopUid: row.result_sop_uid,
  duplicateCompletions: Number(row.duplicate_completions),
});

const toUnit = (row: UnitTable): UnitRecord => ({
  jobId: row.job_id,
  unitIndex: Number(row.unit_index),
  windows: row.windows,
  windowCount: Number(row.window_count),
  state: row.state,
  annotations: row.annotations === null ? null : Buffer.from(row.annotations),
  annotationCount: Number(row.annotation_count),
  completedBy: row.completed_by,
  completedAt: row.completed_at === null ? null : Number(row.completed_at),
});

export class JobStore {
  private readonly db: Kysely<JobDatabase>;
  private readonly dialect: 'sqlite' | 'postgres';

  private constructor(private readonly side: SideDatabase<JobDatabase>) {
    this.db = side.db;
    this.dialect = side.dialect;
  }

  static async open(index: IndexConfig): Promise<JobStore> {
    const store = new JobStore(openSideDatabase<JobDatabase>(index));
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  private migrate(): Promise<void> {
    // Several processes (servers, workers) may start at once on one PostgreSQL schema: concurrent
    // `CREATE TABLE IF NOT EXISTS` race (duplicate key in pg_type). One migrates, the others wait.
    return this.side.transaction(async (trx) => {
      if (this.dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('filmless-pacs job migration'))`.execute(trx);
      await this.createTables(trx);
    });
  }

  private async createTables(db: Kysely<JobDatabase>): Promise<void> {
    const blob = this.dialect === 'sqlite' ? 'blob' : 'bytea';
    await db.schema
      .createTable('analysis_job')
      .ifNotExists()
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('study_uid', 'varchar(64)', (c) => c.notNull())
      .addColumn('series_uid', 'varchar(64)', (c) => c.notNull())
      .addColumn('model_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('model_version', 'varchar(32)', (c) => c.notNull())
      .addColumn('region', 'varchar(128)', (c) => c.notNull())
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('units_total', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('windows_total', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('windows_skipped', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('started_at', 'bigint')
      .addColumn('finished_at', 'bigint')
      .addColumn('result_series_uid', 'varchar(64)')
      .addColumn('result_sop_uid', 'varchar(64)')
      .addColumn('duplicate_completions', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('analysis_job_series').ifNotExists().on('analysis_job').columns(['series_uid', 'model_id']).execute();
    await db.schema
      .createTable('analysis_unit')
      .ifNotExists()
      .addColumn('job_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('unit_index', 'integer', (c) => c.notNull())
      .addColumn('windows', 'text', (c) => c.notNull())
      .addColumn('window_count', 'integer', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('annotations', sql.raw(blob))
      .addColumn('annotation_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('completed_by', 'varchar(128)')
      .addColumn('completed_at', 'bigint')
      .addPrimaryKeyConstraint('analysis_unit_pk', ['job_id', 'unit_index'])
      .execute();
  }

  async create(job: Omit<JobRecord, 'params' | 'reason' | 'unitsTotal' | 'windowsTotal' | 'windowsSkipped' | 'startedAt' | 'finishedAt' | 'resultSeriesUid' | 'resultSopUid' | 'duplicateCompletions' | 'state'>): Promise<void> {
    await this.side.write((db) => db
      .insertInto('analysis_job')
      .values({
        id: job.id,
        study_uid: job.studyInstanceUid,
        series_uid: job.seriesInstanceUid,
        model_id: job.modelId,
        model_version: job.modelVersion,
        region: job.region,
        params: '',
        state: 'queued',
        reason: null,
        units_total: 0,
        windows_total: 0,
        windows_skipped: 0,
        created_at: job.createdAt,
        started_at: null,
        finished_at: null,
        result_series_uid: null,
        result_sop_uid: null,
        duplicate_completions: 0,
      })
      .execute());
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = await this.db.selectFrom('analysis_job').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toJob(row);
  }

  /** Jobs of a series (newest first), optionally of one model. */
  async listForSeries(seriesUid: string, modelId?: string): Promise<JobRecord[]> {
    let query = this.db.selectFrom('analysis_job').selectAll().where('series_uid', '=', seriesUid);
    if (modelId !== undefined) query = query.where('model_id', '=', modelId);
    return (await query.orderBy('created_at', 'desc').execute()).map(toJob);
  }

  async listActive(): Promise<JobRecord[]> {
    return (await this.db.selectFrom('analysis_job').selectAll().where('state', 'in', [...ACTIVE_STATES]).orderBy('created_at').execute()).map(toJob);
  }

  /**
   * Stores the plan: unit rows (kept if they exist: a re-delivered plan message changes nothing) and
   * the totals, and moves the job from queued to running. False when the job is no longer queued.
   */
  async savePlan(id: string, params: JobParams, units: { windows: string; windowCount: number }[], skipped: number, now: number): Promise<boolean> {
    return this.side.write(async (db) => {
      for (let i = 0; i < units.length; i += 200) {
        const rows = units.slice(i, i + 200).map((u, k) => ({
          job_id: id,
          unit_index: i + k,
          windows: u.windows,
          window_count: u.windowCount,
          state: 'pending' as const,
          annotations: null,
          annotation_count: 0,
          completed_by: null,
          completed_at: null,
        }));
        await db.insertInto('analysis_unit').values(rows).onConflict((oc) => oc.columns(['job_id', 'unit_index']).doNothing()).execute();
      }
      const result = await db
        .updateTable('analysis_job')
        .set({
          params: JSON.stringify(params),
          units_total: units.length,
          windows_total: units.reduce((sum, u) => sum + u.windowCount, 0),
          windows_skipped: skipped,
          state: 'running',
          started_at: now,
        })
        .where('id', '=', id)
        .where('state', '=', 'queued')
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }

  async getUnit(jobId: string, unitIndex: number): Promise<UnitRecord | undefined> {
    const row = await this.db.selectFrom('analysis_unit').selectAll().where('job_id', '=', jobId).where('unit_index', '=', unitIndex).executeTakeFirst();
    return row === undefined ? undefined : toUnit(row);
  }

  async pendingUnits(jobId: string): Promise<number[]> {
    const rows = await this.db.selectFrom('analysis_unit').select('unit_index').where('job_id', '=', jobId).where('state', '=', 'pending').orderBy('unit_index').execute();
    return rows.map((r) => Number(r.unit_index));
  }

  /** Units of a job in order, one page at a time (bounded memory when reading results). */
  async *units(jobId: string, pageSize = 64): AsyncGenerator<UnitRecord> {
    let from = 0;
    for (;;) {
      const rows = await this.db
        .selectFrom('analysis_unit')
        .selectAll()
        .where('job_id', '=', jobId)
        .where('unit_index', '>=', from)
        .orderBy('unit_index')
        .limit(pageSize)
        .execute();
      for (const row of rows) yield toUnit(row);
      if (rows.length < pageSize) return;
      from = Number(rows[rows.length - 1]!.unit_index) + 1;
    }
  }

  /**
   * Records a unit's result once: true for the delivery that recorded it, false (and the duplicate
   * counted on the job) when the unit was done already.
   */
  async completeUnit(jobId: string, unitIndex: number, annotations: Buffer, count: number, worker: string, now: number): Promise<boolean> {
    return this.side.write(async (db) => {
      const result = await db
        .updateTable('analysis_unit')
        .set({ state: 'done', annotations, annotation_count: count, completed_by: worker, completed_at: now })
        .where('job_id', '=', jobId)
        .where('unit_index', '=', unitIndex)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 1) return true;
      await db.updateTable('analysis_job').set((eb) => ({ duplicate_completions: eb('duplicate_completions', '+', 1) })).where('id', '=', jobId).execute();
      return false;
    });
  }

  async progress(jobId: string): Promise<JobProgress> {
    const row = await this.db
      .selectFrom('analysis_unit')
      .select((eb) => [eb.fn.countAll().as('units'), eb.fn.sum<number>('window_count').as('windows'), eb.fn.sum<number>('annotation_count').as('annotations')])
      .where('job_id', '=', jobId)
      .where('state', '=', 'done')
      .executeTakeFirstOrThrow();
    return { unitsDone: Number(row.units ?? 0), windowsDone: Number(row.windows ?? 0), annotations: Number(row.annotations ?? 0) };
  }

  /** running → finalizing, only when no unit is pending (atomic: one caller wins). */
  async claimFinalization(jobId: string): Promise<boolean> {
    const result = await this.side.write((db) => db
      .updateTable('analysis_job')
      .set({ state: 'finalizing' })
      .where('id', '=', jobId)
      .where('state', '=', 'running')
      .where((eb) => eb.not(eb.exists(eb.selectFrom('analysis_unit').select('unit_index').where('job_id', '=', jobId).where('state', '=', 'pending'))))
      .executeTakeFirst());
    return Number(result.numUpdatedRows) === 1;
  }

  async complete(jobId: string, seriesUid: string, sopUid: string, now: number): Promise<boolean> {
    const result = await this.side.write((db) => db
      .updateTable('analysis_job')
      .set({ state: 'completed', result_series_uid: seriesUid, result_sop_uid: sopUid, finished_at: now })
      .where('id', '=', jobId)
      .where('state', '=', 'finalizing')
      .executeTakeFirst());
    return Number(result.numUpdatedRows) === 1;
  }

  /** Ends an active job as failed or cancelled; false when it had ended already. */
  async end(jobId: string, state: 'failed' | 'cancelled', reason: string, now: number): Promise<boolean> {
    const result = await this.side.write((db) => db
      .updateTable('analysis_job')
      .set({ state, reason, finished_at: now })
      .where('id', '=', jobId)
      .where('state', 'in', [...ACTIVE_STATES])
      .executeTakeFirst());
    return Number(result.numUpdatedRows) === 1;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
