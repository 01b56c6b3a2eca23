/**
 * Audit records of DIMSE operations (dimse/dimse-server.ts): one per C-STORE, C-FIND, C-MOVE and C-GET
 * with its final status. The requestor is the calling AE title (`AE:<title>`, kind `dimse`) at the
 * association's peer address.
 */
import { outcomeOfDimseStatus, type AuditAction, type AuditObject, type AuditRecord } from './audit-record.js';
import type { AuditTrail } from './audit-trail.js';

export interface DimseAuditEvent {
  service: 'C-STORE' | 'C-FIND' | 'C-MOVE' | 'C-GET';
  callingAeTitle: string;
  clientAddress: string | undefined;
  /** The DIMSE status of the final response. */
  status: number;
  objects?: AuditObject[];
  query?: AuditRecord['query'];
  detail?: Record<string, string | number | boolean>;
}

const ACTION: Record<DimseAuditEvent['service'], AuditAction> = { 'C-STORE': 'store', 'C-FIND': 'query', 'C-MOVE': 'retrieve', 'C-GET': 'retrieve' };

export function dimseAuditRecord(event: DimseAuditEvent): AuditRecord {
  return {
    time: Date.now(),
    action: ACTION[event.service],
    outcome: outcomeOfDimseStatus(event.status),
    status: event.status,
    who: { subject: `AE:${event.callingAeTitle}`, name: event.callingAeTitle, kind: 'dimse' },
    clientAddress: (event.clientAddress ?? '').replace(/^::ffff:/, ''),
    interface: 'dimse',
    route: event.service,
    objects: event.objects ?? [],
    ...(event.query === undefined ? {} : { query: event.query }),
    ...(event.detail === undefined ? {} : { detail: event.detail }),
  };
}

/** Records a DIMSE operation when a trail is configured; never throws. */
export function recordDimse(trail: AuditTrail | undefined, event: DimseAuditEvent): void {
  if (trail === undefined) return;
  try {
    trail.record(dimseAuditRecord(event));
  } catch {
    // building a record from a malformed request must not break the association
  }
}
