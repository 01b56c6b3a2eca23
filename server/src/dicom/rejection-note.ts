/**
 * IHE Imaging Object Change Management (IOCM, Rad TF-2 RAD-66) rejection notes: Key Object Selection
 * Documents (PS3.3 A.35.4, SOP Class 1.2.840.10008.5.1.4.1.1.88.59) whose document title (Concept Name
 * Code Sequence of the root CONTAINER) is one of the rejection titles of CID 7011, and whose Current
 * Requested Procedure Evidence Sequence lists the rejected instances.
 *
 * - `rejectionNoteOf` recognises one in an indexed header (DICOM JSON) at ingest (STOW-RS, C-STORE and
 *   the notes the server writes itself go through the same ingest);
 * - `writeRejectionNote` writes one (TID 2010 "Key Object Selection": the title, an optional Key
 *   Object Description, one IMAGE or COMPOSITE item per rejected instance), so systems that receive the
 *   study see the same rejection.
 *
 * Pure: no I/O.
 */
import type { Code } from './coded-concept.js';
import { dicomDate, dicomTime } from './dicom-datetime.js';
import type { DicomJsonDataset } from './dicom-json.js';
import { firstString } from './dicom-json.js';
import type { PatientIdentity } from './patient-identity.js';
import type { StudyIdentity } from './study-identity.js';
import { writePart10 } from './write-part10.js';

export const KEY_OBJECT_SELECTION = '1.2.840.10008.5.1.4.1.1.88.59';

/** CID 7011 "Rejected for Quality Reasons" and the other IOCM rejection titles (DCM). */
export const REJECTION_TITLES = {
  '113001': 'Rejected for Quality Reasons',
  '113037': 'Rejected for Patient Safety Reasons',
  '113038': 'Incorrect Modality Worklist Entry',
  '113039': 'Data Retention Policy Expired',
} as const;
export type RejectionCode = keyof typeof REJECTION_TITLES;
export const REJECTION_CODES = Object.keys(REJECTION_TITLES) as RejectionCode[];

export function isRejectionCode(value: string): value is RejectionCode {
  return Object.prototype.hasOwnProperty.call(REJECTION_TITLES, value);
}

/** The document title as a code sequence item (DCM). */
export function rejectionTitle(code: RejectionCode): Code {
  return { CodeValue: code, CodingSchemeDesignator: 'DCM', CodeMeaning: REJECTION_TITLES[code] };
}

/** One instance a rejection note names. */
export interface RejectedReference {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
}

export interface RejectionNote {
  code: RejectionCode;
  references: RejectedReference[];
}

const T = {
  ConceptNameCodeSequence: '0040A043',
  CodeValue: '00080100',
  CodingSchemeDesignator: '00080102',
  CurrentRequestedProcedureEvidenceSequence: '0040A375',
  StudyInstanceUID: '0020000D',
  ReferencedSeriesSequence: '00081115',
  SeriesInstanceUID: '0020000E',
  ReferencedSOPSequence: '00081199',
  ReferencedSOPClassUID: '00081150',
  ReferencedSOPInstanceUID: '00081155',
} as const;

function items(dataset: DicomJsonDataset, tag: string): DicomJsonDataset[] {
  const values = dataset[tag]?.Value ?? [];
  return values.filter((v): v is DicomJsonDataset => v !== null && typeof v === 'object' && !('Alphabetic' in v || 'Ideographic' in v || 'Phonetic' in v)) as DicomJsonDataset[];
}

const uidOf = (dataset: DicomJsonDataset, tag: string) => firstString(dataset, tag)?.replace(/[\0 ]+$/, '').trim() ?? '';

/**
 * The rejection a stored instance's header declares, when it is an IOCM rejection note: a KOS whose
 * title is DCM 113001, 113037, 113038 or 113039. References without a SOP Instance UID are skipped;
 * a note that names none is no rejection (undefined).
 */
export function rejectionNoteOf(sopClassUid: string, dataset: DicomJsonDataset): RejectionNote | undefined {
  if (sopClassUid !== KEY_OBJECT_SELECTION) return undefined;
  const [title] = items(dataset, T.ConceptNameCodeSequence);
  if (title === undefined) return undefined;
  const code = firstString(title, T.CodeValue)?.trim() ?? '';
  if (!isRejectionCode(code) || (firstString(title, T.CodingSchemeDesignator)?.trim() ?? '') !== 'DCM') return undefined;
  const references: RejectedReference[] = [];
  const seen = new Set<string>();
  for (const study of items(dataset, T.CurrentRequestedProcedureEvidenceSequence)) {
    const studyInstanceUid = uidOf(study, T.StudyInstanceUID);
    for (const series of items(study, T.ReferencedSeriesSequence)) {
      const seriesInstanceUid = uidOf(series, T.SeriesInstanceUID);
      for (const sop of items(series, T.ReferencedSOPSequence)) {
        const sopInstanceUid = uidOf(sop, T.ReferencedSOPInstanceUID);
        if (sopInstanceUid === '' || seen.has(sopInstanceUid)) continue;
        seen.add(sopInstanceUid);
        references.push({ studyInstanceUid, seriesInstanceUid, sopInstanceUid, sopClassUid: uidOf(sop, T.ReferencedSOPClassUID) });
      }
    }
  }
  return references.length === 0 ? undefined : { code, references };
}

