/**
 * DICOM and hospital-link data as FHIR R4 resources (docs/architecture.md, "FHIR"): pure functions, no I/O.
 *
 * - Patient: identifiers (Patient ID + issuer, other IDs + issuers → system URIs, v2-0203 type MR for the
 *   hospital record number, NI for the national ID), name (PN alphabetic group → HumanName), gender, birthDate.
 * - ImagingStudy: identifiers (Study Instance UID as `urn:dicom:uid` / `urn:oid:…`, the accession number
 *   with type ACSN), status, modalities, subject, started, basedOn (the order's placer number as a
 *   ServiceRequest identifier), procedure code, the DICOMweb Endpoint (contained), counts, series with
 *   their instances and SOP classes.
 */
import type { CodeableConcept, Coding, Endpoint, HumanName, Identifier, ImagingStudy, ImagingStudySeries, Patient, Reference } from 'fhir/r4.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { StudyDetail } from './fhir-index.js';
import { V2_0203, type IdentifierSystems } from './fhir-ids.js';
import { dicomDate, dicomDateTime } from './fhir-search.js';

export const DICOM_UID_SYSTEM = 'urn:dicom:uid';
export const DCM_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';
export const URI_SYSTEM = 'urn:ietf:rfc:3986';

/** DICOM Coding Scheme Designators (PS3.16 Table 8-1) and their FHIR system URIs. */
const CODING_SCHEMES: Readonly<Record<string, string>> = {
  LN: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  DCM: DCM_SYSTEM,
  RADLEX: 'http://radlex.org',
  RADLEX_: 'http://radlex.org',
  I10: 'http://hl7.org/fhir/sid/icd-10',
  ICD10: 'http://hl7.org/fhir/sid/icd-10',
  UCUM: 'http://unitsofmeasure.org',
  UMLS: 'http://www.nlm.nih.gov/research/umls',
  ICDO3: 'http://terminology.hl7.org/CodeSystem/icd-o-3',
  // The archive's own scheme (dicom/coded-concept.ts LOCAL_CODING_SCHEME) for concepts without a standard code.
  '99FLMPACS': 'urn:filmless-pacs:code:99FLMPACS',
};

/** The system URI of a DICOM coding scheme designator, or undefined when it has none here. */
export function systemOfScheme(scheme: string): string | undefined {
  return CODING_SCHEMES[scheme.toUpperCase()] ?? (/^\d+(\.\d+)+$/.test(scheme) ? `urn:oid:${scheme}` : undefined);
}

/** A coded value (DICOM code sequence item, HIS order code) as a CodeableConcept; text only when its scheme has no URI here. */
export function codeableConcept(code: { value: string; scheme: string; meaning: string }): CodeableConcept {
  const system = systemOfScheme(code.scheme);
  return {
    ...(system === undefined || code.value === '' ? {} : { coding: [{ system, code: code.value, ...(code.meaning === '' ? {} : { display: code.meaning }) }] }),
    ...(code.meaning === '' ? { text: code.value } : { text: code.meaning }),
  };
}

function typeConcept(code: string, display: string): CodeableConcept {
  return { coding: [{ system: V2_0203, code, display }] };
}

/** Absolute URLs the resources link to. */
export interface ResourceLinks {
  /** The DICOMweb root clients retrieve the study from (Endpoint.address). */
  dicomweb: string;
}

/** Patient identifiers: the Patient ID (use `usual`) and the other IDs, each with its issuer's system. */
export function patientIdentifiers(identity: PatientIdentity, systems: IdentifierSystems): Identifier[] {
  const identifiers: Identifier[] = [];
  const add = (value: string, issuer: string, use: Identifier['use']) => {
    if (value === '') return;
    const system = systems.systemOf(issuer);
    const type = systems.typeOf(system);
    if (identifiers.some((i) => i.system === system && i.value === value)) return;
    identifiers.push({
      ...(use === undefined ? {} : { use }),
      ...(type === undefined ? {} : { type: typeConcept(type.code, type.display) }),
      ...(system === undefined ? {} : { system }),
      value,
    });
  };
  add(identity.patientId, identity.issuer, 'usual');
  for (const other of identity.otherIds) add(other.id, other.issuer, systems.typeOf(systems.systemOf(other.issuer))?.code === 'NI' ? 'official' : 'secondary');
  return identifiers;
}

/** A DICOM PN (`Family^Given^Middle^Prefix^Suffix`, alphabetic group) as a HumanName. */
export function humanName(pn: string | null): HumanName | undefined {
  if (pn === null || pn === '') return undefined;
  const alphabetic = pn.split('=')[0] ?? '';
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = alphabetic.split('^').map((part) => part.trim());
  const givens = [given, middle].filter((part) => part !== '');
  const name: HumanName = {
    use: 'official',
    // Family name first, as Vietnamese (and DICOM) write it: "Nguyễn Văn Đức".
    text: [family, given, middle].filter((part) => part !== '').join(' '),
    ...(family === '' ? {} : { family }),
    ...(givens.length === 0 ? {} : { given: givens }),
    ...(prefix === '' ? {} : { prefix: [prefix] }),
    ...(suffix === '' ? {} : { suffix: [suffix] }),
  };
  return name.text === '' ? undefined : name;
}

const GENDERS: Readonly<Record<string, Patient['gender']>> = { M: 'male', F: 'female', O: 'other' };

