/**
 * The use cases of the hospital link (docs/architecture.md, "Hospital link"): HL7 v2 messages and the
 * orders REST API both end in `apply(command, context)`.
 *
 * 1. The whole command is normalised and checked (validate-command.ts) before anything is touched: a
 *    refused command changes nothing (HIS_INVALID, every problem named, no value quoted).
 * 2. In ONE store transaction: a message control ID already logged for that sending application is a
 *    duplicate (nothing applied again; the logged outcome answers); otherwise the command is applied
 *    (patients upserted, a merge's orders moved, orders created / changed / cancelled) and its message
 *    control ID logged with the outcome. Any failure rolls all of it back.
 * 3. After the commit, identity changes are applied to the stored studies through `StoredPatients`
 *    (the catalog; originals in the blob store are never rewritten), and each change is recorded in the
 *    audit trail: PS3.15 Patient Record (110110) and Order Record (110109) events, with the message
 *    control ID, the command and the accession number in `detail`, the patient and the affected
 *    studies as objects (patient data only there: the audit store is protected; logs get counts).
 *
 * Patient data in order commands: a field the order message leaves empty (null) keeps the value the
 * HIS sent before (HL7 v2: an empty field is "no change"); a patient registration or update (ADT, the
 * REST patient update) replaces the identity whole.
 *
 * A duplicate applies nothing to the HIS store but applies the current identity of the patients the
 * original touched to the stored studies again (idempotent), so a retry heals an update of the stored
 * studies that failed after the original's commit.
 */
import type { Logger } from 'pino';
import type { OrderReconciliation } from '../archive/order-reconciliation.js';
import type { AuditActionCode, AuditObject, AuditOutcome, AuditRecord, AuditWho } from '../audit/audit-record.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { AppError, isAppError } from '../errors.js';
import type { HisApplyResult, HisCommand, HisCommandContext, HisLink, Order, StepStatus, StoredPatients } from './his-model.js';
import type { HisStore, HisTransaction } from './his-store.js';
import { commandProblems, normalizeCommand } from './validate-command.js';

/** Where the service's audit records go (audit/audit-trail.ts's AuditTrail). */
export interface HisAuditSink {
  record(record: AuditRecord): void;
}

export interface HisServiceOptions {
  /** Issuers a Patient ID may carry (PACS_HIS_PATIENT_ID_ISSUERS); empty: any. */
  patientIdIssuers?: readonly string[];
}

const ENDED: ReadonlySet<StepStatus> = new Set(['COMPLETED', 'DISCONTINUED', 'CANCELLED']);

/** An identity change the stored studies must follow once the transaction committed. */
type Propagation = { kind: 'identity'; identity: PatientIdentity } | { kind: 'merge'; prior: PatientKey; surviving: PatientIdentity };

interface PatientEvent {
  code: 'C' | 'U' | 'D';
  key: PatientKey;
  /** Index into `propagations`: the stored studies this event changed. */
  propagation?: number;
}

interface OrderEvent {
  code: 'C' | 'U' | 'D';
  order: Order;
}

interface Applied {
  orders: Order[];
  patientEvents: PatientEvent[];
  orderEvents: OrderEvent[];
  propagations: Propagation[];
}

/** What the message log keeps of an applied command (hl7_message.outcome): enough to answer and heal a duplicate. */
interface LoggedOutcome {
  kind: HisCommand['kind'];
  orderIds: string[];
  propagations: Array<{ kind: 'identity'; key: PatientKey } | { kind: 'merge'; prior: PatientKey; surviving: PatientKey }>;
}

const keyOf = (key: PatientKey): PatientKey => ({ patientId: key.patientId, issuer: key.issuer });
const sameKey = (a: PatientKey, b: PatientKey) => a.patientId === b.patientId && a.issuer === b.issuer;

