/**
 * The words of the audit trail that the rest of the server may name: actions, interfaces, outcomes and
 * the objects a record is about. A leaf module (no imports), so that a route can declare its audit
 * action (http/route-access.ts) without depending on how records are built, stored or exported.
 * What each action means and its ATNA mapping: audit-record.ts.
 */

export const AUDIT_ACTIONS = [
  'query',
  'retrieve',
  'store',
  'ai-run',
  'ai-read',
  'ai-cancel',
  // AI in use (ai-usage/): a clinician's verdict on a stored AI finding (right / wrong) recorded.
  'ai-verdict',
  'live-session-start',
  'live-session-end',
  'audit-read',
  // The hospital link (his/): a patient created, updated or merged away; an order created, read, changed or cancelled.
  'patient-record',
  'order-record',
  // The FHIR link (fhir/): a result (ImagingStudy, DiagnosticReport, the Patient they name) sent to the EMR.
  'fhir-push',
  // Reports (reports/): a draft written or amended, a report read, signed (its SR and PDF stored), its PDF exported.
  'report-write',
  'report-read',
  'report-sign',
  'report-export',
  // Share links and consults (sharing/): a link made, listed, printed on a slip or revoked; a link opened
  // (the PIN checked, a session given); a consult asked for (with its de-identified copy), read, answered.
  'share-link',
  'share-open',
  // The study downloaded through a share link (the patient's ZIP of JPEGs or of DICOM files).
  'study-export',
  'consult-request',
  'consult-read',
  'consult-answer',
  // Curation (curation/): instances rejected (IOCM rejection note made or received) or restored; moved
  // (move, split, merge, another patient); deleted for good (DELETE, or purged after their rejection).
  'reject',
  'restore',
  'move',
  'delete',
  // Backup (backup/): an index backup taken (the whole index leaves for the backup store), the backup's
  // state read, a restore recorded.
  'backup',
  // Storage lifecycle (lifecycle/): storage usage read (study UIDs and sizes); stored files replaced by
  // their lossless recompression (the instances unchanged, their encoding changed).
  'storage-read',
  'recompress',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Where the action came in: the record's `interface` field. */
export const AUDIT_INTERFACES = ['dicomweb', 'ai', 'live', 'dimse', 'admin', 'his', 'fhir', 'reports', 'share', 'consults', 'curation', 'storage'] as const;
export type AuditInterface = (typeof AUDIT_INTERFACES)[number];

/** ATNA EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
export type AuditOutcome = 0 | 4 | 8 | 12;

/**
 * ATNA EventActionCode (PS3.15 A.5.1): Create, Read, Update, Delete, Execute. Actions whose code depends
 * on the event (`patient-record`, `order-record`, `report-write`, `share-link`) carry it as `detail.eventActionCode`.
 */
export type AuditActionCode = 'C' | 'R' | 'U' | 'D' | 'E';

/** A study, series or instance the action touched (as far as known: a refused C-STORE has no study). */
export interface AuditObject {
  study?: string;
  series?: string;
  instance?: string;
  sopClass?: string;
  /**
   * The patient a Patient Record or Order Record event is about, as an HL7 CX Patient ID
   * (`ID^^^ISSUER`, PS3.15 A.5.3 Patient participant object). Patient data: only in the protected store.
   */
  patient?: string;
}

/** The audit objects of stored or found instances (STOW-RS outcome, C-STORE result, C-MOVE/C-GET matches). */
export function storedObjects(items: ReadonlyArray<{ studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string; sopClassUid: string }>): AuditObject[] {
  return items.map((item) => ({ study: item.studyInstanceUid, series: item.seriesInstanceUid, instance: item.sopInstanceUid, sopClass: item.sopClassUid }));
}

/** One event of a live endoscopy session (an upgraded WebSocket has no HTTP response to audit). */
export interface LiveAuditEvent {
  phase: 'start' | 'end';
  /** 0 started / ended with its recording stored; 4 start refused; 8 recording not stored. */
  outcome: AuditOutcome;
  /** Status-like number for the record: 101 started, 400/403 refused, 200 ended, 500 recording lost. */
  status: number;
  objects: AuditObject[];
  detail?: Record<string, string | number | boolean>;
}
