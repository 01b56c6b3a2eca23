/**
 * What the hospital information system tells the archive, whatever carried it (HL7 v2 over MLLP,
 * hl7/; the orders REST API for hospitals without HL7): commands that register, update and merge
 * patients and place, change and cancel orders, each becoming scheduled procedure steps of the DICOM
 * Modality Worklist (PS3.4 Annex K) and, when performed, linked to MPPS (PS3.4 Annex F) and the study.
 *
 * Field names follow IHE Radiology Scheduled Workflow (RAD TF-2: RAD-1/RAD-12 patient registration and
 * update, RAD-2/RAD-4 order placement and procedure scheduling) and the DICOM attributes they become.
 */
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';

/** A coded concept (PS3.3 Table 8.8-1 Code Sequence Macro). */
export interface CodedValue {
  value: string;
  scheme: string;
  meaning: string;
}

/** The procedure-step states of a worklist item (PS3.4 Annex K / F; IHE SWF order status). */
export type StepStatus = 'SCHEDULED' | 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED' | 'CANCELLED';

/** One order as the HIS places it: one requested procedure with one scheduled procedure step. */
export interface OrderInput {
  /** ORC-2 / OBR-2 Placer Order Number (the HIS's key for the order). */
  placerOrderNumber: string | null;
  /** ORC-3 / OBR-3 Filler Order Number. */
  fillerOrderNumber: string | null;
  /** OBR-18 (ORM) or IPC-1 (OMI): Accession Number (0008,0050), at most 16 characters. */
  accessionNumber: string;
  /** OBR-19 or IPC-2: Requested Procedure ID (0040,1001). */
  requestedProcedureId: string;
  /** OBR-4.2 or the code's meaning: Requested Procedure Description (0032,1060). */
  requestedProcedureDescription: string | null;
  /** OBR-4 Universal Service ID: Requested Procedure Code Sequence (0032,1064). */
  requestedProcedureCode: CodedValue | null;
  /** OBR-20 or IPC-4: Scheduled Procedure Step ID (0040,0009). */
  scheduledProcedureStepId: string;
  /** Scheduled Procedure Step Description (0040,0007). */
  scheduledProcedureStepDescription: string | null;
  /** OBR-24 or IPC-5: Modality (0008,0060). */
  modality: string;
  /** IPC-9 / OBR-21 (site rule): Scheduled Station AE Title (0040,0001). */
  scheduledStationAeTitle: string | null;
  /** TQ1-7 / ORC-7.4 / OBR-27.4 start: Scheduled Procedure Step Start Date + Time, 'YYYYMMDDHHMMSS' (seconds optional). */
  scheduledStart: string;
  /** PV1-8 / ORC-12 / OBR-16 as a DICOM PN string: Referring Physician's Name (0008,0090). */
  referringPhysicianName: string | null;
  /** Scheduled Performing Physician's Name (0040,0006), PN string. */
  performingPhysicianName: string | null;
  /** ZDS-1 or IPC-3 when the HIS assigns it; otherwise the archive assigns one (2.25 UUID form). */
  studyInstanceUid: string | null;
}

/** An order as the archive keeps it. */
export interface Order extends OrderInput {
  /** The archive's id of the order (stable, used in URLs). */
  id: string;
  patient: PatientKey;
  studyInstanceUid: string;
  status: StepStatus;
  /** The MPPS instance that performed the step, once one was created (N-CREATE). */
  mppsSopInstanceUid: string | null;
  /** Series performed for this step (MPPS Performed Series Sequence, or stored instances that matched). */
  performedSeries: string[];
  createdAt: string;
  updatedAt: string;
}

/** One command of the HIS, validated whole before anything is applied. */
export type HisCommand =
  /** ADT^A01 / A04 (register) and A08 (update): create or update the patient; stored studies follow. */
  | { kind: 'patient-upsert'; event: 'A01' | 'A04' | 'A08'; identity: PatientIdentity }
  /** ADT^A40: the prior patient ID is merged into the surviving one; stored studies and orders move. */
  | { kind: 'patient-merge'; prior: PatientKey; surviving: PatientIdentity }
  /** ORM^O01 / OMI^O23 with ORC-1 NW: a new order (the patient is created or updated first). */
  | { kind: 'order-new'; patient: PatientIdentity; order: OrderInput }
  /** ORC-1 XO: the order changed (same placer or accession; `orderId`, the archive's id, when the orders REST API names it). */
  | { kind: 'order-change'; patient: PatientIdentity; order: OrderInput; orderId?: string }
  /** ORC-1 CA (cancel) or DC (discontinue): the step is cancelled / discontinued (`orderId` as for a change). */
  | { kind: 'order-cancel'; patient: PatientKey; placerOrderNumber: string | null; accessionNumber: string | null; discontinue: boolean; orderId?: string };

/** Who sent a command: the audit trail and the message log name it. */
export interface HisCommandContext {
  /** `hl7` (MLLP listener) or `rest` (orders API). */
  via: 'hl7' | 'rest';
  /** MSH-10 Message Control ID: a repeated one is acknowledged again without applying twice. */
  messageControlId?: string;
  /** MSH-3 / MSH-4 sending application and facility. */
  sendingApplication?: string;
  /** The user (REST: token subject) or `HL7:<sending application>`. */
  subject: string;
  clientAddress: string;
  /** REST: more about the signed-in user for the audit trail (display name, roles; `anonymous` with sign-in off). */
  user?: { kind: 'anonymous' | 'token'; name?: string; roles?: readonly string[] };
}

export interface HisApplyResult {
  /** `duplicate`: the message control ID was seen before; nothing was applied this time. */
  status: 'applied' | 'duplicate';
  /** Orders created or changed by the command. */
  orders: Order[];
  /** Stored studies whose patient identity changed. */
  studiesUpdated: string[];
}

/** The use cases of the hospital link: HL7 and the REST API both end here. */
export interface HisLink {
  apply(command: HisCommand, context: HisCommandContext): Promise<HisApplyResult>;
}

/**
 * The stored studies' side of an identity change, implemented over the catalog (services.ts wires it):
 * the index's patient rows take the HIS's identity; the blobs are never rewritten (docs/architecture.md,
 * "Hospital link").
 */
export interface StoredPatients {
  /** Applies an updated identity to the stored studies of the same Patient ID + issuer; returns the study UIDs changed. */
  applyIdentity(identity: PatientIdentity): Promise<string[]>;
  /** Moves the stored studies of `prior` to the surviving patient, with its identity; returns the study UIDs moved. */
  mergePatient(prior: PatientKey, surviving: PatientIdentity): Promise<string[]>;
}
