/**
 * Curation in the index (docs/architecture.md, "Curation"), shared by both engines; every function
 * runs inside the caller's transaction:
 *
 * - IOCM rejection: the instances a rejection note names are hidden (`instances.rejected`) and listed
 *   in `rejected_instances` (also those not received yet: they are stored hidden when they arrive);
 *   restore lifts it and voids a note left rejecting nothing; purge removes a rejected instance's row
 *   for good and queues its blob (`pending_blob_deletes`), keeping the rejection as a tombstone;
 * - DELETE: the rows of a study, series or instance go, their blobs queued the same way;
 * - move, split, merge, another patient: rows change study, series or patient; the stored files do not
 *   (the first move records the UIDs the file carries: `stored_study_uid`, `stored_series_uid`), and
 *   reads apply the study of record (kysely-catalog.ts `placement`) like the patient's identity.
 *
 * Counters (study and series instance counts, NumberOfStudyRelatedSeries, ModalitiesInStudy) count
 * only instances not rejected and are recounted in the same transaction (`recountStudies`); a series,
 * study or patient with no row left under it goes (`dropEmpty`). Lock order as at ingest
 * (store-instance.ts): the study rows are updated first (`lockStudies`, in id order), so ingest into
 * them waits (PostgreSQL) instead of counting beside the change.
 */
import { sql, type Kysely } from 'kysely';
import { derivedUid } from '../dicom/derived-uid.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { placementElements, STUDY_TAGS, type StudyIdentity } from '../dicom/study-identity.js';
import { AppError, NotFoundError } from '../errors.js';
import type {
  AppliedRejection,
  DeleteOutcome,
  InstanceScope,
  MoveOutcome,
  MoveRequest,
  PatientTarget,
  PurgeOutcome,
  RejectedEntry,
  RejectedFilter,
  RejectionToApply,
  RemovedInstance,
  RestoreOutcome,
  StudyAttributesInput,
} from './catalog.js';
import { identityDigest, identityOfDataset, identityOfPatientRow, normaliseDate, normaliseTime, patientValuesOf, personNameSearchKey, personNameText } from './extract-attributes.js';
import { findPatientRow, writeOtherIds } from './patient-rows.js';
import type { CatalogDatabase, RejectedInstancesTable } from './schema.js';
import type { StatementTemplates } from './statement-templates.js';

type Db = Kysely<CatalogDatabase>;

/** Longest IN list per statement (SQLite's default limit of bound parameters is far above it). */
const CHUNK = 400;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Counters and empty levels

/** Takes the row locks of these studies first, in id order (a no-op update: PostgreSQL locks the rows). */
export async function lockStudies(db: Db, studyIds: readonly number[]): Promise<void> {
  const ids = [...new Set(studyIds)].sort((a, b) => a - b);
  for (const part of chunks(ids)) {
    await db.updateTable('studies').set((eb) => ({ num_instances: eb.ref('num_instances') })).where('id', 'in', part).execute();
  }
}

/**
 * Recounts the series and study counters of these studies from their instance rows (rejected ones
 * left out): NumberOfSeriesRelatedInstances, NumberOfStudyRelatedInstances, NumberOfStudyRelatedSeries
 * (series with a visible instance) and ModalitiesInStudy (their modalities, sorted, '\'-joined).
 */
export async function recountStudies(db: Db, studyIds: readonly number[]): Promise<void> {
  for (const studyId of new Set(studyIds)) {
    const series = await db
      .selectFrom('series as se')
      .select(['se.id', 'se.modality', 'se.num_instances'])
      .select((eb) =>
        eb
          .selectFrom('instances as i')
          .select((e) => e.fn.countAll().as('n'))
          .whereRef('i.series_fk', '=', 'se.id')
          .where('i.rejected', '=', 0)
          .as('visible'),
      )
      .where('se.study_fk', '=', studyId)
      .execute();
    let instances = 0;
    let visibleSeries = 0;
    const modalities = new Set<string>();
    for (const row of series) {
      const visible = Number(row.visible ?? 0);
      if (visible !== row.num_instances) await db.updateTable('series').set({ num_instances: visible }).where('id', '=', row.id).execute();
      instances += visible;
      if (visible > 0) {
        visibleSeries += 1;
        if (row.modality !== null && row.modality !== '') modalities.add(row.modality);
      }
    }
    await db
      .updateTable('studies')
      .set({ num_instances: instances, num_series: visibleSeries, modalities: modalities.size > 0 ? [...modalities].sort().join('\\') : null })
      .where('id', '=', studyId)
      .execute();
  }
}

