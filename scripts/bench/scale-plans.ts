/**
 * Query plans of the index-growth benchmark's queries (bench-scale.ts): fills a catalog of either engine
 * with the benchmark's corpus by batched row inserts (a fast path: the plan check needs rows, not the
 * ingest path), then runs the real catalog code for each query (QIDO-RS searches, a series' metadata,
 * and one ingest through storeInstance), captures every SQL statement it sends, and asks the engine how
 * it runs each one (SQLite EXPLAIN QUERY PLAN, PostgreSQL EXPLAIN ANALYZE after ANALYZE). A full scan of
 * a big table is a finding: the index that serves the query is missing.
 */
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect, type LogEvent } from 'kysely';
import pg from 'pg';
import type { NewInstance } from '../../server/src/catalog/catalog.js';
import { KyselyCatalog } from '../../server/src/catalog/kysely-catalog.js';
import { migrateToLatest, type SqlEngine } from '../../server/src/catalog/migrations.js';
import { parseQidoQuery } from '../../server/src/catalog/parse-qido-query.js';
import type { CatalogDatabase } from '../../server/src/catalog/schema.js';
import { QUERY_MODALITIES, sopInstanceUidOf, studyPlan, type ScaleShape } from './scale-corpus.js';
import { prng, scaleQueries } from './scale-queries.js';

interface Captured {
  sql: string;
  parameters: readonly unknown[];
}

