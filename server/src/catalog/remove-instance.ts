/**
 * Removing one instance row (fsck --repair, for a row whose blob is lost or corrupt), shared by both
 * engines. Same lock order as ingest (store-instance.ts): the study row is updated first, so a
 * concurrent store into the same study waits instead of deadlocking, and the counters and
 * ModalitiesInStudy are recounted exactly (a rejected instance counts nowhere: curation-rows.ts). A
 * series, study or patient left without instances goes too, so QIDO never lists an empty study.
 */
import type { Kysely } from 'kysely';
import { dropEmpty, lockStudies, recountStudies } from './curation-rows.js';
import type { CatalogDatabase } from './schema.js';

type Db = Kysely<CatalogDatabase>;

/** Runs inside a transaction. False when no row has this SOP Instance UID and blob key (any more). */
export async function removeInstanceRows(db: Db, sopInstanceUid: string, blobKey: string): Promise<boolean> {
  const row = await db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .select(['i.id as instanceId', 'se.study_fk as studyId'])
    .where('i.sop_instance_uid', '=', sopInstanceUid)
    .where('i.blob_key', '=', blobKey)
    .executeTakeFirst();
  if (row === undefined) return false;
  await lockStudies(db, [row.studyId]);
  await db.deleteFrom('instances').where('id', '=', row.instanceId).execute();
  await recountStudies(db, [row.studyId]);
  await dropEmpty(db, [row.studyId]);
  return true;
}
