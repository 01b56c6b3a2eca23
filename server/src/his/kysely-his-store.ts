/**
 * The hospital link's store on the index database (the SQLite file or the PostgreSQL schema of
 * PACS_INDEX), through a Kysely instance of its own like pathology/job-store.ts and audit/audit-store.ts:
 * the catalog's schema and migrations stay untouched. Tables, created idempotently at open
 * (PostgreSQL: under an advisory lock, several processes may start at once):
 *
 * - `his_patient`: the HIS's identity of each patient, keyed by Patient ID + issuer ('' when none), with
 *   an upper-cased, NFC-normalised copy of the name for case-insensitive matching (`name_search`, as the
 *   catalog keeps for PN: the first non-empty component group).
 * - `his_patient_other_id`: every other identifier of a patient with its issuer (the national citizen
 *   ID), so a patient is found by any of them.
 * - `his_order`: one row per order = requested procedure + scheduled procedure step, with its state.
 * - `his_order_series`: series performed for an order (MPPS, or instances stored with its accession
 *   number), with their study.
 * - `his_mpps`: Modality Performed Procedure Steps as N-CREATE / N-SET left them.
 * - `hl7_message`: the message control IDs applied, per sending application, with their outcome.
 *
 * Transactions: SQLite `BEGIN IMMEDIATE` (the write lock is taken first, so a command that reads then
 * writes never fails on a snapshot another connection moved on), in the process's write gate of the
 * file (catalog/sqlite-write-gate.ts: a command's transaction spans awaits, and the other connections
 * of the process wait for it asynchronously, not in SQLite's busy handler); PostgreSQL a transaction
 * that first takes a transaction-scoped advisory lock, so HIS commands are applied one at a time across
 * processes (they are few; two messages about one patient never interleave).
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type SqlBool, type Expression, type ExpressionBuilder } from 'kysely';
import { createSideTables, opened, openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import { likePattern } from '../catalog/match-sql.js';
import { StatementTemplates } from '../catalog/statement-templates.js';
import type { IndexConfig } from '../config.js';
import type { OtherPatientId, PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { AppError } from '../errors.js';
import type { CodedValue, Order, OrderInput, StepStatus } from './his-model.js';
import type { HisStore, HisTransaction, LoggedMessage, PerformedProcedureStep, WorklistItem, WorklistQuery } from './his-store.js';

interface PatientTable {
  patient_id: string;
  issuer: string;
  name: string | null;
  name_search: string | null;
  birth_date: string | null;
  sex: string | null;
  /** JSON list of OtherPatientId (the order is kept). */
  other_ids: string;
  created_at: number;
  updated_at: number;
}

interface PatientOtherIdTable {
  other_id: string;
  other_issuer: string;
  patient_id: string;
  issuer: string;
}

interface OrderTable {
  id: string;
  patient_id: string;
  issuer: string;
  placer_order_number: string | null;
  filler_order_number: string | null;
  accession_number: string;
  requested_procedure_id: string;
  requested_procedure_description: string | null;
  /** JSON CodedValue or null. */
  requested_procedure_code: string | null;
  scheduled_procedure_step_id: string;
  scheduled_procedure_step_description: string | null;
  modality: string;
  scheduled_station_ae_title: string | null;
  /** As the HIS sent it: 'YYYYMMDD[HHMM[SS]]'. */
  scheduled_start: string;
  /** Matching columns: 'YYYYMMDD' and 'HHMMSS' (null when only a date was given). */
  scheduled_date: string;
  scheduled_time: string | null;
  referring_physician_name: string | null;
  performing_physician_name: string | null;
  study_instance_uid: string;
  status: StepStatus;
  mpps_sop_instance_uid: string | null;
  created_at: number;
  updated_at: number;
}

interface OrderSeriesTable {
  order_id: string;
  series_uid: string;
  /** The study the series was stored in (may differ from the order's Study Instance UID); null when unknown. */
  study_uid: string | null;
  added_at: number;
}

