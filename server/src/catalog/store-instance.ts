/**
 * The body of the one-transaction-per-instance ingest, shared by both engines. Order matters for
 * concurrency: patient → study → series → instance, always the same, so concurrent stores wait on each
 * other instead of deadlocking. Rows that may be created concurrently are inserted with
 * `ON CONFLICT DO NOTHING` and read back; the study row is updated before anything below it, which
 * (in PostgreSQL) locks it for the rest of the transaction and serialises writers of the same study,
 * so the counters and ModalitiesInStudy stay exact. A unique violation on the instance itself means a
 * concurrent store of the same SOP Instance UID: the caller retries, and the retry sees it.
 */
import type { Kysely } from 'kysely';
import type { NewInstance, StoreInstanceOutcome } from './catalog.js';
import { identityOfPatientRow, type ExtractedRows, type PatientValues } from './extract-attributes.js';
import { applyRejectionRows, rejectedOnArrival } from './curation-rows.js';
import { ensureCoercedPatient, moveStudyToPatient, writeOtherIds } from './patient-rows.js';
import type { CatalogDatabase } from './schema.js';
import type { StatementTemplates } from './statement-templates.js';

/** Thrown inside the transaction to roll it back and report a conflict. */
export class ConflictSignal extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ConflictSignal';
  }
}

type Db = Kysely<CatalogDatabase>;

/** The statements every instance runs (statement-templates.ts): built and compiled once per catalog. */
function findExisting(db: Db, t: StatementTemplates, sopInstanceUid: string) {
  return first(
    t.execute(db, 'findExisting', [sopInstanceUid], (slot) =>
      db
        .selectFrom('instances as i')
        .innerJoin('series as se', 'se.id', 'i.series_fk')
        .innerJoin('studies as st', 'st.id', 'se.study_fk')
        .select(['i.blob_key', 'se.series_uid', 'st.study_uid', 'i.stored_study_uid', 'i.stored_series_uid'])
        .where('i.sop_instance_uid', '=', slot(0)),
    ),
  );
}

async function first<R>(result: Promise<{ rows: R[] }>): Promise<R | undefined> {
  return (await result).rows[0];
}

