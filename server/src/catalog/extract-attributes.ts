/**
 * Turns an ingested instance header (DICOM JSON, PS3.18 §F.2) into the column values of the patient,
 * study, series and instance rows. Values are normalised once here so matching stays simple SQL:
 * dates to 'YYYYMMDD', times without colons, person names to their DICOM string form plus an
 * upper-cased search key.
 */
import { firstNumber, firstString, type DicomJsonDataset, type DicomJsonPersonName } from '../dicom/dicom-json.js';
import type { InstanceHeader } from '../dicom/instance-header.js';
import { tagOf } from './dictionary.js';
import type { InstancesTable, PatientsTable, SeriesTable, StudiesTable } from './schema.js';

type Row<T> = { [K in keyof T as K extends 'id' ? never : K]: T[K] };
export type PatientValues = Row<PatientsTable>;
export type StudyValues = Omit<Row<StudiesTable>, 'patient_fk' | 'num_series' | 'num_instances' | 'modalities'>;
export type SeriesValues = Omit<Row<SeriesTable>, 'study_fk' | 'num_instances'>;
export type InstanceValues = Omit<Row<InstancesTable>, 'series_fk' | 'blob_key' | 'blob_size' | 'checksum'>;

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

function extractPatient(ds: DicomJsonDataset): PatientValues {
  const name = personName(ds, T.PatientName);
  return {
    patient_id: text(ds, T.PatientID),
    issuer: text(ds, T.IssuerOfPatientID) ?? '',
    patient_name: name.text,
    patient_name_search: name.search,
    birth_date: normaliseDate(text(ds, T.PatientBirthDate)),
    sex: text(ds, T.PatientSex),
  };
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
