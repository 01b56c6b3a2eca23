/**
 * Patient rows as the hospital link changes them (docs/architecture.md, "Hospital link"): an identity
 * applied to the row of the same Patient ID + issuer, a merge of one patient's studies into another's,
 * and the patient an instance is coerced to at ingest. Shared by both engines; every function runs
 * inside the caller's transaction. The stored files are never touched: the row is the identity of
 * record, and its `version` (bumped on every change) tells reads and caches that it changed.
 *
 * Lock order as at ingest (store-instance.ts): patient rows before study rows before instance rows.
 */
import type { Kysely } from 'kysely';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { canonicalIdentity, identityDigest, identityOfDataset, identityOfPatientRow, patientValuesOf } from './extract-attributes.js';
import type { CatalogDatabase } from './schema.js';

type Db = Kysely<CatalogDatabase>;

/** The identity columns and version of a patient row, with its id. */
export interface PatientRow {
  id: number;
  version: number;
  identity: PatientIdentity;
}

export async function findPatientRow(db: Db, key: PatientKey): Promise<PatientRow | undefined> {
  const row = await db
    .selectFrom('patients')
    .select(['id', 'patient_id', 'issuer', 'patient_name', 'birth_date', 'sex', 'other_ids', 'version'])
    .where('patient_id', '=', key.patientId.trim())
    .where('issuer', '=', key.issuer.trim())
    .executeTakeFirst();
  return row === undefined ? undefined : { id: row.id, version: row.version, identity: identityOfPatientRow(row) };
}

/**
 * The row an identity change from the hospital link applies to: the one with the same Patient ID and
 * issuer, else (the key has an issuer) the one with the same Patient ID and no issuer. Modalities often
 * send no Issuer of Patient ID even when they take the patient from the worklist; a Patient ID without
 * an issuer is taken to be the hospital's, and its row takes the issuer with the identity. When both
 * rows exist only the qualified one changes (an unqualified ID may be another issuer's).
 */
async function findTargetRow(db: Db, key: PatientKey): Promise<PatientRow | undefined> {
  const exact = await findPatientRow(db, key);
  if (exact !== undefined || key.issuer.trim() === '') return exact;
  return findPatientRow(db, { patientId: key.patientId, issuer: '' });
}

/** Replaces the matchable other identifiers of a patient row. */
export async function writeOtherIds(db: Db, patientFk: number, identity: PatientIdentity, replace: boolean): Promise<void> {
  if (replace) await db.deleteFrom('patient_other_ids').where('patient_fk', '=', patientFk).execute();
  const others = canonicalIdentity(identity).otherIds;
  if (others.length === 0) return;
  await db
    .insertInto('patient_other_ids')
    .values(others.map((other) => ({ patient_fk: patientFk, patient_id: other.id, issuer: other.issuer })))
    .execute();
}

/** Study Instance UIDs of a patient row. */
export async function studyUidsOfPatient(db: Db, patientFk: number): Promise<string[]> {
  const rows = await db.selectFrom('studies').select('study_uid').where('patient_fk', '=', patientFk).orderBy('id').execute();
  return rows.map((row) => row.study_uid);
}

/**
 * Instances indexed before migration 0003 have no identity digest; a patient row that starts being
 * applied on read needs it for each of its instances, so it is computed from their indexed headers
 * now, a page at a time.
 */
async function fillIdentityDigests(db: Db, studyFks: readonly number[]): Promise<void> {
  if (studyFks.length === 0) return;
  for (;;) {
    const rows = await db
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .select(['i.id', 'i.attributes'])
      .where('se.study_fk', 'in', [...studyFks])
      .where('i.identity_hash', 'is', null)
      .limit(500)
      .execute();
    if (rows.length === 0) return;
    for (const row of rows) {
      let digest: string;
      try {
        digest = identityDigest(identityOfDataset(JSON.parse(row.attributes)));
      } catch {
        digest = '';
      }
      await db.updateTable('instances').set({ identity_hash: digest }).where('id', '=', row.id).execute();
    }
  }
}

async function studyIdsOfPatient(db: Db, patientFk: number): Promise<number[]> {
  return (await db.selectFrom('studies').select('id').where('patient_fk', '=', patientFk).execute()).map((row) => row.id);
}

/**
 * Gives a patient row `identity` (same Patient ID + issuer) and bumps its version, unless it already
 * holds exactly that identity as the identity of record. True when it changed.
 */
