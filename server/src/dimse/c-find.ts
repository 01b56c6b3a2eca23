/**
 * C-FIND SCP (PS3.4 Annex C), Patient Root and Study Root: the DIMSE identifier becomes the same
 * `QidoQuery` QIDO-RS builds, answered by `catalog.search`, so matching is the same (PS3.4 §C.2.2.2:
 * single value, wildcards, ranges, UID lists, universal matching). Study, series and image levels map to
 * the QIDO levels; the patient level is a study-level search grouped by patient.
 *
 * Responses carry exactly the keys of the identifier (empty when the archive has no value), plus
 * Query/Retrieve Level and Specific Character Set (ISO_IR 192: our text is Unicode).
 */
import dcmjs from 'dcmjs';
import type { Archive } from '../archive/archive.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { entryForKeyword } from '../catalog/dictionary.js';
import { validateMatchValue } from '../catalog/match-values.js';
import type { AttributeMatch, QidoLevel, QidoQuery } from '../catalog/qido-query.js';
import { BadQueryError } from '../errors.js';

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

/** Identifier keys that steer the query rather than match (PS3.4 §C.4.1.1.3). */
const CONTROL_KEYS = new Set(['QueryRetrieveLevel', 'SpecificCharacterSet', 'TimezoneOffsetFromUTC', 'QueryRetrieveView']);

/** Keys answered at patient level (PS3.4 Table C.6-1) from the study rows of the patient. */
const PATIENT_COUNT_KEYS = new Set(['NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedSeries', 'NumberOfPatientRelatedInstances']);

export interface FindIdentifier {
  level: QueryLevel;
  /** Identifier keys in the order given, with their 8-hex tags and VRs. */
  keys: Array<{ keyword: string; tag: string; vr: string }>;
  matches: AttributeMatch[];
}

export class IdentifierError extends Error {}

/** A naturalized element value (dcmjs) as the DICOM string a QIDO match takes ('' = universal). */
export function matchText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(matchText).join('\\');
  if (typeof value === 'object') {
    const pn = value as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    if ('Alphabetic' in pn || 'Ideographic' in pn || 'Phonetic' in pn) {
      return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
    }
    return '';
  }
  return String(value).trim();
}

/** Reads the identifier (naturalized by dcmjs-dimse) into level, keys and matches; refuses what is invalid. */
export function parseIdentifier(elements: Record<string, unknown>): FindIdentifier {
  const levelText = matchText(elements['QueryRetrieveLevel']).toUpperCase();
  if (!['PATIENT', 'STUDY', 'SERIES', 'IMAGE'].includes(levelText)) {
    throw new IdentifierError('Query/Retrieve Level (0008,0052) must be PATIENT, STUDY, SERIES or IMAGE');
  }
  const keys: FindIdentifier['keys'] = [];
  const matches: AttributeMatch[] = [];
  for (const [keyword, value] of Object.entries(elements)) {
    if (keyword.startsWith('_') || CONTROL_KEYS.has(keyword)) continue;
    const entry = entryForKeyword(keyword);
    if (entry === undefined) continue; // private or unknown keys: not matched, not returned
    keys.push({ keyword, tag: entry.tag, vr: entry.vr });
    if (entry.vr === 'SQ' || PATIENT_COUNT_KEYS.has(keyword)) continue; // sequence matching is not supported
    const text = matchText(value);
    if (text === '' || text === '*') continue; // universal match: a return key only
    try {
      validateMatchValue(entry.vr, text, keyword);
    } catch (err) {
      if (err instanceof BadQueryError) throw new IdentifierError(`Invalid matching value for ${keyword}`);
      throw err;
    }
    matches.push({ tag: entry.tag, value: text });
  }
  return { level: levelText as QueryLevel, keys, matches };
}

const QIDO_LEVEL: Record<Exclude<QueryLevel, 'PATIENT'>, QidoLevel> = { STUDY: 'study', SERIES: 'series', IMAGE: 'instance' };

/**
 * Every match of the identifier as a naturalized response identifier, page by page (pages of
 * `pageSize`), so a large answer is never built at once; the caller checks for C-CANCEL between pages.
 */