/**
 * Removes the series of these studies that hold no instance row (rejected ones count: they are kept
 * until purged), then the studies left without series, then their patients left without studies.
 * Returns the UIDs of the studies removed.
 */
export async function dropEmpty(db: Db, studyIds: readonly number[]): Promise<string[]> {
  const removed: string[] = [];
  for (const studyId of new Set(studyIds)) {
    await db
      .deleteFrom('series')
      .where('study_fk', '=', studyId)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('instances as i').select('i.id').whereRef('i.series_fk', '=', 'series.id'))))
      .execute();
    const study = await db.selectFrom('studies').select(['study_uid', 'patient_fk']).where('id', '=', studyId).executeTakeFirst();
    if (study === undefined) continue;
    const anySeries = await db.selectFrom('series').select('id').where('study_fk', '=', studyId).executeTakeFirst();
    if (anySeries !== undefined) continue;
    await db.deleteFrom('studies').where('id', '=', studyId).execute();
    removed.push(study.study_uid);
    const other = await db.selectFrom('studies').select('id').where('patient_fk', '=', study.patient_fk).executeTakeFirst();
    if (other === undefined) await db.deleteFrom('patients').where('id', '=', study.patient_fk).execute();
  }
  return removed;
}

async function studyUidsOf(db: Db, studyIds: readonly number[]): Promise<string[]> {
  const ids = [...new Set(studyIds)];
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('studies').select('study_uid').where('id', 'in', ids).execute();
  return rows.map((row) => row.study_uid);
}

// ---------------------------------------------------------------------------------------------------
// Rejection


function entryOf(row: { [K in keyof RejectedInstancesTable]: unknown } & { stored?: unknown }): RejectedEntry {
  return {
    sopInstanceUid: String(row.sop_instance_uid),
    studyInstanceUid: String(row.study_uid),
    seriesInstanceUid: String(row.series_uid),
    sopClassUid: String(row.sop_class_uid ?? ''),
    kind: row.kind === 'voided-note' ? 'voided-note' : 'rejected',
    reasonCode: String(row.reason_code),
    noteUid: String(row.note_uid),
    rejectedAt: String(row.rejected_at),
    purgeAfter: String(row.purge_after),
    purgedAt: row.purged_at === null || row.purged_at === undefined ? null : String(row.purged_at),
    stored: Number(row.stored ?? 0) > 0,
  };
}

function rejectedQuery(db: Db) {
  return db
    .selectFrom('rejected_instances as r')
    .selectAll('r')
    .select((eb) => eb.selectFrom('instances as i').select((e) => e.fn.countAll().as('n')).whereRef('i.sop_instance_uid', '=', 'r.sop_instance_uid').as('stored'));
}

/** The stored instance rows of these SOP Instance UIDs, with their place. */
async function storedRows(db: Db, sopInstanceUids: readonly string[]) {
  const out = [];
  for (const part of chunks([...new Set(sopInstanceUids)])) {
    out.push(
      ...(await db
        .selectFrom('instances as i')
        .innerJoin('series as se', 'se.id', 'i.series_fk')
        .innerJoin('studies as st', 'st.id', 'se.study_fk')
        .select(['i.id', 'i.sop_instance_uid', 'i.sop_class_uid', 'i.rejected', 'i.blob_key', 'se.series_uid', 'st.study_uid', 'st.id as study_id'])
        .where('i.sop_instance_uid', 'in', part)
        .execute()),
    );
  }
  return out;
}

/** Whether an arriving instance was rejected before (its note came first, or it was purged): it is stored hidden. */
export async function rejectedOnArrival(db: Db, t: StatementTemplates, sopInstanceUid: string): Promise<boolean> {
  // Run for every instance stored: compiled once (statement-templates.ts).
  const { rows } = await t.execute(db, 'rejectedOnArrival', [sopInstanceUid], (slot) =>
    db.selectFrom('rejected_instances').select(['purged_at']).where('sop_instance_uid', '=', slot(0)),
  );
  const row = rows[0];
  if (row === undefined) return false;
  // Purged and sent again: hidden again, and purged again at the next sweep (its purge time has passed).
  if (row.purged_at !== null) await db.updateTable('rejected_instances').set({ purged_at: null }).where('sop_instance_uid', '=', sopInstanceUid).execute();
  return true;
}

