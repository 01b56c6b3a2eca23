/**
 * The Patient and General Study attributes (PS3.3 C.7.1.1, C.7.2.1) that an instance derived from a
 * stored one copies, so that it lands in the same patient and study: every DICOM writer of the server
 * (AI reports, slide annotations, live recordings) takes them from here and spreads them into its data
 * set before its own attributes.
 */
import dcmjs from 'dcmjs';
import type { DicomJsonDataset } from './dicom-json.js';

const { DicomMetaDictionary } = dcmjs.data;

/** Patient and study attributes as dcmjs-naturalized values, keyed by keyword. */
export type PatientStudyAttributes = Record<string, unknown>;

/** Copied from the source instance when present. */
const COPIED_KEYWORDS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex',
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber', 'StudyDescription',
] as const;
/** Type 2 (must be present, may be empty): written empty when the source has no value. */
const TYPE2_KEYWORDS = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber'];

/** The patient and study attributes of an indexed instance (DICOM JSON), dcmjs-naturalized. */
export function patientStudyAttributes(json: DicomJsonDataset): PatientStudyAttributes {
  const natural = DicomMetaDictionary.naturalizeDataset(JSON.parse(JSON.stringify(json)) as never) as Record<string, unknown>;
  const attributes: PatientStudyAttributes = {};
  for (const keyword of COPIED_KEYWORDS) if (natural[keyword] !== undefined) attributes[keyword] = natural[keyword];
  for (const keyword of TYPE2_KEYWORDS) if (attributes[keyword] === undefined) attributes[keyword] = '';
  return attributes;
}
