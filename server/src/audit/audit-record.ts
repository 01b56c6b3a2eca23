/**
 * One audit record: who did what to which patient data, with what outcome, when and from where
 * (issue "Audit trail"). The vocabulary maps onto DICOM PS3.15 A.5 / IHE ATNA (atna-xml.ts):
 *
 * | action               | what                                                          | ATNA EventID (DCM)                        | EventActionCode |
 * |----------------------|---------------------------------------------------------------|-------------------------------------------|-----------------|
 * | `query`              | QIDO-RS search, DIMSE C-FIND                                  | 110112 Query                              | E               |
 * | `retrieve`           | WADO-RS (instances, frames, metadata, rendered, bulk data), stored AI results read, DIMSE C-MOVE / C-GET | 110104 DICOM Instances Transferred | R |
 * | `store`              | STOW-RS, DIMSE C-STORE                                        | 110104 DICOM Instances Transferred        | C               |
 * | `ai-run`             | a model run (detect, detections on a stored frame, slide analysis job) | 110103 DICOM Instances Accessed  | E               |
 * | `ai-read`            | AI API reads (models, job status and progress)               | 110103 DICOM Instances Accessed           | R               |
 * | `ai-cancel`          | cancelling a slide analysis job                               | 110103 DICOM Instances Accessed           | E               |
 * | `ai-verdict`         | a clinician marked a stored AI finding right or wrong (`/ai/findings/…/verdict`; the AI result named) | 110111 Procedure Record | C |
 * | `live-session-start` | live endoscopy session started (or its WebSocket refused)     | 110102 Begin Transferring DICOM Instances | E               |
 * | `live-session-end`   | live endoscopy session ended (recording stored or not)        | 110104 DICOM Instances Transferred        | C               |
 * | `audit-read`         | the administrators' audit API                                 | 110101 Audit Log Used                     | R               |
 * | `patient-record`     | the hospital link created / updated a patient, or merged one away (its studies follow) | 110110 Patient Record | C / U / D (`detail.eventActionCode`) |
 * | `order-record`       | the hospital link created / changed / cancelled an order; the orders API read one | 110109 Order Record | C / U / D / R (`detail.eventActionCode`) |
 * | `fhir-push`          | the FHIR push sent a study's or report's resources to the EMR (outbox entry delivered or given up) | 110106 Export | R |
 * | `report-write`       | a report draft created (C), saved or amended (U) through `/reports` | 110111 Procedure Record | C / U (`detail.eventActionCode`) |
 * | `report-read`        | a report, a version or a study's reports read                  | 110111 Procedure Record                   | R               |
 * | `report-sign`        | a report signed: final, its SR and Encapsulated PDF created in the study (named as objects) | 110103 DICOM Instances Accessed | C |
 * | `report-export`      | a report's PDF served for print or the patient                | 110106 Export                             | R               |
 * | `share-link`         | a share link made (C), listed or printed on a slip (R), revoked (D) | 110106 Export                    | C / R / D (`detail.eventActionCode`) |
 * | `share-open`         | a share link opened: its PIN checked, a session given (or refused) | 110114 User Authentication        | E               |
 * | `study-export`       | what a share link shares downloaded as a ZIP (JPEGs or DICOM files) | 110106 Export                    | R               |
 * | `consult-request`    | a second opinion asked for: the case (a de-identified copy) goes to a specialist | 110106 Export      | C               |
 * | `consult-read`       | a consult read (requester, specialist, or through its link)   | 110111 Procedure Record                   | R               |
 * | `consult-answer`     | the specialist's answer recorded                              | 110111 Procedure Record                   | U               |
 * | `reject`             | instances hidden by an IOCM rejection note (made through `/curation`, or received by STOW-RS / C-STORE) | 110103 DICOM Instances Accessed | U |
 * | `restore`            | a rejection lifted: instances visible again, the note voided  | 110103 DICOM Instances Accessed           | U               |
 * | `move`               | instances, series or a study moved (move, split, merge, another patient), before and after in `detail` | 110103 DICOM Instances Accessed | U |
 * | `delete`             | a study, series or instance deleted (`DELETE`), or rejected instances purged | 110105 DICOM Study Deleted | D    |
 * | `backup`             | an index backup taken, the backup's state read or verified, a restore (backup/) | 110106 Export | E |
 * | `storage-read`       | storage usage and housekeeping status read (`/api/storage`; studies named) | 110103 DICOM Instances Accessed | R |
 * | `recompress`         | an instance's stored file replaced by its lossless recompression (by the system), or a housekeeping run started | 110103 DICOM Instances Accessed | U |
 *
 * Requests made with a share link are recorded like any other (a DICOMweb read is `retrieve` or
 * `query`), with the link as the user: subject `link:<id>`, kind `link`.
 *
 * The FHIR API (interface `fhir`) uses the DICOMweb words: a read (`GET /fhir/{type}/{id}`) is `retrieve`,
 * a search `query` with the resource type as its level; the records name the study (ImagingStudy,
 * DiagnosticReport) and, as an HL7 CX Patient ID, the patient (Patient reads, searches by patient).
 *
 * Records may hold patient data (a QIDO query for a patient name): they live in the protected index
 * database and go to the configured ATNA repository, never into application logs.
 */
