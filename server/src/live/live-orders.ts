/**
 * What a live session needs from the hospital link when it starts from a worklist item (an order): a
 * port defined here, implemented over the HIS store by his/live-procedure-steps.ts and handed in by
 * the composition module (services.ts → app.ts → live.routes.ts), so live/ never imports his/.
 *
 * - `start` checks the order (known, not ended, an endoscopy step) and moves its scheduled procedure
 *   step to IN PROGRESS in one store transaction, returning the order with its patient's current
 *   identity (what the recording and its SR copy).
 * - `end` is called once the session is over: COMPLETED with the stored series linked to the order,
 *   DISCONTINUED when nothing was stored, or back to SCHEDULED when the session never got going (the
 *   recording could not be opened): only a step this session moved is taken back.
 *
 * Both record the order's state change in the audit trail (Order Record, PS3.15), under the user of
 * the WebSocket.
 */
import type { Principal } from '../auth/principal.js';
import type { LiveOrderRef } from '../contracts/live.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';

/** A coded concept (value, coding scheme designator, meaning). */
export interface LiveOrderCode {
  value: string;
  scheme: string;
  meaning: string;
}

/** The order (requested procedure + scheduled procedure step) as a session copies it. */
export interface LiveOrder {
  id: string;
  status: LiveOrderRef['status'];
  /** The patient's current identity as the HIS gave it. */
  patient: PatientIdentity;
  accessionNumber: string;
  studyInstanceUid: string;
  modality: string;
  requestedProcedureId: string;
  requestedProcedureDescription: string | null;
  requestedProcedureCode: LiveOrderCode | null;
  scheduledProcedureStepId: string;
  scheduledProcedureStepDescription: string | null;
  referringPhysicianName: string | null;
  placerOrderNumber: string | null;
  fillerOrderNumber: string | null;
}

/** Who changes the order: the user of the WebSocket and its address (the audit record names them). */
export interface LiveOrderActor {
  principal: Principal;
  clientAddress: string;
}

/** Why an order cannot be started. */
export type LiveOrderRefusal =
  | { reason: 'unknown' }
  | { reason: 'ended'; status: LiveOrderRef['status'] }
  | { reason: 'modality'; modality: string };

export type LiveOrderStart = { ok: true; order: LiveOrder; /** true: this call moved the step from SCHEDULED to IN PROGRESS. */ started: boolean } | ({ ok: false } & LiveOrderRefusal);

/** How a session from an order ended. */
export type LiveOrderEnd =
  | { kind: 'completed'; studyInstanceUid: string; seriesInstanceUids: string[] }
  | { kind: 'discontinued' }
  /** The session never ran (its recording could not be opened): a step it moved goes back to SCHEDULED. */
  | { kind: 'not-started' };

export interface LiveOrders {
  start(orderId: string, actor: LiveOrderActor): Promise<LiveOrderStart>;
  /**
   * `startedBySession`: whether this session's `start` moved the step to IN PROGRESS (only such a step
   * is discontinued or taken back; a step another party started is left to it). Returns the order's
   * state afterwards, undefined when the order is gone.
   */
  end(orderId: string, end: LiveOrderEnd, startedBySession: boolean, actor: LiveOrderActor): Promise<LiveOrderRef | undefined>;
}
