/**
 * Storage lifecycle in the index (docs/architecture.md, "Storage lifecycle"; server/src/lifecycle),
 * shared by both engines; every write runs inside the caller's transaction:
 *
 * - candidates of a housekeeping rule (transfer syntax, modality, SOP class, study age), never rejected
 *   instances;
 * - the recompression journal (`blob_conversions`) and the swap of an instance row to its converted
 *   blob: the row takes the new file's syntax, size, checksum and frame spans and keeps the syntax and
 *   size it was received with (`original_transfer_syntax_uid`, `original_blob_size`); the old blob is
 *   queued in `pending_blob_deletes` in the same transaction (archive/blob-deletes.ts deletes it);
 * - storage usage: bytes and counts in total, by modality, by transfer syntax and per study.
 */
import { sql, type Kysely } from 'kysely';
import type {
  ConversionEntry,
  ConvertedBlob,
  LifecycleCandidate,
  LifecycleFilter,
  StorageUsage,
  StudyStorageUsage,
  SwapOutcome,
  UsageFigures,
} from './catalog.js';
import type { CatalogDatabase } from './schema.js';

type Db = Kysely<CatalogDatabase>;

/** A study's age: its Study Date, or, without one, the day its row was made (YYYYMMDD on both engines). */
const studyDay = sql<string>`coalesce(${sql.ref('st.study_date')}, replace(substr(${sql.ref('st.created_at')}, 1, 10), '-', ''))`;

export async function lifecycleCandidateRows(db: Db, filter: LifecycleFilter, after: number | undefined, limit: number): Promise<LifecycleCandidate[]> {
  const rows = await db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select(['i.id', 'st.study_uid', 'se.series_uid', 'se.modality', 'i.sop_instance_uid', 'i.sop_class_uid', 'i.transfer_syntax_uid', 'i.blob_key', 'i.blob_size'])
    .where('i.rejected', '=', 0)
    .$if(after !== undefined, (qb) => qb.where('i.id', '>', after!))
    .$if((filter.transferSyntaxes?.length ?? 0) > 0, (qb) => qb.where('i.transfer_syntax_uid', 'in', [...filter.transferSyntaxes!]))
    .$if((filter.modalities?.length ?? 0) > 0, (qb) => qb.where('se.modality', 'in', [...filter.modalities!]))
    .$if((filter.sopClasses?.length ?? 0) > 0, (qb) => qb.where('i.sop_class_uid', 'in', [...filter.sopClasses!]))
    .$if((filter.excludeSopClasses?.length ?? 0) > 0, (qb) => qb.where('i.sop_class_uid', 'not in', [...filter.excludeSopClasses!]))
    .$if(filter.olderThan !== undefined, (qb) => qb.where(studyDay, '<', filter.olderThan!))
    .$if(filter.asReceived === true, (qb) => qb.where('i.original_transfer_syntax_uid', 'is', null))
    .$if(filter.studyInstanceUid !== undefined, (qb) => qb.where('st.study_uid', '=', filter.studyInstanceUid!))
    .orderBy('i.id')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    cursor: row.id,
    studyInstanceUid: row.study_uid,
    seriesInstanceUid: row.series_uid,
    sopInstanceUid: row.sop_instance_uid,
    sopClassUid: row.sop_class_uid,
    modality: row.modality,
    transferSyntaxUid: row.transfer_syntax_uid,
    blobKey: row.blob_key,
    blobSize: Number(row.blob_size),
  }));
}

export async function beginConversionRow(db: Db, entry: ConversionEntry): Promise<void> {
  await db
    .insertInto('blob_conversions')
    .values({ blob_key: entry.blobKey, sop_instance_uid: entry.sopInstanceUid, source_blob_key: entry.sourceBlobKey, transfer_syntax_uid: entry.transferSyntaxUid, started_at: entry.startedAt })
    .execute();
}

async function queueDelete(db: Db, blobKey: string, reason: string, now: string): Promise<void> {
  await db
    .insertInto('pending_blob_deletes')
    .values({ blob_key: blobKey, reason, queued_at: now })
    .onConflict((oc) => oc.column('blob_key').doNothing())
    .execute();
}

