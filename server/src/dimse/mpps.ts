/**
 * Modality Performed Procedure Step SCP (PS3.4 Annex F, SOP class 1.2.840.10008.3.1.2.3.3): the modality
 * reports what it performs. N-CREATE (status IN PROGRESS) links the step to the orders its Scheduled
 * Step Attributes Sequence names (Accession Number with Requested Procedure ID / Scheduled Procedure Step
 * ID, else Placer Order Number, else Study Instance UID), which become IN PROGRESS; N-SET updates it and,
 * at COMPLETED or DISCONTINUED, moves the orders to that state with the Performed Series Sequence as
 * their performed series. A step in a final state is never changed again (0110, PS3.4 F.7.2.2).
 *
 * An N-CREATE that names no known order is kept (IHE SWF "unscheduled" case): its series are linked
 * later by accession number when the images arrive. Every write of one request is one transaction of the
 * HIS store: a refused request changes nothing.
 */
import { randomUUID } from 'node:crypto';
import dcmjs from 'dcmjs';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { Order, StepStatus } from '../his/his-model.js';
import type { HisStore, HisTransaction, PerformedProcedureStep } from '../his/his-store.js';
import { elementText, isValidUid, textOf } from './identifier-values.js';

/** DIMSE statuses of N-CREATE / N-SET (PS3.7 Annex C, PS3.4 F.7.2). */
export const MppsStatus = {
  Success: 0x0000,
  InvalidAttributeValue: 0x0106,
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  NoSuchObjectInstance: 0x0112,
  InvalidObjectInstance: 0x0117,
  NoSuchSopClass: 0x0118,
  MissingAttribute: 0x0120,
  MissingAttributeValue: 0x0121,
} as const;

/** Error ID (0000,0903) with 0110 when the step is final: "Performed Procedure Step Object may no longer be updated". */
export const MAY_NO_LONGER_BE_UPDATED = 0xa710;

export interface MppsOutcome {
  status: number;
  /** The MPPS SOP Instance UID (N-CREATE: assigned here when the SCU gave none). */
  sopInstanceUid: string;
  errorComment?: string;
  /** Error ID (0000,0903). */
  errorId?: number;
  /** Attribute Identifier List (0000,1005): the offending attributes' tags. */
  attributes?: number[];
  /** The step's state after the request (absent when refused). */
  ppsStatus?: PerformedProcedureStep['status'];
  /** The orders the step performs, as they are now. */
  orders: Order[];
  performedSeries: string[];
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly attributes: string[] = [],
    readonly errorId?: number,
  ) {
    super(message);
  }
}

const TAG = {
  Modality: '00080060',
  StudyInstanceUID: '0020000D',
  AccessionNumber: '00080050',
  RequestedProcedureID: '00401001',
  ScheduledProcedureStepID: '00400009',
  PlacerOrderNumberImagingServiceRequest: '00402016',
  SeriesInstanceUID: '0020000E',
  ScheduledStepAttributesSequence: '00400270',
  PerformedStationAETitle: '00400241',
  PerformedProcedureStepStartDate: '00400244',
  PerformedProcedureStepStartTime: '00400245',
  PerformedProcedureStepEndDate: '00400250',
  PerformedProcedureStepEndTime: '00400251',
  PerformedProcedureStepStatus: '00400252',
  PerformedProcedureStepID: '00400253',
  PerformedSeriesSequence: '00400340',
} as const;

/** Attributes N-SET may not change (PS3.4 Table F.7.2-1 "Not allowed"): sent again unchanged they are accepted. */
const CREATE_ONLY: readonly string[] = [
  TAG.ScheduledStepAttributesSequence,
  '00100010', // Patient's Name
  '00100020', // Patient ID
  '00100021', // Issuer of Patient ID
  '00100030', // Patient's Birth Date
  '00100040', // Patient's Sex
  '00081120', // Referenced Patient Sequence
  TAG.PerformedProcedureStepID,
  TAG.PerformedStationAETitle,
  '00400242', // Performed Station Name
  '00400243', // Performed Location
  TAG.PerformedProcedureStepStartDate,
  TAG.PerformedProcedureStepStartTime,
  TAG.Modality,
  '00200010', // Study ID
];

const FINAL: ReadonlySet<string> = new Set(['COMPLETED', 'DISCONTINUED']);