/**
 * A rejection note was indexed (its row written in this transaction): the instances it names are
 * recorded as rejected and those stored are hidden. An instance rejected already takes this note and
 * reason, keeping the earlier purge time; a purged one stays purged. The note never rejects itself.
 */
export async function applyRejectionRows(db: Db, noteUid: string, rejection: RejectionToApply): Promise<AppliedRejection> {
  const references = rejection.references.filter((ref) => ref.sopInstanceUid !== noteUid);
  const stored = await storedRows(db, references.map((ref) => ref.sopInstanceUid));
  const storedBySop = new Map(stored.map((row) => [row.sop_instance_uid, row]));
  const studyIds = [...new Set(stored.map((row) => row.study_id))];
  await lockStudies(db, studyIds);
  const existing = new Map<string, { purged_at: string | null; purge_after: string }>();
  for (const part of chunks(references.map((ref) => ref.sopInstanceUid))) {
    for (const row of await db.selectFrom('rejected_instances').select(['sop_instance_uid', 'purged_at', 'purge_after']).where('sop_instance_uid', 'in', part).execute()) {
      existing.set(row.sop_instance_uid, row);
    }
  }
  for (const ref of references) {
    const found = existing.get(ref.sopInstanceUid);
    if (found !== undefined) {
      if (found.purged_at !== null) continue;
      await db
        .updateTable('rejected_instances')
        .set({ note_uid: noteUid, reason_code: rejection.code, kind: 'rejected', purge_after: found.purge_after < rejection.purgeAfter ? found.purge_after : rejection.purgeAfter })
        .where('sop_instance_uid', '=', ref.sopInstanceUid)
        .execute();
      continue;
    }
    const at = storedBySop.get(ref.sopInstanceUid);
    await db
      .insertInto('rejected_instances')
      .values({
        sop_instance_uid: ref.sopInstanceUid,
        study_uid: at?.study_uid ?? ref.studyInstanceUid,
        series_uid: at?.series_uid ?? ref.seriesInstanceUid,
        sop_class_uid: at?.sop_class_uid ?? ref.sopClassUid,
        kind: 'rejected',
        reason_code: rejection.code,
        note_uid: noteUid,
        rejected_at: rejection.rejectedAt,
        purge_after: rejection.purgeAfter,
        purged_at: null,
      })
      .execute();
  }
  const toHide = stored.filter((row) => row.rejected === 0).map((row) => row.id);
  for (const part of chunks(toHide)) await db.updateTable('instances').set({ rejected: 1 }).where('id', 'in', part).execute();
  const changed = [...new Set(stored.filter((row) => row.rejected === 0).map((row) => row.study_id))];
  await recountStudies(db, changed);
  return { noteUid, code: rejection.code, named: references.length, hidden: toHide.length, studies: await studyUidsOf(db, changed) };
}

export async function listRejectedRows(db: Db, filter: RejectedFilter): Promise<RejectedEntry[]> {
  let query = rejectedQuery(db);
  if (filter.studyInstanceUid !== undefined) query = query.where('r.study_uid', '=', filter.studyInstanceUid);
  if (filter.noteUid !== undefined) query = query.where('r.note_uid', '=', filter.noteUid);
  if (filter.sopInstanceUids !== undefined) {
    if (filter.sopInstanceUids.length === 0) return [];
    query = query.where('r.sop_instance_uid', 'in', [...filter.sopInstanceUids]);
  }
  const state = filter.state ?? 'active';
  if (state === 'active') query = query.where('r.purged_at', 'is', null);
  if (state === 'purged') query = query.where('r.purged_at', 'is not', null);
  const rows = await query.orderBy('r.rejected_at', 'desc').orderBy('r.sop_instance_uid').limit(filter.limit).offset(filter.offset).execute();
  return rows.map((row) => entryOf(row));
}

/** Hides a rejection note whose rejection was revoked (restore): kind `voided-note`, purged like rejected instances. */
async function voidNote(db: Db, noteUid: string, reasonCode: string, now: string, purgeAfter: string): Promise<number | undefined> {
  const [note] = await storedRows(db, [noteUid]);
  if (note === undefined) return undefined;
  await lockStudies(db, [note.study_id]);
  await db.updateTable('instances').set({ rejected: 1 }).where('id', '=', note.id).execute();
  await db.deleteFrom('rejected_instances').where('sop_instance_uid', '=', noteUid).execute();
  await db
    .insertInto('rejected_instances')
    .values({
      sop_instance_uid: noteUid,
      study_uid: note.study_uid,
      series_uid: note.series_uid,
      sop_class_uid: note.sop_class_uid,
      kind: 'voided-note',
      reason_code: reasonCode,
      note_uid: noteUid,
      rejected_at: now,
      purge_after: purgeAfter,
      purged_at: null,
    })
    .execute();
  return note.study_id;
}

