/**
 * The SQL index of the archive: patient / study / series / instance levels with the attributes QIDO-RS
 * matches and returns (PS3.18 Table 10.6.1-5, default return attributes of Tables 10.6.3-3/-4/-5) and
 * what retrieval needs (blob key, transfer syntax, frame byte spans).
 *
 * Every implementation must pass `catalog.contract.ts`.
 */
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { InstanceHeader, PixelDataLocation } from '../dicom/instance-header.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import type { RejectedReference } from '../dicom/rejection-note.js';
import type { StudyIdentity, StudyPlacement } from '../dicom/study-identity.js';
import type { QidoQuery } from './qido-query.js';
import type { RejectionKind } from './schema.js';

export type { RejectionKind } from './schema.js';

export interface NewInstance {
  header: InstanceHeader;
  blobKey: string;
  blobSize: number;
  /** sha256 of the blob's bytes, lower-case hex, computed while they streamed into the store (fsck). */
  checksum?: string;
  /**
   * Ingest coercion: the identity the instance is indexed under (its order's patient) instead of the one
   * its header carries. The patient row of that identity is created, or given it, as the identity of
   * record; a study already stored under another patient moves to it. The blob is not touched.
   */
  identity?: PatientIdentity;
  /**
   * The instance is an IOCM rejection note (dicom/rejection-note.ts): in the same transaction as its
   * row, the instances it names are hidden (docs/architecture.md, "Curation").
   */
  rejection?: RejectionToApply;
}

/** A rejection note recognised at ingest, with when it was applied and when its instances may be purged (ISO-8601). */
export interface RejectionToApply {
  code: string;
  references: readonly RejectedReference[];
  rejectedAt: string;
  purgeAfter: string;
}

/** What a rejection note applied at ingest changed. */
export interface AppliedRejection {
  noteUid: string;
  code: string;
  /** Instances the note names. */
  named: number;
  /** Stored instances it hid now (others were hidden already or are not stored yet). */
  hidden: number;
  /** Studies whose visible content changed (caches of them are dropped). */
  studies: string[];
}

/**
 * Where a moved instance is read (curation: move, split, merge): the identity of record of its study
 * and its series, applied to what its stored file says (identity-on-read.ts), with a digest for ETags.
 */
export interface CurrentPlacement extends StudyPlacement {
  digest: string;
}

/**
 * The patient an instance is read with, once the hospital link manages its patient row (version 1 and
 * up; a row at version 0 holds only what the first stored instance said, and nothing is applied).
 */
export interface CurrentPatient {
  /** The patient row's identity: QIDO-RS and C-FIND answer it, metadata and retrieve apply it. */
  identity: PatientIdentity;
  /** Bumped on every change of the row: ETags and cache keys include it (with `digest`). */
  version: number;
  /** Digest of `identity` (extract-attributes.ts identityDigest). */
  digest: string;
  /** The stored file carries another identity: reads must apply `identity` to it. */
  differs: boolean;
}

/** One instance row's blob reference, as fsck walks them. */
export interface IndexedBlob {
  /** Position for paging: pass the last one seen as `after` to get the next page. */
  cursor: number;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  blobKey: string;
  blobSize: number;
  /** sha256 hex recorded at ingest; undefined for rows indexed before checksums were recorded. */
  checksum: string | undefined;
  /** A rejection note hides it (kept until restored or purged). */
  rejected: boolean;
  /** Storage lifecycle: the blob is a recompression of the file received (its original transfer syntax). */
  originalTransferSyntaxUid?: string;
}