/** The catalog code of the server on a Kysely that records every statement it runs. */
class CapturingCatalog extends KyselyCatalog {
  constructor(
    db: Kysely<CatalogDatabase>,
    engine: SqlEngine,
    private readonly schema: string | undefined,
  ) {
    super(db, engine);
  }
  get kysely(): Kysely<CatalogDatabase> {
    return this.db;
  }
  async migrate(): Promise<void> {
    if (this.schema !== undefined) await sql`create schema if not exists ${sql.id(this.schema)}`.execute(this.db);
    await migrateToLatest(this.db as Kysely<unknown>, this.engine, this.schema);
  }
  protected inTransaction<T>(work: (trx: Kysely<CatalogDatabase>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }
  protected isRetryable(): boolean {
    return false;
  }
}

export interface PlanTarget {
  engine: SqlEngine;
  catalog: CapturingCatalog;
  /** Statements captured since the last `take()`. */
  take(): Captured[];
  explain(statement: Captured): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * `noSeqScan` (PostgreSQL): plans with enable_seqscan off, so a Seq Scan left in a plan means that no
 * index can serve the statement, whatever the table sizes (a small test index would otherwise be read
 * whole because that is cheaper, not because an index is missing).
 */
export async function openPlanTarget(engine: SqlEngine, where: { file?: string; postgresUrl?: string; schema?: string; noSeqScan?: boolean }): Promise<PlanTarget> {
  let captured: Captured[] = [];
  const log = (event: LogEvent): void => {
    if (event.level === 'query') captured.push({ sql: event.query.sql, parameters: event.query.parameters });
  };
  if (engine === 'sqlite') {
    const database = new Database(where.file ?? ':memory:');
    // As SqliteCatalog opens it: the pragmas decide which indexes LIKE may use.
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
    database.pragma('case_sensitive_like = ON');
    const catalog = new CapturingCatalog(new Kysely<CatalogDatabase>({ dialect: new SqliteDialect({ database }), log }), 'sqlite', undefined);
    await catalog.migrate();
    return {
      engine,
      catalog,
      take: () => [captured, (captured = [])][0]!,
      explain: async (s) => {
        const rows = database.prepare(`explain query plan ${s.sql}`).all(...(s.parameters as unknown[])) as { id: number; parent: number; detail: string }[];
        const depth = new Map<number, number>([[0, 0]]);
        return rows.map((r) => {
          depth.set(r.id, (depth.get(r.parent) ?? 0) + 1);
          return `${'  '.repeat(depth.get(r.id)! - 1)}${r.detail}`;
        });
      },
      close: () => catalog.close(),
    };
  }
  const schema = where.schema!;
  const pool = new pg.Pool({ connectionString: where.postgresUrl, max: 2, options: `-c search_path=${schema}${where.noSeqScan ? ' -c enable_seqscan=off' : ''}` });
  const catalog = new CapturingCatalog(new Kysely<CatalogDatabase>({ dialect: new PostgresDialect({ pool }), log }), 'postgres', schema);
  await catalog.migrate();
  return {
    engine,
    catalog,
    take: () => [captured, (captured = [])][0]!,
    explain: async (s) => {
      // ANALYZE runs the statement: only for reads (a write would be applied twice).
      const analyze = /^\s*select/i.test(s.sql) ? 'analyze, timing off, ' : '';
      const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`explain (${analyze}costs off) ${s.sql}`, s.parameters as unknown[]);
      return rows.map((r) => r['QUERY PLAN']);
    },
    close: async () => {
      await catalog.close();
    },
  };
}

const NOW = '2026-01-01T00:00:00.000Z';
const TS = '1.2.840.10008.1.2.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';

/** A stored instance's attributes JSON, about the size the real ingest writes for these instances. */
function instanceAttributes(z: string): string {
  return JSON.stringify({
    '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
    '00180050': { vr: 'DS', Value: [1.25] },
    '00200032': { vr: 'DS', Value: [-100, -100, Number(z)] },
    '00200037': { vr: 'DS', Value: [1, 0, 0, 0, 1, 0] },
    '00201041': { vr: 'DS', Value: [Number(z)] },
    '00280030': { vr: 'DS', Value: [0.7, 0.7] },
    '00281050': { vr: 'DS', Value: [40] },
    '00281051': { vr: 'DS', Value: [400] },
  });
}

/**
 * Studies 0..studies-1 of the corpus as index rows, in batches (one transaction per batch of studies),
 * then ANALYZE so the planner knows the sizes.
 */
export async function fillIndex(target: PlanTarget, root: string, shape: ScaleShape, studies: number): Promise<void> {
  const db = target.catalog.kysely;
  const patientIds = new Map<number, number>();
  const STUDIES_PER_BATCH = Math.max(1, Math.floor(2000 / (shape.seriesPerStudy * shape.instancesPerSeries)));
  for (let first = 0; first < studies; first += STUDIES_PER_BATCH) {
    await db.transaction().execute(async (trx) => {
      for (let k = first; k < Math.min(studies, first + STUDIES_PER_BATCH); k++) {
        const s = studyPlan(root, shape, k);
        let patientFk = patientIds.get(s.patientIndex);
        if (patientFk === undefined) {
          const row = await trx
            .insertInto('patients')
            .values({ patient_id: s.patientId, issuer: '', patient_name: s.patientName, patient_name_search: s.patientName.toUpperCase(), birth_date: s.birthDate, sex: s.sex, other_ids: null, version: 0 })
            .returning('id')
            .executeTakeFirstOrThrow();
          patientFk = row.id;
          patientIds.set(s.patientIndex, patientFk);
        }
        const perStudy = shape.seriesPerStudy * shape.instancesPerSeries;
        const study = await trx
          .insertInto('studies')
          .values({
            study_uid: s.studyInstanceUid, patient_fk: patientFk, study_date: s.studyDate, study_time: s.studyTime, accession_number: s.accessionNumber,
            referring_physician_name: 'REFERRING^DOCTOR', referring_physician_name_search: 'REFERRING^DOCTOR', study_description: s.description, study_id: String(k + 1),
            modalities: [...s.modalities].sort().join('\\'), specific_character_set: 'ISO_IR 100', timezone_offset: null,
            num_series: shape.seriesPerStudy, num_instances: perStudy, attributes: '{}', created_at: NOW,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        for (const se of s.series) {
          const series = await trx
            .insertInto('series')
            .values({
              series_uid: se.seriesInstanceUid, study_fk: study.id, modality: se.modality, series_description: se.description, series_number: se.seriesNumber,
              pps_start_date: null, pps_start_time: null, specific_character_set: 'ISO_IR 100', timezone_offset: null, request_attributes: null,
              num_instances: shape.instancesPerSeries, attributes: '{}', created_at: NOW,
            })
            .returning('id')
            .executeTakeFirstOrThrow();
          const rows = Array.from({ length: shape.instancesPerSeries }, (_, i) => {
            const sop = sopInstanceUidOf(se, i);
            return {
              sop_instance_uid: sop, series_fk: series.id, sop_class_uid: CT, instance_number: i + 1, pixel_rows: 8, pixel_columns: 8, bits_allocated: 16,
              number_of_frames: 1, transfer_syntax_uid: TS, specific_character_set: 'ISO_IR 100', timezone_offset: null, blob_key: `${sop}.dcm`, blob_size: 1284,
              checksum: null, pixel_data: null, attributes: instanceAttributes((i * 1.25).toFixed(2)), created_at: NOW, identity_hash: null,
            };
          });
          await trx.insertInto('instances').values(rows).execute();
        }
      }
    });
  }
  await sql`analyze`.execute(db);
}

/** A new instance of a stored study for storeInstance (the ingest statements' plans). */
function newInstanceOf(root: string, shape: ScaleShape, k: number): NewInstance {
  const s = studyPlan(root, shape, k);
  const series = `${s.studyInstanceUid}.99`;
  const sop = `${series}.1`;
  const str = (vr: string, value: string) => ({ vr, Value: [value] });
  return {
    blobKey: `${sop}.dcm`,
    blobSize: 1284,
    header: {
      sopClassUid: CT,
      sopInstanceUid: sop,
      studyInstanceUid: s.studyInstanceUid,
      seriesInstanceUid: series,
      transferSyntaxUid: TS,
      dataset: {
        '00080016': str('UI', CT), '00080018': str('UI', sop), '00080020': str('DA', s.studyDate), '00080050': str('SH', s.accessionNumber),
        '00080060': str('CS', 'CT'), '00100010': { vr: 'PN', Value: [{ Alphabetic: s.patientName }] }, '00100020': str('LO', s.patientId),
        '0020000D': str('UI', s.studyInstanceUid), '0020000E': str('UI', series), '00200013': { vr: 'IS', Value: [1] },
      },
      numberOfFrames: 1,
      rows: 8,
      columns: 8,
      bitsAllocated: 16,
      samplesPerPixel: 1,
      pixelData: { tag: '7FE00010', valueOffset: 1156, valueLength: 128, encapsulated: false, frames: [[[1156, 128]]], isVideo: false },
    },
  } as NewInstance;
}

export interface QueryPlan {
  query: string;
  statements: Array<{ sql: string; plan: string[]; fullScans: string[] }>;
}

const BIG_TABLES = ['patients', 'studies', 'series', 'instances', 'patient_other_ids'];
const ALIASES: Record<string, string> = { p: 'patients', pi: 'patients', st: 'studies', se: 'series', m: 'series', i: 'instances', o: 'patient_other_ids' };

/** Plan lines that read a whole big table (SQLite `SCAN t` without an index; PostgreSQL `Seq Scan on t`). */
export function fullScansOf(engine: SqlEngine, plan: string[]): string[] {
  return plan.filter((line) => {
    if (engine === 'sqlite') {
      const m = /^\s*SCAN (\w+)(?: AS (\w+))?( USING (?:COVERING )?INDEX)?/.exec(line);
      if (!m || m[3]) return false;
      return BIG_TABLES.includes(ALIASES[m[1]!] ?? m[1]!);
    }
    const m = /Seq Scan on (\w+)/.exec(line);
    return m !== null && BIG_TABLES.includes(m[1]!);
  });
}

/** Runs each benchmark query through the catalog code and explains every statement it sent. */
export async function explainQueries(target: PlanTarget, root: string, shape: ScaleShape, studies: number): Promise<QueryPlan[]> {
  const random = prng(7);
  const pick = (): number => Math.floor(random() * studies);
  const limits = { defaultLimit: 100, maxLimit: 1000 };
  const out: QueryPlan[] = [];
  const explainAll = async (query: string): Promise<void> => {
    const statements = [];
    for (const s of target.take()) {
      if (!/^\s*(select|insert|update|delete|with)/i.test(s.sql)) continue;
      const plan = await target.explain(s);
      statements.push({ sql: s.sql, plan, fullScans: fullScansOf(target.engine, plan) });
    }
    out.push({ query, statements });
  };
  // ModalitiesInStudy once per modality: the plan depends on how common the modality is.
  const calls = scaleQueries(root, shape).flatMap((q) =>
    q.id === 'modalities'
      ? QUERY_MODALITIES.map((modality, m) => ({ label: q.label.replace('{modality}', modality), call: q.call(studies, () => m) }))
      : [{ label: q.label, call: q.call(studies, pick) }],
  );
  for (const { label, call } of calls) {
    const url = new URL(call.path, 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    target.take();
    if (parts.at(-1) === 'metadata') {
      await target.catalog.listInstancesWithAttributes({ studyInstanceUid: parts[1]!, seriesInstanceUid: parts[3]! });
    } else {
      const level = parts.at(-1) === 'studies' ? 'study' : parts.at(-1) === 'series' ? 'series' : 'instance';
      const params: Record<string, string> = Object.fromEntries(url.searchParams.entries());
      const result = await target.catalog.search(parseQidoQuery(level, { studyInstanceUid: parts[1], seriesInstanceUid: parts[3] }, params, limits));
      if (result.matches.length !== call.expectedCount) throw new Error(`${call.path}: ${result.matches.length} matches, expected ${call.expectedCount}`);
    }
    await explainAll(label);
  }
  target.take();
  const outcome = await target.catalog.storeInstance(newInstanceOf(root, shape, pick()));
  if (outcome.status !== 'stored') throw new Error(`storeInstance: ${JSON.stringify(outcome)}`);
  await explainAll('STOW-RS ingest of one instance (new series of a stored study): storeInstance');
  return out;
}

export function plansMarkdown(engine: SqlEngine, instances: number, plans: QueryPlan[]): string {
  const lines = [`### ${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${instances} instances`, ''];
  for (const p of plans) {
    lines.push(`**${p.query}**`, '');
    for (const s of p.statements) {
      lines.push('```', s.sql.replace(/\s+/g, ' ').slice(0, 400), '--', ...s.plan, '```');
      if (s.fullScans.length) lines.push(`FULL SCAN: ${s.fullScans.map((l) => l.trim()).join('; ')}`, '');
    }
  }
  return lines.join('\n') + '\n';
}