import type { Principal } from '../auth/principal.js';
import type { AuditAction, AuditActionCode, AuditInterface, AuditObject, AuditOutcome } from './audit-vocabulary.js';

export { AUDIT_ACTIONS, storedObjects, type AuditAction, type AuditActionCode, type AuditInterface, type AuditObject, type AuditOutcome } from './audit-vocabulary.js';

export interface AuditWho {
  /**
   * Token `sub`, `anonymous` (auth off), `unauthenticated` (401), `AE:<calling AE title>` (DIMSE),
   * `HL7:<sending application>`, `FHIR:<base URL>` (the EMR a FHIR push delivered to, kind `system`), or
   * `link:<id>` (a share link's credential, kind `link`).
   */
  subject: string;
  name?: string;
  kind: Principal['kind'] | 'unauthenticated' | 'hl7' | 'system';
  roles?: string[];
}

export interface AuditRecord {
  /** Assigned by the store, increasing; absent until written. */
  id?: number;
  /** When the action ended, UTC milliseconds. */
  time: number;
  action: AuditAction;
  outcome: AuditOutcome;
  /** HTTP status, or DIMSE status of the final response. */
  status: number;
  who: AuditWho;
  /** Client IP address (HTTP: the socket's peer; DIMSE: the association's peer). */
  clientAddress: string;
  interface: AuditInterface;
  /** `GET /dicomweb/studies/:study` (route pattern, no values) or the DIMSE service (`C-FIND`). */
  route: string;
  objects: AuditObject[];
  /** Searches: the level and the matching keys as sent (may name a patient). */
  query?: { level: string; keys: Record<string, string | string[]> };
  /** Small facts about the action: model id, C-MOVE destination, failure counts. No patient data. */
  detail?: Record<string, string | number | boolean>;
}