export type StoreInstanceOutcome =
  /**
   * A new row was written. `identityChangedStudies`: studies whose patient identity changed with it
   * (ingest coercion gave an existing patient row the order's identity, or moved the study to it), so
   * the caller drops what it cached about them.
   */
  | {
      status: 'stored';
      identityChangedStudies?: string[];
      /** The instance was rejected before it arrived (or purged and sent again): stored hidden. */
      hidden?: boolean;
      /** The instance is a rejection note: what it hid. */
      rejection?: AppliedRejection;
    }
  /** The same SOP Instance UID already exists in the same study and series: nothing changed. */
  | { status: 'duplicate'; existingBlobKey: string }
  /** The SOP Instance UID exists under another study or series. Nothing changed. */
  | { status: 'conflict'; reason: string };

export interface StoredInstance {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  blobKey: string;
  blobSize: number;
  numberOfFrames: number;
  rows: number | undefined;
  columns: number | undefined;
  pixelData: PixelDataLocation | undefined;
  /** Absent while the patient row is not managed by the hospital link (version 0). */
  patient?: CurrentPatient;
  /** Present when curation moved the instance: the study and series it reads with (its file says others). */
  placement?: CurrentPlacement;
  /** Only listed with `includeRejected`: a rejection note hides it. */
  rejected?: boolean;
}

/** A stored instance with its header as indexed at ingest (DICOM JSON, see `InstanceHeader.dataset`). */
export interface InstanceWithAttributes {
  instance: StoredInstance;
  /** The data set before Pixel Data, File Meta excluded; binary values over 4 KiB are `{vr}` only. */
  attributes: DicomJsonDataset;
  /** `attributes` as the index keeps it (its JSON text), when the catalog has it: callers may splice it instead of parsing. */
  attributesJson?: string;
  /** Bits Allocated (0028,0100) of the data set, as indexed; undefined when not recorded. */
  bitsAllocated?: number;
}

export interface InstanceScope {
  studyInstanceUid: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
}

export interface ListOptions {
  /** List rejected instances too (curation); reads never do. */
  includeRejected?: boolean;
}

/** An instance a rejection note names (or a voided note), as administrators list it. */
export interface RejectedEntry {
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopClassUid: string;
  kind: RejectionKind;
  /** CID 7011 title code of the note. */
  reasonCode: string;
  noteUid: string;
  rejectedAt: string;
  purgeAfter: string;
  purgedAt: string | null;
  /** The instance is in the index (false: named before it arrived, or purged). */
  stored: boolean;
}

export interface RejectedFilter {
  studyInstanceUid?: string;
  noteUid?: string;
  sopInstanceUids?: readonly string[];
  /** `active` (default): not purged yet; `purged`: tombstones; `all`. */
  state?: 'active' | 'purged' | 'all';
  limit: number;
  offset: number;
}

export interface RestoreOutcome {
  /** The rejections removed (their instances visible again when stored). */
  restored: RejectedEntry[];
  /** Notes left with nothing to reject: hidden themselves now (kind `voided-note`). */
  voidedNotes: string[];
  /** Studies whose visible content changed. */
  studies: string[];
}

/** An instance row removed with its blob queued for deletion (purge, DELETE). */
export interface RemovedInstance {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  blobKey: string;
}

export interface PurgeOutcome {
  entry: RejectedEntry;
  /** The stored instance removed (absent when it was never received). */
  removed?: RemovedInstance;
  studies: string[];
}

export interface DeleteOutcome {
  removed: RemovedInstance[];
  studies: string[];
}

/** Instances to move: a whole study, chosen series of it, or chosen instances of it. */
export interface InstanceSelection {
  studyInstanceUid: string;
  seriesInstanceUids?: readonly string[];
  sopInstanceUids?: readonly string[];
}

/** General Study attributes given for a new study (split); absent ones are copied from the source study. */
export type StudyAttributesInput = Partial<Omit<StudyIdentity, 'studyInstanceUid'>>;

/** Another patient: the row of this Patient ID + issuer, created with this identity when there is none. */
export type PatientTarget = PatientIdentity;

