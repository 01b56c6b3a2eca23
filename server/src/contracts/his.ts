/**
 * The orders REST API's JSON on the wire (docs/api.md, "Orders and worklist (`/his`)"), as JSON Schema
 * (TypeBox): the routes of his/orders.routes.ts declare these as their Fastify `schema` (requests
 * validated, responses serialized, the OpenAPI document generated). Every object is closed.
 * `description` texts are also the messages of a refused request (http/route-schema.ts). The schemas
 * check shapes and types; what the values must be (lengths of the DICOM value representations, dates,
 * configured issuers) is checked by the hospital link itself, the same for HL7 and REST (HIS_INVALID,
 * naming each field).
 */
import { Type, type Static, type TSchema } from 'typebox';

const closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(schema: T, description?: string) => Type.Union([schema, Type.Null()], description === undefined ? {} : { description });

export const STEP_STATUSES = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'DISCONTINUED', 'CANCELLED'] as const;

export const OtherPatientIdJson = Type.Object(
  {
    id: Type.String({ description: 'the identifier, e.g. the national citizen ID' }),
    issuer: Type.String({ description: 'Issuer of Patient ID (0010,0021) of this identifier' }),
    type: Type.Optional(Type.String({ description: 'Type of Patient ID (0010,0022): TEXT, RFID or BARCODE' })),
  },
  closed,
);

const PATIENT_SHAPE =
  'must be a patient {"patientId", "issuer", and optionally "name" (DICOM PN: Family^Given), "birthDate" (YYYYMMDD), "sex" (M, F, O), "otherIds" [{"id","issuer"}]}';

/** A patient as the HIS identifies it (requests: name, birth date, sex and other IDs may be left out). */
export const PatientInput = Type.Object(
  {
    patientId: Type.String({ description: 'Patient ID (0010,0020)' }),
    issuer: Type.String({ description: 'Issuer of Patient ID (0010,0021); "" when none' }),
    name: Type.Optional(Nullable(Type.String(), "Patient's Name as a DICOM PN string, e.g. Nguyễn^Văn Đức")),
    birthDate: Type.Optional(Nullable(Type.String(), 'YYYYMMDD')),
    sex: Type.Optional(Nullable(Type.String(), 'M, F or O')),
    otherIds: Type.Optional(Type.Array(OtherPatientIdJson, { description: 'other identifiers with their issuers (Other Patient IDs Sequence)' })),
  },
  { ...closed, description: PATIENT_SHAPE },
);
export type PatientInput = Static<typeof PatientInput>;

/** A patient as the archive keeps it (the HIS's identity). */
export const PatientJson = Type.Object(
  {
    patientId: Type.String(),
    issuer: Type.String({ description: '"" when the ID has no issuer' }),
    name: Nullable(Type.String(), 'DICOM PN string'),
    birthDate: Nullable(Type.String(), 'YYYYMMDD'),
    sex: Nullable(Type.String(), 'M, F or O'),
    otherIds: Type.Array(OtherPatientIdJson),
  },
  closed,
);
export type PatientJson = Static<typeof PatientJson>;

export const CodedValueJson = Type.Object(
  { value: Type.String(), scheme: Type.String({ description: 'coding scheme designator' }), meaning: Type.String() },
  { ...closed, description: 'must be a code {"value","scheme","meaning"}' },
);