async function setIdentity(db: Db, row: PatientRow, identity: PatientIdentity): Promise<boolean> {
  if (row.version > 0 && identityDigest(row.identity) === identityDigest(identity)) return false;
  const { version: _version, ...values } = patientValuesOf(identity, 0);
  await db
    .updateTable('patients')
    .set((eb) => ({ ...values, version: eb('version', '+', 1) }))
    .where('id', '=', row.id)
    .execute();
  await writeOtherIds(db, row.id, identity, true);
  await fillIdentityDigests(db, await studyIdsOfPatient(db, row.id));
  return true;
}

/** Creates the patient row of `identity` as the identity of record (version 1). */
async function createPatient(db: Db, identity: PatientIdentity): Promise<number> {
  const inserted = await db.insertInto('patients').values(patientValuesOf(identity, 1)).returning('id').executeTakeFirstOrThrow();
  await writeOtherIds(db, inserted.id, identity, false);
  return inserted.id;
}

/** applyPatientIdentity: the row of the identity's Patient ID + issuer (findTargetRow) takes it; the study UIDs it changed. */
export async function applyIdentityRows(db: Db, identity: PatientIdentity): Promise<string[]> {
  if (identity.patientId.trim() === '') return [];
  const row = await findTargetRow(db, identity);
  if (row === undefined) return [];
  if (!(await setIdentity(db, row, identity))) return [];
  return studyUidsOfPatient(db, row.id);
}

/**
 * mergePatients: the studies of `prior` move to the surviving patient's row (created when absent),
 * which takes the surviving identity; the prior row goes. Returns the study UIDs moved, and those the
 * surviving patient already had when its identity changed.
 */
export async function mergePatientRows(db: Db, prior: PatientKey, surviving: PatientIdentity): Promise<string[]> {
  if (surviving.patientId.trim() === '') return [];
  if (prior.patientId.trim() === surviving.patientId.trim() && prior.issuer.trim() === surviving.issuer.trim()) {
    return applyIdentityRows(db, surviving);
  }
  const priorRow = await findTargetRow(db, prior);
  let survivingRow = await findTargetRow(db, surviving);
  if (priorRow !== undefined && priorRow.id === survivingRow?.id) return applyIdentityRows(db, surviving);
  const changed: string[] = [];
  if (survivingRow !== undefined) {
    if (await setIdentity(db, survivingRow, surviving)) changed.push(...(await studyUidsOfPatient(db, survivingRow.id)));
  }
  if (priorRow === undefined) return changed;
  const moved = await studyUidsOfPatient(db, priorRow.id);
  if (moved.length > 0) {
    survivingRow ??= { id: await createPatient(db, surviving), version: 1, identity: surviving };
    const movedIds = await studyIdsOfPatient(db, priorRow.id);
    await db.updateTable('studies').set({ patient_fk: survivingRow.id }).where('patient_fk', '=', priorRow.id).execute();
    await fillIdentityDigests(db, movedIds);
  }
  await db.deleteFrom('patients').where('id', '=', priorRow.id).execute();
  return [...changed, ...moved];
}

/**
 * Ingest coercion: the patient row an instance is indexed under is the row of `identity` (created, or
 * given the identity when it holds another one). Returns the row id and the study UIDs whose identity
 * changed (the row's other studies), for the caller's caches.
 */
export async function ensureCoercedPatient(db: Db, identity: PatientIdentity): Promise<{ id: number; changedStudies: string[] }> {
  const row = await findTargetRow(db, identity);
  if (row === undefined) return { id: await createPatient(db, identity), changedStudies: [] };
  const changed = await setIdentity(db, row, identity);
  return { id: row.id, changedStudies: changed ? await studyUidsOfPatient(db, row.id) : [] };
}

/**
 * Moves a study to another patient row (ingest coercion of a study stored before under another
 * patient); the former row goes when it has no study left. Returns true when the study moved.
 */
export async function moveStudyToPatient(db: Db, studyId: number, patientFk: number): Promise<boolean> {
  const study = await db.selectFrom('studies').select('patient_fk').where('id', '=', studyId).executeTakeFirstOrThrow();
  if (study.patient_fk === patientFk) return false;
  await db.updateTable('studies').set({ patient_fk: patientFk }).where('id', '=', studyId).execute();
  await fillIdentityDigests(db, [studyId]);
  const other = await db.selectFrom('studies').select('id').where('patient_fk', '=', study.patient_fk).executeTakeFirst();
  if (other === undefined) await db.deleteFrom('patients').where('id', '=', study.patient_fk).execute();
  return true;
}
