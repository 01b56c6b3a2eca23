/**
 * The Catalog on top of Kysely, shared by the SQLite and PostgreSQL backends. A backend supplies only
 * what differs between engines: how a write transaction starts, which errors are worth retrying, and
 * how the schema is migrated.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { AppError, isAppError } from '../errors.js';
import type { InstanceHeader } from '../dicom/instance-header.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { createHash } from 'node:crypto';
import type { StudyIdentity } from '../dicom/study-identity.js';
import type {
  Catalog,
  CurrentPatient,
  CurrentPlacement,
  DeleteOutcome,
  IndexedBlob,
  InstanceScope,
  InstanceWithAttributes,
  ListOptions,
  MoveOutcome,
  MoveRequest,
  NewInstance,
  PurgeOutcome,
  QidoResult,
  RejectedEntry,
  RejectedFilter,
  RestoreOutcome,
  StoreInstanceOutcome,
  StoredInstance,
  ConversionEntry,
  ConvertedBlob,
  LifecycleCandidate,
  LifecycleFilter,
  StorageUsage,
  StudyStorageUsage,
  SwapOutcome,
} from './catalog.js';
import { abandonConversionRows, beginConversionRow, lifecycleCandidateRows, listConversionRows, storageUsageRows, studyStorageUsageRows, swapConvertedBlobRows } from './lifecycle-rows.js';
import { deleteRows, duePurgeRows, listRejectedRows, moveRows, purgeRow, restoreRows, studyIdentityOfRow, studyOfRows } from './curation-rows.js';
import { extractRows, identityDigest, identityOfPatientRow, type ExtractedRows, type PatientIdentityColumns } from './extract-attributes.js';
import { applyIdentityRows, mergePatientRows } from './patient-rows.js';
import type { SqlEngine } from './migrations.js';
import type { QidoQuery } from './qido-query.js';
import type { CatalogDatabase } from './schema.js';
import { runSearch } from './search-query.js';
import { removeInstanceRows } from './remove-instance.js';
import { ConflictSignal, storeInstanceRows } from './store-instance.js';
import { StatementTemplates } from './statement-templates.js';
import { GroupCommit, type MemberOutcome } from './group-commit.js';

const MAX_ATTEMPTS = 8;

/**
 * Most instances whose rows one grouped transaction writes (group commit): it holds the writer for
 * about 0.3–0.5 ms per instance, so the other stores of the file wait at most ~15 ms behind a full group.
 */
export const MAX_STORE_GROUP = 32;

interface PendingStore {
  instance: NewInstance;
  rows: ExtractedRows;
}

type Db = Kysely<CatalogDatabase>;

/** Database failures become INDEX_FAILURE (503); the driver error is kept as `cause`, never in the message. */
function asIndexFailure(error: unknown, action: string): unknown {
  if (isAppError(error)) return error;
  return new AppError('INDEX_FAILURE', `Index database error while ${action}`, { cause: error });
}

export abstract class KyselyCatalog implements Catalog {
  /** Group commit of concurrent ingests (group-commit.ts); absent: one transaction per instance. */
  private readonly storeGroups: GroupCommit<PendingStore, StoreInstanceOutcome> | undefined;

  /**
   * @param options.groupCommit concurrent `storeInstance` calls share transactions (SQLite: its one
   *   writer would take them one after another anyway).
   */
  protected constructor(
    protected readonly db: Db,
    protected readonly engine: SqlEngine,
    options: { groupCommit?: boolean } = {},
  ) {
    this.storeGroups = options.groupCommit === true ? new GroupCommit((group) => this.storeGroup(group), MAX_STORE_GROUP) : undefined;
  }

  abstract migrate(): Promise<void>;

  /** Runs `work` in one write transaction, committed when it resolves and rolled back when it throws. */
  protected abstract inTransaction<T>(work: (trx: Db) => Promise<T>): Promise<T>;

  /** Unique-constraint races, serialisation failures, deadlocks, lock timeouts. */
  protected abstract isRetryable(error: unknown): boolean;

  /** Rows extracted by `prepareInstance` for headers not stored yet (dropped with the header if never stored). */
  private readonly prepared = new WeakMap<InstanceHeader, ExtractedRows>();
  /** Ingest's fixed-shape statements, compiled once for this catalog's dialect (statement-templates.ts). */
  private readonly templates = new StatementTemplates();

  prepareInstance(header: InstanceHeader): void {
    try {
      this.prepared.set(header, extractRows(header));
    } catch {
      // storeInstance extracts again and fails where its caller expects failures.
    }
  }

