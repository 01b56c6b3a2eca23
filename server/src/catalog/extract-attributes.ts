/**
 * Turns an ingested instance header (DICOM JSON, PS3.18 §F.2) into the column values of the patient,
 * study, series and instance rows. Values are normalised once here so matching stays simple SQL:
 * dates to 'YYYYMMDD', times without colons, person names to their DICOM string form plus an
 * upper-cased search key.
 */
import { createHash } from 'node:crypto';
import { firstNumber, firstString, type DicomJsonDataset, type DicomJsonPersonName } from '../dicom/dicom-json.js';
import type { InstanceHeader } from '../dicom/instance-header.js';
import type { OtherPatientId, PatientIdentity } from '../dicom/patient-identity.js';
import { tagOf } from './dictionary.js';
import type { InstancesTable, PatientsTable, SeriesTable, StudiesTable } from './schema.js';

type Row<T> = { [K in keyof T as K extends 'id' ? never : K]: T[K] };
export type PatientValues = Row<PatientsTable>;
export type StudyValues = Omit<Row<StudiesTable>, 'patient_fk' | 'num_series' | 'num_instances' | 'modalities'>;
export type SeriesValues = Omit<Row<SeriesTable>, 'study_fk' | 'num_instances'>;
export type InstanceValues = Omit<Row<InstancesTable>, 'series_fk' | 'blob_key' | 'blob_size' | 'checksum' | 'rejected' | 'stored_study_uid' | 'stored_series_uid' | 'original_transfer_syntax_uid' | 'original_blob_size'>;
/** The identity columns of a patient row. */
export type PatientIdentityColumns = Pick<PatientsTable, 'patient_id' | 'issuer' | 'patient_name' | 'birth_date' | 'sex' | 'other_ids'>;

export interface ExtractedRows {
  patient: PatientValues;
  study: StudyValues;
  series: SeriesValues;
  instance: InstanceValues;
}

const T = {
  PatientName: tagOf('PatientName'),
  PatientID: tagOf('PatientID'),
  IssuerOfPatientID: tagOf('IssuerOfPatientID'),
  PatientBirthDate: tagOf('PatientBirthDate'),
  PatientSex: tagOf('PatientSex'),
  TypeOfPatientID: tagOf('TypeOfPatientID'),
  OtherPatientIDsSequence: tagOf('OtherPatientIDsSequence'),
  StudyDate: tagOf('StudyDate'),
  StudyTime: tagOf('StudyTime'),
  AccessionNumber: tagOf('AccessionNumber'),
  ReferringPhysicianName: tagOf('ReferringPhysicianName'),
  StudyDescription: tagOf('StudyDescription'),
  StudyID: tagOf('StudyID'),
  SpecificCharacterSet: tagOf('SpecificCharacterSet'),
  TimezoneOffsetFromUTC: tagOf('TimezoneOffsetFromUTC'),
  Modality: tagOf('Modality'),
  SeriesDescription: tagOf('SeriesDescription'),
  SeriesNumber: tagOf('SeriesNumber'),
  PerformedProcedureStepStartDate: tagOf('PerformedProcedureStepStartDate'),
  PerformedProcedureStepStartTime: tagOf('PerformedProcedureStepStartTime'),
  RequestAttributesSequence: tagOf('RequestAttributesSequence'),
  InstanceNumber: tagOf('InstanceNumber'),
} as const;

function text(ds: DicomJsonDataset, tag: string): string | null {
  const value = firstString(ds, tag)?.trim();
  return value ? value : null;
}

/** All string values joined with '\', the DICOM multi-value delimiter (PS3.5 §6.4). */
function multiText(ds: DicomJsonDataset, tag: string): string | null {
  const values = (ds[tag]?.Value ?? []).map((v) => (typeof v === 'string' ? v.trim() : ''));
  return values.some((v) => v !== '') ? values.join('\\') : null;
}

/** DA: keep the 8 digits; also accepts the ACR-NEMA 'YYYY.MM.DD' form. */
export function normaliseDate(value: string | null | undefined): string | null {
  const digits = value?.replace(/[^0-9]/g, '') ?? '';
  return digits.length === 8 ? digits : null;
}

/** TM: drop the ACR-NEMA colons so values compare lexicographically (PS3.5 §6.2, TM). */
export function normaliseTime(value: string | null | undefined): string | null {
  const cleaned = value?.replace(/:/g, '').trim() ?? '';
  return /^\d{2,6}(\.\d{1,6})?$/.test(cleaned) ? cleaned : null;
}

