/**
 * Where the hospital link keeps what the HIS told it: patients (the HIS's identity), orders with their
 * scheduled procedure step and state, MPPS instances, and the log of applied message control IDs. One
 * interface, one Kysely implementation on the index database (SQLite or PostgreSQL, tables of its own
 * like the job store and the audit trail), one contract suite run on both engines.
 *
 * Every write that one command makes happens in one `transaction`, so a command is applied whole or
 * not at all, and its message control ID is recorded in the same transaction.
 */
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import type { Order, OrderInput, StepStatus } from './his-model.js';

/** Modality Worklist matching keys (PS3.4 K.6.1.2): every given key must match. */
export interface WorklistQuery {
  /** Scheduled Procedure Step Start Date range, inclusive, 'YYYYMMDD' (either end open). */
  dateFrom?: string;
  dateTo?: string;
  /** Scheduled start time range within the dates, 'HHMMSS' (either end open). */
  timeFrom?: string;
  timeTo?: string;
  modality?: string;
  scheduledStationAeTitle?: string;
  /** PN matching: `*` and `?` wildcards, case-insensitive (PS3.4 C.2.2.2.4). */
  patientName?: string;
  patientId?: string;
  /** Matches the patient's issuer when given. */
  issuerOfPatientId?: string;
  accessionNumber?: string;
  /** Only these states (default: SCHEDULED and IN PROGRESS, what a modality should see). */
  statuses?: readonly StepStatus[];
  limit?: number;
}

/** An order with its patient's current identity (a worklist item). */
export interface WorklistItem {
  order: Order;
  patient: PatientIdentity;
}

/** A Modality Performed Procedure Step (PS3.4 Annex F) as N-CREATE / N-SET left it. */
export interface PerformedProcedureStep {
  sopInstanceUid: string;
  status: 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';
  /** The orders (scheduled steps) it performs, by id. */
  orderIds: string[];
  performedSeries: string[];
  /** The data set as last set (DICOM JSON), for N-GET and audits. */
  attributes: Record<string, unknown>;
  updatedAt: string;
}

/** What a previous message with this control ID did (returned again for a duplicate). */
export interface LoggedMessage {
  sendingApplication: string;
  messageControlId: string;
  /** The acknowledgement code that was sent (AA, AE, AR). */
  ackCode: string;
  /** Summary of what was applied (JSON), returned to the caller of a duplicate. */
  outcome: string;
  receivedAt: string;
}

/** Writes inside one transaction. */
export interface HisTransaction {
  upsertPatient(identity: PatientIdentity): Promise<void>;
  getPatient(key: PatientKey): Promise<PatientIdentity | undefined>;
  /** The orders of a patient (any state), oldest first. An extension: a merge reports the orders it moves. */
  ordersOfPatient(key: PatientKey): Promise<Order[]>;
  /** Moves every order of `prior` to `surviving` and removes the prior patient. */
  mergePatient(prior: PatientKey, surviving: PatientKey): Promise<void>;
  /** Creates the order (new id, status SCHEDULED, the given or a new Study Instance UID). */
  createOrder(patient: PatientKey, order: OrderInput): Promise<Order>;
  /** Replaces an order's requested/scheduled details; status and performed data unchanged. */
  updateOrder(id: string, patient: PatientKey, order: OrderInput): Promise<Order>;
  setOrderStatus(id: string, status: StepStatus): Promise<Order>;
  findOrder(ref: { id?: string; placerOrderNumber?: string | null; accessionNumber?: string | null }): Promise<Order | undefined>;
  /** The log entry of a message control ID, when one was recorded. */
  findMessage(sendingApplication: string, messageControlId: string): Promise<LoggedMessage | undefined>;
  logMessage(entry: LoggedMessage): Promise<void>;
  putPerformedStep(step: PerformedProcedureStep): Promise<void>;
  getPerformedStep(sopInstanceUid: string): Promise<PerformedProcedureStep | undefined>;
  /**
   * Adds performed series to an order (MPPS, or instances stored with its accession number); a series
   * linked already is kept once. `studyInstanceUid`: the study the series was stored in, when known
   * (ingest), so `ordersOfStudies` finds the order even when the modality did not use its Study Instance UID.
   */
  addPerformedSeries(orderId: string, seriesInstanceUids: readonly string[], mppsSopInstanceUid?: string, studyInstanceUid?: string): Promise<void>;
}

export interface HisStore {
  transaction<T>(work: (tx: HisTransaction) => Promise<T>): Promise<T>;
  getPatient(key: PatientKey): Promise<PatientIdentity | undefined>;
  /** A patient found by any of its identifiers (Patient ID or one of the other IDs) with that issuer. */
  findPatientByIdentifier(id: string, issuer: string): Promise<PatientIdentity | undefined>;
  getOrder(id: string): Promise<Order | undefined>;
  /** The order of an accession number (ingest coercion, the study browser's order state). */
  findOrderByAccession(accessionNumber: string): Promise<WorklistItem | undefined>;
  /** Orders of these studies: by the order's Study Instance UID or a performed series stored in the study (the study browser shows each study's order state). */
  ordersOfStudies(studyInstanceUids: readonly string[]): Promise<Order[]>;
  worklist(query: WorklistQuery): Promise<WorklistItem[]>;
  getPerformedStep(sopInstanceUid: string): Promise<PerformedProcedureStep | undefined>;
  close(): Promise<void>;
}
