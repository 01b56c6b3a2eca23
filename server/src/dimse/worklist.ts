/**
 * Modality Worklist SCP (PS3.4 Annex K, Modality Worklist Information Model – FIND): the C-FIND
 * identifier becomes a `WorklistQuery` for the hospital link's store, and every order it finds is
 * answered with the return keys the SCU asked for (Table K.6-1).
 *
 * Matching (PS3.4 §C.2.2.2): the store matches what it indexes (Scheduled Procedure Step Start Date and
 * Time ranges, Modality, Scheduled Station AE Title, Patient's Name with wildcards case-insensitively,
 * Patient ID + Issuer, Accession Number, Scheduled Procedure Step Status); every other key the archive
 * keeps (Requested Procedure ID, Study Instance UID list, SPS ID, performing/referring physician, birth
 * date range, sex, codes …) and a wildcard on a key the store matches exactly are matched here, on the
 * worklist item's attributes. A key the archive does not keep (admission ID, patient location …) is
 * returned empty and not matched: the pending status is then FF01 (optional keys not supported).
 *
 * Return keys: exactly the identifier's keys, empty when the order has no value (Type 2), with the
 * sequences' items as the SCU structured them (a sequence sent with no item returns its items whole).
 * Specific Character Set is ISO_IR 192 when a value is not plain ASCII (dcmjs writes text as UTF-8).
 */
import dcmjs from 'dcmjs';
import { entryForKeyword } from '../catalog/dictionary.js';
import { hasWildcard, isUniversal, validateMatchValue } from '../catalog/match-values.js';
import type { DicomJsonDataset, DicomJsonElement } from '../dicom/dicom-json.js';
import { identityElements } from '../dicom/patient-identity.js';
import type { CodedValue, Order, StepStatus } from '../his/his-model.js';
import type { HisStore, WorklistItem, WorklistQuery } from '../his/his-store.js';
import { dateTimeBounds, isAscii, itemsOf, matchesValue, textOf } from './identifier-values.js';

export class WorklistIdentifierError extends Error {}

/** One key of the identifier; a sequence key holds the keys of its single item, or `all` when sent with none. */
export interface WorklistKey {
  keyword: string;
  tag: string;
  vr: string;
  /** The matching value as sent ('' = universal / return key only). */
  value: string;
  item?: WorklistKey[] | 'all';
}

export interface WorklistIdentifier {
  keys: WorklistKey[];
  /** What the store matches. `statuses: []` means nothing can match (a status we never hold). */
  query: WorklistQuery;
  /** Keys the store matched: not matched again here. */
  handledByStore: ReadonlySet<WorklistKey>;
  /** Keys with a matching value that the archive does not keep (keywords): answered FF01. */
  unsupported: string[];
}

const T = {
  SpecificCharacterSet: '00080005',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ReferringPhysicianName: '00080090',
  CodeValue: '00080100',
  CodingSchemeDesignator: '00080102',
  CodeMeaning: '00080104',
  LongCodeValue: '00080119',
  StudyInstanceUID: '0020000D',
  RequestedProcedureDescription: '00321060',
  RequestedProcedureCodeSequence: '00321064',
  ScheduledStationAETitle: '00400001',
  ScheduledProcedureStepStartDate: '00400002',
  ScheduledProcedureStepStartTime: '00400003',
  ScheduledPerformingPhysicianName: '00400006',
  ScheduledProcedureStepDescription: '00400007',
  ScheduledProtocolCodeSequence: '00400008',
  ScheduledProcedureStepID: '00400009',
  ScheduledProcedureStepStatus: '00400020',
  ScheduledProcedureStepSequence: '00400100',
  RequestedProcedureID: '00401001',
  PlacerOrderNumberImagingServiceRequest: '00402016',
  FillerOrderNumberImagingServiceRequest: '00402017',
  PatientName: '00100010',
  PatientID: '00100020',
  IssuerOfPatientID: '00100021',
  TypeOfPatientID: '00100022',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  OtherPatientIDsSequence: '00101002',
} as const;

