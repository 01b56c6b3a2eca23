/**
 * The live endoscopy room performing worklist items (live/live-orders.ts is the port this implements;
 * services.ts wires it, so neither module imports the other): a session started from an order moves
 * the order's scheduled procedure step to IN PROGRESS, and at its end to COMPLETED with the stored
 * recording's series linked to the order, or DISCONTINUED when nothing was stored. It is the live
 * room's counterpart of MPPS N-CREATE / N-SET (dimse/mpps.ts) for a modality that is the archive itself.
 *
 * Each change is one HIS store transaction and, once committed, one Order Record audit record
 * (EventActionCode U, interface `live`), naming the patient and the order's study like the hospital
 * link's own records (his-service.ts), under the user of the WebSocket.
 */
import type { Logger } from 'pino';
import { whoOf, type AuditRecord } from '../audit/audit-record.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { Order, StepStatus } from './his-model.js';
import { patientObject, type HisAuditSink } from './his-service.js';
import type { HisStore } from './his-store.js';

/** The live room records Video Endoscopic Images: only endoscopy steps are started from it. */
const LIVE_MODALITY = 'ES';
const ENDED: ReadonlySet<StepStatus> = new Set(['COMPLETED', 'DISCONTINUED', 'CANCELLED']);

/** Who changed the order (the live port's actor; `principal` as the audit trail reads it). */
export interface StepActor {
  principal: Parameters<typeof whoOf>[0];
  clientAddress: string;
}

export type StepEnd = { kind: 'completed'; studyInstanceUid: string; seriesInstanceUids: string[] } | { kind: 'discontinued' } | { kind: 'not-started' };

export type StepStart =
  | { ok: true; order: Order & { patient: PatientIdentity }; started: boolean }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'ended'; status: StepStatus }
  | { ok: false; reason: 'modality'; modality: string };

export class LiveProcedureSteps {
  constructor(
    private readonly store: HisStore,
    private readonly audit: HisAuditSink | undefined,
    private readonly log: Logger,
  ) {}

  /** The order with its patient, its step moved to IN PROGRESS (refused: unknown, ended, not ES). */
  async start(orderId: string, actor: StepActor): Promise<StepStart> {
    const result = await this.store.transaction(async (tx): Promise<StepStart> => {
      const order = await tx.findOrder({ id: orderId });
      if (order === undefined) return { ok: false, reason: 'unknown' };
      if (ENDED.has(order.status)) return { ok: false, reason: 'ended', status: order.status };
      if (order.modality.trim().toUpperCase() !== LIVE_MODALITY) return { ok: false, reason: 'modality', modality: order.modality };
      const patient: PatientIdentity = (await tx.getPatient(order.patient)) ?? { ...order.patient, name: null, birthDate: null, sex: null, otherIds: [] };
      // IN PROGRESS already (another session or an MPPS started it): the session joins the step.
      const started = order.status === 'SCHEDULED';
      const current = started ? await tx.setOrderStatus(order.id, 'IN PROGRESS') : order;
      return { ok: true, order: { ...current, patient }, started };
    });
    if (result.ok && result.started) this.record(result.order, 'live-session-start', actor, []);
    return result;
  }

  /** The session ended: the step's state afterwards (undefined when the order is gone). */
  async end(orderId: string, end: StepEnd, startedBySession: boolean, actor: StepActor): Promise<{ id: string; accessionNumber: string; status: StepStatus } | undefined> {
    const outcome = await this.store.transaction(async (tx) => {
      const order = await tx.findOrder({ id: orderId });
      if (order === undefined) return undefined;
      let next: StepStatus | undefined;
      if (end.kind === 'completed') {
        await tx.addPerformedSeries(order.id, end.seriesInstanceUids, undefined, end.studyInstanceUid);
        if (order.status === 'SCHEDULED' || order.status === 'IN PROGRESS') next = 'COMPLETED';
      } else if (startedBySession && order.status === 'IN PROGRESS') {
        next = end.kind === 'discontinued' ? 'DISCONTINUED' : 'SCHEDULED';
      }
      const after = next === undefined ? await tx.findOrder({ id: order.id }) : await tx.setOrderStatus(order.id, next);
      return { order: after ?? order, changed: next !== undefined || end.kind === 'completed' };
    });
    if (outcome === undefined) {
      this.log.warn('live session ended: its order is no longer known to the hospital link');
      return undefined;
    }
    const { order, changed } = outcome;
    if (changed) this.record(order, 'live-session-end', actor, end.kind === 'completed' ? end.seriesInstanceUids : []);
    return { id: order.id, accessionNumber: order.accessionNumber, status: order.status };
  }

  private record(order: Order, command: 'live-session-start' | 'live-session-end', actor: StepActor, series: readonly string[]): void {
    if (this.audit === undefined) return;
    const record: AuditRecord = {
      time: Date.now(),
      action: 'order-record',
      outcome: 0,
      status: 200,
      who: whoOf(actor.principal),
      clientAddress: actor.clientAddress,
      interface: 'live',
      route: `LIVE ${command}`,
      objects: [patientObject(order.patient), { study: order.studyInstanceUid }, ...series.map((s) => ({ study: order.studyInstanceUid, series: s }))],
      detail: { eventActionCode: 'U', command, orderId: order.id, accessionNumber: order.accessionNumber, status: order.status },
    };
    this.audit.record(record);
  }
}