/** The patient as an audit object: HL7 CX `ID^^^ISSUER` (PS3.15 A.5.3 Patient participant object). */
export function patientObject(key: PatientKey): AuditObject {
  return { patient: key.issuer === '' ? key.patientId : `${key.patientId}^^^${key.issuer}` };
}

function sameIdentity(a: PatientIdentity, b: PatientIdentity): boolean {
  const plain = (p: PatientIdentity) =>
    JSON.stringify([p.patientId, p.issuer, p.name, p.birthDate, p.sex, p.otherIds.map((o) => [o.id, o.issuer, o.type ?? 'TEXT'])]);
  return plain(a) === plain(b);
}

/** The record's "what" for each command kind: the event and the EventActionCode a refusal is recorded with. */
function eventOf(command: HisCommand): { action: 'patient-record' | 'order-record'; code: AuditActionCode; patient: PatientKey } {
  switch (command.kind) {
    case 'patient-upsert':
      return { action: 'patient-record', code: 'U', patient: command.identity };
    case 'patient-merge':
      return { action: 'patient-record', code: 'D', patient: command.prior };
    case 'order-new':
      return { action: 'order-record', code: 'C', patient: command.patient };
    case 'order-change':
      return { action: 'order-record', code: 'U', patient: command.patient };
    case 'order-cancel':
      return { action: 'order-record', code: command.discontinue ? 'U' : 'D', patient: command.patient };
  }
}

const WHAT: Record<HisCommand['kind'], string> = {
  'patient-upsert': 'Patient update',
  'patient-merge': 'Patient merge',
  'order-new': 'New order',
  'order-change': 'Order change',
  'order-cancel': 'Order cancel',
};

/** A unique-constraint violation of the store (PostgreSQL 23505, SQLite SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY). */
function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

const LINKED_SERIES_REMEMBERED = 10_000;

export class HisService implements HisLink {
  private readonly issuers: readonly string[];
  /** `accession\0series` pairs linked (or being linked) by this process: one store write per series, not per instance. */
  private readonly linkedSeries = new Set<string>();

  constructor(
    readonly store: HisStore,
    private readonly storedPatients: StoredPatients,
    private readonly audit: HisAuditSink | undefined,
    private readonly log: Logger,
    options: HisServiceOptions = {},
  ) {
    this.issuers = options.patientIdIssuers ?? [];
  }

  async apply(input: HisCommand, context: HisCommandContext): Promise<HisApplyResult> {
    const command = normalizeCommand(input);
    const problems = commandProblems(command, this.issuers);
    if (problems.length > 0) {
      const error = new AppError('HIS_INVALID', `${WHAT[command.kind]} refused: ${problems.join('; ')}`);
      this.recordRefusal(command, context, error);
      throw error;
    }

    const controlId = context.messageControlId === undefined || context.messageControlId === '' ? undefined : context.messageControlId;
    const sendingApplication = context.sendingApplication ?? '';
    let outcome: { duplicate: LoggedOutcome } | { applied: Applied };
    try {
      outcome = await this.store.transaction(async (tx) => {
        if (controlId !== undefined) {
          const logged = await tx.findMessage(sendingApplication, controlId);
          if (logged !== undefined) return { duplicate: JSON.parse(logged.outcome) as LoggedOutcome };
        }
        const applied = await this.applyIn(tx, command);
        if (controlId !== undefined) {
          await tx.logMessage({
            sendingApplication,
            messageControlId: controlId,
            ackCode: 'AA',
            outcome: JSON.stringify(loggedOutcome(command, applied)),
            receivedAt: new Date().toISOString(),
          });
        }
        return { applied };
      });
    } catch (err) {
      const error = this.storeError(err);
      this.recordRefusal(command, context, error);
      throw error;
    }

    if ('duplicate' in outcome) return this.replay(command, context, outcome.duplicate);

    const { applied } = outcome;
    const studies = await this.propagate(applied.propagations, (failed) => this.recordApplied(command, context, applied, failed, 8));
    this.recordApplied(command, context, applied, studies, 0);
    const studiesUpdated = [...new Set(studies.flat())];
    this.log.info(
      { hisCommand: command.kind, via: context.via, ...(controlId === undefined ? {} : { messageControlId: controlId }), orders: applied.orders.length, studiesUpdated: studiesUpdated.length },
      'hospital link command applied',
    );
    return { status: 'applied', orders: applied.orders, studiesUpdated };
  }