export async function* findMatches(
  archive: Archive,
  identifier: FindIdentifier,
  pageSize: number,
  retrieveAeTitle: string,
): AsyncGenerator<Record<string, unknown>[]> {
  if (identifier.level === 'PATIENT') {
    yield patientLevel(await allStudies(archive, identifier, pageSize), identifier, retrieveAeTitle);
    return;
  }
  const includeFields = identifier.keys.map((key) => key.tag);
  for (let offset = 0; ; offset += pageSize) {
    const query: QidoQuery = {
      level: QIDO_LEVEL[identifier.level],
      matches: identifier.matches,
      includeFields,
      limit: pageSize,
      offset,
      fuzzyMatching: false,
    };
    const { matches } = await archive.search(query);
    yield matches.map((match) => responseIdentifier(match, identifier, retrieveAeTitle));
    if (matches.length < pageSize) return;
  }
}

async function allStudies(archive: Archive, identifier: FindIdentifier, pageSize: number): Promise<DicomJsonDataset[]> {
  const studies: DicomJsonDataset[] = [];
  const includeFields = identifier.keys.filter((key) => !PATIENT_COUNT_KEYS.has(key.keyword)).map((key) => key.tag);
  for (let offset = 0; ; offset += pageSize) {
    const { matches } = await archive.search({ level: 'study', matches: identifier.matches, includeFields, limit: pageSize, offset, fuzzyMatching: false });
    studies.push(...matches);
    if (matches.length < pageSize) return studies;
  }
}

/** Studies grouped by patient (Patient ID + Issuer), with the patient-related counts. */
function patientLevel(studies: DicomJsonDataset[], identifier: FindIdentifier, retrieveAeTitle: string): Record<string, unknown>[] {
  const patients = new Map<string, { first: DicomJsonDataset; studies: number; series: number; instances: number }>();
  for (const study of studies) {
    const id = firstText(study, '00100020');
    // Without a Patient ID, studies of differently named patients are different patients.
    const key = `${id}\u0000${firstText(study, '00100021')}\u0000${id === '' ? JSON.stringify(study['00100010']?.Value ?? []) : ''}`;
    const entry = patients.get(key) ?? { first: study, studies: 0, series: 0, instances: 0 };
    entry.studies += 1;
    entry.series += Number(firstText(study, '00201206') || 0);
    entry.instances += Number(firstText(study, '00201208') || 0);
    patients.set(key, entry);
  }
  return [...patients.values()].map((patient) => {
    const json: DicomJsonDataset = { ...patient.first };
    json['00201200'] = { vr: 'IS', Value: [patient.studies] };
    json['00201202'] = { vr: 'IS', Value: [patient.series] };
    json['00201204'] = { vr: 'IS', Value: [patient.instances] };
    return responseIdentifier(json, identifier, retrieveAeTitle);
  });
}

function firstText(json: DicomJsonDataset, tag: string): string {
  const value = json[tag]?.Value?.[0];
  return value === undefined || value === null ? '' : String(value);
}

/** The requested keys of one match, naturalized for dcmjs-dimse; absent values are returned empty. */
export function responseIdentifier(match: DicomJsonDataset, identifier: FindIdentifier, retrieveAeTitle: string): Record<string, unknown> {
  const wanted: DicomJsonDataset = {};
  for (const key of identifier.keys) {
    const element = match[key.tag];
    if (key.keyword === 'RetrieveAETitle') wanted[key.tag] = { vr: 'AE', Value: [retrieveAeTitle] };
    else if (element !== undefined && (element.Value !== undefined || key.vr === 'SQ')) wanted[key.tag] = element;
    else if (key.vr === 'SQ') wanted[key.tag] = { vr: 'SQ', Value: [] };
    else wanted[key.tag] = { vr: key.vr };
  }
  const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(wanted as never) as Record<string, unknown>;
  delete natural['_vrMap'];
  return { QueryRetrieveLevel: identifier.level, SpecificCharacterSet: 'ISO_IR 192', ...natural };
}
