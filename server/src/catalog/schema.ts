/**
 * Row types of the catalog tables, shared by the SQLite and PostgreSQL backends.
 *
 * Conventions: DA values are 'YYYYMMDD' text, TM values digits without colons, multi-valued CS
 * values joined with '\' (as in the DICOM encoding), person names in their DICOM string form
 * ('Alphabetic=Ideographic=Phonetic') plus an upper-cased `*_search` copy of the alphabetic group so
 * names match case-insensitively on both engines (PS3.4 §C.2.2.2.1 leaves PN case handling to the
 * SCP). JSON columns hold text. Timestamps are ISO-8601 text.
 */
import type { Generated } from 'kysely';

export interface PatientsTable {
  id: Generated<number>;
  /** NULL when the instance carries no Patient ID: such patients are never merged. */
  patient_id: string | null;
  /** '' when absent, so the (patient_id, issuer) unique key also covers IDs without an issuer. */
  issuer: string;
  patient_name: string | null;
  patient_name_search: string | null;
  birth_date: string | null;
  sex: string | null;
  /** OtherPatientIDsSequence as JSON (`OtherPatientId[]`, dicom/patient-identity.ts); NULL when none. */
  other_ids: string | null;
  /**
   * 0 while the row holds what the first stored instance said; bumped on every change made by the
   * hospital link (identity applied, merge, coercion at ingest). From 1 on the row is the patient's
   * identity of record and reads apply it to every instance (docs/architecture.md, "Hospital link").
   */
  version: number;
}

/** Every other identifier of a patient with its issuer (OtherPatientIDsSequence), for matching. */
export interface PatientOtherIdsTable {
  id: Generated<number>;
  patient_fk: number;
  patient_id: string;
  /** '' when the identifier has no issuer. */
  issuer: string;
}

export interface StudiesTable {
  id: Generated<number>;
  study_uid: string;
  patient_fk: number;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  referring_physician_name: string | null;
  referring_physician_name_search: string | null;
  study_description: string | null;
  study_id: string | null;
  /** Distinct series modalities, sorted, '\'-joined (ModalitiesInStudy). */
  modalities: string | null;
  specific_character_set: string | null;
  timezone_offset: string | null;
  num_series: number;
  num_instances: number;
  /** Header of the study's first instance, DICOM JSON. */
  attributes: string;
  created_at: string;
}

export interface SeriesTable {
  id: Generated<number>;
  series_uid: string;
  study_fk: number;
  modality: string | null;
  series_description: string | null;
  series_number: number | null;
  pps_start_date: string | null;
  pps_start_time: string | null;
  specific_character_set: string | null;
  timezone_offset: string | null;
  /** RequestAttributesSequence element as DICOM JSON, when present. */
  request_attributes: string | null;
  num_instances: number;
  /** Header of the series' first instance, DICOM JSON. */
  attributes: string;
  created_at: string;
}

export interface InstancesTable {
  id: Generated<number>;
  sop_instance_uid: string;
  series_fk: number;
  sop_class_uid: string;
  instance_number: number | null;
  pixel_rows: number | null;
  pixel_columns: number | null;
  bits_allocated: number | null;
  number_of_frames: number;
  transfer_syntax_uid: string;
  specific_character_set: string | null;
  timezone_offset: string | null;
  blob_key: string;
  /** bigint in PostgreSQL: node-postgres returns it as a string, so read it through Number(). */
  blob_size: number | string;
  /** sha256 (lower-case hex) of the blob's bytes, computed while it streamed in; NULL for older rows. */
  checksum: string | null;
  /** PixelDataLocation as JSON, NULL when the instance has no pixel data. */
  pixel_data: string | null;
  attributes: string;
  created_at: string;
  /**
   * Digest of the patient identity the stored file itself carries (extract-attributes.ts
   * `identityDigest`): reads compare it with the patient row's to know whether the file needs the
   * row's identity applied. NULL for rows indexed before migration 0003 (filled in when their patient
   * row first changes).
   */
  identity_hash: string | null;
  /** 1 while a rejection note (IOCM) hides the instance: reads skip it and the counters leave it out. */
  rejected: Generated<number>;
  /**
   * The Study and Series Instance UIDs its stored file carries, recorded when curation first moved it
   * (NULL: never moved). Reads apply the study and series of record when they differ from these.
   */
  stored_study_uid: string | null;
  stored_series_uid: string | null;
  /** Storage lifecycle: the transfer syntax the instance was received in, once recompressed (NULL: stored as received). */
  original_transfer_syntax_uid: string | null;
  /** Storage lifecycle: the size of the file as received, once recompressed (bigint in PostgreSQL: read through Number()). */
  original_blob_size: number | string | null;
}

/** Why an instance is hidden: named by a rejection note, or the note itself once its rejection was revoked. */
export type RejectionKind = 'rejected' | 'voided-note';

/** Every instance a rejection note names (received or not yet), until restored; purged ones stay as tombstones. */
export interface RejectedInstancesTable {
  sop_instance_uid: string;
  /** Where the instance was (or the note said it was) when rejected. */
  study_uid: string;
  series_uid: string;
  sop_class_uid: Generated<string>;
  kind: Generated<RejectionKind>;
  /** CID 7011 document title of the note (113001, 113037, 113038, 113039). */
  reason_code: string;
  /** SOP Instance UID of the rejection note (KOS). */
  note_uid: string;
  rejected_at: string;
  /** When the purge may remove it for good (ISO-8601). */
  purge_after: string;
  /** Set once purged: the row stays so that the instance is hidden again if it is sent again. */
  purged_at: string | null;
}

/** Blobs whose index rows were removed (purge, DELETE), until the blob itself is deleted. */
export interface PendingBlobDeletesTable {
  blob_key: string;
  reason: string;
  queued_at: string;
}

/** Recompressions under way (storage lifecycle): a converted blob written (or being written) not yet swapped in. */
export interface BlobConversionsTable {
  /** Key of the converted blob. */
  blob_key: string;
  sop_instance_uid: string;
  /** Key of the stored blob it replaces. */
  source_blob_key: string;
  transfer_syntax_uid: string;
  started_at: string;
}

export interface CatalogDatabase {
  patients: PatientsTable;
  patient_other_ids: PatientOtherIdsTable;
  studies: StudiesTable;
  series: SeriesTable;
  instances: InstancesTable;
  rejected_instances: RejectedInstancesTable;
  pending_blob_deletes: PendingBlobDeletesTable;
  blob_conversions: BlobConversionsTable;
}