/** What the server's own rejection note says and where it goes. */
export interface RejectionNoteInput {
  code: RejectionCode;
  /** The rejected instances; `image`: referenced as IMAGE (it has pixel data), else COMPOSITE. */
  references: ReadonlyArray<RejectedReference & { image: boolean }>;
  /** Key Object Description (113012): why, in words (no patient data expected; at most 1024 characters). */
  description?: string;
  patient: PatientIdentity;
  study: StudyIdentity;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  instanceNumber: number;
  createdAt: Date;
}

/** Key Object Description (DCM 113012). */
const KEY_OBJECT_DESCRIPTION: Code = { CodeValue: '113012', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Key Object Description' };

/** Series Number of the series the server's rejection notes go in. */
export const REJECTION_NOTE_SERIES_NUMBER = 9900;

/**
 * A rejection note as a Part-10 file (Explicit VR Little Endian): Patient, General Study, Key Object
 * Document Series (KO), General Equipment, Key Object Document, SR Document Content (TID 2010) and SOP
 * Common modules.
 */
export function writeRejectionNote(input: RejectionNoteInput): Buffer {
  const date = dicomDate(input.createdAt);
  const time = dicomTime(input.createdAt);
  const { patient, study } = input;
  const byStudy = new Map<string, Map<string, Map<string, string>>>();
  for (const ref of input.references) {
    let series = byStudy.get(ref.studyInstanceUid);
    if (series === undefined) byStudy.set(ref.studyInstanceUid, (series = new Map()));
    let sops = series.get(ref.seriesInstanceUid);
    if (sops === undefined) series.set(ref.seriesInstanceUid, (sops = new Map()));
    sops.set(ref.sopInstanceUid, ref.sopClassUid);
  }
  const evidence = [...byStudy.entries()].map(([studyUid, series]) => ({
    StudyInstanceUID: studyUid,
    ReferencedSeriesSequence: [...series.entries()].map(([seriesUid, sops]) => ({
      SeriesInstanceUID: seriesUid,
      ReferencedSOPSequence: [...sops.entries()].map(([sop, sopClass]) => ({ ReferencedSOPClassUID: sopClass, ReferencedSOPInstanceUID: sop })),
    })),
  }));
  const description = input.description?.trim() ?? '';
  const texts = [patient.name ?? '', patient.patientId, patient.issuer, study.studyDescription ?? '', study.referringPhysicianName ?? '', description];
  const ascii = texts.every((t) => /^[\x20-\x7e]*$/.test(t));
  const dataset: Record<string, unknown> = {
    ...(ascii ? {} : { SpecificCharacterSet: 'ISO_IR 192' }),
    SOPClassUID: KEY_OBJECT_SELECTION,
    SOPInstanceUID: input.sopInstanceUid,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    TimezoneOffsetFromUTC: '+0000',
    // Patient (C.7.1.1)
    PatientName: patient.name ?? '',
    PatientID: patient.patientId,
    ...(patient.issuer === '' ? {} : { IssuerOfPatientID: patient.issuer }),
    PatientBirthDate: patient.birthDate ?? '',
    PatientSex: patient.sex ?? '',
    // General Study (C.7.2.1)
    StudyInstanceUID: study.studyInstanceUid,
    StudyDate: study.studyDate ?? '',
    StudyTime: study.studyTime ?? '',
    ReferringPhysicianName: study.referringPhysicianName ?? '',
    StudyID: study.studyId ?? '',
    AccessionNumber: study.accessionNumber ?? '',
    ...(study.studyDescription === null || study.studyDescription === '' ? {} : { StudyDescription: study.studyDescription }),
    // Key Object Document Series (C.17.6.1)
    Modality: 'KO',
    SeriesInstanceUID: input.seriesInstanceUid,
    SeriesNumber: String(REJECTION_NOTE_SERIES_NUMBER),
    SeriesDescription: 'Rejection notes',
    SeriesDate: date,
    SeriesTime: time,
    ReferencedPerformedProcedureStepSequence: [],
    // General Equipment (C.7.5.1)
    Manufacturer: 'filmless-pacs',
    // Key Object Document (C.17.6.2)
    InstanceNumber: String(input.instanceNumber),
    ContentDate: date,
    ContentTime: time,
    CurrentRequestedProcedureEvidenceSequence: evidence,
    // SR Document Content (C.17.3), TID 2010
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [rejectionTitle(input.code)],
    ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '2010' }],
    ContentSequence: [
      ...(description === ''
        ? []
        : [{ RelationshipType: 'CONTAINS', ValueType: 'TEXT', ConceptNameCodeSequence: [KEY_OBJECT_DESCRIPTION], TextValue: description.slice(0, 1024) }]),
      ...input.references.map((ref) => ({
        RelationshipType: 'CONTAINS',
        ValueType: ref.image ? 'IMAGE' : 'COMPOSITE',
        ReferencedSOPSequence: [{ ReferencedSOPClassUID: ref.sopClassUid, ReferencedSOPInstanceUID: ref.sopInstanceUid }],
      })),
    ],
  };
  return writePart10(dataset);
}