export async function restoreRows(db: Db, sopInstanceUids: readonly string[], now: string, voidedNotePurgeAfter: string): Promise<RestoreOutcome> {
  const rows: RejectedEntry[] = [];
  for (const part of chunks([...new Set(sopInstanceUids)])) {
    const found = await rejectedQuery(db).where('r.sop_instance_uid', 'in', part).where('r.purged_at', 'is', null).where('r.kind', '=', 'rejected').execute();
    rows.push(...found.map((row) => entryOf(row)));
  }
  if (rows.length === 0) return { restored: [], voidedNotes: [], studies: [] };
  const stored = await storedRows(db, rows.map((row) => row.sopInstanceUid));
  const studyIds = new Set(stored.map((row) => row.study_id));
  await lockStudies(db, [...studyIds]);
  for (const part of chunks(rows.map((row) => row.sopInstanceUid))) {
    await db.deleteFrom('rejected_instances').where('sop_instance_uid', 'in', part).execute();
  }
  for (const part of chunks(stored.map((row) => row.id))) await db.updateTable('instances').set({ rejected: 0 }).where('id', 'in', part).execute();
  const voidedNotes: string[] = [];
  const notes = new Map(rows.map((row) => [row.noteUid, row.reasonCode]));
  for (const [noteUid, reasonCode] of notes) {
    const left = await db.selectFrom('rejected_instances').select('sop_instance_uid').where('note_uid', '=', noteUid).where('kind', '=', 'rejected').where('purged_at', 'is', null).executeTakeFirst();
    if (left !== undefined) continue;
    const noteStudy = await voidNote(db, noteUid, reasonCode, now, voidedNotePurgeAfter);
    voidedNotes.push(noteUid);
    if (noteStudy !== undefined) studyIds.add(noteStudy);
  }
  await recountStudies(db, [...studyIds]);
  return { restored: rows, voidedNotes, studies: await studyUidsOf(db, [...studyIds]) };
}

export async function duePurgeRows(db: Db, now: string, limit: number): Promise<RejectedEntry[]> {
  const rows = await rejectedQuery(db).where('r.purged_at', 'is', null).where('r.purge_after', '<=', now).orderBy('r.purge_after').orderBy('r.sop_instance_uid').limit(limit).execute();
  return rows.map((row) => entryOf(row));
}

async function queueBlobDeletes(db: Db, blobKeys: readonly string[], reason: string, now: string): Promise<void> {
  for (const part of chunks([...new Set(blobKeys)])) {
    await db
      .insertInto('pending_blob_deletes')
      .values(part.map((blob_key) => ({ blob_key, reason, queued_at: now })))
      .onConflict((oc) => oc.column('blob_key').doNothing())
      .execute();
  }
}

export async function purgeRow(db: Db, sopInstanceUid: string, now: string): Promise<PurgeOutcome | undefined> {
  const row = await rejectedQuery(db).where('r.sop_instance_uid', '=', sopInstanceUid).where('r.purged_at', 'is', null).executeTakeFirst();
  if (row === undefined) return undefined;
  const entry = entryOf(row);
  const [stored] = await storedRows(db, [sopInstanceUid]);
  let removed: RemovedInstance | undefined;
  let studies: string[] = [];
  if (stored !== undefined && stored.rejected === 1) {
    await lockStudies(db, [stored.study_id]);
    await queueBlobDeletes(db, [stored.blob_key], 'purge', now);
    await db.deleteFrom('instances').where('id', '=', stored.id).execute();
    await recountStudies(db, [stored.study_id]);
    studies = [stored.study_uid];
    await dropEmpty(db, [stored.study_id]);
    removed = { studyInstanceUid: stored.study_uid, seriesInstanceUid: stored.series_uid, sopInstanceUid, sopClassUid: stored.sop_class_uid, blobKey: stored.blob_key };
  }
  await db.updateTable('rejected_instances').set({ purged_at: now }).where('sop_instance_uid', '=', sopInstanceUid).execute();
  return { entry: { ...entry, purgedAt: now, stored: false }, ...(removed === undefined ? {} : { removed }), studies };
}