const tagNumber = (tag: string) => Number.parseInt(tag, 16);
const keywordOf = (tag: string) => (dcmjs.data.DicomMetaDictionary.dictionary as Record<string, { name: string } | undefined>)[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.name ?? tag;

/** A naturalized data set as DICOM JSON (what the store keeps). */
function toJson(elements: Record<string, unknown>): DicomJsonDataset {
  return dcmjs.data.DicomMetaDictionary.denaturalizeDataset(elements as never) as unknown as DicomJsonDataset;
}

const valueOf = (json: DicomJsonDataset, tag: string) => elementText(json[tag]).trim();
const itemsIn = (json: DicomJsonDataset, tag: string) => (json[tag]?.Value ?? []).filter((v): v is DicomJsonDataset => typeof v === 'object' && v !== null && !('Alphabetic' in v));

/** A Type 1 attribute: present (else 0120) with a value (else 0121). */
function required(json: DicomJsonDataset, tag: string, where = ''): string {
  if (json[tag] === undefined) throw new Refusal(MppsStatus.MissingAttribute, `${where}${keywordOf(tag)} is missing`, [tag]);
  const value = valueOf(json, tag);
  if (value === '') throw new Refusal(MppsStatus.MissingAttributeValue, `${where}${keywordOf(tag)} has no value`, [tag]);
  return value;
}

const DA = /^\d{8}$/;
const TM = /^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/;

function checkFormat(json: DicomJsonDataset, tag: string, format: RegExp): void {
  const value = valueOf(json, tag);
  if (value !== '' && !format.test(value)) throw new Refusal(MppsStatus.InvalidAttributeValue, `${keywordOf(tag)} is not a valid ${format === DA ? 'date' : 'time'}`, [tag]);
}

function seriesOf(json: DicomJsonDataset): string[] {
  const series: string[] = [];
  for (const item of itemsIn(json, TAG.PerformedSeriesSequence)) {
    const uid = required(item, TAG.SeriesInstanceUID, 'PerformedSeriesSequence>');
    if (!isValidUid(uid)) throw new Refusal(MppsStatus.InvalidAttributeValue, 'PerformedSeriesSequence>SeriesInstanceUID is not a valid UID', [TAG.PerformedSeriesSequence]);
    if (!series.includes(uid)) series.push(uid);
  }
  return series;
}

interface StepReference {
  studyInstanceUid: string;
  accessionNumber: string;
  requestedProcedureId: string;
  scheduledProcedureStepId: string;
  placerOrderNumber: string;
}

/** Checks an N-CREATE data set (Table F.7.2-1, Type 1 at N-CREATE) and reads its scheduled step references. */
function checkCreate(json: DicomJsonDataset): StepReference[] {
  if (json[TAG.ScheduledStepAttributesSequence] === undefined) throw new Refusal(MppsStatus.MissingAttribute, 'ScheduledStepAttributesSequence is missing', [TAG.ScheduledStepAttributesSequence]);
  const steps = itemsIn(json, TAG.ScheduledStepAttributesSequence);
  if (steps.length === 0) throw new Refusal(MppsStatus.MissingAttributeValue, 'ScheduledStepAttributesSequence has no item', [TAG.ScheduledStepAttributesSequence]);
  const references = steps.map((step) => {
    const studyInstanceUid = required(step, TAG.StudyInstanceUID, 'ScheduledStepAttributesSequence>');
    if (!isValidUid(studyInstanceUid)) throw new Refusal(MppsStatus.InvalidAttributeValue, 'ScheduledStepAttributesSequence>StudyInstanceUID: not a UID', [TAG.ScheduledStepAttributesSequence]);
    return {
      studyInstanceUid,
      accessionNumber: valueOf(step, TAG.AccessionNumber),
      requestedProcedureId: valueOf(step, TAG.RequestedProcedureID),
      scheduledProcedureStepId: valueOf(step, TAG.ScheduledProcedureStepID),
      placerOrderNumber: valueOf(step, TAG.PlacerOrderNumberImagingServiceRequest),
    };
  });
  for (const tag of [TAG.PerformedProcedureStepID, TAG.PerformedStationAETitle, TAG.PerformedProcedureStepStartDate, TAG.PerformedProcedureStepStartTime, TAG.Modality]) required(json, tag);
  const status = required(json, TAG.PerformedProcedureStepStatus);
  if (status !== 'IN PROGRESS') throw new Refusal(MppsStatus.InvalidAttributeValue, 'Performed Procedure Step Status must be IN PROGRESS at N-CREATE', [TAG.PerformedProcedureStepStatus]);
  checkFormat(json, TAG.PerformedProcedureStepStartDate, DA);
  checkFormat(json, TAG.PerformedProcedureStepStartTime, TM);
  return references;
}

/** Orders whose Requested Procedure ID / SPS ID agree with a reference that gives them. */
const agrees = (reference: StepReference, order: Order) =>
  (reference.requestedProcedureId === '' || reference.requestedProcedureId === order.requestedProcedureId) &&
  (reference.scheduledProcedureStepId === '' || reference.scheduledProcedureStepId === order.scheduledProcedureStepId);

/**
 * The orders a step performs: by Placer Order Number or Accession Number (+ RP ID / SPS ID when given;
 * the modality may have made its own Study Instance UID), else by Study Instance UID (+ RP ID / SPS ID).
 * `byStudy` holds the orders of each referenced study (`HisStore.ordersOfStudies`: by the order's Study
 * Instance UID or a series of it stored in the study), read before the transaction.
 */
async function resolveOrders(tx: HisTransaction, references: readonly StepReference[], byStudy: ReadonlyMap<string, readonly Order[]>): Promise<Order[]> {
  const found = new Map<string, Order>();
  for (const reference of references) {
    let candidates: Order[] = [];
    if (reference.accessionNumber !== '' || reference.placerOrderNumber !== '') {
      const order = await tx.findOrder({ placerOrderNumber: reference.placerOrderNumber || null, accessionNumber: reference.accessionNumber || null });
      if (order !== undefined) candidates = [order];
    } else {
      // Read again inside the transaction: `byStudy` was read before it.
      for (const order of byStudy.get(reference.studyInstanceUid) ?? []) {
        const current = await tx.findOrder({ id: order.id });
        if (current !== undefined) candidates.push(current);
      }
    }
    for (const order of candidates.filter((o) => agrees(reference, o))) found.set(order.id, order);
  }
  return [...found.values()];
}

/** A new UID for an N-CREATE without Affected SOP Instance UID (PS3.7 §10.1.5: the SCP assigns one). */
function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}