export type MoveTarget =
  /** Into an existing study (merge; its patient too). */
  | { kind: 'study'; studyInstanceUid: string }
  /** Into a new study (split), under the source's patient or `patient`. */
  | { kind: 'new-study'; studyInstanceUid: string; attributes?: StudyAttributesInput; patient?: PatientTarget }
  /** The whole study to another patient (its UID kept); series or instances go to another patient as a new study of theirs. */
  | { kind: 'patient'; patient: PatientTarget };

export interface MoveRequest {
  from: InstanceSelection;
  to: MoveTarget;
}

export interface MoveOutcome {
  fromStudy: string;
  toStudy: string;
  fromPatient: PatientKey;
  toPatient: PatientKey;
  /** Series moved whole, and series made in the target for instances moved out of a series. */
  series: number;
  instances: number;
  /** The source study was left empty and removed (merge). */
  sourceRemoved: boolean;
  /** Studies whose content or identity changed. */
  studies: string[];
}

// ---------------------------------------------------------------------------------------------------
// Storage lifecycle (server/src/lifecycle; catalog/lifecycle-rows.ts)

/** Which instances a housekeeping rule applies to. Empty lists: any. */
export interface LifecycleFilter {
  /** Only instances stored in one of these transfer syntaxes. */
  transferSyntaxes?: readonly string[];
  modalities?: readonly string[];
  sopClasses?: readonly string[];
  /** Never these SOP classes (e.g. Key Object Selection: the rejection notes retention writes). */
  excludeSopClasses?: readonly string[];
  /** Study Date (or, for a study without one, the day its row was made) strictly before this YYYYMMDD. */
  olderThan?: string;
  /** Only instances whose file is still the one received (never recompressed). */
  asReceived?: boolean;
  /** Only instances of this study. */
  studyInstanceUid?: string;
}

/** An instance a housekeeping rule may act on (never a rejected one). */
export interface LifecycleCandidate {
  /** Position for paging: pass the last one seen as `after`. */
  cursor: number;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  modality: string | null;
  transferSyntaxUid: string;
  blobKey: string;
  blobSize: number;
}

/** A recompression under way: the converted blob's key, written in `blob_conversions` before the blob. */
export interface ConversionEntry {
  blobKey: string;
  sopInstanceUid: string;
  sourceBlobKey: string;
  transferSyntaxUid: string;
  startedAt: string;
}

/** A converted blob, durable in the store, to take the place of the instance's stored file. */
export interface ConvertedBlob {
  sopInstanceUid: string;
  /** The key the row must still hold (else the instance changed meanwhile and nothing is swapped). */
  sourceBlobKey: string;
  blobKey: string;
  blobSize: number;
  checksum: string;
  transferSyntaxUid: string;
  pixelData: PixelDataLocation;
  /** The instance's header JSON when the conversion changed it (Planar Configuration); absent: unchanged. */
  attributes?: string;
}

export interface SwapOutcome {
  /** The row now references the converted blob; its old blob is queued for deletion. */
  swapped: boolean;
  /** The instance's study (its caches are dropped) when swapped. */
  studyInstanceUid?: string;
}

/** Bytes and counts, as the storage usage API reports them. */
export interface UsageFigures {
  instances: number;
  /** Bytes of the stored files now. */
  bytes: number;
  /** Bytes of the files as received (recompressed ones counted at their original size). */
  receivedBytes: number;
  /** Instances whose stored file was recompressed by housekeeping. */
  recompressedInstances: number;
}

export interface StorageUsage {
  total: UsageFigures & { studies: number; series: number; rejectedInstances: number; rejectedBytes: number; pendingBlobDeletes: number; conversionsUnderWay: number };
  byModality: Array<UsageFigures & { modality: string }>;
  byTransferSyntax: Array<UsageFigures & { transferSyntaxUid: string }>;
  /** Largest studies first. */
  studies: Array<UsageFigures & { studyInstanceUid: string; studyDate: string | null; modalities: string | null }>;
}