// ---------------------------------------------------------------------------------------------------
// DELETE

export async function deleteRows(db: Db, scope: InstanceScope, now: string): Promise<DeleteOutcome> {
  let query = db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select(['i.id', 'i.sop_instance_uid', 'i.sop_class_uid', 'i.blob_key', 'se.series_uid', 'st.study_uid', 'st.id as study_id'])
    .where('st.study_uid', '=', scope.studyInstanceUid);
  if (scope.seriesInstanceUid !== undefined) query = query.where('se.series_uid', '=', scope.seriesInstanceUid);
  if (scope.sopInstanceUid !== undefined) query = query.where('i.sop_instance_uid', '=', scope.sopInstanceUid);
  const rows = await query.execute();
  if (rows.length === 0) return { removed: [], studies: [] };
  const studyIds = [...new Set(rows.map((row) => row.study_id))];
  await lockStudies(db, studyIds);
  await queueBlobDeletes(db, rows.map((row) => row.blob_key), 'delete', now);
  for (const part of chunks(rows.map((row) => row.sop_instance_uid))) await db.deleteFrom('rejected_instances').where('sop_instance_uid', 'in', part).execute();
  // Rejections of the scope's instances that never arrived go too: what is deleted is deleted whole.
  if (scope.sopInstanceUid === undefined) {
    let orphans = db.deleteFrom('rejected_instances').where('study_uid', '=', scope.studyInstanceUid);
    if (scope.seriesInstanceUid !== undefined) orphans = orphans.where('series_uid', '=', scope.seriesInstanceUid);
    await orphans.execute();
  }
  for (const part of chunks(rows.map((row) => row.id))) await db.deleteFrom('instances').where('id', 'in', part).execute();
  await recountStudies(db, studyIds);
  await dropEmpty(db, studyIds);
  return {
    removed: rows.map((row) => ({ studyInstanceUid: row.study_uid, seriesInstanceUid: row.series_uid, sopInstanceUid: row.sop_instance_uid, sopClassUid: row.sop_class_uid, blobKey: row.blob_key })),
    studies: [scope.studyInstanceUid],
  };
}

// ---------------------------------------------------------------------------------------------------
// Study identity

type StudyIdentityColumns = {
  study_uid: string;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_id: string | null;
  study_description: string | null;
  referring_physician_name: string | null;
};

export function studyIdentityOfRow(row: StudyIdentityColumns): StudyIdentity {
  return {
    studyInstanceUid: row.study_uid,
    studyDate: row.study_date,
    studyTime: row.study_time,
    accessionNumber: row.accession_number,
    studyId: row.study_id,
    studyDescription: row.study_description,
    referringPhysicianName: row.referring_physician_name,
  };
}

export async function studyOfRows(db: Db, studyInstanceUid: string): Promise<{ study: StudyIdentity; patient: PatientIdentity } | undefined> {
  const row = await db
    .selectFrom('studies as st')
    .innerJoin('patients as p', 'p.id', 'st.patient_fk')
    .select(['st.study_uid', 'st.study_date', 'st.study_time', 'st.accession_number', 'st.study_id', 'st.study_description', 'st.referring_physician_name'])
    .select(['p.patient_id', 'p.issuer', 'p.patient_name', 'p.birth_date', 'p.sex', 'p.other_ids'])
    .where('st.study_uid', '=', studyInstanceUid)
    .executeTakeFirst();
  return row === undefined ? undefined : { study: studyIdentityOfRow(row), patient: identityOfPatientRow(row) };
}

// ---------------------------------------------------------------------------------------------------
// Move, split, merge, another patient

async function studyRow(db: Db, studyInstanceUid: string) {
  return db.selectFrom('studies').selectAll().where('study_uid', '=', studyInstanceUid).executeTakeFirst();
}

/**
 * The patient row of `target` (same Patient ID and issuer), created with its identity as the identity
 * of record when there is none; an existing row keeps its identity (correct it through the hospital link).
 */
async function ensureTargetPatient(db: Db, target: PatientTarget): Promise<number> {
  const found = await findPatientRow(db, target);
  if (found !== undefined) return found.id;
  const inserted = await db.insertInto('patients').values(patientValuesOf(target, 1)).returning('id').executeTakeFirstOrThrow();
  await writeOtherIds(db, inserted.id, target, false);
  return inserted.id;
}