interface MppsTable {
  sop_instance_uid: string;
  status: PerformedProcedureStep['status'];
  /** JSON lists. */
  order_ids: string;
  performed_series: string;
  attributes: string;
  updated_at: number;
}

interface MessageTable {
  sending_application: string;
  message_control_id: string;
  ack_code: string;
  outcome: string;
  received_at: number;
}

interface HisDatabase {
  his_patient: PatientTable;
  his_patient_other_id: PatientOtherIdTable;
  his_order: OrderTable;
  his_order_series: OrderSeriesTable;
  his_mpps: MppsTable;
  hl7_message: MessageTable;
}

type Db = Kysely<HisDatabase>;

/**
 * The case-insensitive search key of a PN string (stored or queried): its first non-empty component
 * group without trailing '^', NFC-normalised (HL7 senders may decompose Vietnamese diacritics) and
 * upper-cased by Unicode rules: "Nguyễn^Văn Đức" → "NGUYỄN^VĂN ĐỨC".
 */
export function personNameSearchKey(name: string | null): string | null {
  if (name === null) return null;
  const group = name
    .normalize('NFC')
    .split('=')
    .map((g) => g.trim().replace(/\^+$/, ''))
    .find((g) => g !== '');
  return group === undefined ? null : group.toUpperCase();
}

/** A new Study Instance UID: `2.25.` and a random UUID as one decimal number (PS3.5 B.2). */
export function newStudyInstanceUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}

const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

/** 'YYYYMMDD[HHMM[SS]]' → the matching columns. */
function splitStart(start: string): { date: string; time: string | null } {
  const date = start.slice(0, 8);
  const time = start.length > 8 ? start.slice(8, 14).padEnd(6, '0') : null;
  return { date, time };
}

function toPatient(row: PatientTable): PatientIdentity {
  return {
    patientId: row.patient_id,
    issuer: row.issuer,
    name: row.name,
    birthDate: row.birth_date,
    sex: row.sex,
    otherIds: JSON.parse(row.other_ids) as OtherPatientId[],
  };
}