function refused(err: unknown, sopInstanceUid: string): MppsOutcome {
  if (!(err instanceof Refusal)) throw err;
  return {
    status: err.status,
    sopInstanceUid,
    errorComment: err.message,
    ...(err.errorId === undefined ? {} : { errorId: err.errorId }),
    ...(err.attributes.length === 0 ? {} : { attributes: err.attributes.map(tagNumber) }),
    orders: [],
    performedSeries: [],
  };
}

/** N-CREATE: a new step IN PROGRESS; its orders become IN PROGRESS and record the MPPS UID. */
export async function createPerformedStep(store: HisStore, affectedSopInstanceUid: string | undefined, elements: Record<string, unknown>, now = new Date()): Promise<MppsOutcome> {
  const sopInstanceUid = affectedSopInstanceUid?.trim() || newUid();
  try {
    if (!isValidUid(sopInstanceUid)) throw new Refusal(MppsStatus.InvalidObjectInstance, 'Affected SOP Instance UID is not a valid UID');
    const json = toJson(elements);
    const references = checkCreate(json);
    const performedSeries = seriesOf(json);
    const studies = [...new Set(references.filter((r) => r.accessionNumber === '' && r.placerOrderNumber === '').map((r) => r.studyInstanceUid))];
    const byStudy = new Map<string, Order[]>();
    for (const study of studies) byStudy.set(study, await store.ordersOfStudies([study]));
    return await store.transaction(async (tx) => {
      if ((await tx.getPerformedStep(sopInstanceUid)) !== undefined) {
        throw new Refusal(MppsStatus.DuplicateSopInstance, 'An MPPS instance with this SOP Instance UID exists');
      }
      const orders: Order[] = [];
      for (const order of await resolveOrders(tx, references, byStudy)) {
        await tx.addPerformedSeries(order.id, performedSeries, sopInstanceUid);
        orders.push(order.status === 'SCHEDULED' ? await tx.setOrderStatus(order.id, 'IN PROGRESS') : ((await tx.findOrder({ id: order.id })) ?? order));
      }
      await tx.putPerformedStep({ sopInstanceUid, status: 'IN PROGRESS', orderIds: orders.map((o) => o.id), performedSeries, attributes: json, updatedAt: now.toISOString() });
      return { status: MppsStatus.Success, sopInstanceUid, ppsStatus: 'IN PROGRESS' as const, orders, performedSeries };
    });
  } catch (err) {
    return refused(err, sopInstanceUid);
  }
}