/** What the archive keeps, per level: anything else is returned empty and not matched. */
const CODE_ITEM = new Set<string>([T.CodeValue, T.CodingSchemeDesignator, T.CodeMeaning, T.LongCodeValue]);
const SUPPORTED: Record<string, ReadonlySet<string>> = {
  top: new Set([
    T.AccessionNumber,
    T.ReferringPhysicianName,
    T.StudyInstanceUID,
    T.RequestedProcedureDescription,
    T.RequestedProcedureCodeSequence,
    T.RequestedProcedureID,
    T.PlacerOrderNumberImagingServiceRequest,
    T.FillerOrderNumberImagingServiceRequest,
    T.ScheduledProcedureStepSequence,
    T.PatientName,
    T.PatientID,
    T.IssuerOfPatientID,
    T.PatientBirthDate,
    T.PatientSex,
    T.OtherPatientIDsSequence,
  ]),
  [T.ScheduledProcedureStepSequence]: new Set([
    T.ScheduledStationAETitle,
    T.ScheduledProcedureStepStartDate,
    T.ScheduledProcedureStepStartTime,
    T.Modality,
    T.ScheduledPerformingPhysicianName,
    T.ScheduledProcedureStepDescription,
    T.ScheduledProtocolCodeSequence,
    T.ScheduledProcedureStepID,
    T.ScheduledProcedureStepStatus,
  ]),
  [T.RequestedProcedureCodeSequence]: CODE_ITEM,
  [T.ScheduledProtocolCodeSequence]: CODE_ITEM,
  [T.OtherPatientIDsSequence]: new Set([T.PatientID, T.IssuerOfPatientID, T.TypeOfPatientID]),
};

/** Identifier keys that steer the query rather than match (PS3.4 §C.4.1.1.3); not returned as keys. */
const CONTROL_KEYS = new Set(['SpecificCharacterSet', 'QueryRetrieveLevel', 'TimezoneOffsetFromUTC']);

/** Scheduled Procedure Step Status (0040,0020), PS3.3 C.4.10: the DICOM word for each of our states. */
export const SPS_STATUS: Record<StepStatus, string> = {
  SCHEDULED: 'SCHEDULED',
  'IN PROGRESS': 'STARTED',
  COMPLETED: 'COMPLETED',
  DISCONTINUED: 'DISCONTINUED',
  CANCELLED: 'CANCELED',
};
const STATUS_OF_SPS: Record<string, StepStatus> = {
  SCHEDULED: 'SCHEDULED',
  STARTED: 'IN PROGRESS',
  'IN PROGRESS': 'IN PROGRESS',
  COMPLETED: 'COMPLETED',
  DISCONTINUED: 'DISCONTINUED',
  CANCELED: 'CANCELLED',
  CANCELLED: 'CANCELLED',
};
const ALL_STATUSES: readonly StepStatus[] = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'DISCONTINUED', 'CANCELLED'];

function keysOf(elements: Record<string, unknown>, level: string, unsupported: string[]): WorklistKey[] {
  const keys: WorklistKey[] = [];
  for (const [keyword, value] of Object.entries(elements)) {
    if (keyword.startsWith('_') || (level === 'top' && CONTROL_KEYS.has(keyword))) continue;
    const entry = entryForKeyword(keyword);
    if (entry === undefined) continue; // private or unknown: neither matched nor returned
    const supported = SUPPORTED[level]?.has(entry.tag) ?? false;
    if (entry.vr === 'SQ') {
      const items = itemsOf(value) ?? [];
      if (items.length > 1) throw new WorklistIdentifierError(`${keyword} may have one item at most`);
      const item = items.length === 0 ? 'all' : keysOf(items[0]!, supported ? entry.tag : 'unsupported', unsupported);
      keys.push({ keyword, tag: entry.tag, vr: 'SQ', value: '', item });
      continue;
    }
    const text = textOf(value);
    if (!isUniversal(text)) {
      try {
        validateMatchValue(entry.vr, text, keyword);
      } catch {
        throw new WorklistIdentifierError(`Invalid matching value for ${keyword}`);
      }
      if (!supported) unsupported.push(keyword);
    }
    keys.push({ keyword, tag: entry.tag, vr: entry.vr, value: supported ? text : '' });
  }
  return keys;
}

/** A key whose single value the store matches exactly: no wildcard, no value list. */
const exact = (key: WorklistKey | undefined): key is WorklistKey => key !== undefined && !isUniversal(key.value) && !hasWildcard(key.value) && !key.value.includes('\\');

