/**
 * Which DICOM attributes live in catalog columns, how each is matched (PS3.4 §C.2.2.2) and how it is
 * rendered back to DICOM JSON. Covers the required QIDO-RS matching keys of PS3.18 Table 10.6.1-5 and
 * the default return attributes of Tables 10.6.3-3/-4/-5. Anything else is answered from the stored
 * attributes JSON (return) or reported as an ignored key (match).
 *
 * Table aliases used in every query: p = patients, st = studies, se = series, i = instances.
 */
import { tagOf, vrOf } from './dictionary.js';
import type { QidoLevel } from './qido-query.js';

export type AttributeLevel = 'patient' | 'study' | 'series' | 'instance';
export type MatchKind = 'uid' | 'string' | 'pn' | 'date' | 'time' | 'integer' | 'modalities';
/** How a column value becomes a DICOM JSON Value: text, '\'-joined values, PN string form, number, element JSON. */
export type RenderKind = 'text' | 'multi' | 'pn' | 'integer' | 'element-json' | 'other-ids';

export interface IndexedAttribute {
  keyword: string;
  tag: string;
  vr: string;
  level: AttributeLevel;
  /** Qualified column holding the returned value, e.g. 'st.study_date'. */
  column: string;
  render: RenderKind;
  /** Absent: returned from the column but not matchable (the key is reported as ignored). */
  match?: MatchKind;
  /** Column matched when it differs from `column` (upper-cased person names). */
  matchColumn?: string;
}

type Spec = [keyword: string, level: AttributeLevel, column: string, render: RenderKind, match?: MatchKind, matchColumn?: string];

const SPECS: Spec[] = [
  ['PatientName', 'patient', 'p.patient_name', 'pn', 'pn', 'p.patient_name_search'],
  ['PatientID', 'patient', 'p.patient_id', 'text', 'string'],
  ['IssuerOfPatientID', 'patient', 'p.issuer', 'text', 'string'],
  ['PatientBirthDate', 'patient', 'p.birth_date', 'text', 'date'],
  ['PatientSex', 'patient', 'p.sex', 'text', 'string'],
  // Returned from the patient row (the identity of record); matched through PatientID + IssuerOfPatientID (match-sql.ts).
  ['OtherPatientIDsSequence', 'patient', 'p.other_ids', 'other-ids'],
  ['StudyInstanceUID', 'study', 'st.study_uid', 'text', 'uid'],
  ['StudyDate', 'study', 'st.study_date', 'text', 'date'],
  ['StudyTime', 'study', 'st.study_time', 'text', 'time'],
  ['AccessionNumber', 'study', 'st.accession_number', 'text', 'string'],
  ['ReferringPhysicianName', 'study', 'st.referring_physician_name', 'pn', 'pn', 'st.referring_physician_name_search'],
  ['StudyDescription', 'study', 'st.study_description', 'text', 'string'],
  ['StudyID', 'study', 'st.study_id', 'text', 'string'],
  ['ModalitiesInStudy', 'study', 'st.modalities', 'multi', 'modalities'],
  ['NumberOfStudyRelatedSeries', 'study', 'st.num_series', 'integer', 'integer'],
  ['NumberOfStudyRelatedInstances', 'study', 'st.num_instances', 'integer', 'integer'],
  ['SeriesInstanceUID', 'series', 'se.series_uid', 'text', 'uid'],
  ['Modality', 'series', 'se.modality', 'text', 'string'],
  ['SeriesDescription', 'series', 'se.series_description', 'text', 'string'],
  ['SeriesNumber', 'series', 'se.series_number', 'integer', 'integer'],
  ['PerformedProcedureStepStartDate', 'series', 'se.pps_start_date', 'text', 'date'],
  ['PerformedProcedureStepStartTime', 'series', 'se.pps_start_time', 'text', 'time'],
  ['NumberOfSeriesRelatedInstances', 'series', 'se.num_instances', 'integer', 'integer'],
  ['RequestAttributesSequence', 'series', 'se.request_attributes', 'element-json'],
  ['SOPInstanceUID', 'instance', 'i.sop_instance_uid', 'text', 'uid'],
  ['SOPClassUID', 'instance', 'i.sop_class_uid', 'text', 'uid'],
  ['InstanceNumber', 'instance', 'i.instance_number', 'integer', 'integer'],
  ['Rows', 'instance', 'i.pixel_rows', 'integer', 'integer'],
  ['Columns', 'instance', 'i.pixel_columns', 'integer', 'integer'],
  ['BitsAllocated', 'instance', 'i.bits_allocated', 'integer', 'integer'],
  ['NumberOfFrames', 'instance', 'i.number_of_frames', 'integer', 'integer'],
];

function toAttribute([keyword, level, column, render, match, matchColumn]: Spec): IndexedAttribute {
  const tag = tagOf(keyword);
  return { keyword, tag, vr: vrOf(tag), level, column, render, ...(match && { match }), ...(matchColumn && { matchColumn }) };
}

const BY_TAG = new Map(SPECS.map((spec) => [tagOf(spec[0]), toAttribute(spec)]));

/**
 * The patient identity attributes (dicom/patient-identity.ts) answered from the patient row at every
 * level, never from a stored header: the row is the identity of record once the hospital link corrects
 * it (docs/architecture.md, "Hospital link").
 */
export const PATIENT_IDENTITY_TAGS: ReadonlySet<string> = new Set(
  ['PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'OtherPatientIDsSequence'].map(tagOf),
);

/** Alias of the table that holds rows of each query level. */
export const LEVEL_ALIAS: Record<QidoLevel, 'st' | 'se' | 'i'> = { study: 'st', series: 'se', instance: 'i' };

const RANK: Record<AttributeLevel, number> = { patient: 0, study: 0, series: 1, instance: 2 };

/**
 * SpecificCharacterSet and TimezoneOffsetFromUTC describe every level's own rows (PS3.18 Tables
 * 10.6.3-3/-4/-5 list them at each level), so their column follows the query level.
 */
function perLevelAttribute(keyword: string, level: QidoLevel, render: RenderKind, column: string): IndexedAttribute {
  const tag = tagOf(keyword);
  return { keyword, tag, vr: vrOf(tag), level, column: `${LEVEL_ALIAS[level]}.${column}`, render };
}

const SPECIFIC_CHARACTER_SET = tagOf('SpecificCharacterSet');
const TIMEZONE_OFFSET = tagOf('TimezoneOffsetFromUTC');

/** The column-backed attribute for a tag at a query level (same or higher levels only), if any. */
export function indexedAttributeAt(tag: string, level: QidoLevel): IndexedAttribute | undefined {
  if (tag === SPECIFIC_CHARACTER_SET) return perLevelAttribute('SpecificCharacterSet', level, 'multi', 'specific_character_set');
  if (tag === TIMEZONE_OFFSET) return perLevelAttribute('TimezoneOffsetFromUTC', level, 'text', 'timezone_offset');
  const attribute = BY_TAG.get(tag);
  if (!attribute || RANK[attribute.level] > RANK[level]) return undefined;
  return attribute;
}

/** Every column-backed attribute readable at a level (what a search selects). */
export function indexedAttributesAt(level: QidoLevel): IndexedAttribute[] {
  const all = [...BY_TAG.keys(), SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET];
  return all.map((tag) => indexedAttributeAt(tag, level)).filter((a): a is IndexedAttribute => a !== undefined);
}

/** SQL result alias of a qualified column: 'st.study_date' → 'st_study_date'. */
export function columnAlias(column: string): string {
  return column.replace('.', '_');
}