function toOrder(row: OrderTable, performedSeries: string[]): Order {
  return {
    id: row.id,
    patient: { patientId: row.patient_id, issuer: row.issuer },
    placerOrderNumber: row.placer_order_number,
    fillerOrderNumber: row.filler_order_number,
    accessionNumber: row.accession_number,
    requestedProcedureId: row.requested_procedure_id,
    requestedProcedureDescription: row.requested_procedure_description,
    requestedProcedureCode: row.requested_procedure_code === null ? null : (JSON.parse(row.requested_procedure_code) as CodedValue),
    scheduledProcedureStepId: row.scheduled_procedure_step_id,
    scheduledProcedureStepDescription: row.scheduled_procedure_step_description,
    modality: row.modality,
    scheduledStationAeTitle: row.scheduled_station_ae_title,
    scheduledStart: row.scheduled_start,
    referringPhysicianName: row.referring_physician_name,
    performingPhysicianName: row.performing_physician_name,
    studyInstanceUid: row.study_instance_uid,
    status: row.status,
    mppsSopInstanceUid: row.mpps_sop_instance_uid,
    performedSeries,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

function toStep(row: MppsTable): PerformedProcedureStep {
  return {
    sopInstanceUid: row.sop_instance_uid,
    status: row.status,
    orderIds: JSON.parse(row.order_ids) as string[],
    performedSeries: JSON.parse(row.performed_series) as string[],
    attributes: JSON.parse(row.attributes) as Record<string, unknown>,
    updatedAt: iso(row.updated_at),
  };
}

/** The columns an OrderInput sets (creation and change alike). */
function orderColumns(order: OrderInput) {
  const { date, time } = splitStart(order.scheduledStart);
  return {
    placer_order_number: order.placerOrderNumber,
    filler_order_number: order.fillerOrderNumber,
    accession_number: order.accessionNumber,
    requested_procedure_id: order.requestedProcedureId,
    requested_procedure_description: order.requestedProcedureDescription,
    requested_procedure_code: order.requestedProcedureCode === null ? null : JSON.stringify(order.requestedProcedureCode),
    scheduled_procedure_step_id: order.scheduledProcedureStepId,
    scheduled_procedure_step_description: order.scheduledProcedureStepDescription,
    modality: order.modality,
    scheduled_station_ae_title: order.scheduledStationAeTitle,
    scheduled_start: order.scheduledStart,
    scheduled_date: date,
    scheduled_time: time,
    referring_physician_name: order.referringPhysicianName,
    performing_physician_name: order.performingPhysicianName,
  };
}

// Reads shared by the store and its transactions (same statements, on the pool or the transaction).

async function readPatient(db: Db, key: PatientKey): Promise<PatientIdentity | undefined> {
  const row = await db.selectFrom('his_patient').selectAll().where('patient_id', '=', key.patientId).where('issuer', '=', key.issuer).executeTakeFirst();
  return row === undefined ? undefined : toPatient(row);
}

async function performedSeriesOf(db: Db, orderIds: readonly string[]): Promise<Map<string, string[]>> {
  const byOrder = new Map<string, string[]>();
  for (let i = 0; i < orderIds.length; i += 500) {
    const rows = await db
      .selectFrom('his_order_series')
      .select(['order_id', 'series_uid'])
      .where('order_id', 'in', orderIds.slice(i, i + 500))
      .orderBy('added_at')
      .orderBy('series_uid')
      .execute();
    for (const row of rows) byOrder.set(row.order_id, [...(byOrder.get(row.order_id) ?? []), row.series_uid]);
  }
  return byOrder;
}

async function ordersOfRows(db: Db, rows: OrderTable[]): Promise<Order[]> {
  if (rows.length === 0) return [];
  const series = await performedSeriesOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((row) => toOrder(row, series.get(row.id) ?? []));
}

async function readOrder(db: Db, column: 'id' | 'placer_order_number' | 'accession_number', value: string): Promise<Order | undefined> {
  const row = await db.selectFrom('his_order').selectAll().where(column, '=', value).executeTakeFirst();
  return row === undefined ? undefined : (await ordersOfRows(db, [row]))[0];
}

async function readMessage(db: Db, sendingApplication: string, messageControlId: string): Promise<LoggedMessage | undefined> {
  const row = await db
    .selectFrom('hl7_message')
    .selectAll()
    .where('sending_application', '=', sendingApplication)
    .where('message_control_id', '=', messageControlId)
    .executeTakeFirst();
  return row === undefined
    ? undefined
    : { sendingApplication: row.sending_application, messageControlId: row.message_control_id, ackCode: row.ack_code, outcome: row.outcome, receivedAt: iso(row.received_at) };
}

async function readStep(db: Db, sopInstanceUid: string): Promise<PerformedProcedureStep | undefined> {
  const row = await db.selectFrom('his_mpps').selectAll().where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
  return row === undefined ? undefined : toStep(row);
}

class KyselyHisTransaction implements HisTransaction {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  async upsertPatient(identity: PatientIdentity): Promise<void> {
    const now = this.now();
    const values = {
      name: identity.name,
      name_search: personNameSearchKey(identity.name),
      birth_date: identity.birthDate,
      sex: identity.sex,
      other_ids: JSON.stringify(identity.otherIds),
      updated_at: now,
    };
    await this.db
      .insertInto('his_patient')
      .values({ patient_id: identity.patientId, issuer: identity.issuer, created_at: now, ...values })
      .onConflict((oc) => oc.columns(['patient_id', 'issuer']).doUpdateSet(values))
      .execute();
    await this.db.deleteFrom('his_patient_other_id').where('patient_id', '=', identity.patientId).where('issuer', '=', identity.issuer).execute();
    const others = [...new Map(identity.otherIds.map((o) => [`${o.id}\u0000${o.issuer}`, o])).values()];
    if (others.length > 0) {
      await this.db
        .insertInto('his_patient_other_id')
        .values(others.map((o) => ({ other_id: o.id, other_issuer: o.issuer, patient_id: identity.patientId, issuer: identity.issuer })))
        .execute();
    }
  }

  getPatient(key: PatientKey): Promise<PatientIdentity | undefined> {
    return readPatient(this.db, key);
  }

  async ordersOfPatient(key: PatientKey): Promise<Order[]> {
    // Orders created in the same millisecond (an HL7 batch) keep a stable order: by accession number, not by
    // their random ids.
    const rows = await this.db.selectFrom('his_order').selectAll().where('patient_id', '=', key.patientId).where('issuer', '=', key.issuer).orderBy('created_at').orderBy('accession_number').orderBy('id').execute();
    return ordersOfRows(this.db, rows);
  }

  async mergePatient(prior: PatientKey, surviving: PatientKey): Promise<void> {
    if (prior.patientId === surviving.patientId && prior.issuer === surviving.issuer) return;
    const now = this.now();
    await this.db
      .updateTable('his_order')
      .set({ patient_id: surviving.patientId, issuer: surviving.issuer, updated_at: now })
      .where('patient_id', '=', prior.patientId)
      .where('issuer', '=', prior.issuer)
      .execute();
    await this.db.deleteFrom('his_patient_other_id').where('patient_id', '=', prior.patientId).where('issuer', '=', prior.issuer).execute();
    await this.db.deleteFrom('his_patient').where('patient_id', '=', prior.patientId).where('issuer', '=', prior.issuer).execute();
  }

  async createOrder(patient: PatientKey, order: OrderInput): Promise<Order> {
    const now = this.now();
    const id = randomUUID();
    await this.db
      .insertInto('his_order')
      .values({
        id,
        patient_id: patient.patientId,
        issuer: patient.issuer,
        ...orderColumns(order),
        study_instance_uid: order.studyInstanceUid ?? newStudyInstanceUid(),
        status: 'SCHEDULED',
        mpps_sop_instance_uid: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    return (await readOrder(this.db, 'id', id))!;
  }

  async updateOrder(id: string, patient: PatientKey, order: OrderInput): Promise<Order> {
    const result = await this.db
      .updateTable('his_order')
      .set({
        patient_id: patient.patientId,
        issuer: patient.issuer,
        ...orderColumns(order),
        ...(order.studyInstanceUid === null ? {} : { study_instance_uid: order.studyInstanceUid }),
        updated_at: this.now(),
      })
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new AppError('HIS_UNKNOWN_ORDER', 'No order with this id');
    return (await readOrder(this.db, 'id', id))!;
  }

  async setOrderStatus(id: string, status: StepStatus): Promise<Order> {
    const result = await this.db.updateTable('his_order').set({ status, updated_at: this.now() }).where('id', '=', id).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new AppError('HIS_UNKNOWN_ORDER', 'No order with this id');
    return (await readOrder(this.db, 'id', id))!;
  }

  /**
   * By id; else by placer order number; else by accession number, unless the order found there has
   * another placer order number (then it is a different order of the HIS).
   */
  async findOrder(ref: { id?: string; placerOrderNumber?: string | null; accessionNumber?: string | null }): Promise<Order | undefined> {
    if (ref.id !== undefined) return readOrder(this.db, 'id', ref.id);
    const placer = ref.placerOrderNumber ?? null;
    if (placer !== null && placer !== '') {
      const byPlacer = await readOrder(this.db, 'placer_order_number', placer);
      if (byPlacer !== undefined) return byPlacer;
    }
    const accession = ref.accessionNumber ?? null;
    if (accession === null || accession === '') return undefined;
    const byAccession = await readOrder(this.db, 'accession_number', accession);
    if (byAccession === undefined) return undefined;
    const otherPlacer = placer !== null && placer !== '' && byAccession.placerOrderNumber !== null && byAccession.placerOrderNumber !== placer;
    return otherPlacer ? undefined : byAccession;
  }

  findMessage(sendingApplication: string, messageControlId: string): Promise<LoggedMessage | undefined> {
    return readMessage(this.db, sendingApplication, messageControlId);
  }

  async logMessage(entry: LoggedMessage): Promise<void> {
    const received = Date.parse(entry.receivedAt);
    await this.db
      .insertInto('hl7_message')
      .values({
        sending_application: entry.sendingApplication,
        message_control_id: entry.messageControlId,
        ack_code: entry.ackCode,
        outcome: entry.outcome,
        received_at: Number.isFinite(received) ? received : this.now(),
      })
      .execute();
  }

  async putPerformedStep(step: PerformedProcedureStep): Promise<void> {
    const updated = Date.parse(step.updatedAt);
    const values = {
      status: step.status,
      order_ids: JSON.stringify(step.orderIds),
      performed_series: JSON.stringify(step.performedSeries),
      attributes: JSON.stringify(step.attributes),
      updated_at: Number.isFinite(updated) ? updated : this.now(),
    };
    await this.db
      .insertInto('his_mpps')
      .values({ sop_instance_uid: step.sopInstanceUid, ...values })
      .onConflict((oc) => oc.column('sop_instance_uid').doUpdateSet(values))
      .execute();
  }

  getPerformedStep(sopInstanceUid: string): Promise<PerformedProcedureStep | undefined> {
    return readStep(this.db, sopInstanceUid);
  }

  /**
   * Links series to an order once each (repeated calls change nothing). `studyInstanceUid`: the study the
   * series was stored in, when known (ingest), so the order is found from that study even when the
   * modality did not use the order's Study Instance UID. An extension of the HisTransaction interface.
   */
  async addPerformedSeries(orderId: string, seriesInstanceUids: readonly string[], mppsSopInstanceUid?: string, studyInstanceUid?: string): Promise<void> {
    const now = this.now();
    const unique = [...new Set(seriesInstanceUids)];
    for (let i = 0; i < unique.length; i += 200) {
      await this.db
        .insertInto('his_order_series')
        .values(unique.slice(i, i + 200).map((series) => ({ order_id: orderId, series_uid: series, study_uid: studyInstanceUid ?? null, added_at: now })))
        .onConflict((oc) => oc.columns(['order_id', 'series_uid']).doNothing())
        .execute();
    }
    if (studyInstanceUid !== undefined && unique.length > 0) {
      // A series first linked by MPPS (no study known) learns its study when an instance arrives.
      await this.db
        .updateTable('his_order_series')
        .set({ study_uid: studyInstanceUid })
        .where('order_id', '=', orderId)
        .where('series_uid', 'in', unique)
        .where('study_uid', 'is', null)
        .execute();
    }
    if (mppsSopInstanceUid !== undefined) {
      await this.db.updateTable('his_order').set({ mpps_sop_instance_uid: mppsSopInstanceUid, updated_at: now }).where('id', '=', orderId).execute();
    }
  }
}

/** A time bound 'HH[MM[SS]]' as 'HHMMSS': a lower bound from its first second, an upper one to its last. */
function timeBound(value: string, upper: boolean): string {
  const digits = value.replace(/[^0-9]/g, '').slice(0, 6);
  return digits.padEnd(6, upper ? '9' : '0');
}

const DEFAULT_STATUSES: readonly StepStatus[] = ['SCHEDULED', 'IN PROGRESS'];

export class KyselyHisStore implements HisStore {
  private readonly db: Db;
  private readonly dialect: 'sqlite' | 'postgres';
  private readonly templates = new StatementTemplates();

  private constructor(
    private readonly side: SideDatabase<HisDatabase>,
    private readonly now: () => number,
  ) {
    this.db = side.db;
    this.dialect = side.dialect;
  }

  static async open(index: IndexConfig, options: { now?: () => number } = {}): Promise<KyselyHisStore> {
    const store = new KyselyHisStore(openSideDatabase<HisDatabase>(index), options.now ?? Date.now);
    return opened(store, () => createSideTables(store.side, 'filmless-pacs his migration', createTables));
  }

  async transaction<T>(work: (tx: HisTransaction) => Promise<T>): Promise<T> {
    if (this.dialect === 'postgres') {
      return this.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('filmless-pacs his command'))`.execute(trx);
        return work(new KyselyHisTransaction(trx, this.now));
      });
    }
    // BEGIN IMMEDIATE … COMMIT in the write gate; rolled back when `work` throws.
    return this.side.write((connection) => work(new KyselyHisTransaction(connection, this.now)));
  }

  getPatient(key: PatientKey): Promise<PatientIdentity | undefined> {
    return readPatient(this.db, key);
  }

  async findPatientByIdentifier(id: string, issuer: string): Promise<PatientIdentity | undefined> {
    const direct = await readPatient(this.db, { patientId: id, issuer });
    if (direct !== undefined) return direct;
    const row = await this.db
      .selectFrom('his_patient_other_id as o')
      .innerJoin('his_patient as p', (join) => join.onRef('p.patient_id', '=', 'o.patient_id').onRef('p.issuer', '=', 'o.issuer'))
      .selectAll('p')
      .where('o.other_id', '=', id)
      .where('o.other_issuer', '=', issuer)
      .orderBy('p.patient_id')
      .executeTakeFirst();
    return row === undefined ? undefined : toPatient(row);
  }

  getOrder(id: string): Promise<Order | undefined> {
    return readOrder(this.db, 'id', id);
  }

  /**
   * Runs for every stored instance with an accession number (ingest's coercion, his-service.ts), mostly
   * finding nothing: the lookup is compiled once (catalog/statement-templates.ts; Kysely's building was
   * ~4 % of ingest's CPU in a profile of 50-instance STOW-RS requests, docs/benchmarks.md).
   */
  async findOrderByAccession(accessionNumber: string): Promise<WorklistItem | undefined> {
    if (accessionNumber === '') return undefined;
    const { rows } = await this.templates.execute(this.db, 'order by accession', [accessionNumber], (slot) =>
      this.db.selectFrom('his_order').selectAll().where('accession_number', '=', slot(0)),
    );
    const row = rows[0];
    const order = row === undefined ? undefined : (await ordersOfRows(this.db, [row]))[0];
    if (order === undefined) return undefined;
    const patient = await readPatient(this.db, order.patient);
    return patient === undefined ? undefined : { order, patient };
  }

  async ordersOfStudies(studyInstanceUids: readonly string[]): Promise<Order[]> {
    const uids = [...new Set(studyInstanceUids)];
    const rows: OrderTable[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < uids.length; i += 500) {
      const chunk = uids.slice(i, i + 500);
      const found = await this.db
        .selectFrom('his_order')
        .selectAll()
        .where((eb) =>
          eb.or([eb('study_instance_uid', 'in', chunk), eb('id', 'in', eb.selectFrom('his_order_series').select('order_id').where('study_uid', 'in', chunk))]),
        )
        .orderBy('created_at')
        .orderBy('accession_number')
        .orderBy('id')
        .execute();
      for (const row of found) {
        if (seen.has(row.id)) continue;
        seen.add(row.id);
        rows.push(row);
      }
    }
    return ordersOfRows(this.db, rows);
  }

  async worklist(query: WorklistQuery): Promise<WorklistItem[]> {
    const statuses = query.statuses === undefined || query.statuses.length === 0 ? DEFAULT_STATUSES : query.statuses;
    // Byte order for the range columns whatever the PostgreSQL database's collation.
    const ordered = (column: 'o.scheduled_date' | 'o.scheduled_time') => (this.dialect === 'postgres' ? sql`${sql.ref(column)} collate "C"` : sql.ref(column));
    let select = this.db
      .selectFrom('his_order as o')
      .innerJoin('his_patient as p', (join) => join.onRef('p.patient_id', '=', 'o.patient_id').onRef('p.issuer', '=', 'o.issuer'))
      .selectAll('o')
      .select([
        'p.name as p_name',
        'p.birth_date as p_birth_date',
        'p.sex as p_sex',
        'p.other_ids as p_other_ids',
      ])
      .where('o.status', 'in', [...statuses]);
    const given = (value: string | undefined): value is string => value !== undefined && !/^\**$/.test(value.trim());
    if (given(query.dateFrom)) select = select.where(sql<SqlBool>`${ordered('o.scheduled_date')} >= ${query.dateFrom}`);
    if (given(query.dateTo)) select = select.where(sql<SqlBool>`${ordered('o.scheduled_date')} <= ${query.dateTo}`);
    // A step scheduled for a day without a time matches any time range of that day.
    if (given(query.timeFrom)) select = select.where((eb) => eb.or([eb('o.scheduled_time', 'is', null), sql<SqlBool>`${ordered('o.scheduled_time')} >= ${timeBound(query.timeFrom!, false)}`]));
    if (given(query.timeTo)) select = select.where((eb) => eb.or([eb('o.scheduled_time', 'is', null), sql<SqlBool>`${ordered('o.scheduled_time')} <= ${timeBound(query.timeTo!, true)}`]));
    if (given(query.modality)) select = select.where('o.modality', '=', query.modality.trim().toUpperCase());
    if (given(query.scheduledStationAeTitle)) select = select.where('o.scheduled_station_ae_title', '=', query.scheduledStationAeTitle.trim());
    if (given(query.accessionNumber)) select = select.where('o.accession_number', '=', query.accessionNumber.trim());
    if (given(query.patientName)) {
      const key = personNameSearchKey(query.patientName) ?? '';
      select = /[*?]/.test(key)
        ? select.where(sql<SqlBool>`${sql.ref('p.name_search')} like ${likePattern(key)} escape ${sql.lit('!')}`)
        : select.where('p.name_search', '=', key);
    }
    if (given(query.patientId)) {
      const id = query.patientId.trim();
      const issuer = query.issuerOfPatientId;
      // The Patient ID, or any other identifier of the patient (the national ID), with the issuer when given.
      select = select.where((eb: ExpressionBuilder<HisDatabase & { o: OrderTable; p: PatientTable }, 'o' | 'p'>) => {
        const own: Expression<SqlBool>[] = [eb('o.patient_id', '=', id)];
        if (issuer !== undefined) own.push(eb('o.issuer', '=', issuer));
        const other = eb
          .selectFrom('his_patient_other_id as x')
          .select('x.patient_id')
          .whereRef('x.patient_id', '=', 'o.patient_id')
          .whereRef('x.issuer', '=', 'o.issuer')
          .where('x.other_id', '=', id)
          .$if(issuer !== undefined, (q) => q.where('x.other_issuer', '=', issuer!));
        return eb.or([eb.and(own), eb.exists(other)]);
      });
    } else if (query.issuerOfPatientId !== undefined) {
      select = select.where('o.issuer', '=', query.issuerOfPatientId);
    }
    // A step with a date only comes first on its day (NULLs sort differently on the two engines).
    select = select
      .orderBy('o.scheduled_date')
      .orderBy(sql`coalesce(${sql.ref('o.scheduled_time')}, '')`)
      .orderBy('o.accession_number')
      .orderBy('o.id');
    if (query.limit !== undefined) select = select.limit(query.limit);
    const rows = await select.execute();
    const series = await performedSeriesOf(
      this.db,
      rows.map((r) => r.id),
    );
    return rows.map((row) => {
      const { p_name, p_birth_date, p_sex, p_other_ids, ...orderRow } = row;
      return {
        order: toOrder(orderRow, series.get(row.id) ?? []),
        patient: {
          patientId: row.patient_id,
          issuer: row.issuer,
          name: p_name,
          birthDate: p_birth_date,
          sex: p_sex,
          otherIds: JSON.parse(p_other_ids) as OtherPatientId[],
        },
      };
    });
  }

  getPerformedStep(sopInstanceUid: string): Promise<PerformedProcedureStep | undefined> {
    return readStep(this.db, sopInstanceUid);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

async function createTables(db: Db): Promise<void> {
  await db.schema
    .createTable('his_patient')
    .ifNotExists()
    .addColumn('patient_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('issuer', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('name_search', 'text')
    .addColumn('birth_date', 'varchar(8)')
    .addColumn('sex', 'varchar(16)')
    .addColumn('other_ids', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('his_patient_pk', ['patient_id', 'issuer'])
    .execute();
  await db.schema.createIndex('his_patient_name_search').ifNotExists().on('his_patient').column('name_search').execute();

  await db.schema
    .createTable('his_patient_other_id')
    .ifNotExists()
    .addColumn('other_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('other_issuer', 'varchar(64)', (c) => c.notNull())
    .addColumn('patient_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('issuer', 'varchar(64)', (c) => c.notNull())
    .addPrimaryKeyConstraint('his_patient_other_id_pk', ['other_id', 'other_issuer', 'patient_id', 'issuer'])
    .execute();
  await db.schema.createIndex('his_patient_other_id_owner').ifNotExists().on('his_patient_other_id').columns(['patient_id', 'issuer']).execute();

  await db.schema
    .createTable('his_order')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('patient_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('issuer', 'varchar(64)', (c) => c.notNull())
    .addColumn('placer_order_number', 'varchar(64)')
    .addColumn('filler_order_number', 'varchar(64)')
    .addColumn('accession_number', 'varchar(16)', (c) => c.notNull())
    .addColumn('requested_procedure_id', 'varchar(16)', (c) => c.notNull())
    .addColumn('requested_procedure_description', 'text')
    .addColumn('requested_procedure_code', 'text')
    .addColumn('scheduled_procedure_step_id', 'varchar(16)', (c) => c.notNull())
    .addColumn('scheduled_procedure_step_description', 'text')
    .addColumn('modality', 'varchar(16)', (c) => c.notNull())
    .addColumn('scheduled_station_ae_title', 'varchar(16)')
    .addColumn('scheduled_start', 'varchar(14)', (c) => c.notNull())
    .addColumn('scheduled_date', 'varchar(8)', (c) => c.notNull())
    .addColumn('scheduled_time', 'varchar(6)')
    .addColumn('referring_physician_name', 'text')
    .addColumn('performing_physician_name', 'text')
    .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('mpps_sop_instance_uid', 'varchar(64)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // One order per accession number and per placer order number (NULLs are distinct on both engines).
  await db.schema.createIndex('his_order_accession').ifNotExists().unique().on('his_order').column('accession_number').execute();
  await db.schema.createIndex('his_order_placer').ifNotExists().unique().on('his_order').column('placer_order_number').execute();
  await db.schema.createIndex('his_order_scheduled').ifNotExists().on('his_order').columns(['scheduled_date', 'scheduled_time']).execute();
  await db.schema.createIndex('his_order_patient').ifNotExists().on('his_order').columns(['patient_id', 'issuer']).execute();
  await db.schema.createIndex('his_order_study').ifNotExists().on('his_order').column('study_instance_uid').execute();

  await db.schema
    .createTable('his_order_series')
    .ifNotExists()
    .addColumn('order_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('series_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('study_uid', 'varchar(64)')
    .addColumn('added_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('his_order_series_pk', ['order_id', 'series_uid'])
    .execute();
  await db.schema.createIndex('his_order_series_study').ifNotExists().on('his_order_series').column('study_uid').execute();

  await db.schema
    .createTable('his_mpps')
    .ifNotExists()
    .addColumn('sop_instance_uid', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('order_ids', 'text', (c) => c.notNull())
    .addColumn('performed_series', 'text', (c) => c.notNull())
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('hl7_message')
    .ifNotExists()
    .addColumn('sending_application', 'text', (c) => c.notNull())
    .addColumn('message_control_id', 'text', (c) => c.notNull())
    .addColumn('ack_code', 'varchar(2)', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('hl7_message_pk', ['sending_application', 'message_control_id'])
    .execute();
}
