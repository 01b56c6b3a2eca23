/**
 * Removing one instance row (fsck --repair, for a row whose blob is lost or corrupt), shared by both
 * engines. Same lock order as ingest (store-instance.ts): the study row is updated first, so a
 * concurrent store into the same study waits instead of deadlocking, and the counters and
 * ModalitiesInStudy stay exact. A series, study or patient left without instances goes too, so QIDO
 * never lists an empty study.
 */
import type { Kysely } from 'kysely';
import type { CatalogDatabase } from './schema.js';

type Db = Kysely<CatalogDatabase>;

/** Runs inside a transaction. False when no row has this SOP Instance UID and blob key (any more). */
export async function removeInstanceRows(db: Db, sopInstanceUid: string, blobKey: string): Promise<boolean> {
  const row = await db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select(['i.id as instanceId', 'se.id as seriesId', 'st.id as studyId', 'st.patient_fk as patientId'])
    .where('i.sop_instance_uid', '=', sopInstanceUid)
    .where('i.blob_key', '=', blobKey)
    .executeTakeFirst();
  if (row === undefined) return false;
  await db.updateTable('studies').set((eb) => ({ num_instances: eb('num_instances', '-', 1) })).where('id', '=', row.studyId).execute();
  await db.deleteFrom('instances').where('id', '=', row.instanceId).execute();
  const series = await db
    .updateTable('series')
    .set((eb) => ({ num_instances: eb('num_instances', '-', 1) }))
    .where('id', '=', row.seriesId)
    .returning('num_instances')
    .executeTakeFirstOrThrow();
  if (series.num_instances <= 0) {
    await db.deleteFrom('series').where('id', '=', row.seriesId).execute();
    const remaining = await db.selectFrom('series').select('modality').distinct().where('study_fk', '=', row.studyId).execute();
    const modalities = [...new Set(remaining.map((r) => r.modality).filter((m): m is string => m !== null && m !== ''))].sort();
    await db
      .updateTable('studies')
      .set((eb) => ({ num_series: eb('num_series', '-', 1), modalities: modalities.length > 0 ? modalities.join('\\') : null }))
      .where('id', '=', row.studyId)
      .execute();
  }
  const study = await db.selectFrom('studies').select('num_instances').where('id', '=', row.studyId).executeTakeFirstOrThrow();
  if (study.num_instances <= 0) {
    await db.deleteFrom('studies').where('id', '=', row.studyId).execute();
    const other = await db.selectFrom('studies').select('id').where('patient_fk', '=', row.patientId).executeTakeFirst();
    if (other === undefined) await db.deleteFrom('patients').where('id', '=', row.patientId).execute();
  }
  return true;
}