  /** The ingest side (archive/order-reconciliation.ts): coercion by accession number and performed series. */
  reconciliation(): OrderReconciliation {
    return {
      identityFor: async (accessionNumber) => {
        const accession = accessionNumber.trim();
        if (accession === '') return undefined;
        return (await this.store.findOrderByAccession(accession))?.patient;
      },
      stored: (accessionNumber, studyInstanceUid, seriesInstanceUid) => {
        void this.linkSeries(accessionNumber.trim(), studyInstanceUid, seriesInstanceUid);
      },
    };
  }

  private async linkSeries(accession: string, study: string, series: string): Promise<void> {
    const key = `${accession}\u0000${series}`;
    if (accession === '' || this.linkedSeries.has(key)) return;
    if (this.linkedSeries.size >= LINKED_SERIES_REMEMBERED) this.linkedSeries.delete(this.linkedSeries.values().next().value!);
    this.linkedSeries.add(key);
    try {
      await this.store.transaction(async (tx) => {
        const order = await tx.findOrder({ accessionNumber: accession });
        if (order !== undefined) await tx.addPerformedSeries(order.id, [series], undefined, study);
      });
    } catch (err) {
      this.linkedSeries.delete(key); // the next instance of the series tries again
      const code = (err as { code?: unknown }).code;
      this.log.warn({ code: typeof code === 'string' ? code : undefined }, 'stored series could not be linked to its order');
    }
  }

