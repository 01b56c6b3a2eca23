/**
 * The administrators' view of the FHIR push outbox (docs/api.md, "FHIR push outbox"): what waits, what
 * was delivered (with the EMR's references) and what failed after the last attempt, with why (no
 * patient data). `POST …/{id}/retry` asks for a failed entry again. Needs `admin`; reading is audited as
 * a query, a retry as `fhir-push` (it sends patient data out again).
 */
import type { FastifyInstance } from 'fastify';
import { ErrorBody } from '../contracts/ai.js';
import { FhirOutboxEntryJson, FhirOutboxIdParams, FhirOutboxPage, FhirOutboxQuery } from '../contracts/fhir.js';
import { NotFoundError } from '../errors.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { FhirPush } from './fhir-push.js';
import type { FhirStore, OutboxEntry } from './fhir-store.js';

const requires = routeAccess('admin');
const TAGS = ['fhir'];

export interface FhirOutboxRoutesOptions {
  store: FhirStore;
  /** Absent when no push is configured (the outbox is then read-only history). */
  push?: FhirPush;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function entryJson(entry: OutboxEntry): FhirOutboxEntryJson {
  return {
    id: entry.id,
    kind: entry.kind,
    subject: entry.subject,
    studyInstanceUid: entry.studyInstanceUid,
    state: entry.state,
    attempts: entry.attempts,
    nextAttemptAt: entry.state === 'pending' ? iso(entry.nextAttemptAt) : null,
    lastError: entry.lastError,
    lastStatus: entry.lastStatus,
    delivered: entry.result ?? {},
    createdAt: iso(entry.createdAt)!,
    updatedAt: iso(entry.updatedAt)!,
    sentAt: iso(entry.sentAt),
  };
}

export async function fhirOutboxRoutes(app: FastifyInstance, options: FhirOutboxRoutesOptions): Promise<void> {
  const { store } = options;
  app.get<{ Querystring: FhirOutboxQuery }>(
    '/fhir-outbox',
    {
      ...requires('admin', { audit: 'query', queryLevel: 'fhir-outbox' }),
      ...withSchema({ tags: TAGS, summary: 'FHIR push outbox: pending, sent and failed entries', querystring: FhirOutboxQuery, response: { 200: FhirOutboxPage, 400: ErrorBody, 503: ErrorBody } }),
    },
    async (request) => {
      const { state, limit, offset } = request.query;
      const [counts, entries] = await Promise.all([store.counts(), store.list({ ...(state === undefined ? {} : { state }), limit: limit ?? 100, offset: offset ?? 0 })]);
      return { counts, entries: entries.map(entryJson) };
    },
  );
  app.post<{ Params: { id: string } }>(
    '/fhir-outbox/:id/retry',
    {
      ...requires('admin', { audit: 'fhir-push' }),
      ...withSchema({ tags: TAGS, summary: 'Ask for a failed (or sent) FHIR push entry again', params: FhirOutboxIdParams, response: { 200: FhirOutboxEntryJson, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody } }),
    },
    async (request) => {
      const entry = await store.retry(request.params.id);
      if (entry === undefined) throw new NotFoundError('No FHIR outbox entry with this id');
      request.auditObjects = [{ study: entry.studyInstanceUid }];
      await options.push?.poll();
      return entryJson(entry);
    },
  );
}
