/**
 * The administrators' audit API (docs/api.md, "Audit trail"): `GET /admin/audit` lists records, newest
 * first, with filters and paging; `GET /admin/audit/{id}` is one record, as JSON or, with
 * `Accept: application/xml`, as its DICOM audit message (PS3.15 A.5.1). Read-only: no route changes or
 * removes a record (and the database refuses it too). Reading the trail is itself audited (audit-read).
 */
import type { FastifyInstance } from 'fastify';
import { AuditPage, AuditQuery, AuditRecordJson } from '../contracts/audit.js';
import { ErrorBody, IdParams } from '../contracts/ai.js';
import { checkUidParam } from '../http/uid-param.js';
import { AppError, BadQueryError } from '../errors.js';
import { withSchema } from '../http/route-schema.js';
import { atnaEventOf, type AuditRecord } from './audit-record.js';
import type { AuditFilter } from './audit-store.js';
import type { AuditTrail } from './audit-trail.js';
import { auditMessageXml, type AuditSource } from './atna-xml.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('admin');

export interface AuditRoutesOptions {
  trail: AuditTrail;
  source: AuditSource;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export function auditRecordJson(record: AuditRecord): AuditRecordJson {
  const event = atnaEventOf(record);
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

/** The store's filter from the validated query (contracts/audit.ts): an empty value means "not given". */
function parseFilter(query: AuditQuery): AuditFilter {
  const given = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  const study = given(query.study);
  if (study !== undefined) {
    try {
      checkUidParam(study, 'StudyInstanceUID');
    } catch {
      throw new BadQueryError('study', 'must be a Study Instance UID');
    }
  }
  const from = parseInstant('from', given(query.from));
  const to = parseInstant('to', given(query.to));
  const user = given(query.user);
  const action = query.action === '' ? undefined : query.action;
  return {
    limit: query.limit === undefined || query.limit === '' ? DEFAULT_LIMIT : query.limit,
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(user === undefined ? {} : { subject: user }),
    ...(action === undefined ? {} : { action }),
    ...(study === undefined ? {} : { study }),
    ...(query.before === undefined || query.before === '' ? {} : { beforeId: query.before }),
  };
}

export async function auditRoutes(app: FastifyInstance, { trail, source }: AuditRoutesOptions): Promise<void> {
  /** Records queued a moment ago are part of the answer (a failing store is then a 503 anyway). */
  const settle = () => trail.flush().catch(() => undefined);

  app.get<{ Querystring: AuditQuery }>(
    '/audit',
    {
      ...requires('admin', { audit: 'audit-read' }),
      ...withSchema({ tags: ['audit'], summary: 'Audit records, newest first, with filters and paging (next)', querystring: AuditQuery, response: { 200: AuditPage, 400: ErrorBody } }),
    },
    async (request) => {
      const filter = parseFilter(request.query);
      await settle();
      const records = await trail.store.list(filter);
      let next: string | null = null;
      if (records.length === filter.limit) {
        // The next page: the same query as sent (the parsed one holds numbers), older than the last record.
        const params = new URLSearchParams(request.url.split('?')[1] ?? '');
        params.delete('before');
        params.set('before', String(records.at(-1)!.id));
        next = `${request.url.split('?')[0]}?${params.toString()}`;
      }
      return { records: records.map(auditRecordJson), next };
    },
  );

  // JSON, or with Accept: application/xml the DICOM audit message (PS3.15 A.5.1): no response schema
  // for 200, which would serialize the XML string as JSON.
  app.get<{ Params: { id: string } }>(
    '/audit/:id',
    { ...requires('admin', { audit: 'audit-read' }), ...withSchema({ tags: ['audit'], summary: 'One audit record as JSON, or as its DICOM audit message (Accept: application/xml)', params: IdParams, response: { 404: ErrorBody } }) },
    async (request, reply) => {
      const id = /^\d{1,15}$/.test(request.params.id) ? Number(request.params.id) : undefined;
      await settle();
      const record = id === undefined ? undefined : await trail.store.get(id);
      if (record === undefined) throw new AppError('NOT_FOUND', 'No audit record with this id');
      const accept = request.headers.accept ?? '';
      if (/\b(application|text)\/xml\b/i.test(accept)) return reply.type('application/xml; charset=utf-8').send(auditMessageXml(record, source));
      return auditRecordJson(record);
    },
  );
}