function int32(ds: DicomJsonDataset, tag: string): number | null {
  const value = firstNumber(ds, tag);
  return value !== undefined && Number.isInteger(value) && Math.abs(value) <= 0x7fffffff ? value : null;
}

/** PN as stored: the 'Alphabetic=Ideographic=Phonetic' string form, trailing empty parts dropped. */
export function personNameText(value: unknown): string | null {
  let groups: string[];
  if (typeof value === 'string') groups = value.split('=');
  else if (value && typeof value === 'object') {
    const pn = value as DicomJsonPersonName;
    groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
  } else return null;
  const joined = groups.map((g) => g.trim().replace(/\^+$/, '')).join('=').replace(/=+$/, '');
  return joined === '' ? null : joined;
}

/** Case-insensitive search key of a stored name: its first non-empty group, upper-cased. */
export function personNameSearchKey(stored: string | null): string | null {
  if (stored === null) return null;
  const group = stored.split('=').find((g) => g !== '');
  return group ? group.toUpperCase() : null;
}

function personName(ds: DicomJsonDataset, tag: string): { text: string | null; search: string | null } {
  const stored = personNameText(ds[tag]?.Value?.[0]);
  return { text: stored, search: personNameSearchKey(stored) };
}

// ---------------------------------------------------------------------------------------------------
// Patient identity (dicom/patient-identity.ts) as the patient row keeps it

function trimmedOrNull(value: string | null | undefined): string | null {
  const t = value?.trim() ?? '';
  return t === '' ? null : t;
}

/**
 * An identity normalised the way the patient row stores it (names in their string form without
 * trailing '^', dates as 8 digits, empty values null, other IDs without empty ones), so two identities
 * that the index would store alike compare (and digest) alike.
 */
export function canonicalIdentity(identity: PatientIdentity): PatientIdentity {
  const otherIds: OtherPatientId[] = [];
  for (const other of identity.otherIds) {
    const id = other.id.trim();
    if (id === '') continue;
    const type = trimmedOrNull(other.type);
    otherIds.push({ id, issuer: other.issuer.trim(), ...(type === null ? {} : { type }) });
  }
  return {
    patientId: identity.patientId.trim(),
    issuer: identity.issuer.trim(),
    name: personNameText(identity.name),
    birthDate: normaliseDate(identity.birthDate),
    sex: trimmedOrNull(identity.sex),
    otherIds,
  };
}

/**
 * A short digest of an identity (canonicalIdentity first): the instance row keeps the digest of the
 * identity its stored file carries, and reads compare it with the patient row's. An other ID without a
 * type counts as TEXT, what identityElements writes for it.
 */