/**
 * Instances that now sit under another patient row are read with that row's identity: it becomes the
 * identity of record (version 1 and up, as a hospital link correction makes it), and rows from before
 * migration 0003 get their digest.
 */
async function makeIdentityOfRecord(db: Db, patientFk: number, studyIds: readonly number[]): Promise<void> {
  await db.updateTable('patients').set({ version: 1 }).where('id', '=', patientFk).where('version', '=', 0).execute();
  for (const studyId of studyIds) {
    const rows = await db
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .select(['i.id', 'i.attributes'])
      .where('se.study_fk', '=', studyId)
      .where('i.identity_hash', 'is', null)
      .execute();
    for (const row of rows) {
      let digest = '';
      try {
        digest = identityDigest(identityOfDataset(JSON.parse(row.attributes) as DicomJsonDataset));
      } catch {
        // An unreadable header: the identity of record is always applied to it.
      }
      await db.updateTable('instances').set({ identity_hash: digest }).where('id', '=', row.id).execute();
    }
  }
}

function keyOfPatientRow(row: { patient_id: string | null; issuer: string }): PatientKey {
  return { patientId: row.patient_id ?? '', issuer: row.issuer };
}

async function patientKeyOf(db: Db, patientFk: number): Promise<PatientKey> {
  const row = await db.selectFrom('patients').select(['patient_id', 'issuer']).where('id', '=', patientFk).executeTakeFirstOrThrow();
  return keyOfPatientRow(row);
}

/** The General Study identity of a new study: the source's, with the given attributes instead (normalised as ingest does). */
function newStudyIdentity(source: StudyIdentityColumns, studyInstanceUid: string, given: StudyAttributesInput | undefined): StudyIdentity {
  const base = studyIdentityOfRow(source);
  const pick = <K extends keyof StudyAttributesInput>(key: K, normalise: (v: string | null) => string | null): string | null => {
    if (given === undefined || !(key in given) || given[key] === undefined) return base[key] as string | null;
    const value = given[key] as string | null;
    return normalise(value === null || value.trim() === '' ? null : value.trim());
  };
  return {
    studyInstanceUid,
    studyDate: pick('studyDate', (v) => normaliseDate(v)),
    studyTime: pick('studyTime', (v) => normaliseTime(v)),
    accessionNumber: pick('accessionNumber', (v) => v),
    studyId: pick('studyId', (v) => v),
    studyDescription: pick('studyDescription', (v) => v),
    referringPhysicianName: pick('referringPhysicianName', (v) => personNameText(v)),
  };
}

/** The study-level JSON of a new study (QIDO-RS includefield): the source study's with the new identity. */
function newStudyAttributes(sourceJson: string, identity: StudyIdentity): string {
  let dataset: DicomJsonDataset = {};
  try {
    dataset = JSON.parse(sourceJson) as DicomJsonDataset;
  } catch {
    // An unreadable header: the new study's JSON holds its identity only.
  }
  const elements = placementElements({ study: identity, seriesInstanceUid: '' });
  delete elements[STUDY_TAGS.SeriesInstanceUID];
  const out: DicomJsonDataset = { ...dataset, ...elements };
  if (identity.studyDescription === null) delete out[STUDY_TAGS.StudyDescription];
  return JSON.stringify(out);
}

/** The series JSON of a series made for instances moved out of another (same attributes, new UID). */
function newSeriesAttributes(sourceJson: string, seriesInstanceUid: string, studyInstanceUid: string): string {
  let dataset: DicomJsonDataset = {};
  try {
    dataset = JSON.parse(sourceJson) as DicomJsonDataset;
  } catch {
    // As above.
  }
  return JSON.stringify({ ...dataset, [STUDY_TAGS.SeriesInstanceUID]: { vr: 'UI', Value: [seriesInstanceUid] }, [STUDY_TAGS.StudyInstanceUID]: { vr: 'UI', Value: [studyInstanceUid] } });
}

/** The series a move takes instances of `sourceSeriesUid` into, in the target study (made once, then reused). */
export function movedSeriesUid(sourceSeriesUid: string, targetStudyUid: string): string {
  return derivedUid('filmless-pacs', 'moved-series', sourceSeriesUid, targetStudyUid);
}