/** ATNA EventID and EventActionCode of each action (PS3.15 A.5.3, codes from PS3.16 CID 400). */
export const ATNA_EVENTS: Record<AuditAction, { code: string; meaning: string; actionCode: AuditActionCode }> = {
  query: { code: '110112', meaning: 'Query', actionCode: 'E' },
  retrieve: { code: '110104', meaning: 'DICOM Instances Transferred', actionCode: 'R' },
  store: { code: '110104', meaning: 'DICOM Instances Transferred', actionCode: 'C' },
  'ai-run': { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'E' },
  'ai-read': { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'R' },
  'ai-cancel': { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'E' },
  'live-session-start': { code: '110102', meaning: 'Begin Transferring DICOM Instances', actionCode: 'E' },
  'live-session-end': { code: '110104', meaning: 'DICOM Instances Transferred', actionCode: 'C' },
  'audit-read': { code: '110101', meaning: 'Audit Log Used', actionCode: 'R' },
  // A clinician's judgement of an AI finding becomes part of the procedure's record (as a report's decisions).
  'ai-verdict': { code: '110111', meaning: 'Procedure Record', actionCode: 'C' },
  // The code of these two depends on the event: detail.eventActionCode (atnaEventOf); these are the fallbacks.
  'patient-record': { code: '110110', meaning: 'Patient Record', actionCode: 'U' },
  'order-record': { code: '110109', meaning: 'Order Record', actionCode: 'U' },
  // PS3.15 A.5.3.6 Data Export: patient data leaving the archive for the EMR (the archive is the source).
  'fhir-push': { code: '110106', meaning: 'Export', actionCode: 'R' },
  // Reports: a report is part of the procedure's record (110111 Procedure Record: created, read, updated);
  // signing creates DICOM instances in the study (110103 DICOM Instances Accessed, C = created); the
  // PDF leaves the archive for print or the patient (110106 Export).
  'report-write': { code: '110111', meaning: 'Procedure Record', actionCode: 'U' },
  'report-read': { code: '110111', meaning: 'Procedure Record', actionCode: 'R' },
  'report-sign': { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'C' },
  'report-export': { code: '110106', meaning: 'Export', actionCode: 'R' },
  // Share links (sharing/): patient data is made reachable outside the archive's users (PS3.15 A.5.3.6
  // Data Export); the link's credential checked (110114 User Authentication); consults.
  'share-link': { code: '110106', meaning: 'Export', actionCode: 'R' },
  'share-open': { code: '110114', meaning: 'User Authentication', actionCode: 'E' },
  // The study leaves the archive as a file (a ZIP downloaded through a share link): PS3.15 A.5.3.6 Data Export.
  'study-export': { code: '110106', meaning: 'Export', actionCode: 'R' },
  'consult-request': { code: '110106', meaning: 'Export', actionCode: 'C' },
  'consult-read': { code: '110111', meaning: 'Procedure Record', actionCode: 'R' },
  'consult-answer': { code: '110111', meaning: 'Procedure Record', actionCode: 'U' },
  // Curation (curation/): hiding, showing again and moving instances change what the archive holds of a
  // study (110103 DICOM Instances Accessed, U = updated); removing them for good is PS3.15 A.5.3.4
  // "DICOM Study Deleted" (110105, D).
  reject: { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'U' },
  restore: { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'U' },
  move: { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'U' },
  delete: { code: '110105', meaning: 'DICOM Study Deleted', actionCode: 'D' },
  // Backup (backup/): the index (patient data) copied to the backup store, or restored from it (PS3.15
  // A.5.3.6 Data Export; E = executed).
  backup: { code: '110106', meaning: 'Export', actionCode: 'E' },
  // Storage lifecycle (lifecycle/): the usage figures name studies (110103 R); a recompression rewrites
  // the stored files of instances without changing them (110103 U, as curation's updates).
  'storage-read': { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'R' },
  recompress: { code: '110103', meaning: 'DICOM Instances Accessed', actionCode: 'U' },
};

const ACTION_CODES: readonly string[] = ['C', 'R', 'U', 'D', 'E'];

/** The ATNA event of a record: its action's, with the EventActionCode the record carries in `detail.eventActionCode` when it has one. */
export function atnaEventOf(record: Pick<AuditRecord, 'action' | 'detail'>): { code: string; meaning: string; actionCode: AuditActionCode } {
  const event = ATNA_EVENTS[record.action];
  const declared = record.detail?.['eventActionCode'];
  return typeof declared === 'string' && ACTION_CODES.includes(declared) ? { ...event, actionCode: declared as AuditActionCode } : event;
}

/** HTTP status → outcome: 2xx/3xx success (202, a partly stored STOW-RS, is a minor failure), 4xx minor, 5xx serious. */
export function outcomeOfHttpStatus(status: number): AuditOutcome {
  if (status === 202) return 4;
  if (status < 400) return 0;
  if (status < 500) return 4;
  return 8;
}

/**
 * DIMSE status → outcome (PS3.7 Annex C): success 0; warning (0001, 0107, 0116, Bxxx) and cancel (FE00)
 * minor; refused / failed (0124, A7xx, A9xx, Cxxx, 01xx) serious.
 */
export function outcomeOfDimseStatus(status: number): AuditOutcome {
  if (status === 0x0000) return 0;
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000 || status === 0xfe00) return 4;
  return 8;
}

/** The audit subject of a principal. */
export function whoOf(principal: Principal): AuditWho {
  return {
    subject: principal.subject,
    ...(principal.name === undefined ? {} : { name: principal.name }),
    kind: principal.kind,
    ...(principal.roles.length === 0 ? {} : { roles: [...principal.roles] }),
  };
}

/** The studies a record names, each once, in order. */
export function studiesOf(record: Pick<AuditRecord, 'objects'>): string[] {
  return [...new Set(record.objects.map((object) => object.study).filter((study): study is string => study !== undefined && study !== ''))];
}
