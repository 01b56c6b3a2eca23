/**
 * Encapsulated PDF (PS3.3 A.45.1, SOP Class 1.2.840.10008.5.1.4.1.1.104.1): a PDF document kept in the
 * study as a DICOM instance (Patient, General Study, Encapsulated Document Series, General Equipment,
 * SC Equipment, Encapsulated Document and SOP Common modules), and the way back from such an instance to
 * the PDF's bytes. Pure: the caller supplies the patient/study attributes (patient-study-attributes.ts)
 * and the UIDs.
 */
import dcmjs from 'dcmjs';
import './dcmjs-fixes.js';
import type { Code } from './coded-concept.js';
import { dicomDate, dicomTime } from './dicom-datetime.js';
import type { PatientStudyAttributes } from './patient-study-attributes.js';
import { writePart10 } from './write-part10.js';

const { DicomMetaDictionary, DicomMessage } = dcmjs.data;

export const ENCAPSULATED_PDF = '1.2.840.10008.5.1.4.1.1.104.1';

export interface EncapsulatedPdfInput {
  pdf: Buffer;
  patientStudy: PatientStudyAttributes;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  seriesNumber: string;
  instanceNumber: number;
  /** Document Title (0042,0010). */
  title: string;
  /** Concept Name Code Sequence: what the document is (e.g. a LOINC report title). */
  concept: Code;
  /** Content date and time (the signature's). */
  createdAt: Date;
  /** The instance the PDF renders (Source Instance Sequence), e.g. the SR of the same report. */
  source?: { sopClassUid: string; sopInstanceUid: string };
  institutionName?: string;
}

/** The Part-10 file (Explicit VR Little Endian) of a PDF. */
export function buildEncapsulatedPdf(input: EncapsulatedPdfInput): Buffer {
  const date = dicomDate(input.createdAt);
  const time = dicomTime(input.createdAt);
  // OB values have an even length: a pad byte, and the true length in Encapsulated Document Length.
  const padded = input.pdf.length % 2 === 0 ? input.pdf : Buffer.concat([input.pdf, Buffer.alloc(1)]);
  const dataset: Record<string, unknown> = {
    ...input.patientStudy,
    StudyInstanceUID: input.studyInstanceUid,
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: ENCAPSULATED_PDF,
    SOPInstanceUID: input.sopInstanceUid,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    TimezoneOffsetFromUTC: '+0000',
    Modality: 'DOC',
    SeriesInstanceUID: input.seriesInstanceUid,
    SeriesNumber: input.seriesNumber,
    SeriesDate: date,
    SeriesTime: time,
    SeriesDescription: input.title.slice(0, 64),
    Manufacturer: 'filmless-pacs',
    ...(input.institutionName === undefined ? {} : { InstitutionName: input.institutionName }),
    // SC Equipment: made by a workstation (the archive rendering the signed report).
    ConversionType: 'WSD',
    InstanceNumber: String(input.instanceNumber),
    ContentDate: date,
    ContentTime: time,
    AcquisitionDateTime: `${date}${time}`,
    BurnedInAnnotation: 'YES',
    DocumentTitle: input.title,
    ConceptNameCodeSequence: [input.concept],
    ...(input.source === undefined ? {} : { SourceInstanceSequence: [{ ReferencedSOPClassUID: input.source.sopClassUid, ReferencedSOPInstanceUID: input.source.sopInstanceUid }] }),
    MIMETypeOfEncapsulatedDocument: 'application/pdf',
    EncapsulatedDocumentLength: input.pdf.length,
    EncapsulatedDocument: padded.buffer.slice(padded.byteOffset, padded.byteOffset + padded.length),
    _vrMap: { EncapsulatedDocument: 'OB' },
  };
  return writePart10(dataset);
}

/** The PDF inside an Encapsulated PDF instance (its Encapsulated Document Length when given, else the value without a trailing pad byte). */
export function readEncapsulatedPdf(part10: Buffer): Buffer {
  const file = DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer);
  const ds = DicomMetaDictionary.naturalizeDataset(file.dict) as Record<string, unknown>;
  if (ds['SOPClassUID'] !== ENCAPSULATED_PDF) throw new Error('not an Encapsulated PDF instance');
  const value = ds['EncapsulatedDocument'];
  const first = Array.isArray(value) ? value[0] : value;
  const bytes = first instanceof ArrayBuffer ? Buffer.from(first) : ArrayBuffer.isView(first) ? Buffer.from(first.buffer, first.byteOffset, first.byteLength) : Buffer.alloc(0);
  const declared = Number(ds['EncapsulatedDocumentLength']);
  if (Number.isInteger(declared) && declared > 0 && declared <= bytes.length) return bytes.subarray(0, declared);
  return bytes.length > 0 && bytes[bytes.length - 1] === 0 ? bytes.subarray(0, bytes.length - 1) : bytes;
}
