/**
 * The administrators' audit API (docs/api.md, "Audit trail"): `GET /admin/audit` lists records, newest
 * first, with filters and paging; `GET /admin/audit/{id}` is one record, as JSON or, with
 * `Accept: application/xml`, as its DICOM audit message (PS3.15 A.5.1). Read-only: no route changes or
 * removes a record (and the database refuses it too). Reading the trail is itself audited (audit-read).
 */
import type { FastifyInstance } from 'fastify';
import { requires } from '../auth/principal.js';
import { checkUidParam } from '../dicomweb/uid-param.js';
import { AppError, BadQueryError } from '../errors.js';
import { ATNA_EVENTS, AUDIT_ACTIONS, type AuditAction, type AuditRecord } from './audit-record.js';
import type { AuditFilter } from './audit-store.js';
import type { AuditTrail } from './audit-trail.js';
import { auditMessageXml, type AuditSource } from './atna-xml.js';

export interface AuditRoutesOptions {
  trail: AuditTrail;
  source: AuditSource;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export function auditRecordJson(record: AuditRecord) {
  const event = ATNA_EVENTS[record.action];
  return {
    id: record.id,
    time: new Date(record.time).toISOString(),
    action: record.action,
    outcome: record.outcome,
    status: record.status,
    who: record.who,
    clientAddress: record.clientAddress,
    interface: record.interface,
    route: record.route,
    objects: record.objects,
    ...(record.query === undefined ? {} : { query: record.query }),
    ...(record.detail === undefined ? {} : { detail: record.detail }),
    atna: { eventId: { code: event.code, codeSystemName: 'DCM', meaning: event.meaning }, eventActionCode: event.actionCode },
  };
}

/** An instant as ISO 8601 (`2026-11-25T10:00:00Z`, a date alone is its UTC midnight) or UTC milliseconds. */
function parseInstant(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const ms = /^\d{1,15}$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new BadQueryError(name, 'must be an ISO 8601 date-time (2026-11-25T10:00:00Z) or UTC milliseconds');
  return ms;
}

function parseFilter(query: Record<string, unknown>): AuditFilter {
  const one = (name: string): string | undefined => {
    const value = query[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new BadQueryError(name, 'may be given once');
    return value;
  };
  const limitText = one('limit');
  const limit = limitText === undefined || limitText === '' ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new BadQueryError('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  const action = one('action');
  if (action !== undefined && action !== '' && !(AUDIT_ACTIONS as readonly string[]).includes(action)) throw new BadQueryError('action', `must be one of ${AUDIT_ACTIONS.join(', ')}`);
  const study = one('study');
  if (study !== undefined && study !== '') {
    try {
      checkUidParam(study, 'StudyInstanceUID');
    } catch {
      throw new BadQueryError('study', 'must be a Study Instance UID');
    }
  }
  const before = one('before');
  if (before !== undefined && before !== '' && !/^\d{1,15}$/.test(before)) throw new BadQueryError('before', 'must be a record id');
  const from = parseInstant('from', one('from'));
  const to = parseInstant('to', one('to'));
  const user = one('user');
  return {
    limit,
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(user === undefined || user === '' ? {} : { subject: user }),
    ...(action === undefined || action === '' ? {} : { action: action as AuditAction }),
    ...(study === undefined || study === '' ? {} : { study }),
    ...(before === undefined || before === '' ? {} : { beforeId: Number(before) }),
  };
}

export async function auditRoutes(app: FastifyInstance, { trail, source }: AuditRoutesOptions): Promise<void> {
  /** Records queued a moment ago are part of the answer (a failing store is then a 503 anyway). */
  const settle = () => trail.flush().catch(() => undefined);

  app.get('/audit', requires('admin'), async (request) => {
    const filter = parseFilter(request.query as Record<string, unknown>);
    await settle();
    const records = await trail.store.list(filter);
    let next: string | null = null;
    if (records.length === filter.limit) {
      const params = new URLSearchParams(Object.entries(request.query as Record<string, string>).filter(([key, value]) => key !== 'before' && typeof value === 'string'));
      params.set('before', String(records.at(-1)!.id));
      next = `${request.url.split('?')[0]}?${params.toString()}`;
    }
    return { records: records.map(auditRecordJson), next };
  });

  app.get<{ Params: { id: string } }>('/audit/:id', requires('admin'), async (request, reply) => {
    const id = /^\d{1,15}$/.test(request.params.id) ? Number(request.params.id) : undefined;
    await settle();
    const record = id === undefined ? undefined : await trail.store.get(id);
    if (record === undefined) throw new AppError('NOT_FOUND', 'No audit record with this id');
    const accept = request.headers.accept ?? '';
    if (/\b(application|text)\/xml\b/i.test(accept)) return reply.type('application/xml; charset=utf-8').send(auditMessageXml(record, source));
    return auditRecordJson(record);
  });
}