export function identityDigest(identity: PatientIdentity): string {
  const c = canonicalIdentity(identity);
  const canonical = JSON.stringify([
    c.patientId, c.issuer, c.name, c.birthDate, c.sex,
    c.otherIds.map((o) => [o.id, o.issuer, o.type ?? 'TEXT']),
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

/** The Other Patient IDs Sequence (0010,1002) items with an ID, as OtherPatientIds. */
function otherIdsOf(ds: DicomJsonDataset): OtherPatientId[] {
  const items = ds[T.OtherPatientIDsSequence]?.Value ?? [];
  const out: OtherPatientId[] = [];
  for (const item of items) {
    if (item === null || typeof item !== 'object' || 'Alphabetic' in item) continue;
    const itemDs = item as DicomJsonDataset;
    const id = text(itemDs, T.PatientID);
    if (id === null) continue;
    const type = text(itemDs, T.TypeOfPatientID);
    out.push({ id, issuer: text(itemDs, T.IssuerOfPatientID) ?? '', ...(type === null ? {} : { type }) });
  }
  return out;
}

/** The identity an instance's own header carries (Patient module, PS3.3 C.7.1.1), canonical. */
export function identityOfDataset(ds: DicomJsonDataset): PatientIdentity {
  return canonicalIdentity({
    patientId: text(ds, T.PatientID) ?? '',
    issuer: text(ds, T.IssuerOfPatientID) ?? '',
    name: personNameText(ds[T.PatientName]?.Value?.[0]),
    birthDate: text(ds, T.PatientBirthDate),
    sex: text(ds, T.PatientSex),
    otherIds: otherIdsOf(ds),
  });
}

/** The column values of a patient row holding `identity` (canonical) at `version`. */
export function patientValuesOf(identity: PatientIdentity, version: number): PatientValues {
  const c = canonicalIdentity(identity);
  return {
    patient_id: c.patientId === '' ? null : c.patientId,
    issuer: c.issuer,
    patient_name: c.name,
    patient_name_search: personNameSearchKey(c.name),
    birth_date: c.birthDate,
    sex: c.sex,
    other_ids: c.otherIds.length > 0 ? JSON.stringify(c.otherIds) : null,
    version,
  };
}

/** The identity a patient row holds. */
export function identityOfPatientRow(row: PatientIdentityColumns): PatientIdentity {
  let otherIds: OtherPatientId[] = [];
  if (row.other_ids !== null) {
    try {
      const parsed: unknown = JSON.parse(row.other_ids);
      if (Array.isArray(parsed)) otherIds = parsed as OtherPatientId[];
    } catch {
      // A hand-edited row: no other IDs rather than no answer.
    }
  }
  return {
    patientId: row.patient_id ?? '',
    issuer: row.issuer,
    name: row.patient_name,
    birthDate: row.birth_date,
    sex: row.sex,
    otherIds,
  };
}

function extractPatient(ds: DicomJsonDataset): PatientValues {
  return patientValuesOf(identityOfDataset(ds), 0);
}

function extractStudy(header: InstanceHeader, json: string, now: string): StudyValues {
  const ds = header.dataset;
  const referring = personName(ds, T.ReferringPhysicianName);
  return {
    study_uid: header.studyInstanceUid,
    study_date: normaliseDate(text(ds, T.StudyDate)),
    study_time: normaliseTime(text(ds, T.StudyTime)),
    accession_number: text(ds, T.AccessionNumber),
    referring_physician_name: referring.text,
    referring_physician_name_search: referring.search,
    study_description: text(ds, T.StudyDescription),
    study_id: text(ds, T.StudyID),
    specific_character_set: multiText(ds, T.SpecificCharacterSet),
    timezone_offset: text(ds, T.TimezoneOffsetFromUTC),
    attributes: json,
    created_at: now,
  };
}

function extractSeries(header: InstanceHeader, json: string, now: string): SeriesValues {
  const ds = header.dataset;
  const request = ds[T.RequestAttributesSequence];
  return {
    series_uid: header.seriesInstanceUid,
    modality: text(ds, T.Modality),
    series_description: text(ds, T.SeriesDescription),
    series_number: int32(ds, T.SeriesNumber),
    pps_start_date: normaliseDate(text(ds, T.PerformedProcedureStepStartDate)),
    pps_start_time: normaliseTime(text(ds, T.PerformedProcedureStepStartTime)),
    specific_character_set: multiText(ds, T.SpecificCharacterSet),
    timezone_offset: text(ds, T.TimezoneOffsetFromUTC),
    request_attributes: request?.Value?.length ? JSON.stringify(request) : null,
    attributes: json,
    created_at: now,
  };
}

function extractInstance(header: InstanceHeader, json: string, now: string): InstanceValues {
  const ds = header.dataset;
  return {
    sop_instance_uid: header.sopInstanceUid,
    sop_class_uid: header.sopClassUid,
    instance_number: int32(ds, T.InstanceNumber),
    pixel_rows: header.rows ?? null,
    pixel_columns: header.columns ?? null,
    bits_allocated: header.bitsAllocated ?? null,
    number_of_frames: header.numberOfFrames,
    transfer_syntax_uid: header.transferSyntaxUid,
    specific_character_set: multiText(ds, T.SpecificCharacterSet),
    timezone_offset: text(ds, T.TimezoneOffsetFromUTC),
    pixel_data: header.pixelData ? JSON.stringify(header.pixelData) : null,
    attributes: json,
    created_at: now,
    identity_hash: identityDigest(identityOfDataset(ds)),
  };
}

export function extractRows(header: InstanceHeader, now: Date = new Date()): ExtractedRows {
  const json = JSON.stringify(header.dataset);
  const iso = now.toISOString();
  return {
    patient: extractPatient(header.dataset),
    study: extractStudy(header, json, iso),
    series: extractSeries(header, json, iso),
    instance: extractInstance(header, json, iso),
  };
}