/** `POST /his/orders` and `PUT /his/orders/{id}`: an order with its patient. */
export const OrderBody = Type.Object(
  {
    patient: PatientInput,
    accessionNumber: Type.String({ description: 'the Accession Number (0008,0050), 1 to 16 characters' }),
    placerOrderNumber: Type.Optional(Nullable(Type.String(), "the HIS's order number (Placer Order Number), up to 64 characters")),
    fillerOrderNumber: Type.Optional(Nullable(Type.String(), 'the Filler Order Number, up to 64 characters')),
    requestedProcedureId: Type.Optional(Type.String({ description: 'Requested Procedure ID (0040,1001), up to 16 characters; default: the accession number' })),
    requestedProcedureDescription: Type.Optional(Nullable(Type.String(), 'Requested Procedure Description (0032,1060)')),
    requestedProcedureCode: Type.Optional(Nullable(CodedValueJson, 'must be a code {"value","scheme","meaning"} or null')),
    scheduledProcedureStepId: Type.Optional(Type.String({ description: 'Scheduled Procedure Step ID (0040,0009), up to 16 characters; default: the accession number' })),
    scheduledProcedureStepDescription: Type.Optional(Nullable(Type.String(), 'Scheduled Procedure Step Description (0040,0007)')),
    modality: Type.String({ description: 'the Modality (0008,0060), e.g. CT, ES' }),
    scheduledStationAeTitle: Type.Optional(Nullable(Type.String(), 'Scheduled Station AE Title (0040,0001)')),
    scheduledStart: Type.String({ description: 'the scheduled start as YYYYMMDD[HHMM[SS]]' }),
    referringPhysicianName: Type.Optional(Nullable(Type.String(), "Referring Physician's Name as a DICOM PN string")),
    performingPhysicianName: Type.Optional(Nullable(Type.String(), "Scheduled Performing Physician's Name as a DICOM PN string")),
    studyInstanceUid: Type.Optional(Nullable(Type.String(), 'the Study Instance UID the HIS assigned; default: a new one')),
  },
  { ...closed, description: 'must be an order: {"patient": {...}, "accessionNumber", "modality", "scheduledStart", ...}' },
);
export type OrderBody = Static<typeof OrderBody>;

const CANCEL_SHAPE = 'must be empty or {"discontinue": true} (a step that started and was stopped)';

/** `POST /his/orders/{id}/cancel` (no body: cancelled; `discontinue`: discontinued). */
export const CancelOrderBody = Type.Union([Type.Object({ discontinue: Type.Optional(Type.Boolean({ description: 'true or false' })) }, { ...closed, description: CANCEL_SHAPE }), Type.Null()], {
  description: CANCEL_SHAPE,
});
export type CancelOrderBody = Static<typeof CancelOrderBody>;

/** An order as the archive keeps it, with its patient's current identity (a worklist item). */
export const HisOrderJson = Type.Object(
  {
    id: Type.String({ description: "the archive's id of the order (GET /his/orders/{id})" }),
    status: Type.Union(
      [Type.Literal('SCHEDULED'), Type.Literal('IN PROGRESS'), Type.Literal('COMPLETED'), Type.Literal('DISCONTINUED'), Type.Literal('CANCELLED')],
      { description: 'the scheduled procedure step state' },
    ),
    patient: PatientJson,
    accessionNumber: Type.String(),
    placerOrderNumber: Nullable(Type.String()),
    fillerOrderNumber: Nullable(Type.String()),
    requestedProcedureId: Type.String(),
    requestedProcedureDescription: Nullable(Type.String()),
    requestedProcedureCode: Nullable(CodedValueJson),
    scheduledProcedureStepId: Type.String(),
    scheduledProcedureStepDescription: Nullable(Type.String()),
    modality: Type.String(),
    scheduledStationAeTitle: Nullable(Type.String()),
    scheduledStart: Type.String({ description: 'YYYYMMDD[HHMM[SS]]' }),
    referringPhysicianName: Nullable(Type.String()),
    performingPhysicianName: Nullable(Type.String()),
    studyInstanceUid: Type.String(),
    mppsSopInstanceUid: Nullable(Type.String(), 'the MPPS that performed the step'),
    performedSeries: Type.Array(Type.String(), { description: 'Series Instance UIDs performed for the order' }),
    createdAt: Type.String({ description: 'ISO 8601, UTC' }),
    updatedAt: Type.String({ description: 'ISO 8601, UTC' }),
  },
  closed,
);
export type HisOrderJson = Static<typeof HisOrderJson>;

/** What a write through the orders API did. */
export const OrderResult = Type.Object(
  {
    status: Type.Union([Type.Literal('applied'), Type.Literal('duplicate')]),
    order: HisOrderJson,
    studiesUpdated: Type.Array(Type.String(), { description: 'stored studies whose patient identity changed' }),
  },
  closed,
);
export type OrderResult = Static<typeof OrderResult>;