  private async applyIn(tx: HisTransaction, command: HisCommand): Promise<Applied> {
    const applied: Applied = { orders: [], patientEvents: [], orderEvents: [], propagations: [] };
    switch (command.kind) {
      case 'patient-upsert': {
        const before = await tx.getPatient(command.identity);
        await tx.upsertPatient(command.identity);
        applied.propagations.push({ kind: 'identity', identity: command.identity });
        applied.patientEvents.push({ code: before === undefined ? 'C' : 'U', key: keyOf(command.identity), propagation: 0 });
        return applied;
      }
      case 'patient-merge': {
        const prior = await tx.getPatient(command.prior);
        if (prior === undefined) throw new AppError('HIS_UNKNOWN_PATIENT', 'Patient merge refused: the prior patient is not known to the hospital link');
        const survivingBefore = await tx.getPatient(command.surviving);
        // The orders of the prior patient move with it (read before, so they can be reported and audited).
        const moved = await tx.ordersOfPatient(command.prior);
        await tx.upsertPatient(command.surviving);
        await tx.mergePatient(command.prior, command.surviving);
        applied.propagations.push({ kind: 'merge', prior: keyOf(command.prior), surviving: command.surviving });
        applied.patientEvents.push({ code: 'D', key: keyOf(command.prior), propagation: 0 });
        applied.patientEvents.push({ code: survivingBefore === undefined ? 'C' : 'U', key: keyOf(command.surviving), propagation: 0 });
        for (const before of moved) {
          const order = await tx.findOrder({ id: before.id });
          if (order === undefined) continue;
          applied.orders.push(order);
          applied.orderEvents.push({ code: 'U', order });
        }
        return applied;
      }
      case 'order-new': {
        const { order } = command;
        if (order.placerOrderNumber !== null && (await tx.findOrder({ placerOrderNumber: order.placerOrderNumber })) !== undefined) {
          throw new AppError('HIS_CONFLICT', 'New order refused: an order with this placer order number exists already (send a change)');
        }
        if ((await tx.findOrder({ accessionNumber: order.accessionNumber })) !== undefined) {
          throw new AppError('HIS_CONFLICT', 'New order refused: an order with this accession number exists already');
        }
        await this.upsertFromOrder(tx, command.patient, applied);
        const created = await tx.createOrder(keyOf(command.patient), order);
        applied.orders.push(created);
        applied.orderEvents.push({ code: 'C', order: created });
        return applied;
      }
      case 'order-change': {
        const { order } = command;
        const found = await tx.findOrder(command.orderId !== undefined ? { id: command.orderId } : { placerOrderNumber: order.placerOrderNumber, accessionNumber: order.accessionNumber });
        if (found === undefined) throw new AppError('HIS_UNKNOWN_ORDER', 'Order change refused: no order with this id, placer order number or accession number');
        if (ENDED.has(found.status)) throw new AppError('HIS_CONFLICT', `Order change refused: the order has ended (${found.status})`);
        if (order.accessionNumber !== found.accessionNumber) {
          const other = await tx.findOrder({ accessionNumber: order.accessionNumber });
          if (other !== undefined && other.id !== found.id) throw new AppError('HIS_CONFLICT', 'Order change refused: another order has this accession number');
        }
        if (order.placerOrderNumber !== null && order.placerOrderNumber !== found.placerOrderNumber) {
          const other = await tx.findOrder({ placerOrderNumber: order.placerOrderNumber });
          if (other !== undefined && other.id !== found.id && other.placerOrderNumber === order.placerOrderNumber) {
            throw new AppError('HIS_CONFLICT', 'Order change refused: another order has this placer order number');
          }
        }
        await this.upsertFromOrder(tx, command.patient, applied);
        const changed = await tx.updateOrder(found.id, keyOf(command.patient), {
          ...order,
          placerOrderNumber: order.placerOrderNumber ?? found.placerOrderNumber,
          fillerOrderNumber: order.fillerOrderNumber ?? found.fillerOrderNumber,
        });
        applied.orders.push(changed);
        applied.orderEvents.push({ code: 'U', order: changed });
        return applied;
      }
      case 'order-cancel': {
        const found = await tx.findOrder(command.orderId !== undefined ? { id: command.orderId } : { placerOrderNumber: command.placerOrderNumber, accessionNumber: command.accessionNumber });
        if (found === undefined) throw new AppError('HIS_UNKNOWN_ORDER', 'Order cancel refused: no order with this id, placer order number or accession number');
        if (!sameKey(found.patient, command.patient)) throw new AppError('HIS_CONFLICT', 'Order cancel refused: the order belongs to another patient');
        const target: StepStatus = command.discontinue ? 'DISCONTINUED' : 'CANCELLED';
        if (found.status === target) {
          applied.orders.push(found); // cancelled already: nothing changes
          return applied;
        }
        if (ENDED.has(found.status)) throw new AppError('HIS_CONFLICT', `Order cancel refused: the order has ended (${found.status})`);
        const ended = await tx.setOrderStatus(found.id, target);
        applied.orders.push(ended);
        applied.orderEvents.push({ code: command.discontinue ? 'U' : 'D', order: ended });
        return applied;
      }
    }
  }

  /** The patient of an order message: created, or updated where the message says more (null fields keep what is known). */
  private async upsertFromOrder(tx: HisTransaction, given: PatientIdentity, applied: Applied): Promise<void> {
    const before = await tx.getPatient(given);
    const identity: PatientIdentity =
      before === undefined
        ? given
        : {
            ...keyOf(given),
            name: given.name ?? before.name,
            birthDate: given.birthDate ?? before.birthDate,
            sex: given.sex ?? before.sex,
            otherIds: given.otherIds.length > 0 ? given.otherIds : before.otherIds,
          };
    if (before !== undefined && sameIdentity(before, identity)) return;
    await tx.upsertPatient(identity);
    applied.propagations.push({ kind: 'identity', identity });
    applied.patientEvents.push({ code: before === undefined ? 'C' : 'U', key: keyOf(identity), propagation: applied.propagations.length - 1 });
  }