/** Reads the identifier (naturalized by dcmjs-dimse) into keys and the store's query; refuses what is invalid (A900). */
export function parseWorklistIdentifier(elements: Record<string, unknown>): WorklistIdentifier {
  const unsupported: string[] = [];
  const keys = keysOf(elements, 'top', unsupported);
  const handled = new Set<WorklistKey>();
  const query: WorklistQuery = {};
  const top = (tag: string) => keys.find((key) => key.tag === tag);
  const spsKey = top(T.ScheduledProcedureStepSequence);
  const sps = (tag: string) => (Array.isArray(spsKey?.item) ? spsKey.item.find((key) => key.tag === tag) : undefined);

  const date = sps(T.ScheduledProcedureStepStartDate);
  if (date !== undefined && !isUniversal(date.value)) {
    const bounds = dateTimeBounds(date.value, 'DA');
    if (bounds.lower !== undefined) query.dateFrom = bounds.lower;
    if (bounds.upper !== undefined) query.dateTo = bounds.upper;
    handled.add(date);
  }
  const time = sps(T.ScheduledProcedureStepStartTime);
  if (time !== undefined && !isUniversal(time.value)) {
    // 'HH[MM[SS]]' lower bounds pad with zeros; upper bounds cover their last unit ('1015' → 101559).
    const bounds = dateTimeBounds(time.value, 'TM');
    if (bounds.lower !== undefined) query.timeFrom = bounds.lower.split('.')[0]!.padEnd(6, '0');
    if (bounds.upper !== undefined) query.timeTo = bounds.upper.split('.')[0]!;
    handled.add(time);
  }
  const modality = sps(T.Modality);
  if (exact(modality)) {
    query.modality = modality.value;
    handled.add(modality);
  }
  const station = sps(T.ScheduledStationAETitle);
  if (exact(station)) {
    query.scheduledStationAeTitle = station.value;
    handled.add(station);
  }
  const status = sps(T.ScheduledProcedureStepStatus);
  if (status !== undefined && !isUniversal(status.value)) {
    if (hasWildcard(status.value)) query.statuses = ALL_STATUSES; // matched here against the DICOM words
    else {
      const wanted = status.value.split('\\').map((v) => STATUS_OF_SPS[v.trim().toUpperCase()]);
      query.statuses = [...new Set(wanted.filter((s): s is StepStatus => s !== undefined))];
      handled.add(status);
    }
  }
  const name = top(T.PatientName);
  if (name !== undefined && !isUniversal(name.value)) {
    query.patientName = name.value.normalize('NFC');
    handled.add(name);
  }
  const patientId = top(T.PatientID);
  if (exact(patientId)) {
    query.patientId = patientId.value;
    handled.add(patientId);
  }
  const issuer = top(T.IssuerOfPatientID);
  if (exact(issuer)) {
    query.issuerOfPatientId = issuer.value;
    handled.add(issuer);
  }
  const accession = top(T.AccessionNumber);
  if (exact(accession)) {
    query.accessionNumber = accession.value;
    handled.add(accession);
  }
  return { keys, query, handledByStore: handled, unsupported };
}

const text = (vr: string, value: string | null | undefined): DicomJsonElement => (value === null || value === undefined || value === '' ? { vr } : { vr, Value: [value] });

function personName(vr: 'PN', value: string | null): DicomJsonElement {
  if (value === null || value === '') return { vr };
  const [alphabetic, ideographic, phonetic] = value.split('=');
  return { vr, Value: [{ ...(alphabetic ? { Alphabetic: alphabetic } : {}), ...(ideographic ? { Ideographic: ideographic } : {}), ...(phonetic ? { Phonetic: phonetic } : {}) }] };
}

function codeSequence(code: CodedValue | null): DicomJsonElement {
  if (code === null) return { vr: 'SQ', Value: [] };
  // Code Value is SH (16 characters); longer codes go in Long Code Value (PS3.3 Table 8.8-1).
  const item: DicomJsonDataset = code.value.length > 16 ? { [T.LongCodeValue]: text('UC', code.value) } : { [T.CodeValue]: text('SH', code.value) };
  item[T.CodingSchemeDesignator] = text('SH', code.scheme);
  item[T.CodeMeaning] = text('LO', code.meaning);
  return { vr: 'SQ', Value: [item] };
}

/** The Scheduled Procedure Step Start Date and Time of an order ('YYYYMMDDHHMM[SS]'). */
function scheduledStart(order: Order): { date: string; time: string } {
  const digits = order.scheduledStart.replace(/[^0-9]/g, '');
  return { date: digits.slice(0, 8), time: digits.slice(8, 14) };
}

