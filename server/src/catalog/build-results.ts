/**
 * Turns search rows into QIDO-RS result datasets (PS3.18 §10.6.3): the default return attributes of
 * the level (Tables 10.6.3-3/-4/-5), every matching key, and the includefield attributes. Column-backed
 * attributes come from the row; anything else from the stored attributes JSON of the level's row.
 */
import type { DicomJsonDataset, DicomJsonElement, DicomJsonPersonName } from '../dicom/dicom-json.js';
import { tagOf, vrOf } from './dictionary.js';
import { IDENTITY_TAGS } from '../dicom/patient-identity.js';
import { columnAlias, indexedAttributeAt, LEVEL_ALIAS, PATIENT_IDENTITY_TAGS, type IndexedAttribute } from './indexed-attributes.js';
import { PATIENT_STUDY_TAGS, SERIES_TAGS } from './module-keywords.js';
import type { QidoLevel, QidoQuery } from './qido-query.js';

const STUDY_DEFAULTS = [
  'SpecificCharacterSet', 'StudyDate', 'StudyTime', 'AccessionNumber', 'InstanceAvailability', 'ModalitiesInStudy',
  'ReferringPhysicianName', 'TimezoneOffsetFromUTC', 'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex',
  'StudyInstanceUID', 'StudyID', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'StudyDescription',
].map(tagOf);

const SERIES_DEFAULTS = [
  'SpecificCharacterSet', 'Modality', 'TimezoneOffsetFromUTC', 'SeriesDescription', 'SeriesInstanceUID', 'SeriesNumber',
  'NumberOfSeriesRelatedInstances', 'PerformedProcedureStepStartDate', 'PerformedProcedureStepStartTime',
  'RequestAttributesSequence', 'StudyInstanceUID',
].map(tagOf);

const INSTANCE_DEFAULTS = [
  'SpecificCharacterSet', 'SOPClassUID', 'SOPInstanceUID', 'InstanceAvailability', 'TimezoneOffsetFromUTC',
  'InstanceNumber', 'Rows', 'Columns', 'BitsAllocated', 'NumberOfFrames', 'StudyInstanceUID', 'SeriesInstanceUID',
].map(tagOf);

/** Returned only when they hold a value ("if present" in Tables 10.6.3-3/-4/-5). */
const OMIT_WHEN_EMPTY = new Set(['SpecificCharacterSet', 'TimezoneOffsetFromUTC', 'RequestAttributesSequence'].map(tagOf));

const INSTANCE_AVAILABILITY = tagOf('InstanceAvailability');

export interface ResultPlan {
  /** Column-backed and constant elements, in ascending tag order so most datasets need no sorting. */
  slots: Array<{ tag: string; attribute?: IndexedAttribute; alias?: string; constant?: string }>;
  /** Explicitly requested tags answered from the level's attributes JSON. */
  jsonTags: string[];
  /** includefield=all: which tags of the attributes JSON to add. */
  allFromJson: 'everything' | ReadonlySet<string> | undefined;
  /** Result alias of the attributes JSON column, when the JSON is needed at all. */
  jsonAlias: string | undefined;
}

/**
 * Defaults of the level; a search across studies also returns the study defaults, one across series
 * the series defaults (PS3.18 §10.6.3.3.2/-3).
 */
function defaultTags(query: QidoQuery): string[] {
  if (query.level === 'study') return STUDY_DEFAULTS;
  const study = query.studyInstanceUid === undefined ? STUDY_DEFAULTS : [];
  if (query.level === 'series') return [...SERIES_DEFAULTS, ...study];
  const series = query.seriesInstanceUid === undefined ? SERIES_DEFAULTS : [];
  return [...INSTANCE_DEFAULTS, ...series, ...study];
}

function allFromJson(level: QidoLevel): 'everything' | ReadonlySet<string> {
  if (level === 'instance') return 'everything';
  return level === 'study' ? PATIENT_STUDY_TAGS : SERIES_TAGS;
}

/**
 * The General Study identity, answered from the study row at every level: an instance moved to another
 * study by curation keeps its old study's values in its stored header (docs/architecture.md, "Curation").
 */
const STUDY_IDENTITY_TAGS = ['StudyDate', 'StudyTime', 'AccessionNumber', 'ReferringPhysicianName', 'StudyDescription', 'StudyID'].map(tagOf);

