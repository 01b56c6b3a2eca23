/**
 * The SQL index of the archive: patient / study / series / instance levels with the attributes QIDO-RS
 * matches and returns (PS3.18 Table 10.6.1-5, default return attributes of Tables 10.6.3-3/-4/-5) and
 * what retrieval needs (blob key, transfer syntax, frame byte spans).
 *
 * Every implementation must pass `catalog.contract.ts`.
 */
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { InstanceHeader, PixelDataLocation } from '../dicom/instance-header.js';
import type { QidoQuery } from './qido-query.js';

export interface NewInstance {
  header: InstanceHeader;
  blobKey: string;
  blobSize: number;
  /** sha256 of the blob's bytes, lower-case hex, computed while they streamed into the store (fsck). */
  checksum?: string;
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
  /** A new row was written. */
  | { status: 'stored' }
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
  close(): Promise<void>;
}
