/**
 * The FHIR push outbox's administrators' view on the wire (docs/api.md, "FHIR push outbox"), as JSON
 * Schema (TypeBox): `GET /admin/fhir-outbox` and `POST /admin/fhir-outbox/{id}/retry`. The FHIR API
 * itself (`/fhir`) speaks FHIR R4 JSON, specified by HL7, and has no schema here. Objects are closed;
 * `description` texts are also the messages of a refused query.
 */
import { Type, type Static } from 'typebox';

const closed = { additionalProperties: false } as const;

export const OUTBOX_STATES = ['pending', 'sent', 'failed'] as const;
const OutboxState = (description: string) => Type.Union([Type.Literal('pending'), Type.Literal('sent'), Type.Literal('failed')], { description });

export const FhirOutboxEntryJson = Type.Object(
  {
    id: Type.String({ description: 'the outbox entry (s-… a study, r-… a report)' }),
    kind: Type.Union([Type.Literal('study'), Type.Literal('report')]),
    subject: Type.String({ description: 'the Study Instance UID (study) or the report id (report)' }),
    studyInstanceUid: Type.String(),
    state: OutboxState('pending (waiting or retrying), sent, failed (gave up after the maximum attempts)'),
    attempts: Type.Integer({ description: 'attempts made since it was last asked for' }),
    nextAttemptAt: Type.Union([Type.String(), Type.Null()], { description: 'ISO 8601, UTC: when a pending entry is tried next' }),
    lastError: Type.Union([Type.String(), Type.Null()], { description: 'why the last attempt failed (request, HTTP status, FHIR issue codes; no patient data)' }),
    lastStatus: Type.Union([Type.Integer(), Type.Null()], { description: "the EMR's HTTP status of the last failed attempt" }),
    delivered: Type.Record(Type.String(), Type.String(), { description: "the EMR's references of what was delivered (Patient, ImagingStudy, DiagnosticReport) and the report version" }),
    createdAt: Type.String({ description: 'ISO 8601, UTC' }),
    updatedAt: Type.String({ description: 'ISO 8601, UTC' }),
    sentAt: Type.Union([Type.String(), Type.Null()], { description: 'ISO 8601, UTC' }),
  },
  closed,
);
export type FhirOutboxEntryJson = Static<typeof FhirOutboxEntryJson>;

export const FhirOutboxPage = Type.Object(
  {
    counts: Type.Object({ pending: Type.Integer(), sent: Type.Integer(), failed: Type.Integer() }, closed),
    entries: Type.Array(FhirOutboxEntryJson),
  },
  closed,
);
export type FhirOutboxPage = Static<typeof FhirOutboxPage>;

export const FhirOutboxQuery = Type.Object(
  {
    state: Type.Optional(OutboxState('must be pending, sent or failed')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'must be a whole number from 1 to 1000' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, description: 'must be a whole number, 0 or more' })),
  },
  closed,
);
export type FhirOutboxQuery = Static<typeof FhirOutboxQuery>;

export const FhirOutboxIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'must be an outbox entry id (s-… or r-…)' }) }, closed);