export function planResults(query: QidoQuery): ResultPlan {
  // "all" returns the patient's identity and the study's too, from their rows (never the stored header's).
  const includes = query.includeFields === 'all' ? [...PATIENT_IDENTITY_TAGS, ...(query.level === 'instance' ? STUDY_IDENTITY_TAGS : [])] : query.includeFields;
  const requested = new Set([...defaultTags(query), ...query.matches.map((m) => m.tag), ...includes]);
  const plan: ResultPlan = { slots: [], jsonTags: [], allFromJson: undefined, jsonAlias: undefined };
  for (const tag of [...requested].sort()) {
    const attribute = indexedAttributeAt(tag, query.level);
    if (tag === INSTANCE_AVAILABILITY) plan.slots.push({ tag, constant: 'ONLINE' });
    else if (attribute) plan.slots.push({ tag, attribute, alias: columnAlias(attribute.column) });
    else plan.jsonTags.push(tag);
  }
  if (query.includeFields === 'all') plan.allFromJson = allFromJson(query.level);
  if (plan.jsonTags.length > 0 || plan.allFromJson) plan.jsonAlias = `${LEVEL_ALIAS[query.level]}_attributes`;
  return plan;
}

/** Stored 'Alphabetic=Ideographic=Phonetic' back to the DICOM JSON PN object (PS3.18 §F.2.2). */
function personNameValue(stored: string): DicomJsonPersonName {
  const [alphabetic, ideographic, phonetic] = stored.split('=');
  return {
    ...(alphabetic && { Alphabetic: alphabetic }),
    ...(ideographic && { Ideographic: ideographic }),
    ...(phonetic && { Phonetic: phonetic }),
  };
}

function renderColumn(attribute: IndexedAttribute, raw: unknown): DicomJsonElement {
  const vr = attribute.vr;
  if (raw === null || raw === undefined || raw === '') return { vr };
  switch (attribute.render) {
    case 'integer':
      return { vr, Value: [Number(raw)] };
    case 'pn':
      return { vr, Value: [personNameValue(String(raw))] };
    case 'multi':
      return { vr, Value: String(raw).split('\\').map((v) => (v === '' ? null : v)) };
    case 'element-json':
      return { ...(JSON.parse(String(raw)) as DicomJsonElement), vr };
    case 'other-ids':
      return otherIdsElement(String(raw));
    default:
      return { vr, Value: [String(raw)] };
  }
}

/** The patient row's other IDs (JSON of OtherPatientId[]) as the Other Patient IDs Sequence (0010,1002). */
function otherIdsElement(raw: string): DicomJsonElement {
  let others: Array<{ id: string; issuer: string; type?: string }> = [];
  try {
    const parsed: unknown = JSON.parse(raw);
    if (Array.isArray(parsed)) others = parsed as typeof others;
  } catch {
    // A damaged value answers as no other IDs.
  }
  if (others.length === 0) return { vr: 'SQ' };
  return {
    vr: 'SQ',
    Value: others.map((other) => ({
      [IDENTITY_TAGS.PatientID]: { vr: 'LO', Value: [other.id] },
      [IDENTITY_TAGS.IssuerOfPatientID]: other.issuer === '' ? { vr: 'LO' } : { vr: 'LO', Value: [other.issuer] },
      [IDENTITY_TAGS.TypeOfPatientID]: { vr: 'CS', Value: [other.type ?? 'TEXT'] },
    })),
  };
}

function sortedByTag(dataset: DicomJsonDataset): DicomJsonDataset {
  return Object.fromEntries(Object.entries(dataset).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function addFromJson(dataset: DicomJsonDataset, plan: ResultPlan, json: DicomJsonDataset): void {
  for (const tag of plan.jsonTags) dataset[tag] = json[tag] ?? { vr: vrOf(tag) };
  const filter = plan.allFromJson;
  if (!filter) return;
  for (const [tag, element] of Object.entries(json)) {
    // The identity attributes are slots already: they come from the patient row.
    if (tag in dataset) continue;
    if (filter === 'everything' || filter.has(tag)) dataset[tag] = element;
  }
}

export function buildDataset(row: Record<string, unknown>, plan: ResultPlan): DicomJsonDataset {
  const dataset: DicomJsonDataset = {};
  for (const { tag, attribute, alias, constant } of plan.slots) {
    if (constant !== undefined) {
      dataset[tag] = { vr: 'CS', Value: [constant] };
      continue;
    }
    const element = renderColumn(attribute!, row[alias!]);
    if (element.Value === undefined && OMIT_WHEN_EMPTY.has(tag)) continue;
    dataset[tag] = element;
  }
  if (!plan.jsonAlias) return dataset;
  addFromJson(dataset, plan, JSON.parse(String(row[plan.jsonAlias])) as DicomJsonDataset);
  return sortedByTag(dataset);
}