export function patientResource(id: string, identity: PatientIdentity, systems: IdentifierSystems, lastUpdated?: string): Patient {
  const identifiers = patientIdentifiers(identity, systems);
  const name = humanName(identity.name);
  const gender = identity.sex === null ? undefined : (GENDERS[identity.sex.toUpperCase()] ?? 'unknown');
  const birthDate = dicomDate(identity.birthDate);
  return {
    resourceType: 'Patient',
    id,
    ...(lastUpdated === undefined ? {} : { meta: { lastUpdated } }),
    ...(identifiers.length === 0 ? {} : { identifier: identifiers }),
    ...(name === undefined ? {} : { name: [name] }),
    ...(gender === undefined ? {} : { gender }),
    ...(birthDate === undefined ? {} : { birthDate }),
  };
}

/** The order a study was performed for, as far as the hospital link knows it. */
export interface StudyOrder {
  placerOrderNumber: string | null;
  accessionNumber: string;
  requestedProcedureCode: { value: string; scheme: string; meaning: string } | null;
  requestedProcedureDescription: string | null;
}

export interface ImagingStudyOptions {
  links: ResourceLinks;
  accessionSystem: string;
  placerOrderSystem: string;
}

export const ACCESSION_TYPE: CodeableConcept = typeConcept('ACSN', 'Accession ID');
const PLACER_TYPE: CodeableConcept = typeConcept('PLAC', 'Placer Identifier');

/** The identifier of a Study Instance UID (the push's conditional update key). */
export function studyUidIdentifier(studyInstanceUid: string): Identifier {
  return { system: DICOM_UID_SYSTEM, value: `urn:oid:${studyInstanceUid}` };
}

/** A reference to the order by its placer number (ServiceRequest identifier, type PLAC). */
export function serviceRequestReference(order: StudyOrder, placerOrderSystem: string): Reference | undefined {
  if (order.placerOrderNumber === null || order.placerOrderNumber === '') return undefined;
  return {
    type: 'ServiceRequest',
    identifier: { type: PLACER_TYPE, ...(placerOrderSystem === '' ? {} : { system: placerOrderSystem }), value: order.placerOrderNumber },
  };
}

function modalityCoding(modality: string): Coding {
  return { system: DCM_SYSTEM, code: modality };
}

function unsignedInt(value: number | null): number | undefined {
  return value !== null && Number.isInteger(value) && value >= 0 ? value : undefined;
}

export function imagingStudyResource(study: StudyDetail, subject: Reference, order: StudyOrder | undefined, options: ImagingStudyOptions): ImagingStudy {
  const accession = study.accessionNumber ?? order?.accessionNumber ?? null;
  const identifiers: Identifier[] = [
    { use: 'official', ...studyUidIdentifier(study.studyInstanceUid) },
    ...(accession === null || accession === ''
      ? []
      : [{ use: 'usual' as const, type: ACCESSION_TYPE, ...(options.accessionSystem === '' ? {} : { system: options.accessionSystem }), value: accession }]),
  ];
  const endpoint: Endpoint = {
    resourceType: 'Endpoint',
    id: 'dicomweb',
    status: 'active',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'dicom-wado-rs', display: 'DICOM WADO-RS' },
    name: 'DICOMweb (QIDO-RS, WADO-RS, STOW-RS)',
    payloadType: [{ text: 'DICOM' }],
    payloadMimeType: ['application/dicom'],
    address: options.links.dicomweb,
  };
  const basedOn = order === undefined ? undefined : serviceRequestReference(order, options.placerOrderSystem);
  const started = dicomDateTime(study.studyDate, study.studyTime, study.timezoneOffset);
  const procedure = order?.requestedProcedureCode ?? null;
  const series: ImagingStudySeries[] = study.series.map((s) => {
    const number = unsignedInt(s.number);
    const seriesStarted = dicomDateTime(s.performedDate, s.performedTime, s.timezoneOffset);
    return {
      uid: s.seriesInstanceUid,
      ...(number === undefined ? {} : { number }),
      modality: modalityCoding(s.modality ?? 'OT'),
      ...(s.description === null || s.description === '' ? {} : { description: s.description }),
      numberOfInstances: s.numberOfInstances,
      ...(seriesStarted === undefined ? {} : { started: seriesStarted }),
      ...(s.instances.length === 0
        ? {}
        : {
            instance: s.instances.map((i) => {
              const instanceNumber = unsignedInt(i.number);
              return { uid: i.sopInstanceUid, sopClass: { system: URI_SYSTEM, code: `urn:oid:${i.sopClassUid}` }, ...(instanceNumber === undefined ? {} : { number: instanceNumber }) };
            }),
          }),
    };
  });
  return {
    resourceType: 'ImagingStudy',
    id: study.studyInstanceUid,
    meta: { lastUpdated: study.lastUpdated },
    contained: [endpoint],
    identifier: identifiers,
    status: 'available',
    ...(study.modalities.length === 0 ? {} : { modality: study.modalities.map(modalityCoding) }),
    subject,
    ...(started === undefined ? {} : { started }),
    ...(basedOn === undefined ? {} : { basedOn: [basedOn] }),
    endpoint: [{ reference: '#dicomweb' }],
    numberOfSeries: study.numberOfSeries,
    numberOfInstances: study.numberOfInstances,
    ...(procedure === null ? {} : { procedureCode: [codeableConcept(procedure)] }),
    ...(study.description === null || study.description === '' ? {} : { description: study.description }),
    ...(series.length === 0 ? {} : { series }),
  };
}
