/**
 * Attributes that `includefield=all` returns at the study and series levels, from the stored header of
 * the first instance. PS3.18 §10.6.3 leaves "all" to the origin server; these are the attributes of the
 * Patient, General Study and Patient Study modules (study level) and of the General Series, Frame of
 * Reference and General Equipment modules (series level), PS3.3 §C.7.1-C.7.5. At the instance level
 * "all" returns the whole stored instance header.
 */
import { tagOf } from './dictionary.js';

const PATIENT_STUDY_KEYWORDS = [
  // Patient module (PS3.3 §C.7.1.1)
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'IssuerOfPatientIDQualifiersSequence', 'TypeOfPatientID',
  'OtherPatientIDsSequence', 'PatientBirthDate', 'PatientBirthTime', 'PatientSex', 'OtherPatientNames',
  'PatientComments', 'EthnicGroup', 'PatientSpeciesDescription', 'PatientSpeciesCodeSequence',
  'PatientBreedDescription', 'PatientBreedCodeSequence', 'ResponsiblePerson', 'ResponsiblePersonRole',
  'ResponsibleOrganization', 'PatientIdentityRemoved', 'DeidentificationMethod',
  // General Study module (PS3.3 §C.7.2.1)
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'ReferringPhysicianIdentificationSequence',
  'StudyID', 'AccessionNumber', 'IssuerOfAccessionNumberSequence', 'StudyDescription', 'PhysiciansOfRecord',
  'NameOfPhysiciansReadingStudy', 'RequestingService', 'ProcedureCodeSequence', 'ReasonForPerformedProcedureCodeSequence',
  'TimezoneOffsetFromUTC',
  // Patient Study module (PS3.3 §C.7.2.2)
  'AdmittingDiagnosesDescription', 'AdmittingDiagnosesCodeSequence', 'PatientAge', 'PatientSize', 'PatientWeight',
  'Occupation', 'AdditionalPatientHistory', 'AdmissionID', 'MedicalAlerts', 'Allergies', 'SmokingStatus',
  'PregnancyStatus', 'LastMenstrualDate',
];

const SERIES_KEYWORDS = [
  // General Series module (PS3.3 §C.7.3.1)
  'Modality', 'SeriesInstanceUID', 'SeriesNumber', 'Laterality', 'SeriesDate', 'SeriesTime', 'PerformingPhysicianName',
  'ProtocolName', 'SeriesDescription', 'SeriesDescriptionCodeSequence', 'OperatorsName',
  'ReferencedPerformedProcedureStepSequence', 'BodyPartExamined', 'PatientPosition', 'AnatomicalOrientationType',
  'PerformedProcedureStepID', 'PerformedProcedureStepStartDate', 'PerformedProcedureStepStartTime',
  'PerformedProcedureStepDescription', 'PerformedProtocolCodeSequence', 'RequestAttributesSequence',
  // Frame of Reference module (PS3.3 §C.7.4.1)
  'FrameOfReferenceUID', 'PositionReferenceIndicator',
  // General Equipment module (PS3.3 §C.7.5.1)
  'Manufacturer', 'InstitutionName', 'InstitutionAddress', 'StationName', 'InstitutionalDepartmentName',
  'ManufacturerModelName', 'DeviceSerialNumber', 'SoftwareVersions',
];

export const PATIENT_STUDY_TAGS: ReadonlySet<string> = new Set(PATIENT_STUDY_KEYWORDS.map(tagOf));
export const SERIES_TAGS: ReadonlySet<string> = new Set(SERIES_KEYWORDS.map(tagOf));
