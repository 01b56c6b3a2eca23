/**
 * The attributes a recording started from a worklist item (an order) carries, as a modality that took
 * the item from the Modality Worklist writes them (IHE Radiology Scheduled Workflow, RAD TF-2 4.8
 * "Modality Images Stored": the worklist → image attribute mapping):
 *
 * - Patient module (PS3.3 C.7.1.1): the HIS's identity of the patient: name, Patient ID with its Issuer,
 *   Other Patient IDs Sequence (the national citizen ID with its issuer), birth date, sex.
 * - General Study module (C.7.2.1): the order's Study Instance UID, Accession Number, Referring
 *   Physician's Name, Study ID = Requested Procedure ID, Study Description = Requested Procedure
 *   Description, Procedure Code Sequence = Requested Procedure Code Sequence.
 * - The recording's General Series module (C.7.3.1): Request Attributes Sequence (0040,0275), one item
 *   with Requested Procedure ID, Accession Number, Study Instance UID, Requested Procedure Description
 *   and Code Sequence, Scheduled Procedure Step ID and Description (Table 10-9 Request Attributes Macro).
 * - The SR's SR Document General module (C.17.2): Referenced Request Sequence (0040,A370), Type 1C
 *   "required if the Identified Request exists": the same request, with the placer and filler order numbers.
 *
 * Values are dcmjs-naturalized. When the order's study already holds instances, its Study Date, Time
 * and ID are kept so that the study reads the same from every instance.
 */
import { dicomDate, dicomTime } from '../dicom/dicom-datetime.js';
import type { PatientStudyAttributes } from '../dicom/patient-study-attributes.js';
import type { LiveOrder, LiveOrderCode } from './live-orders.js';

export interface OrderAttributes {
  /** Patient and General Study attributes: both the recording and its SR. */
  study: PatientStudyAttributes;
  /** The recording's General Series request attributes. */
  recordingSeries: Record<string, unknown>;
  /** The SR's Referenced Request Sequence. */
  reportDocument: Record<string, unknown>;
}

/** Code Sequence Macro item (PS3.3 Table 8.8-1): values over 16 characters go in Long Code Value. */
function codeItem(code: LiveOrderCode): Record<string, string> {
  return {
    ...(code.value.length > 16 ? { LongCodeValue: code.value } : { CodeValue: code.value }),
    CodingSchemeDesignator: code.scheme,
    CodeMeaning: code.meaning,
  };
}

const present = (value: string | null | undefined): value is string => value !== null && value !== undefined && value !== '';

/** `stored`: the patient/study attributes of an instance of the order's study already in the archive. */
export function orderAttributes(order: LiveOrder, now: Date, stored?: PatientStudyAttributes): OrderAttributes {
  const { patient } = order;
  const storedText = (keyword: string) => (typeof stored?.[keyword] === 'string' && stored[keyword] !== '' ? (stored[keyword] as string) : undefined);
  const codes = order.requestedProcedureCode === null ? [] : [codeItem(order.requestedProcedureCode)];
  const study: PatientStudyAttributes = {
    PatientName: patient.name ?? '',
    PatientID: patient.patientId,
    ...(present(patient.issuer) ? { IssuerOfPatientID: patient.issuer } : {}),
    PatientBirthDate: patient.birthDate ?? '',
    PatientSex: patient.sex ?? '',
    ...(patient.otherIds.length === 0
      ? {}
      : {
          OtherPatientIDsSequence: patient.otherIds.map((other) => ({
            PatientID: other.id,
            ...(present(other.issuer) ? { IssuerOfPatientID: other.issuer } : {}),
            TypeOfPatientID: other.type ?? 'TEXT',
          })),
        }),
    StudyInstanceUID: order.studyInstanceUid,
    StudyDate: storedText('StudyDate') ?? dicomDate(now),
    StudyTime: storedText('StudyTime') ?? dicomTime(now),
    ReferringPhysicianName: order.referringPhysicianName ?? '',
    StudyID: storedText('StudyID') ?? order.requestedProcedureId.slice(0, 16),
    AccessionNumber: order.accessionNumber,
    ...(present(order.requestedProcedureDescription) ? { StudyDescription: order.requestedProcedureDescription } : storedText('StudyDescription') === undefined ? {} : { StudyDescription: storedText('StudyDescription') }),
    ...(codes.length === 0 ? {} : { ProcedureCodeSequence: codes }),
  };
  const request = {
    RequestedProcedureID: order.requestedProcedureId,
    AccessionNumber: order.accessionNumber,
    StudyInstanceUID: order.studyInstanceUid,
    ...(present(order.requestedProcedureDescription) ? { RequestedProcedureDescription: order.requestedProcedureDescription } : {}),
    ...(codes.length === 0 ? {} : { RequestedProcedureCodeSequence: codes }),
  };
  return {
    study,
    recordingSeries: {
      RequestAttributesSequence: [
        {
          ...request,
          ScheduledProcedureStepID: order.scheduledProcedureStepId,
          ...(present(order.scheduledProcedureStepDescription) ? { ScheduledProcedureStepDescription: order.scheduledProcedureStepDescription } : {}),
        },
      ],
    },
    reportDocument: {
      ReferencedRequestSequence: [
        {
          StudyInstanceUID: order.studyInstanceUid,
          AccessionNumber: order.accessionNumber,
          ReferencedStudySequence: [],
          RequestedProcedureDescription: order.requestedProcedureDescription ?? '',
          RequestedProcedureCodeSequence: codes,
          RequestedProcedureID: order.requestedProcedureId,
          PlacerOrderNumberImagingServiceRequest: order.placerOrderNumber ?? '',
          FillerOrderNumberImagingServiceRequest: order.fillerOrderNumber ?? '',
        },
      ],
    },
  };
}