  /**
   * Applies identity changes to the stored studies; the study UIDs changed per propagation. On failure
   * (the HIS store has committed): `recordFailure` records the events as failed, and INDEX_FAILURE is
   * thrown (a retry with the same message control ID applies them again).
   */
  private async propagate(propagations: readonly Propagation[], recordFailure: (studies: string[][]) => void): Promise<string[][]> {
    const studies: string[][] = [];
    try {
      for (const propagation of propagations) {
        studies.push(
          propagation.kind === 'identity'
            ? await this.storedPatients.applyIdentity(propagation.identity)
            : await this.storedPatients.mergePatient(propagation.prior, propagation.surviving),
        );
      }
      return studies;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.log.error({ code: typeof code === 'string' ? code : undefined, type: (err as Error).name }, 'hospital link: stored studies could not take the new patient identity');
      recordFailure(studies);
      throw new AppError(
        'INDEX_FAILURE',
        'The command was recorded by the hospital link, but the stored studies could not be updated; sending it again (same message control ID) retries the update',
        { cause: err },
      );
    }
  }

  /** A duplicate: nothing applied to the HIS store; the current identities applied to the stored studies again. */
  private async replay(command: HisCommand, context: HisCommandContext, logged: LoggedOutcome): Promise<HisApplyResult> {
    const orders = (await Promise.all(logged.orderIds.map((id) => this.store.getOrder(id)))).filter((order): order is Order => order !== undefined);
    const propagations: Propagation[] = [];
    for (const p of logged.propagations) {
      if (p.kind === 'identity') {
        const identity = await this.store.getPatient(p.key);
        if (identity !== undefined) propagations.push({ kind: 'identity', identity });
      } else {
        const surviving = await this.store.getPatient(p.surviving);
        if (surviving !== undefined) propagations.push({ kind: 'merge', prior: p.prior, surviving });
      }
    }
    const applied: Applied = {
      orders,
      orderEvents: [],
      patientEvents: propagations.map((p, i) => ({ code: 'U' as const, key: keyOf(p.kind === 'identity' ? p.identity : p.surviving), propagation: i })),
      propagations,
    };
    const studies = await this.propagate(propagations, (failed) => this.recordApplied(command, context, applied, failed, 8, true));
    const studiesUpdated = [...new Set(studies.flat())];
    // Only a retry that healed stored studies changed anything worth an audit record.
    if (studiesUpdated.length > 0) this.recordApplied(command, context, { ...applied, patientEvents: applied.patientEvents.filter((e) => (studies[e.propagation!] ?? []).length > 0) }, studies, 0, true);
    this.log.info({ hisCommand: command.kind, via: context.via, messageControlId: context.messageControlId, studiesUpdated: studiesUpdated.length }, 'hospital link: repeated message control ID, not applied again');
    return { status: 'duplicate', orders, studiesUpdated };
  }

  private storeError(err: unknown): AppError {
    if (isAppError(err)) return err;
    if (isUniqueViolation(err)) return new AppError('HIS_CONFLICT', 'The command conflicts with an order stored meanwhile (accession or placer order number in use)', { cause: err });
    const code = (err as { code?: unknown }).code;
    this.log.error({ code: typeof code === 'string' ? code : undefined, type: (err as Error).name }, 'hospital link store could not be written');
    return new AppError('INDEX_FAILURE', 'The hospital link store could not be written; nothing was applied', { cause: err });
  }

