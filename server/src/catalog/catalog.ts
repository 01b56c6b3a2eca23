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
import type { QidoQuery } from './qido-query.js';

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
}

export type StoreInstanceOutcome =
  /**
   * A new row was written. `identityChangedStudies`: studies whose patient identity changed with it
   * (ingest coercion gave an existing patient row the order's identity, or moved the study to it), so
   * the caller drops what it cached about them.
   */
  | { status: 'stored'; identityChangedStudies?: string[] }
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
  /** Instances within a study / series / single instance, ordered by series then instance number. */
  listInstances(scope: InstanceScope): Promise<StoredInstance[]>;
  /**
   * Like `listInstances` (same scope, same order), each with its stored attribute JSON: one indexed
   * query, no blob reads (WADO-RS metadata).
   */
  listInstancesWithAttributes(scope: InstanceScope): Promise<InstanceWithAttributes[]>;
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
  close(): Promise<void>;
}