export interface StudyStorageUsage extends UsageFigures {
  studyInstanceUid: string;
  studyDate: string | null;
  modalities: string | null;
  rejectedInstances: number;
  series: Array<UsageFigures & { seriesInstanceUid: string; modality: string | null }>;
  byTransferSyntax: Array<UsageFigures & { transferSyntaxUid: string }>;
}

export interface QidoResult {
  /** One DICOM JSON dataset per match, without RetrieveURL (the HTTP layer knows the base URL). */
  matches: DicomJsonDataset[];
  /** Attribute keys given for matching that this index cannot match on; reported as a Warning header. */
  ignoredKeys: string[];
}

export interface Catalog {
  /** Creates or upgrades the schema. Idempotent. */
  migrate(): Promise<void>;
  /**
   * Indexes one instance in a single transaction: patient, study and series rows are created or
   * updated, counters and ModalitiesInStudy kept current, and the instance row written last.
   */
  storeInstance(instance: NewInstance): Promise<StoreInstanceOutcome>;
  /**
   * Optional: the part of indexing `header` that needs no database (its rows and their JSON), done now,
   * while the caller makes the blob durable; the next `storeInstance` of this same header object uses
   * it. Only an earlier start: what gets written is the same either way.
   */
  prepareInstance?(header: InstanceHeader): void;
  /** Instances within a study / series / single instance, ordered by series then instance number; rejected ones left out unless asked for. */
  listInstances(scope: InstanceScope, options?: ListOptions): Promise<StoredInstance[]>;
  /**
   * Like `listInstances` (same scope, same order), each with its stored attribute JSON: one indexed
   * query, no blob reads (WADO-RS metadata).
   */
  listInstancesWithAttributes(scope: InstanceScope): Promise<InstanceWithAttributes[]>;
  /**
   * A token for the set of instances `listInstances(scope)` gives (a study or series): the count and the
   * highest row id of the visible ones, by one light query. An instance stored into the scope, by any
   * process, changes it (row ids are never reused); so does one rejected, restored or removed. A process
   * that keeps a list (Archive's instance lists) checks the token instead of reading the list again.
   * Changes in place (a corrected patient, a move, a recompression) do not change it: they are announced
   * on the change feed, which drops such lists.
   */
  instanceListVersion(scope: { studyInstanceUid: string; seriesInstanceUid?: string | undefined }): Promise<string>;
  search(query: QidoQuery): Promise<QidoResult>;
  /** Every instance's blob reference in a stable order, at most `limit` after `after` (fsck). */
  listIndexedBlobs(after: number | undefined, limit: number): Promise<IndexedBlob[]>;
  /** The subset of `blobKeys` some instance row references (fsck: a blob outside it is an orphan). */
  referencedBlobKeys(blobKeys: readonly string[]): Promise<Set<string>>;
  /**
   * Removes the instance row if it still references `blobKey`, in one transaction that keeps the
   * study and series counters and ModalitiesInStudy exact and removes a series, study or patient left
   * empty. True when a row was removed. Used by fsck --repair for rows whose blob is lost or corrupt.
   */
  removeInstance(sopInstanceUid: string, blobKey: string): Promise<boolean>;
  /**
   * The hospital link corrects a patient: the row with the identity's Patient ID + issuer takes the
   * identity (name, birth date, sex, other IDs) and its version is bumped, unless it already holds it.
   * Returns the Study Instance UIDs whose patient identity changed (none when no such row exists).
   * Stored files are not touched; reads apply the row (docs/architecture.md, "Hospital link").
   */
  applyPatientIdentity(identity: PatientIdentity): Promise<string[]>;
  /**
   * The hospital link merges `prior` into the surviving patient: the studies of prior move to the
   * surviving patient's row (created when absent), which takes the surviving identity; the prior row
   * is removed. Returns the study UIDs moved, and those the surviving patient already had when its
   * identity changed.
   */
  mergePatients(prior: PatientKey, surviving: PatientIdentity): Promise<string[]>;
  /** The patient a study is read with (undefined when the study is unknown); version 0: not managed. */
  patientOfStudy(studyInstanceUid: string): Promise<{ identity: PatientIdentity; version: number } | undefined>;
  /** The study's identity of record (its row) and its patient's, for objects written into it (rejection notes). */
  studyOf(studyInstanceUid: string): Promise<{ study: StudyIdentity; patient: PatientIdentity } | undefined>;

