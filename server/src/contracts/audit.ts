/**
 * The administrators' audit API's JSON on the wire (docs/api.md, "Audit trail"), as JSON Schema
 * (TypeBox): `GET /admin/audit` (a page of records, newest first) and `GET /admin/audit/{id}`. The
 * routes declare these as their Fastify `schema`; objects are closed, so a field added to a record
 * must be added here to reach a client. `description` texts are also the messages of a refused query.
 */
import { Type, type Static } from 'typebox';
import { AUDIT_ACTIONS } from '../audit/audit-vocabulary.js';

const closed = { additionalProperties: false } as const;
const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

export const AuditRecordJson = Type.Object(
  {
    id: Type.Optional(Type.Integer()),
    time: Type.String({ description: 'ISO 8601, UTC' }),
    action: Type.String({ description: `one of ${AUDIT_ACTIONS.join(', ')}` }),
    outcome: Type.Integer({ description: 'ATNA EventOutcomeIndicator: 0 success, 4 minor, 8 serious, 12 major failure' }),
    status: Type.Integer({ description: 'HTTP status, or DIMSE status of the final response' }),
    who: Type.Object(
      {
        subject: Type.String(),
        name: Type.Optional(Type.String()),
        kind: Type.String({ description: 'anonymous, token, dimse, hl7, system (the EMR of a FHIR push), link (a share link: subject link:<id>) or unauthenticated' }),
        roles: Type.Optional(Type.Array(Type.String())),
      },
      closed,
    ),
    clientAddress: Type.String(),
    interface: Type.String({ description: 'dicomweb, ai, live, dimse, admin, his, fhir, reports, share or consults' }),
    route: Type.String(),
    objects: Type.Array(
      Type.Object(
        {
          study: Type.Optional(Type.String()),
          series: Type.Optional(Type.String()),
          instance: Type.Optional(Type.String()),
          sopClass: Type.Optional(Type.String()),
          patient: Type.Optional(Type.String({ description: 'Patient Record / Order Record events: the Patient ID as HL7 CX (ID^^^ISSUER)' })),
        },
        closed,
      ),
    ),
    query: Type.Optional(Type.Object({ level: Type.String(), keys: Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())])) }, closed)),
    detail: Type.Optional(Type.Record(Type.String(), Scalar)),
    atna: Type.Object(
      {
        eventId: Type.Object({ code: Type.String(), codeSystemName: Type.String(), meaning: Type.String() }, closed),
        eventActionCode: Type.String(),
      },
      closed,
    ),
  },
  closed,
);
export type AuditRecordJson = Static<typeof AuditRecordJson>;

export const AuditPage = Type.Object(
  {
    records: Type.Array(AuditRecordJson),
    next: Type.Union([Type.String({ description: 'the URL of the next (older) page' }), Type.Null()]),
  },
  closed,
);

/** Filters of `GET /admin/audit`; an empty value is the same as leaving the parameter out. */
export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Union([Type.Literal(''), Type.Integer({ minimum: 1, maximum: 1000 })], { description: 'must be a whole number from 1 to 1000' })),
    action: Type.Optional(Type.Union([Type.Literal(''), ...AUDIT_ACTIONS.map((a) => Type.Literal(a))], { description: `must be one of ${AUDIT_ACTIONS.join(', ')}` })),
    study: Type.Optional(Type.String({ description: 'must be a Study Instance UID' })),
    user: Type.Optional(Type.String({ description: 'the subject (token sub, anonymous, AE:<title>)' })),
    from: Type.Optional(Type.String({ description: 'must be an ISO 8601 date-time (2026-11-25T10:00:00Z) or UTC milliseconds' })),
    to: Type.Optional(Type.String({ description: 'must be an ISO 8601 date-time (2026-11-25T10:00:00Z) or UTC milliseconds' })),
    before: Type.Optional(Type.Union([Type.Literal(''), Type.Integer({ minimum: 0, maximum: 999_999_999_999_999 })], { description: 'must be a record id' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;
