/**
 * The append-only audit store: two tables in the archive's own database (the SQLite file or the
 * PostgreSQL schema of PACS_INDEX), through a Kysely instance of their own (like pathology/job-store.ts),
 * so the catalog's schema and migrations stay untouched.
 *
 * - `audit_event`: one row per record; the searchable facts as columns, the whole record as JSON.
 * - `audit_event_study`: (event, study) pairs, so "everything that touched this study" is an index
 *   lookup rather than a scan of the JSON.
 *
 * Append-only twice over: the interface has no update or delete, and triggers in the database refuse
 * UPDATE and DELETE (and TRUNCATE on PostgreSQL) on both tables, whoever sends them. A database owner
 * can still drop the triggers: the syslog export (syslog-sink.ts) is the copy outside this database.
 */
import { sql, type Kysely } from 'kysely';
import { openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import { StatementTemplates } from '../catalog/statement-templates.js';
import type { IndexConfig } from '../config.js';
import { studiesOf, type AuditAction, type AuditRecord } from './audit-record.js';

interface EventTable {
  id: number;
  time: number;
  action: string;
  outcome: number;
  subject: string;
  interface: string;
  client_address: string;
  /** The whole AuditRecord (without id) as JSON. */
  record: string;
}

interface EventStudyTable {
  event_id: number;
  study_uid: string;
}

interface AuditDatabase {
  audit_event: EventTable;
  audit_event_study: EventStudyTable;
}

export interface AuditFilter {
  /** UTC milliseconds, inclusive. */
  from?: number;
  /** UTC milliseconds, exclusive. */
  to?: number;
  subject?: string;
  action?: AuditAction;
  study?: string;
  /** Records with a smaller id only (paging backwards from the newest). */
  beforeId?: number;
  limit: number;
}

export interface AuditStore {
  /** Appends the records in one transaction (all or none); returns them with their ids, in order. */
  append(records: readonly AuditRecord[]): Promise<AuditRecord[]>;
  /** Newest first. */
  list(filter: AuditFilter): Promise<AuditRecord[]>;
  get(id: number): Promise<AuditRecord | undefined>;
  close(): Promise<void>;
}

const REFUSAL = 'audit records are append-only';

export class KyselyAuditStore implements AuditStore {
  private readonly db: Kysely<AuditDatabase>;
  private readonly dialect: 'sqlite' | 'postgres';
  /** The event insert, run for every audited access: compiled once (catalog/statement-templates.ts). */
  private readonly templates = new StatementTemplates();

  private constructor(private readonly side: SideDatabase<AuditDatabase>) {
    this.db = side.db;
    this.dialect = side.dialect;
  }

  static async open(index: IndexConfig): Promise<KyselyAuditStore> {
    const store = new KyselyAuditStore(openSideDatabase<AuditDatabase>(index));
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    if (this.dialect === 'sqlite') {
      await this.side.write(async (db) => {
        await this.createTables(db);
        for (const table of ['audit_event', 'audit_event_study']) {
          for (const operation of ['UPDATE', 'DELETE']) {
            await sql
              .raw(`CREATE TRIGGER IF NOT EXISTS ${table}_no_${operation.toLowerCase()} BEFORE ${operation} ON ${table} BEGIN SELECT RAISE(ABORT, '${REFUSAL}'); END`)
              .execute(db);
          }
        }
      });
      return;
    }
    // Several processes may start at once: one migrates, the others wait (transaction-scoped lock).
    await this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('filmless-pacs audit migration'))`.execute(trx);
      await this.createTables(trx);
      await sql
        .raw(`CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '${REFUSAL}' USING ERRCODE = 'insufficient_privilege'; END $$`)
        .execute(trx);
      for (const table of ['audit_event', 'audit_event_study']) {
        await sql.raw(`CREATE OR REPLACE TRIGGER ${table}_no_change BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()`).execute(trx);
        await sql.raw(`CREATE OR REPLACE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()`).execute(trx);
      }
    });
  }

  private async createTables(db: Kysely<AuditDatabase>): Promise<void> {
    const sqlite = this.dialect === 'sqlite';
    await db.schema
      .createTable('audit_event')
      .ifNotExists()
      .addColumn('id', sqlite ? 'integer' : 'bigserial', (c) => (sqlite ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('time', 'bigint', (c) => c.notNull())
      .addColumn('action', 'varchar(32)', (c) => c.notNull())
      .addColumn('outcome', 'integer', (c) => c.notNull())
      .addColumn('subject', 'varchar(256)', (c) => c.notNull())
      .addColumn('interface', 'varchar(16)', (c) => c.notNull())
      .addColumn('client_address', 'varchar(64)', (c) => c.notNull())
      .addColumn('record', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_event_time').ifNotExists().on('audit_event').column('time').execute();
    await db.schema.createIndex('audit_event_subject').ifNotExists().on('audit_event').columns(['subject', 'id']).execute();
    await db.schema.createIndex('audit_event_action').ifNotExists().on('audit_event').columns(['action', 'id']).execute();
    await db.schema
      .createTable('audit_event_study')
      .ifNotExists()
      .addColumn('event_id', 'bigint', (c) => c.notNull())
      .addColumn('study_uid', 'varchar(64)', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_event_study_uid').ifNotExists().on('audit_event_study').columns(['study_uid', 'event_id']).execute();
  }

  async append(records: readonly AuditRecord[]): Promise<AuditRecord[]> {
    if (records.length === 0) return [];
    return this.side.transaction(async (trx) => {
      const written: AuditRecord[] = [];
      const studies: EventStudyTable[] = [];
      for (const record of records) {
        const { id: _ignored, ...content } = record;
        const { rows } = await this.templates.execute(
          trx,
          'appendEvent',
          [content.time, content.action, content.outcome, content.who.subject.slice(0, 256), content.interface, content.clientAddress.slice(0, 64), JSON.stringify(content)],
          (slot) =>
            trx
              .insertInto('audit_event')
              .values({ time: slot(0), action: slot(1), outcome: slot(2), subject: slot(3), interface: slot(4), client_address: slot(5), record: slot(6) } as never)
              .returning('id'),
        );
        if (rows[0] === undefined) throw new Error('the audit event insert returned no id');
        const id = Number(rows[0].id);
        for (const study of studiesOf(content)) studies.push({ event_id: id, study_uid: study.slice(0, 64) });
        written.push({ id, ...content });
      }
      for (let i = 0; i < studies.length; i += 500) await trx.insertInto('audit_event_study').values(studies.slice(i, i + 500)).execute();
      return written;
    });
  }

  async list(filter: AuditFilter): Promise<AuditRecord[]> {
    let query = this.db.selectFrom('audit_event').select(['id', 'record']);
    if (filter.from !== undefined) query = query.where('time', '>=', filter.from);
    if (filter.to !== undefined) query = query.where('time', '<', filter.to);
    if (filter.subject !== undefined) query = query.where('subject', '=', filter.subject);
    if (filter.action !== undefined) query = query.where('action', '=', filter.action);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
    if (filter.study !== undefined) {
      const study = filter.study;
      query = query.where('id', 'in', this.db.selectFrom('audit_event_study').select('event_id').where('study_uid', '=', study));
    }
    const rows = await query.orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map(toRecord);
  }

  async get(id: number): Promise<AuditRecord | undefined> {
    const row = await this.db.selectFrom('audit_event').select(['id', 'record']).where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toRecord(row);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

function toRecord(row: { id: number; record: string }): AuditRecord {
  return { id: Number(row.id), ...(JSON.parse(row.record) as Omit<AuditRecord, 'id'>) };
}