  async storeInstance(instance: NewInstance): Promise<StoreInstanceOutcome> {
    const rows = this.prepared.get(instance.header) ?? extractRows(instance.header);
    this.prepared.delete(instance.header);
    if (this.storeGroups !== undefined) return this.storeGroups.submit({ instance, rows });
    return this.storeAlone(instance, rows);
  }

  /** One instance in a transaction of its own, tried again on a unique-key race. */
  private async storeAlone(instance: NewInstance, rows: ExtractedRows): Promise<StoreInstanceOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction((trx) => storeInstanceRows(trx, this.templates, instance, rows));
      } catch (error) {
        if (error instanceof ConflictSignal) return { status: 'conflict', reason: error.reason };
        if (attempt >= MAX_ATTEMPTS || !this.isRetryable(error)) throw asIndexFailure(error, 'storing an instance');
        // Jittered back-off so racing writers do not collide again in lockstep.
        await sleep(Math.random() * 5 * attempt);
      }
    }
  }

  /**
   * Several instances in one transaction, each inside a savepoint of its own: an instance that conflicts
   * or fails rolls back only its own rows (PostgreSQL and SQLite both keep the transaction usable after
   * ROLLBACK TO). Every instance sees the rows of those before it (the same study, series or SOP
   * Instance UID twice in a group behaves as two transactions one after the other). One that failed for
   * another reason than a conflict (a unique-key race) is stored again alone after the commit, with the
   * usual retries. If the transaction itself fails (BEGIN, COMMIT, or SQLite rolling it back on its own,
   * which makes ROLLBACK TO fail), no row of the group is kept and every member fails with INDEX_FAILURE.
   */
  private async storeGroup(group: readonly PendingStore[]): Promise<Array<MemberOutcome<StoreInstanceOutcome>>> {
    if (group.length === 1) return [await settled(this.storeAlone(group[0]!.instance, group[0]!.rows))];
    let outcomes: Array<MemberOutcome<StoreInstanceOutcome> | undefined>;
    try {
      outcomes = await this.inTransaction(async (trx) => {
        const inGroup: Array<MemberOutcome<StoreInstanceOutcome> | undefined> = [];
        for (const { instance, rows } of group) {
          await sql`savepoint store_instance`.execute(trx);
          try {
            const value = await storeInstanceRows(trx, this.templates, instance, rows);
            await sql`release savepoint store_instance`.execute(trx);
            inGroup.push({ value });
          } catch (error) {
            await sql`rollback to savepoint store_instance`.execute(trx);
            await sql`release savepoint store_instance`.execute(trx);
            inGroup.push(error instanceof ConflictSignal ? { value: { status: 'conflict', reason: error.reason } } : undefined);
          }
        }
        return inGroup;
      });
    } catch (error) {
      const failure = asIndexFailure(error, 'storing instances');
      return group.map(() => ({ error: failure }));
    }
    return Promise.all(outcomes.map((outcome, i) => outcome ?? settled(this.storeAlone(group[i]!.instance, group[i]!.rows))));
  }

  async listInstances(scope: InstanceScope, options: ListOptions = {}): Promise<StoredInstance[]> {
    try {
      const patients = new PatientsOfRows();
      return (await this.instanceRows(scope, false, options.includeRejected === true)).map((row) => toStoredInstance(row, patients));
    } catch (error) {
      throw asIndexFailure(error, 'listing instances');
    }
  }

  async listInstancesWithAttributes(scope: InstanceScope): Promise<InstanceWithAttributes[]> {
    try {
      const rows = await this.instanceRows(scope, true);
      const patients = new PatientsOfRows();
      return rows.map((row) => withLazyAttributes(toStoredInstance(row, patients), row.attributes, row.bits_allocated));
    } catch (error) {
      throw asIndexFailure(error, 'listing instance attributes');
    }
  }

  async instanceListVersion(scope: { studyInstanceUid: string; seriesInstanceUid?: string | undefined }): Promise<string> {
    try {
      let query = this.db
        .selectFrom('instances as i')
        .innerJoin('series as se', 'se.id', 'i.series_fk')
        .innerJoin('studies as st', 'st.id', 'se.study_fk')
        .select((eb) => [eb.fn.countAll().as('count'), eb.fn.max('i.id').as('last')])
        .where('i.rejected', '=', 0)
        .where('st.study_uid', '=', scope.studyInstanceUid);
      if (scope.seriesInstanceUid !== undefined) query = query.where('se.series_uid', '=', scope.seriesInstanceUid);
      const row = await query.executeTakeFirst();
      return `${Number(row?.count ?? 0)}:${row?.last ?? ''}`;
    } catch (error) {
      throw asIndexFailure(error, 'checking an instance list');
    }
  }

  private instanceRows(scope: InstanceScope, withAttributes = false, includeRejected = false) {
    let query = this.db
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .innerJoin('studies as st', 'st.id', 'se.study_fk')
      .innerJoin('patients as p', 'p.id', 'st.patient_fk')
      .select([
        'st.study_uid', 'se.series_uid', 'i.sop_instance_uid', 'i.sop_class_uid', 'i.transfer_syntax_uid',
        'i.blob_key', 'i.blob_size', 'i.number_of_frames', 'i.pixel_rows', 'i.pixel_columns', 'i.pixel_data',
        'i.identity_hash', 'p.id as patient_row', 'p.version', 'p.patient_id', 'p.issuer', 'p.patient_name', 'p.birth_date', 'p.sex', 'p.other_ids',
        'i.rejected', 'i.stored_study_uid', 'i.stored_series_uid',
        'st.study_date', 'st.study_time', 'st.accession_number', 'st.study_id', 'st.study_description', 'st.referring_physician_name',
      ])
      .$if(withAttributes, (qb) => qb.select(['i.attributes', 'i.bits_allocated']))
      .$if(!includeRejected, (qb) => qb.where('i.rejected', '=', 0))
      .where('st.study_uid', '=', scope.studyInstanceUid);
    if (scope.seriesInstanceUid !== undefined) query = query.where('se.series_uid', '=', scope.seriesInstanceUid);
    if (scope.sopInstanceUid !== undefined) query = query.where('i.sop_instance_uid', '=', scope.sopInstanceUid);
    // Series then instance number; NULL numbers last on both engines, insertion order breaks ties.
    return query
      .orderBy(sql`${sql.ref('se.series_number')} is null`)
      .orderBy('se.series_number')
      .orderBy('se.id')
      .orderBy(sql`${sql.ref('i.instance_number')} is null`)
      .orderBy('i.instance_number')
      .orderBy('i.id')
      .execute();
  }

  async search(query: QidoQuery): Promise<QidoResult> {
    try {
      return await runSearch(this.db, this.engine, query);
    } catch (error) {
      throw asIndexFailure(error, 'searching');
    }
  }

  async listIndexedBlobs(after: number | undefined, limit: number): Promise<IndexedBlob[]> {
    try {
      const rows = await this.db
        .selectFrom('instances as i')
        .innerJoin('series as se', 'se.id', 'i.series_fk')
        .innerJoin('studies as st', 'st.id', 'se.study_fk')
        .select(['i.id', 'st.study_uid', 'se.series_uid', 'i.sop_instance_uid', 'i.blob_key', 'i.blob_size', 'i.checksum', 'i.rejected', 'i.original_transfer_syntax_uid'])
        .$if(after !== undefined, (qb) => qb.where('i.id', '>', after!))
        .orderBy('i.id')
        .limit(limit)
        .execute();
      return rows.map((row) => ({
        cursor: row.id,
        studyInstanceUid: row.study_uid,
        seriesInstanceUid: row.series_uid,
        sopInstanceUid: row.sop_instance_uid,
        blobKey: row.blob_key,
        blobSize: Number(row.blob_size),
        checksum: row.checksum ?? undefined,
        rejected: row.rejected === 1,
        ...(row.original_transfer_syntax_uid === null ? {} : { originalTransferSyntaxUid: row.original_transfer_syntax_uid }),
      }));
    } catch (error) {
      throw asIndexFailure(error, 'listing indexed blobs');
    }
  }

  async referencedBlobKeys(blobKeys: readonly string[]): Promise<Set<string>> {
    if (blobKeys.length === 0) return new Set();
    try {
      const rows = await this.db.selectFrom('instances').select('blob_key').where('blob_key', 'in', [...blobKeys]).execute();
      return new Set(rows.map((row) => row.blob_key));
    } catch (error) {
      throw asIndexFailure(error, 'looking up blob keys');
    }
  }

  async removeInstance(sopInstanceUid: string, blobKey: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction((trx) => removeInstanceRows(trx, sopInstanceUid, blobKey));
      } catch (error) {
        if (attempt >= MAX_ATTEMPTS || !this.isRetryable(error)) throw asIndexFailure(error, 'removing an instance');
        await sleep(Math.random() * 5 * attempt);
      }
    }
  }

  async applyPatientIdentity(identity: PatientIdentity): Promise<string[]> {
    return this.retried('applying a patient identity', (trx) => applyIdentityRows(trx, identity));
  }

  async mergePatients(prior: PatientKey, surviving: PatientIdentity): Promise<string[]> {
    return this.retried('merging patients', (trx) => mergePatientRows(trx, prior, surviving));
  }

  async patientOfStudy(studyInstanceUid: string): Promise<{ identity: PatientIdentity; version: number } | undefined> {
    try {
      const row = await this.db
        .selectFrom('studies as st')
        .innerJoin('patients as p', 'p.id', 'st.patient_fk')
        .select(['p.patient_id', 'p.issuer', 'p.patient_name', 'p.birth_date', 'p.sex', 'p.other_ids', 'p.version'])
        .where('st.study_uid', '=', studyInstanceUid)
        .executeTakeFirst();
      return row === undefined ? undefined : { identity: identityOfPatientRow(row), version: row.version };
    } catch (error) {
      throw asIndexFailure(error, 'reading a patient');
    }
  }

  async studyOf(studyInstanceUid: string): Promise<{ study: StudyIdentity; patient: PatientIdentity } | undefined> {
    try {
      return await studyOfRows(this.db, studyInstanceUid);
    } catch (error) {
      throw asIndexFailure(error, 'reading a study');
    }
  }

  async listRejected(filter: RejectedFilter): Promise<RejectedEntry[]> {
    try {
      return await listRejectedRows(this.db, filter);
    } catch (error) {
      throw asIndexFailure(error, 'listing rejected instances');
    }
  }

  async restoreRejected(sopInstanceUids: readonly string[], now: string, voidedNotePurgeAfter: string): Promise<RestoreOutcome> {
    return this.retried('restoring rejected instances', (trx) => restoreRows(trx, sopInstanceUids, now, voidedNotePurgeAfter));
  }

  async duePurges(now: string, limit: number): Promise<RejectedEntry[]> {
    try {
      return await duePurgeRows(this.db, now, limit);
    } catch (error) {
      throw asIndexFailure(error, 'listing due purges');
    }
  }

  async purgeRejected(sopInstanceUid: string, now: string): Promise<PurgeOutcome | undefined> {
    return this.retried('purging a rejected instance', (trx) => purgeRow(trx, sopInstanceUid, now));
  }

  async deleteInstances(scope: InstanceScope, now: string): Promise<DeleteOutcome> {
    return this.retried('deleting instances', (trx) => deleteRows(trx, scope, now));
  }

  async pendingBlobDeletes(limit: number): Promise<string[]> {
    try {
      const rows = await this.db.selectFrom('pending_blob_deletes').select('blob_key').orderBy('queued_at').orderBy('blob_key').limit(limit).execute();
      return rows.map((row) => row.blob_key);
    } catch (error) {
      throw asIndexFailure(error, 'listing blobs to delete');
    }
  }

  async clearPendingBlobDeletes(blobKeys: readonly string[]): Promise<void> {
    if (blobKeys.length === 0) return;
    await this.retried('clearing deleted blobs', async (trx) => {
      for (let i = 0; i < blobKeys.length; i += 400) await trx.deleteFrom('pending_blob_deletes').where('blob_key', 'in', blobKeys.slice(i, i + 400)).execute();
    });
  }

  async moveInstances(request: MoveRequest, now: string): Promise<MoveOutcome> {
    return this.retried('moving instances', (trx) => moveRows(trx, request, now));
  }

  // Storage lifecycle (lifecycle-rows.ts)

  async lifecycleCandidates(filter: LifecycleFilter, after: number | undefined, limit: number): Promise<LifecycleCandidate[]> {
    try {
      return await lifecycleCandidateRows(this.db, filter, after, limit);
    } catch (error) {
      throw asIndexFailure(error, 'listing housekeeping candidates');
    }
  }

  async beginConversion(entry: ConversionEntry): Promise<void> {
    await this.retried('recording a recompression', (trx) => beginConversionRow(trx, entry));
  }

  async swapConvertedBlob(converted: ConvertedBlob): Promise<SwapOutcome> {
    return this.retried('swapping in a recompressed blob', (trx) => swapConvertedBlobRows(trx, converted, new Date().toISOString()));
  }

  async listConversions(limit: number): Promise<ConversionEntry[]> {
    try {
      return await listConversionRows(this.db, limit);
    } catch (error) {
      throw asIndexFailure(error, 'listing recompressions under way');
    }
  }

  async abandonConversions(blobKeys: readonly string[], now: string): Promise<void> {
    if (blobKeys.length === 0) return;
    await this.retried('abandoning recompressions', (trx) => abandonConversionRows(trx, blobKeys, now));
  }

  async storageUsage(page: { limit: number; offset: number }): Promise<StorageUsage> {
    try {
      return await storageUsageRows(this.db, page);
    } catch (error) {
      throw asIndexFailure(error, 'summing storage usage');
    }
  }

  async studyStorageUsage(studyInstanceUid: string): Promise<StudyStorageUsage | undefined> {
    try {
      return await studyStorageUsageRows(this.db, studyInstanceUid);
    } catch (error) {
      throw asIndexFailure(error, 'summing storage usage of a study');
    }
  }

  /** One write transaction, retried on the engine's transient failures as ingest is. */
  private async retried<T>(action: string, work: (trx: Db) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction(work);
      } catch (error) {
        if (attempt >= MAX_ATTEMPTS || !this.isRetryable(error)) throw asIndexFailure(error, action);
        await sleep(Math.random() * 5 * attempt);
      }
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