export const PatientResult = Type.Object(
  {
    status: Type.Union([Type.Literal('applied'), Type.Literal('duplicate')]),
    patient: PatientJson,
    studiesUpdated: Type.Array(Type.String(), { description: 'stored studies whose patient identity changed' }),
  },
  closed,
);
export type PatientResult = Static<typeof PatientResult>;

export const WorklistPage = Type.Object({ items: Type.Array(HisOrderJson) }, closed);
export type WorklistPage = Static<typeof WorklistPage>;

export const OrderList = Type.Object({ orders: Type.Array(HisOrderJson) }, closed);
export type OrderList = Static<typeof OrderList>;

/** `GET /his/worklist`: Modality Worklist matching (PS3.4 K.6.1.2); an empty value is the same as leaving the key out. */
export const WorklistQueryJson = Type.Object(
  {
    date: Type.Optional(
      Type.String({ pattern: '^([0-9]{8})?(-([0-9]{8})?)?$', description: 'must be a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end may be left open)' }),
    ),
    time: Type.Optional(Type.String({ pattern: '^([0-9]{2,6})?(-([0-9]{2,6})?)?$', description: 'must be a time HHMM[SS] or a range HHMM-HHMM (either end may be left open)' })),
    modality: Type.Optional(Type.String({ description: 'the Modality, e.g. ES' })),
    station: Type.Optional(Type.String({ description: 'the Scheduled Station AE Title' })),
    patientName: Type.Optional(Type.String({ description: "the Patient's Name; * and ? are wildcards, case-insensitive" })),
    patientId: Type.Optional(Type.String({ description: 'the Patient ID or another identifier of the patient' })),
    issuer: Type.Optional(Type.String({ description: 'the issuer of patientId' })),
    accessionNumber: Type.Optional(Type.String({ description: 'the Accession Number' })),
    status: Type.Optional(Type.String({ description: `must be a comma-separated list of ${STEP_STATUSES.join(', ')} (default: SCHEDULED,IN PROGRESS)` })),
    limit: Type.Optional(Type.Union([Type.Literal(''), Type.Integer({ minimum: 1, maximum: 1000 })], { description: 'must be a whole number from 1 to 1000' })),
  },
  closed,
);
export type WorklistQueryJson = Static<typeof WorklistQueryJson>;

/** `GET /his/orders?study=UID&study=UID`. */
export const OrdersOfStudiesQuery = Type.Object(
  {
    study: Type.Array(Type.String(), { minItems: 1, maxItems: 200, description: 'is required: one to 200 Study Instance UIDs (study=UID&study=UID, or comma-separated)' }),
  },
  closed,
);
export type OrdersOfStudiesQuery = Static<typeof OrdersOfStudiesQuery>;

export const OrderIdParams = Type.Object({ id: Type.String({ description: "the archive's id of the order" }) }, closed);
export const PatientParams = Type.Object(
  { issuer: Type.String({ description: 'the Issuer of Patient ID ("-" for none)' }), id: Type.String({ description: 'the Patient ID' }) },
  closed,
);

/** `PUT /his/patients/{issuer}/{id}`: the patient's identity as the HIS now has it (replaces what was known). */
export const PatientUpdateBody = Type.Object(
  {
    name: Type.Optional(Nullable(Type.String(), "Patient's Name as a DICOM PN string")),
    birthDate: Type.Optional(Nullable(Type.String(), 'YYYYMMDD')),
    sex: Type.Optional(Nullable(Type.String(), 'M, F or O')),
    otherIds: Type.Optional(Type.Array(OtherPatientIdJson, { description: 'must be a list of {"id","issuer"}' })),
  },
  { ...closed, description: 'must be {"name", "birthDate", "sex", "otherIds"} (each optional)' },
);
export type PatientUpdateBody = Static<typeof PatientUpdateBody>;

/** `POST /his/patients/merge`: the prior patient's studies and orders move to the surviving one. */
export const PatientMergeBody = Type.Object(
  {
    prior: Type.Object(
      { patientId: Type.String(), issuer: Type.String() },
      { ...closed, description: 'must be the patient merged away: {"patientId","issuer"}' },
    ),
    surviving: PatientInput,
  },
  { ...closed, description: 'must be {"prior": {"patientId","issuer"}, "surviving": {...}}' },
);
export type PatientMergeBody = Static<typeof PatientMergeBody>;