  private who(context: HisCommandContext): AuditWho {
    if (context.via === 'hl7') return { subject: context.subject, ...(context.sendingApplication ? { name: context.sendingApplication } : {}), kind: 'hl7' };
    const user = context.user;
    return {
      subject: context.subject,
      ...(user?.name === undefined ? {} : { name: user.name }),
      kind: user?.kind ?? 'token',
      ...(user?.roles === undefined || user.roles.length === 0 ? {} : { roles: [...user.roles] }),
    };
  }

  private baseRecord(command: HisCommand, context: HisCommandContext, action: 'patient-record' | 'order-record', code: AuditActionCode, outcome: AuditOutcome, status: number) {
    const detail: Record<string, string | number | boolean> = {
      eventActionCode: code,
      command: command.kind,
      via: context.via,
      ...(command.kind === 'patient-upsert' ? { hl7Event: command.event } : {}),
      ...(context.messageControlId ? { messageControlId: context.messageControlId } : {}),
      ...(context.sendingApplication ? { sendingApplication: context.sendingApplication } : {}),
    };
    return {
      time: Date.now(),
      action,
      outcome,
      status,
      who: this.who(context),
      clientAddress: context.clientAddress,
      interface: 'his' as const,
      route: `${context.via === 'hl7' ? 'HL7' : 'REST'} ${command.kind}`,
      detail,
    };
  }

  /** One record per patient and order event of an applied command (outcome 8: its stored studies failed). */
  private recordApplied(command: HisCommand, context: HisCommandContext, applied: Applied, studies: string[][], outcome: AuditOutcome, duplicate = false): void {
    if (this.audit === undefined) return;
    const status = outcome === 0 ? 200 : 503;
    for (const event of applied.patientEvents) {
      const changed = event.propagation === undefined ? [] : (studies[event.propagation] ?? []);
      const base = this.baseRecord(command, context, 'patient-record', event.code, outcome, status);
      this.audit.record({
        ...base,
        objects: [patientObject(event.key), ...changed.map((study) => ({ study }))],
        detail: { ...base.detail, studies: changed.length, ...(duplicate ? { duplicate: true } : {}) },
      });
    }
    for (const event of applied.orderEvents) {
      const base = this.baseRecord(command, context, 'order-record', event.code, outcome, status);
      this.audit.record({
        ...base,
        objects: [patientObject(event.order.patient), { study: event.order.studyInstanceUid }],
        detail: { ...base.detail, orderId: event.order.id, accessionNumber: event.order.accessionNumber, status: event.order.status },
      });
    }
  }

  /**
   * A command refused (invalid, unknown, conflicting, store down). Recorded here for HL7 only: a REST
   * request is recorded by the HTTP audit hook, refusals included.
   */
  private recordRefusal(command: HisCommand, context: HisCommandContext, error: AppError): void {
    if (this.audit === undefined || context.via !== 'hl7') return;
    const { action, code, patient } = eventOf(command);
    const status = error.code === 'INDEX_FAILURE' ? 503 : error.code === 'HIS_INVALID' ? 400 : error.code === 'HIS_CONFLICT' ? 409 : error.code.startsWith('HIS_UNKNOWN') ? 404 : 500;
    const base = this.baseRecord(command, context, action, code, status >= 500 ? 8 : 4, status);
    const accession = command.kind === 'order-new' || command.kind === 'order-change' ? command.order.accessionNumber : command.kind === 'order-cancel' ? command.accessionNumber : null;
    this.audit.record({
      ...base,
      objects: patient.patientId === '' ? [] : [patientObject(patient)],
      detail: { ...base.detail, error: error.code, ...(accession ? { accessionNumber: accession } : {}) },
    });
  }
}

function loggedOutcome(command: HisCommand, applied: Applied): LoggedOutcome {
  return {
    kind: command.kind,
    orderIds: applied.orders.map((order) => order.id),
    propagations: applied.propagations.map((p) => (p.kind === 'identity' ? { kind: 'identity', key: keyOf(p.identity) } : { kind: 'merge', prior: p.prior, surviving: keyOf(p.surviving) })),
  };
}