/** Every attribute the archive keeps for a worklist item (Table K.6-1), as DICOM JSON. */
export function worklistAttributes(item: WorklistItem): DicomJsonDataset {
  const { order } = item;
  const start = scheduledStart(order);
  const step: DicomJsonDataset = {
    [T.Modality]: text('CS', order.modality),
    [T.ScheduledStationAETitle]: text('AE', order.scheduledStationAeTitle),
    [T.ScheduledProcedureStepStartDate]: text('DA', start.date),
    [T.ScheduledProcedureStepStartTime]: text('TM', start.time),
    [T.ScheduledPerformingPhysicianName]: personName('PN', order.performingPhysicianName),
    [T.ScheduledProcedureStepDescription]: text('LO', order.scheduledProcedureStepDescription ?? order.requestedProcedureDescription),
    // The requested procedure's code is the protocol to run (one step per requested procedure here).
    [T.ScheduledProtocolCodeSequence]: codeSequence(order.requestedProcedureCode),
    [T.ScheduledProcedureStepID]: text('SH', order.scheduledProcedureStepId),
    [T.ScheduledProcedureStepStatus]: text('CS', SPS_STATUS[order.status]),
  };
  const identity = identityElements(item.patient);
  return {
    [T.AccessionNumber]: text('SH', order.accessionNumber),
    [T.ReferringPhysicianName]: personName('PN', order.referringPhysicianName),
    [T.StudyInstanceUID]: text('UI', order.studyInstanceUid),
    [T.RequestedProcedureDescription]: text('LO', order.requestedProcedureDescription),
    [T.RequestedProcedureCodeSequence]: codeSequence(order.requestedProcedureCode),
    [T.ScheduledProcedureStepSequence]: { vr: 'SQ', Value: [step] },
    [T.RequestedProcedureID]: text('SH', order.requestedProcedureId),
    [T.PlacerOrderNumberImagingServiceRequest]: text('LO', order.placerOrderNumber),
    [T.FillerOrderNumberImagingServiceRequest]: text('LO', order.fillerOrderNumber),
    [T.PatientName]: identity[T.PatientName]!,
    [T.PatientID]: identity[T.PatientID]!,
    [T.IssuerOfPatientID]: identity[T.IssuerOfPatientID]!,
    [T.PatientBirthDate]: identity[T.PatientBirthDate]!,
    [T.PatientSex]: identity[T.PatientSex]!,
    [T.OtherPatientIDsSequence]: identity[T.OtherPatientIDsSequence]?.Value === undefined ? { vr: 'SQ', Value: [] } : identity[T.OtherPatientIDsSequence]!,
  };
}

/** Matching of the keys the store did not match (PS3.4 §C.2.2.2; a sequence key matches when one item does). */
export function matchesKeys(keys: readonly WorklistKey[], json: DicomJsonDataset, skip: ReadonlySet<WorklistKey>): boolean {
  for (const key of keys) {
    if (skip.has(key)) continue;
    if (key.vr === 'SQ') {
      if (key.item === undefined || key.item === 'all' || !key.item.some((k) => k.vr === 'SQ' || !isUniversal(k.value))) continue;
      const items = (json[key.tag]?.Value ?? []) as DicomJsonDataset[];
      const itemKeys = key.item;
      if (!items.some((item) => matchesKeys(itemKeys, item, skip))) return false;
      continue;
    }
    if (isUniversal(key.value)) continue;
    if (!matchesValue(key.value, json[key.tag], key.vr)) return false;
  }
  return true;
}

/** The requested keys of one item, with sequence items shaped as the SCU asked. */
export function returnKeys(keys: readonly WorklistKey[], json: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const key of keys) {
    const element = json[key.tag];
    if (key.vr === 'SQ') {
      const items = (element?.Value ?? []) as DicomJsonDataset[];
      const itemKeys = key.item;
      out[key.tag] = { vr: 'SQ', Value: itemKeys === undefined || itemKeys === 'all' ? items : items.map((item) => returnKeys(itemKeys, item)) };
    } else out[key.tag] = element ?? { vr: key.vr };
  }
  return out;
}

/** One C-FIND response identifier (naturalized for dcmjs-dimse), with ISO_IR 192 when a value needs it. */
export function responseIdentifier(keys: readonly WorklistKey[], item: WorklistItem): Record<string, unknown> {
  const json = returnKeys(keys, worklistAttributes(item));
  if (!isAscii(json)) json[T.SpecificCharacterSet] = { vr: 'CS', Value: ['ISO_IR 192'] };
  const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(json as never) as Record<string, unknown>;
  delete natural['_vrMap'];
  return natural;
}

/** The worklist items matching an identifier, each as its response identifier, in the store's order. */
export async function findWorklist(store: HisStore, identifier: WorklistIdentifier): Promise<Array<Record<string, unknown>>> {
  if (identifier.query.statuses !== undefined && identifier.query.statuses.length === 0) return [];
  const items = await store.worklist(identifier.query);
  return items.filter((item) => matchesKeys(identifier.keys, worklistAttributes(item), identifier.handledByStore)).map((item) => responseIdentifier(identifier.keys, item));
}

/** The query as the audit record keeps it: every key with a value, sequence item keys as `Sequence.Key`. */
export function worklistAuditKeys(elements: Record<string, unknown>): Record<string, string> {
  const keys: Record<string, string> = {};
  const walk = (prefix: string, dataset: Record<string, unknown>) => {
    for (const [keyword, value] of Object.entries(dataset)) {
      if (keyword.startsWith('_')) continue;
      const items = entryForKeyword(keyword)?.vr === 'SQ' ? itemsOf(value) : undefined;
      if (items !== undefined) {
        if (items.length === 0) keys[prefix + keyword] = '';
        for (const item of items.slice(0, 1)) walk(`${prefix}${keyword}.`, item);
      } else keys[prefix + keyword] = textOf(value);
    }
  };
  walk('', elements);
  return keys;
}
