/**
 * The FHIR link's own tables in the index database (a Kysely instance of its own, created idempotently
 * at start, like the job store and the audit trail):
 *
 * - `fhir_outbox`: the durable outbox of the push to the EMR. One row per thing to deliver (a study's
 *   ImagingStudy, a report's DiagnosticReport with its ImagingStudy), written before anything is sent, so
 *   a push survives restarts and outages of either side. A sender claims a due row with one conditional
 *   UPDATE (a lease: other processes and redelivered queue messages skip it), sends, and records the
 *   outcome: `sent`, or back to `pending` with the next attempt time (exponential backoff), or `failed`
 *   after the last attempt. `generation` is bumped when the row is requested again (a study that gained
 *   series while it was being sent): a send marks the row sent only for the generation it claimed.
 * - `fhir_patient_alias`: Patient logical ids that are hashes (keys too long to encode, fhir-ids.ts).
 *
 * Every write is one conditional statement (or two), through the side database's `write`: on SQLite in
 * the process's write gate of the file, waiting for other writers asynchronously
 * (catalog/sqlite-write-gate.ts).
 */
import { sql, type Kysely } from 'kysely';
import { openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';
import type { PatientKey } from '../dicom/patient-identity.js';
import { AppError, isAppError } from '../errors.js';

export type OutboxState = 'pending' | 'sent' | 'failed';
export type OutboxKind = 'study' | 'report';

interface OutboxTable {
  id: string;
  kind: OutboxKind;
  /** Study Instance UID (kind study), report id (kind report). */
  subject: string;
  study_uid: string;
  state: OutboxState;
  generation: number;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  /** Why the last attempt failed: HTTP status, FHIR issue codes, network error codes; never patient data. */
  last_error: string | null;
  last_status: number | null;
  /** JSON: the EMR's references of what was delivered ({"Patient":"Patient/12",…}). */
  result: string | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
}

interface AliasTable {
  id: string;
  patient_id: string;
  issuer: string;
}

interface FhirDatabase {
  fhir_outbox: OutboxTable;
  fhir_patient_alias: AliasTable;
}

export interface OutboxEntry {
  id: string;
  kind: OutboxKind;
  subject: string;
  studyInstanceUid: string;
  state: OutboxState;
  generation: number;
  attempts: number;
  nextAttemptAt: number;
  leaseUntil: number | null;
  lastError: string | null;
  lastStatus: number | null;
  result: Record<string, string> | null;
  createdAt: number;
  updatedAt: number;
  sentAt: number | null;
}

function toEntry(row: OutboxTable): OutboxEntry {
  let result: Record<string, string> | null = null;
  if (row.result !== null) {
    try {
      result = JSON.parse(row.result) as Record<string, string>;
    } catch {
      result = null;
    }
  }
  const num = (value: number | null) => (value === null ? null : Number(value));
  return {
    id: row.id,
    kind: row.kind,
    subject: row.subject,
    studyInstanceUid: row.study_uid,
    state: row.state,
    generation: Number(row.generation),
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    leaseUntil: num(row.lease_until),
    lastError: row.last_error,
    lastStatus: num(row.last_status),
    result,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    sentAt: num(row.sent_at),
  };
}

function storeFailure(err: unknown): unknown {
  return isAppError(err) ? err : new AppError('INDEX_FAILURE', 'Index database error in the FHIR outbox', { cause: err });
}

export class FhirStore {
  private readonly db: Kysely<FhirDatabase>;
  private readonly dialect: 'sqlite' | 'postgres';

  private constructor(private readonly side: SideDatabase<FhirDatabase>) {
    this.db = side.db;
    this.dialect = side.dialect;
  }

  static async open(index: IndexConfig): Promise<FhirStore> {
    const store = new FhirStore(openSideDatabase<FhirDatabase>(index));
    try {
      await store.run(() => store.migrate());
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Runs `work`, a database failure becoming INDEX_FAILURE. */
  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw storeFailure(err);
    }
  }

  /** Runs writes (see the module comment), a database failure becoming INDEX_FAILURE. */
  private write<T>(work: (db: Kysely<FhirDatabase>) => Promise<T>): Promise<T> {
    return this.run(() => this.side.write(work));
  }

  private async migrate(): Promise<void> {
    const create = async (db: Kysely<FhirDatabase>) => {
      await db.schema
        .createTable('fhir_outbox')
        .ifNotExists()
        .addColumn('id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('kind', 'varchar(16)', (c) => c.notNull())
        .addColumn('subject', 'varchar(128)', (c) => c.notNull())
        .addColumn('study_uid', 'varchar(64)', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_until', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('last_status', 'integer')
        .addColumn('result', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('sent_at', 'bigint')
        .execute();
      await db.schema.createIndex('fhir_outbox_due').ifNotExists().on('fhir_outbox').columns(['state', 'next_attempt_at']).execute();
      await db.schema
        .createTable('fhir_patient_alias')
        .ifNotExists()
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('patient_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('issuer', 'varchar(64)', (c) => c.notNull())
        .execute();
    };
    if (this.dialect === 'postgres') {
      // Several processes may start at once on one schema: create under an advisory lock.
      await this.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('filmless-pacs fhir schema'))`.execute(trx);
        await create(trx);
      });
    } else {
      await this.side.write(create);
    }
  }

  /**
   * Asks for a delivery: a new pending row, or the existing row pending again (generation + 1). A row
   * already waiting for a retry keeps its retry time; otherwise it becomes due at `dueAt`.
   */
  async enqueue(item: { id: string; kind: OutboxKind; subject: string; studyInstanceUid: string }, dueAt: number, now = Date.now()): Promise<void> {
    return this.write(async (db) => {
      await db
        .insertInto('fhir_outbox')
        .values({
          id: item.id,
          kind: item.kind,
          subject: item.subject,
          study_uid: item.studyInstanceUid,
          state: 'pending',
          generation: 0,
          attempts: 0,
          next_attempt_at: dueAt,
          lease_until: null,
          last_error: null,
          last_status: null,
          result: null,
          created_at: now,
          updated_at: now,
          sent_at: null,
        })
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            generation: sql`${sql.ref('fhir_outbox.generation')} + 1`,
            next_attempt_at: sql`case when ${sql.ref('fhir_outbox.state')} = 'pending' and ${sql.ref('fhir_outbox.attempts')} > 0 then ${sql.ref('fhir_outbox.next_attempt_at')} else ${dueAt} end`,
            attempts: sql`case when ${sql.ref('fhir_outbox.state')} = 'pending' then ${sql.ref('fhir_outbox.attempts')} else 0 end`,
            state: 'pending',
            updated_at: now,
          }),
        )
        .execute();
    });
  }

  /** Ids of pending rows that are due and not leased, oldest first. */
  async due(now: number, limit: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.db
        .selectFrom('fhir_outbox')
        .select('id')
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .execute();
      return rows.map((row) => row.id);
    });
  }

  /**
   * Claims a due, unleased pending row for `leaseMs` and counts the attempt: one conditional UPDATE,
   * atomic across processes. Undefined when another sender has it, it is not due, or it is done.
   */
  async claim(id: string, now: number, leaseMs: number): Promise<OutboxEntry | undefined> {
    const result = await this.write((db) =>
      db
        .updateTable('fhir_outbox')
        .set({ lease_until: now + leaseMs, attempts: sql`${sql.ref('attempts')} + 1`, updated_at: now })
        .where('id', '=', id)
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .executeTakeFirst(),
    );
    if (Number(result.numUpdatedRows) !== 1) return undefined;
    return await this.get(id);
  }

  /** Delivered: `sent`, unless the row was requested again meanwhile (then pending, due now). */
  async markSent(entry: OutboxEntry, result: Record<string, string>, now = Date.now()): Promise<boolean> {
    return this.write(async (db) => {
      const done = await db
        .updateTable('fhir_outbox')
        .set({ state: 'sent', lease_until: null, last_error: null, last_status: null, result: JSON.stringify(result), sent_at: now, updated_at: now })
        .where('id', '=', entry.id)
        .where('generation', '=', entry.generation)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) === 1) return true;
      await db
        .updateTable('fhir_outbox')
        .set({ lease_until: null, attempts: 0, result: JSON.stringify(result), updated_at: now })
        .where('id', '=', entry.id)
        .execute();
      return false;
    });
  }

  /** A failed attempt: pending again from `retryAt`, or `failed` for good when `retryAt` is null. */
  async markAttemptFailed(entry: OutboxEntry, error: string, status: number | null, retryAt: number | null, now = Date.now()): Promise<void> {
    return this.write(async (db) => {
      await db
        .updateTable('fhir_outbox')
        .set({
          state: retryAt === null ? 'failed' : 'pending',
          next_attempt_at: retryAt ?? now,
          lease_until: null,
          last_error: error.slice(0, 500),
          last_status: status,
          updated_at: now,
        })
        .where('id', '=', entry.id)
        .execute();
    });
  }

  /** An administrator asks for a failed (or sent) entry again: pending, attempts from zero, due now. */
  async retry(id: string, now = Date.now()): Promise<OutboxEntry | undefined> {
    await this.write((db) =>
      db
        .updateTable('fhir_outbox')
        .set({ state: 'pending', attempts: 0, next_attempt_at: now, lease_until: null, generation: sql`${sql.ref('generation')} + 1`, updated_at: now })
        .where('id', '=', id)
        .where('state', '!=', 'pending')
        .execute(),
    );
    return await this.get(id);
  }

  async get(id: string): Promise<OutboxEntry | undefined> {
    return this.run(async () => {
      const row = await this.db.selectFrom('fhir_outbox').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : toEntry(row);
    });
  }

  /** Entries for administrators, most recently changed first. */
  async list(filter: { state?: OutboxState; limit: number; offset: number }): Promise<OutboxEntry[]> {
    return this.run(async () => {
      let query = this.db.selectFrom('fhir_outbox').selectAll();
      if (filter.state !== undefined) query = query.where('state', '=', filter.state);
      const rows = await query.orderBy('updated_at', 'desc').orderBy('id').limit(filter.limit).offset(filter.offset).execute();
      return rows.map(toEntry);
    });
  }

  async counts(): Promise<Record<OutboxState, number>> {
    return this.run(async () => {
      const rows = await this.db.selectFrom('fhir_outbox').select(['state', sql<number | string>`count(*)`.as('n')]).groupBy('state').execute();
      const counts: Record<OutboxState, number> = { pending: 0, sent: 0, failed: 0 };
      for (const row of rows) counts[row.state] = Number(row.n);
      return counts;
    });
  }

  /** Records the key behind a hashed Patient id (idempotent). */
  async rememberPatientAlias(id: string, key: PatientKey): Promise<void> {
    return this.write(async (db) => {
      await db.insertInto('fhir_patient_alias').values({ id, patient_id: key.patientId, issuer: key.issuer }).onConflict((oc) => oc.column('id').doNothing()).execute();
    });
  }

  async patientAlias(id: string): Promise<PatientKey | undefined> {
    return this.run(async () => {
      const row = await this.db.selectFrom('fhir_patient_alias').select(['patient_id', 'issuer']).where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : { patientId: row.patient_id, issuer: row.issuer };
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