interface InstanceRow extends PatientIdentityColumns {
  identity_hash: string | null;
  rejected: number;
  stored_study_uid: string | null;
  stored_series_uid: string | null;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_id: string | null;
  study_description: string | null;
  referring_physician_name: string | null;
  patient_row: number;
  version: number;
  study_uid: string;
  series_uid: string;
  sop_instance_uid: string;
  sop_class_uid: string;
  transfer_syntax_uid: string;
  blob_key: string;
  blob_size: number | string;
  number_of_frames: number;
  pixel_rows: number | null;
  pixel_columns: number | null;
  pixel_data: string | null;
}

/** The current patient of each managed patient row of a result, built once per row. */
class PatientsOfRows {
  private readonly byRow = new Map<number, Omit<CurrentPatient, 'differs'>>();

  of(row: InstanceRow): CurrentPatient | undefined {
    if (row.version <= 0) return undefined;
    let patient = this.byRow.get(row.patient_row);
    if (patient === undefined) {
      const identity = identityOfPatientRow(row);
      patient = { identity, version: row.version, digest: identityDigest(identity) };
      this.byRow.set(row.patient_row, patient);
    }
    // No digest (a row from before migration 0003 not filled in yet): applying the identity is always right.
    return { ...patient, differs: row.identity_hash !== patient.digest };
  }
}