export async function moveRows(db: Db, request: MoveRequest, now: string): Promise<MoveOutcome> {
  const { from, to } = request;
  const source = await studyRow(db, from.studyInstanceUid);
  if (source === undefined) throw new NotFoundError('Study not found');
  const fromPatient = await patientKeyOf(db, source.patient_fk);

  // The whole study to another patient: only the study row changes.
  if (to.kind === 'patient') {
    if (from.seriesInstanceUids !== undefined || from.sopInstanceUids !== undefined) {
      throw new AppError('BAD_REQUEST', 'Series or instances go to another patient in a new study of that patient (split with a patient)');
    }
    await lockStudies(db, [source.id]);
    const patientFk = await ensureTargetPatient(db, to.patient);
    if (patientFk === source.patient_fk) throw new AppError('BAD_REQUEST', 'The study already belongs to this patient');
    await db.updateTable('studies').set({ patient_fk: patientFk }).where('id', '=', source.id).execute();
    await makeIdentityOfRecord(db, patientFk, [source.id]);
    const other = await db.selectFrom('studies').select('id').where('patient_fk', '=', source.patient_fk).executeTakeFirst();
    if (other === undefined) await db.deleteFrom('patients').where('id', '=', source.patient_fk).execute();
    const counts = await db
      .selectFrom('series as se')
      .innerJoin('instances as i', 'i.series_fk', 'se.id')
      .select((eb) => [eb.fn.count('se.id').distinct().as('series'), eb.fn.countAll().as('instances')])
      .where('se.study_fk', '=', source.id)
      .executeTakeFirstOrThrow();
    return {
      fromStudy: source.study_uid,
      toStudy: source.study_uid,
      fromPatient,
      toPatient: await patientKeyOf(db, patientFk),
      series: Number(counts.series),
      instances: Number(counts.instances),
      sourceRemoved: false,
      studies: [source.study_uid],
    };
  }

  // The target study: an existing one (merge, move) or a new one (split, another patient).
  let target: NonNullable<Awaited<ReturnType<typeof studyRow>>>;
  if (to.kind === 'study') {
    const found = await studyRow(db, to.studyInstanceUid);
    if (found === undefined) throw new NotFoundError('Target study not found');
    if (found.id === source.id) throw new AppError('BAD_REQUEST', 'The target study is the source study: nothing to move');
    target = found;
  } else {
    const studyInstanceUid = to.studyInstanceUid;
    if ((await studyRow(db, studyInstanceUid)) !== undefined) throw new AppError('CONFLICT', 'A study with the new Study Instance UID exists already');
    const patientFk = to.patient === undefined ? source.patient_fk : await ensureTargetPatient(db, to.patient);
    const identity = newStudyIdentity(source, studyInstanceUid, to.attributes);
    const referring = identity.referringPhysicianName;
    const inserted = await db
      .insertInto('studies')
      .values({
        study_uid: studyInstanceUid,
        patient_fk: patientFk,
        study_date: identity.studyDate,
        study_time: identity.studyTime,
        accession_number: identity.accessionNumber,
        referring_physician_name: referring,
        referring_physician_name_search: personNameSearchKey(referring),
        study_description: identity.studyDescription,
        study_id: identity.studyId,
        modalities: null,
        specific_character_set: source.specific_character_set,
        timezone_offset: source.timezone_offset,
        num_series: 0,
        num_instances: 0,
        attributes: newStudyAttributes(source.attributes, identity),
        created_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    target = await db.selectFrom('studies').selectAll().where('id', '=', inserted.id).executeTakeFirstOrThrow();
  }
  await lockStudies(db, [source.id, target.id]);

  // What moves: whole series, and instances of series that stay (partly) behind.
  const sourceSeries = await db.selectFrom('series').selectAll().where('study_fk', '=', source.id).execute();
  const seriesByUid = new Map(sourceSeries.map((row) => [row.series_uid, row]));
  const wholeSeries = new Set<number>();
  const partial = new Map<number, number[]>();
  if (from.sopInstanceUids !== undefined) {
    const wanted = [...new Set(from.sopInstanceUids)];
    const found = await db
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .select(['i.id', 'i.sop_instance_uid', 'i.series_fk'])
      .where('se.study_fk', '=', source.id)
      .where('i.rejected', '=', 0)
      .where('i.sop_instance_uid', 'in', wanted.length > 0 ? wanted : [''])
      .execute();
    if (found.length !== wanted.length || wanted.length === 0) throw new NotFoundError(`${wanted.length - found.length} of the instances to move are not (visible) in the source study`);
    for (const row of found) partial.set(row.series_fk, [...(partial.get(row.series_fk) ?? []), row.id]);
    // An instance list that holds a whole series (every row of it, rejected ones included) moves the series.
    for (const [seriesFk, ids] of partial) {
      const all = await db.selectFrom('instances').select((eb) => eb.fn.countAll().as('n')).where('series_fk', '=', seriesFk).executeTakeFirstOrThrow();
      if (Number(all.n) === ids.length) {
        wholeSeries.add(seriesFk);
        partial.delete(seriesFk);
      }
    }
  } else if (from.seriesInstanceUids !== undefined) {
    const wanted = [...new Set(from.seriesInstanceUids)];
    if (wanted.length === 0) throw new AppError('BAD_REQUEST', 'Name at least one series to move');
    const missing = wanted.filter((uid) => !seriesByUid.has(uid));
    if (missing.length > 0) throw new NotFoundError(`${missing.length} of the series to move are not in the source study`);
    for (const uid of wanted) wholeSeries.add(seriesByUid.get(uid)!.id);
  } else {
    for (const row of sourceSeries) wholeSeries.add(row.id);
  }

  let movedInstances = 0;
  const wholeIds = [...wholeSeries];
  for (const part of chunks(wholeIds)) {
    // The file's UIDs are recorded on the first move; later moves keep them.
    await db
      .updateTable('instances')
      .set((eb) => ({
        stored_study_uid: eb.fn.coalesce('stored_study_uid', sql<string>`${source.study_uid}`),
        stored_series_uid: eb.fn.coalesce('stored_series_uid', eb.selectFrom('series as s').select('s.series_uid').whereRef('s.id', '=', 'instances.series_fk')),
      }))
      .where('series_fk', 'in', part)
      .execute();
    const count = await db.selectFrom('instances').select((eb) => eb.fn.countAll().as('n')).where('series_fk', 'in', part).executeTakeFirstOrThrow();
    movedInstances += Number(count.n);
    await db.updateTable('series').set({ study_fk: target.id }).where('id', 'in', part).execute();
  }
  let seriesCount = wholeIds.length;
  for (const [seriesFk, ids] of partial) {
    const series = sourceSeries.find((row) => row.id === seriesFk)!;
    const uid = movedSeriesUid(series.series_uid, target.study_uid);
    let into = await db.selectFrom('series').select(['id', 'study_fk']).where('series_uid', '=', uid).executeTakeFirst();
    if (into !== undefined && into.study_fk !== target.id) throw new AppError('CONFLICT', 'The series made for these instances belongs to another study');
    if (into === undefined) {
      const { id: _id, ...columns } = series;
      const inserted = await db
        .insertInto('series')
        .values({ ...columns, series_uid: uid, study_fk: target.id, num_instances: 0, attributes: newSeriesAttributes(series.attributes, uid, target.study_uid), created_at: now })
        .returning(['id', 'study_fk'])
        .executeTakeFirstOrThrow();
      into = inserted;
      seriesCount += 1;
    }
    for (const part of chunks(ids)) {
      await db
        .updateTable('instances')
        .set((eb) => ({
          stored_study_uid: eb.fn.coalesce('stored_study_uid', sql<string>`${source.study_uid}`),
          stored_series_uid: eb.fn.coalesce('stored_series_uid', sql<string>`${series.series_uid}`),
          series_fk: into.id,
        }))
        .where('id', 'in', part)
        .execute();
    }
    movedInstances += ids.length;
  }
  if (movedInstances === 0) throw new AppError('BAD_REQUEST', 'Nothing to move: the selection holds no instance');

  // Rejections keep naming where their instances are.
  const movedSops = await db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .select(['i.sop_instance_uid', 'se.series_uid'])
    .where('se.study_fk', '=', target.id)
    .where('i.rejected', '=', 1)
    .execute();
  for (const row of movedSops) {
    await db.updateTable('rejected_instances').set({ study_uid: target.study_uid, series_uid: row.series_uid }).where('sop_instance_uid', '=', row.sop_instance_uid).execute();
  }
  if (target.patient_fk !== source.patient_fk) await makeIdentityOfRecord(db, target.patient_fk, [target.id]);
  await recountStudies(db, [source.id, target.id]);
  const removed = await dropEmpty(db, [source.id]);
  return {
    fromStudy: source.study_uid,
    toStudy: target.study_uid,
    fromPatient,
    toPatient: await patientKeyOf(db, target.patient_fk),
    series: seriesCount,
    instances: movedInstances,
    sourceRemoved: removed.includes(source.study_uid),
    studies: [source.study_uid, target.study_uid],
  };
}