  // Curation (docs/architecture.md, "Curation"): every method one transaction, counters exact.

  /** Rejections (and voided notes), newest first. */
  listRejected(filter: RejectedFilter): Promise<RejectedEntry[]>;
  /**
   * Lifts the rejection of these instances (active ones; purged ones cannot come back): visible again.
   * A note left rejecting nothing is voided: hidden, purged like the instances (`voidedNotePurgeAfter`).
   */
  restoreRejected(sopInstanceUids: readonly string[], now: string, voidedNotePurgeAfter: string): Promise<RestoreOutcome>;
  /** Rejections whose purge time has come (not purged yet), oldest first. */
  duePurges(now: string, limit: number): Promise<RejectedEntry[]>;
  /** Removes a rejected instance's row for good (its blob queued for deletion) and marks the rejection purged. */
  purgeRejected(sopInstanceUid: string, now: string): Promise<PurgeOutcome | undefined>;
  /** Removes the rows of every instance in scope, rejected or not, and their rejections; their blobs are queued for deletion. */
  deleteInstances(scope: InstanceScope, now: string): Promise<DeleteOutcome>;
  /** Blobs queued for deletion whose deletion is not confirmed yet. */
  pendingBlobDeletes(limit: number): Promise<string[]>;
  /** Their deletion is confirmed (or they turned out to be referenced). */
  clearPendingBlobDeletes(blobKeys: readonly string[]): Promise<void>;
  /** Moves instances, series or a study (move, split, merge, another patient); the stored files are not touched. */
  moveInstances(request: MoveRequest, now: string): Promise<MoveOutcome>;

  // Storage lifecycle (docs/architecture.md, "Storage lifecycle").

  /** Instances (not rejected) matching the filter, in id order, at most `limit` after `after`. */
  lifecycleCandidates(filter: LifecycleFilter, after: number | undefined, limit: number): Promise<LifecycleCandidate[]>;
  /** Records a recompression about to write `entry.blobKey` (before the blob is written). */
  beginConversion(entry: ConversionEntry): Promise<void>;
  /**
   * One transaction: the instance row takes the converted blob (transfer syntax, size, checksum, frame
   * spans; the original syntax and size recorded the first time), its old blob is queued for deletion
   * (`pending_blob_deletes`) and the journal entry removed. When the row no longer holds
   * `sourceBlobKey` (deleted, purged, converted by another process) nothing is swapped and the converted
   * blob is queued for deletion instead.
   */
  swapConvertedBlob(converted: ConvertedBlob): Promise<SwapOutcome>;
  /** Recompressions under way (journal entries), oldest first. */
  listConversions(limit: number): Promise<ConversionEntry[]>;
  /** Gives up these journal entries: their blobs (unless an instance row references one) are queued for deletion. */
  abandonConversions(blobKeys: readonly string[], now: string): Promise<void>;
  /** Bytes and counts of the whole archive, by modality and transfer syntax, and the largest studies. */
  storageUsage(page: { limit: number; offset: number }): Promise<StorageUsage>;
  /** One study's bytes and counts (undefined when the study is unknown). */
  studyStorageUsage(studyInstanceUid: string): Promise<StudyStorageUsage | undefined>;
  /**
   * Settings of the database engine that make the index degrade as it grows, each as a sentence for the
   * operator (logged at start-up). Optional: engines with nothing to check leave it out.
   */
  engineWarnings?(): Promise<string[]>;
  close(): Promise<void>;
}