async function ensurePatient(db: Db, patient: PatientValues): Promise<{ id: number; created: boolean }> {
  const inserted = await db
    .insertInto('patients')
    .values(patient)
    .onConflict((oc) => oc.columns(['patient_id', 'issuer']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) {
    if (patient.other_ids !== null) await writeOtherIds(db, inserted.id, identityOfPatientRow(patient), false);
    return { id: inserted.id, created: true };
  }
  const existing = await db
    .selectFrom('patients')
    .select('id')
    .where('patient_id', '=', patient.patient_id ?? '')
    .where('issuer', '=', patient.issuer)
    .executeTakeFirstOrThrow();
  return { id: existing.id, created: false };
}

async function findStudyId(db: Db, t: StatementTemplates, studyUid: string): Promise<number | undefined> {
  const row = await first(t.execute(db, 'findStudyId', [studyUid], (slot) => db.selectFrom('studies').select('id').where('study_uid', '=', slot(0))));
  return row?.id;
}

/** The patient row a coerced instance goes under (ingest coercion), with the studies it changed. */
interface CoercedPatient {
  id: number;
  changedStudies: string[];
}

async function ensureStudy(db: Db, t: StatementTemplates, rows: ExtractedRows, coerced: CoercedPatient | undefined): Promise<number> {
  const found = await findStudyId(db, t, rows.study.study_uid);
  if (found !== undefined) {
    // The order says whose study this is: a study stored before under another patient follows it.
    if (coerced !== undefined && (await moveStudyToPatient(db, found, coerced.id))) coerced.changedStudies.push(rows.study.study_uid);
    return found;
  }
  const patient = coerced === undefined ? await ensurePatient(db, rows.patient) : { id: coerced.id, created: false };
  const inserted = await db
    .insertInto('studies')
    .values({ ...rows.study, patient_fk: patient.id, modalities: null, num_series: 0, num_instances: 0 })
    .onConflict((oc) => oc.column('study_uid').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  // Another transaction created the study meanwhile; drop the patient row we made for nothing.
  if (patient.created) await db.deleteFrom('patients').where('id', '=', patient.id).execute();
  const winner = await findStudyId(db, t, rows.study.study_uid);
  if (winner === undefined) throw new Error('Study row vanished during concurrent insert');
  return winner;
}

function findSeries(db: Db, t: StatementTemplates, seriesUid: string) {
  return first(t.execute(db, 'findSeries', [seriesUid], (slot) => db.selectFrom('series').select(['id', 'study_fk']).where('series_uid', '=', slot(0))));
}

async function ensureSeries(db: Db, t: StatementTemplates, rows: ExtractedRows, studyId: number): Promise<{ id: number; created: boolean }> {
  let series = await findSeries(db, t, rows.series.series_uid);
  if (!series) {
    const inserted = await db
      .insertInto('series')
      .values({ ...rows.series, study_fk: studyId, num_instances: 0 })
      .onConflict((oc) => oc.column('series_uid').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted) return { id: inserted.id, created: true };
    series = await findSeries(db, t, rows.series.series_uid);
    if (!series) throw new Error('Series row vanished during concurrent insert');
  }
  if (series.study_fk !== studyId) {
    throw new ConflictSignal('The Series Instance UID is already stored under another study');
  }
  return { id: series.id, created: false };
}

/** ModalitiesInStudy (0008,0061) as stored: distinct, sorted, '\'-joined. */
export function mergeModalities(current: string | null, added: string | null): string | null {
  const set = new Set((current ?? '').split('\\').filter((m) => m !== ''));
  if (added) set.add(added);
  return set.size > 0 ? [...set].sort().join('\\') : null;
}

async function addSeriesToStudy(db: Db, studyId: number, modality: string | null): Promise<void> {
  const study = await db.selectFrom('studies').select('modalities').where('id', '=', studyId).executeTakeFirstOrThrow();
  await db
    .updateTable('studies')
    .set((eb) => ({ num_series: eb('num_series', '+', 1), modalities: mergeModalities(study.modalities, modality) }))
    .where('id', '=', studyId)
    .execute();
}

/** Runs inside a transaction. Throws ConflictSignal (roll back, report conflict) or a DB error (retry). */
export async function storeInstanceRows(db: Db, t: StatementTemplates, instance: NewInstance, rows: ExtractedRows): Promise<StoreInstanceOutcome> {
  const { header } = instance;
  const existing = await findExisting(db, t, header.sopInstanceUid);
  if (existing) {
    const sameAsStored = existing.study_uid === header.studyInstanceUid && existing.series_uid === header.seriesInstanceUid;
    // Moved by curation since: the same file sent again says where it was, which is where its file says.
    const sameAsFile = existing.stored_study_uid === header.studyInstanceUid && existing.stored_series_uid === header.seriesInstanceUid;
    if (sameAsStored || sameAsFile) return { status: 'duplicate', existingBlobKey: existing.blob_key };
    return { status: 'conflict', reason: 'The SOP Instance UID is already stored under another study or series' };
  }
  // Rejected before it arrived (its rejection note came first) or purged and sent again: stored hidden,
  // counted nowhere (docs/architecture.md, "Curation").
  const hidden = await rejectedOnArrival(db, t, header.sopInstanceUid);
  const counted = hidden ? 0 : 1;
  // Coercion (an order's patient for this accession number): the patient row first, as ingest locks patients first.
  const coerced = instance.identity === undefined ? undefined : await ensureCoercedPatient(db, instance.identity);
  const studyId = await ensureStudy(db, t, rows, coerced);
  // Updating the study first takes its row lock (PostgreSQL) before any series/instance work.
  await t.execute(db, 'countInStudy', [counted, studyId], (slot) =>
    db.updateTable('studies').set((eb) => ({ num_instances: eb('num_instances', '+', slot(0)) })).where('id', '=', slot(1)),
  );
  const series = await ensureSeries(db, t, rows, studyId);
  const counts = await first(
    t.execute(db, 'countInSeries', [counted, series.id], (slot) =>
      db
        .updateTable('series')
        .set((eb) => ({ num_instances: eb('num_instances', '+', slot(0)) }))
        .where('id', '=', slot(1))
        .returning('num_instances'),
    ),
  );
  if (counts === undefined) throw new Error('Series row vanished while an instance was stored');
  const seriesCount = counts.num_instances;
  // A new series, or one whose instances were all rejected so far, now counts in the study.
  if (!hidden && seriesCount === 1) await addSeriesToStudy(db, studyId, rows.series.modality);
  const instanceRow = { ...rows.instance, series_fk: series.id, blob_key: instance.blobKey, blob_size: instance.blobSize, checksum: instance.checksum ?? null, rejected: hidden ? 1 : 0 };
  // Columns whose value is undefined are left out by Kysely: the set of columns is part of the statement.
  const columns = Object.keys(instanceRow).filter((column) => instanceRow[column as keyof typeof instanceRow] !== undefined);
  await t.execute(
    db,
    `insertInstance:${columns.join(',')}`,
    columns.map((column) => instanceRow[column as keyof typeof instanceRow]),
    (slot) => db.insertInto('instances').values(Object.fromEntries(columns.map((column, i) => [column, slot(i)])) as unknown as typeof instanceRow),
  );
  // A rejection note hides what it names in the same transaction (not one that is itself hidden).
  const rejection = instance.rejection !== undefined && !hidden ? await applyRejectionRows(db, header.sopInstanceUid, instance.rejection) : undefined;
  const changed = coerced?.changedStudies.filter((uid) => uid !== '') ?? [];
  return {
    status: 'stored',
    ...(changed.length > 0 ? { identityChangedStudies: [...new Set(changed)] } : {}),
    ...(hidden ? { hidden } : {}),
    ...(rejection === undefined ? {} : { rejection }),
  };
}