/** N-SET: updates a step IN PROGRESS; COMPLETED / DISCONTINUED are final and move its orders along. */
export async function setPerformedStep(store: HisStore, requestedSopInstanceUid: string, elements: Record<string, unknown>, now = new Date()): Promise<MppsOutcome> {
  const sopInstanceUid = requestedSopInstanceUid.trim();
  try {
    const changes = toJson(elements);
    return await store.transaction(async (tx) => {
      const step = await tx.getPerformedStep(sopInstanceUid);
      if (step === undefined) throw new Refusal(MppsStatus.NoSuchObjectInstance, 'No MPPS instance with this SOP Instance UID');
      if (step.status !== 'IN PROGRESS') {
        throw new Refusal(MppsStatus.ProcessingFailure, 'Performed Procedure Step Object may no longer be updated', [], MAY_NO_LONGER_BE_UPDATED);
      }
      const stored = step.attributes as DicomJsonDataset;
      const changed = CREATE_ONLY.filter((tag) => changes[tag] !== undefined && JSON.stringify(changes[tag]) !== JSON.stringify(stored[tag]));
      if (changed.length > 0) throw new Refusal(MppsStatus.InvalidAttributeValue, `${keywordOf(changed[0]!)} may not be changed by N-SET`, changed);
      const requested = valueOf(changes, TAG.PerformedProcedureStepStatus);
      if (requested !== '' && requested !== 'IN PROGRESS' && !FINAL.has(requested)) {
        throw new Refusal(MppsStatus.InvalidAttributeValue, 'Status must be IN PROGRESS, COMPLETED or DISCONTINUED', [TAG.PerformedProcedureStepStatus]);
      }
      const status = (requested === '' ? step.status : requested) as PerformedProcedureStep['status'];
      const attributes: DicomJsonDataset = { ...stored, ...changes };
      checkFormat(attributes, TAG.PerformedProcedureStepEndDate, DA);
      checkFormat(attributes, TAG.PerformedProcedureStepEndTime, TM);
      const performedSeries = seriesOf(attributes);
      if (FINAL.has(status)) {
        // Final state (PS3.4 F.7.2.2): end date and time, and for COMPLETED at least one performed series.
        required(attributes, TAG.PerformedProcedureStepEndDate);
        required(attributes, TAG.PerformedProcedureStepEndTime);
        if (status === 'COMPLETED' && performedSeries.length === 0) {
          throw new Refusal(MppsStatus.MissingAttributeValue, 'PerformedSeriesSequence needs an item to complete the step', [TAG.PerformedSeriesSequence]);
        }
      }
      const orders: Order[] = [];
      for (const id of step.orderIds) {
        const order = await tx.findOrder({ id });
        if (order === undefined) continue;
        if (performedSeries.length > 0) await tx.addPerformedSeries(id, performedSeries, sopInstanceUid);
        const next: StepStatus | undefined = FINAL.has(status) && (order.status === 'SCHEDULED' || order.status === 'IN PROGRESS') ? (status as StepStatus) : undefined;
        orders.push(next === undefined ? ((await tx.findOrder({ id })) ?? order) : await tx.setOrderStatus(id, next));
      }
      await tx.putPerformedStep({ ...step, status, performedSeries, attributes, updatedAt: now.toISOString() });
      return { status: MppsStatus.Success, sopInstanceUid, ppsStatus: status, orders, performedSeries };
    });
  } catch (err) {
    return refused(err, sopInstanceUid);
  }
}

/** The patient of the audit record (`ID^^^ISSUER`): the orders' patient, else the one the SCU sent. */
export function patientOf(orders: readonly Order[], elements: Record<string, unknown>): string | undefined {
  const key = orders[0]?.patient ?? { patientId: textOf(elements['PatientID']), issuer: textOf(elements['IssuerOfPatientID']) };
  if (key.patientId === '') return undefined;
  return key.issuer === '' ? key.patientId : `${key.patientId}^^^${key.issuer}`;
}