/**
 * Where a moved instance reads (curation): its study's identity of record and its series, when the UIDs
 * its stored file carries are not those of its row's place. Undefined for an instance never moved.
 */
function placementOf(row: InstanceRow): CurrentPlacement | undefined {
  if (row.stored_study_uid === null || row.stored_series_uid === null) return undefined;
  if (row.stored_study_uid === row.study_uid && row.stored_series_uid === row.series_uid) return undefined;
  const study: StudyIdentity = studyIdentityOfRow(row);
  const digest = createHash('sha256').update(JSON.stringify([study, row.series_uid])).digest('base64url').slice(0, 22);
  return { study, seriesInstanceUid: row.series_uid, digest };
}

function toStoredInstance(row: InstanceRow, patients: PatientsOfRows): StoredInstance {
  const patient = patients.of(row);
  const placement = placementOf(row);
  return {
    studyInstanceUid: row.study_uid,
    seriesInstanceUid: row.series_uid,
    sopInstanceUid: row.sop_instance_uid,
    sopClassUid: row.sop_class_uid,
    transferSyntaxUid: row.transfer_syntax_uid,
    blobKey: row.blob_key,
    blobSize: Number(row.blob_size),
    numberOfFrames: row.number_of_frames,
    rows: row.pixel_rows ?? undefined,
    columns: row.pixel_columns ?? undefined,
    pixelData: row.pixel_data === null ? undefined : JSON.parse(row.pixel_data),
    ...(patient === undefined ? {} : { patient }),
    ...(placement === undefined ? {} : { placement }),
    ...(row.rejected === 1 ? { rejected: true } : {}),
  };
}

/**
 * The header JSON is parsed on first use: a caller that already holds a finished form of the instance
 * (the metadata routes keep each instance's JSON text) skips the parse, the biggest cost of a series.
 */
function withLazyAttributes(instance: StoredInstance, raw: string | null | undefined, bitsAllocated: number | null | undefined): InstanceWithAttributes {
  let parsed: DicomJsonDataset | undefined;
  return {
    instance,
    attributesJson: raw ?? '{}',
    ...(bitsAllocated === null || bitsAllocated === undefined ? {} : { bitsAllocated }),
    get attributes(): DicomJsonDataset {
      parsed ??= JSON.parse(raw ?? '{}') as DicomJsonDataset;
      return parsed;
    },
  };
}

async function settled<T>(promise: Promise<T>): Promise<MemberOutcome<T>> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}