export async function swapConvertedBlobRows(db: Db, converted: ConvertedBlob, now: string): Promise<SwapOutcome> {
  const row = await db
    .selectFrom('instances as i')
    .innerJoin('series as se', 'se.id', 'i.series_fk')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select(['i.id', 'i.transfer_syntax_uid', 'i.blob_size', 'i.original_transfer_syntax_uid', 'i.original_blob_size', 'st.study_uid'])
    .where('i.sop_instance_uid', '=', converted.sopInstanceUid)
    .where('i.blob_key', '=', converted.sourceBlobKey)
    .executeTakeFirst();
  await db.deleteFrom('blob_conversions').where('blob_key', '=', converted.blobKey).execute();
  if (row === undefined) {
    // Deleted, purged or converted elsewhere meanwhile: the converted blob is nobody's.
    await queueDelete(db, converted.blobKey, 'conversion-abandoned', now);
    return { swapped: false };
  }
  await db
    .updateTable('instances')
    .set({
      blob_key: converted.blobKey,
      blob_size: converted.blobSize,
      checksum: converted.checksum,
      transfer_syntax_uid: converted.transferSyntaxUid,
      pixel_data: JSON.stringify(converted.pixelData),
      original_transfer_syntax_uid: row.original_transfer_syntax_uid ?? row.transfer_syntax_uid,
      original_blob_size: row.original_blob_size === null ? Number(row.blob_size) : Number(row.original_blob_size),
      ...(converted.attributes === undefined ? {} : { attributes: converted.attributes }),
    })
    .where('id', '=', row.id)
    .execute();
  await queueDelete(db, converted.sourceBlobKey, 'recompressed', now);
  return { swapped: true, studyInstanceUid: row.study_uid };
}

export async function listConversionRows(db: Db, limit: number): Promise<ConversionEntry[]> {
  const rows = await db.selectFrom('blob_conversions').selectAll().orderBy('started_at').orderBy('blob_key').limit(limit).execute();
  return rows.map((r) => ({ blobKey: r.blob_key, sopInstanceUid: r.sop_instance_uid, sourceBlobKey: r.source_blob_key, transferSyntaxUid: r.transfer_syntax_uid, startedAt: r.started_at }));
}

export async function abandonConversionRows(db: Db, blobKeys: readonly string[], now: string): Promise<void> {
  for (const key of blobKeys) {
    const referenced = await db.selectFrom('instances').select('id').where('blob_key', '=', key).executeTakeFirst();
    await db.deleteFrom('blob_conversions').where('blob_key', '=', key).execute();
    if (referenced === undefined) await queueDelete(db, key, 'conversion-abandoned', now);
  }
}

// ---------------------------------------------------------------------------------------------------
// Usage

const figures = {
  instances: sql<number | string>`count(*)`.as('instances'),
  bytes: sql<number | string | null>`sum(${sql.ref('i.blob_size')})`.as('bytes'),
  receivedBytes: sql<number | string | null>`sum(coalesce(${sql.ref('i.original_blob_size')}, ${sql.ref('i.blob_size')}))`.as('received_bytes'),
  recompressed: sql<number | string | null>`sum(case when ${sql.ref('i.original_transfer_syntax_uid')} is null then 0 else 1 end)`.as('recompressed'),
};

interface FigureRow {
  instances: number | string;
  bytes: number | string | null;
  received_bytes: number | string | null;
  recompressed: number | string | null;
}

function figuresOf(row: FigureRow | undefined): UsageFigures {
  return {
    instances: Number(row?.instances ?? 0),
    bytes: Number(row?.bytes ?? 0),
    receivedBytes: Number(row?.received_bytes ?? 0),
    recompressedInstances: Number(row?.recompressed ?? 0),
  };
}

function withInstances(db: Db) {
  return db.selectFrom('instances as i').innerJoin('series as se', 'se.id', 'i.series_fk').innerJoin('studies as st', 'st.id', 'se.study_fk');
}

export async function storageUsageRows(db: Db, page: { limit: number; offset: number }): Promise<StorageUsage> {
  const total = await withInstances(db)
    .select([figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .select([sql<number | string>`count(distinct ${sql.ref('st.id')})`.as('studies'), sql<number | string>`count(distinct ${sql.ref('se.id')})`.as('series')])
    .executeTakeFirst();
  const rejected = await db
    .selectFrom('instances')
    .select([sql<number | string>`count(*)`.as('n'), sql<number | string | null>`sum(${sql.ref('blob_size')})`.as('bytes')])
    .where('rejected', '=', 1)
    .executeTakeFirst();
  const pending = await db.selectFrom('pending_blob_deletes').select(sql<number | string>`count(*)`.as('n')).executeTakeFirst();
  const conversions = await db.selectFrom('blob_conversions').select(sql<number | string>`count(*)`.as('n')).executeTakeFirst();
  const byModality = await withInstances(db)
    .select([sql<string>`coalesce(${sql.ref('se.modality')}, '')`.as('modality'), figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .groupBy(sql`coalesce(${sql.ref('se.modality')}, '')`)
    .orderBy(sql`sum(${sql.ref('i.blob_size')})`, 'desc')
    .execute();
  const bySyntax = await withInstances(db)
    .select(['i.transfer_syntax_uid', figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .groupBy('i.transfer_syntax_uid')
    .orderBy(sql`sum(${sql.ref('i.blob_size')})`, 'desc')
    .execute();
  const studies = await withInstances(db)
    .select(['st.study_uid', 'st.study_date', 'st.modalities', figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .groupBy(['st.id', 'st.study_uid', 'st.study_date', 'st.modalities'])
    .orderBy(sql`sum(${sql.ref('i.blob_size')})`, 'desc')
    .orderBy('st.study_uid')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
  return {
    total: {
      ...figuresOf(total),
      studies: Number(total?.studies ?? 0),
      series: Number(total?.series ?? 0),
      rejectedInstances: Number(rejected?.n ?? 0),
      rejectedBytes: Number(rejected?.bytes ?? 0),
      pendingBlobDeletes: Number(pending?.n ?? 0),
      conversionsUnderWay: Number(conversions?.n ?? 0),
    },
    byModality: byModality.map((r) => ({ modality: r.modality, ...figuresOf(r) })),
    byTransferSyntax: bySyntax.map((r) => ({ transferSyntaxUid: r.transfer_syntax_uid, ...figuresOf(r) })),
    studies: studies.map((r) => ({ studyInstanceUid: r.study_uid, studyDate: r.study_date, modalities: r.modalities, ...figuresOf(r) })),
  };
}

export async function studyStorageUsageRows(db: Db, studyInstanceUid: string): Promise<StudyStorageUsage | undefined> {
  const study = await db.selectFrom('studies').select(['id', 'study_uid', 'study_date', 'modalities']).where('study_uid', '=', studyInstanceUid).executeTakeFirst();
  if (study === undefined) return undefined;
  const inStudy = () => withInstances(db).where('st.id', '=', study.id);
  const total = await inStudy().select([figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed]).executeTakeFirst();
  const rejected = await inStudy().select(sql<number | string>`count(*)`.as('n')).where('i.rejected', '=', 1).executeTakeFirst();
  const series = await inStudy()
    .select(['se.series_uid', 'se.modality', figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .groupBy(['se.id', 'se.series_uid', 'se.modality'])
    .orderBy('se.id')
    .execute();
  const bySyntax = await inStudy()
    .select(['i.transfer_syntax_uid', figures.instances, figures.bytes, figures.receivedBytes, figures.recompressed])
    .groupBy('i.transfer_syntax_uid')
    .orderBy(sql`sum(${sql.ref('i.blob_size')})`, 'desc')
    .execute();
  return {
    studyInstanceUid: study.study_uid,
    studyDate: study.study_date,
    modalities: study.modalities,
    ...figuresOf(total),
    rejectedInstances: Number(rejected?.n ?? 0),
    series: series.map((r) => ({ seriesInstanceUid: r.series_uid, modality: r.modality, ...figuresOf(r) })),
    byTransferSyntax: bySyntax.map((r) => ({ transferSyntaxUid: r.transfer_syntax_uid, ...figuresOf(r) })),
  };
}
