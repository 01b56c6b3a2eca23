/**
 * The curation API's JSON on the wire (docs/api.md, "Curation"), as JSON Schema (TypeBox): the routes
 * of curation/curation.routes.ts declare these as their Fastify `schema` (requests validated, responses
 * serialized, the OpenAPI document generated), and the viewer may import the derived types (`import
 * type`). Every object is closed; `description` texts are also the messages of a refused request.
 *
 * - rejection following IHE IOCM: a Key Object Selection rejection note (titles of CID 7011) written by
 *   the server into the study, the instances it names hidden from every interface; listed, restored,
 *   purged after PACS_REJECTION_PURGE_DAYS;
 * - DELETE of a study, series or instance (an extension of DICOMweb, as dcm4chee and Orthanc offer);
 * - move, split, merge: instances, series or a study to another study or patient, the stored files kept
 *   as they were received and read with their new study and patient.
 */
import { Type, type Static, type TSchema } from 'typebox';

const closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(schema: T, description?: string) => Type.Union([schema, Type.Null()], description === undefined ? {} : { description });
const Uid = (description: string) => Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description });
const UidList = (description: string) => Type.Array(Uid('a UID: digits and dots, at most 64 characters'), { minItems: 1, maxItems: 10000, description });

/** IOCM rejection note titles (CID 7011, DCM). */
export const REJECTION_REASONS = ['113001', '113037', '113038', '113039'] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

const Reason = Type.Union(
  REJECTION_REASONS.map((code) => Type.Literal(code)),
  {
    description:
      'must be a rejection reason (CID 7011): "113001" Rejected for Quality Reasons, "113037" Rejected for Patient Safety Reasons, "113038" Incorrect Modality Worklist Entry, "113039" Data Retention Policy Expired',
  },
);

export const CodedReason = Type.Object({ code: Type.String(), scheme: Type.String({ description: 'DCM' }), meaning: Type.String() }, closed);

/** `POST /curation/rejections`: reject a whole study, chosen series of it, or chosen instances of it. */
export const RejectBody = Type.Object(
  {
    studyInstanceUid: Uid('must be the Study Instance UID of a stored study (digits and dots)'),
    seriesInstanceUids: Type.Optional(UidList('must be a list of Series Instance UIDs of the study; left out: the whole study')),
    sopInstanceUids: Type.Optional(UidList('must be a list of SOP Instance UIDs of the study; left out: the whole study or the series named')),
    reason: Reason,
    description: Type.Optional(Type.String({ maxLength: 1024, description: 'why, in words (Key Object Description of the note; text, at most 1024 characters, no patient data)' })),
  },
  closed,
);
export type RejectBody = Static<typeof RejectBody>;

export const InstanceRef = Type.Object({ studyInstanceUid: Type.String(), seriesInstanceUid: Type.String(), sopInstanceUid: Type.String() }, closed);

export const RejectResult = Type.Object(
  {
    note: InstanceRef,
    reason: CodedReason,
    /** Instances the note names. */
    rejected: Type.Integer(),
    purgeAfter: Type.String({ description: 'when the purge removes them for good (ISO-8601)' }),
  },
  closed,
);
export type RejectResult = Static<typeof RejectResult>;

export const RejectedJson = Type.Object(
  {
    sopInstanceUid: Type.String(),
    studyInstanceUid: Type.String(),
    seriesInstanceUid: Type.String(),
    sopClassUid: Type.String(),
    kind: Type.Union([Type.Literal('rejected'), Type.Literal('voided-note')], { description: '`voided-note`: a rejection note whose rejection was revoked (restore), hidden itself' }),
    reason: CodedReason,
    noteUid: Type.String({ description: 'SOP Instance UID of the rejection note' }),
    rejectedAt: Type.String(),
    purgeAfter: Type.String(),
    purgedAt: Nullable(Type.String()),
    stored: Type.Boolean({ description: 'the instance is in the archive (false: named by a note before it arrived, or purged)' }),
  },
  closed,
);
export type RejectedJson = Static<typeof RejectedJson>;

export const RejectedQuery = Type.Object(
  {
    study: Type.Optional(Uid('must be a Study Instance UID')),
    note: Type.Optional(Uid('must be the SOP Instance UID of a rejection note')),
    state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('purged'), Type.Literal('all')], { description: 'must be active (default), purged or all' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'must be a whole number from 1 to 1000 (default 100)' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, description: 'must be a whole number, 0 or more' })),
  },
  closed,
);
export type RejectedQuery = Static<typeof RejectedQuery>;

export const RejectedList = Type.Object({ rejected: Type.Array(RejectedJson) }, closed);
export type RejectedList = Static<typeof RejectedList>;

export const SopParams = Type.Object({ sop: Uid('must be a SOP Instance UID') }, closed);
export const NoteParams = Type.Object({ note: Uid('must be the SOP Instance UID of a rejection note') }, closed);
export const StudyParams = Type.Object({ study: Uid('must be a Study Instance UID') }, closed);

export const RestoreResult = Type.Object(
  {
    restored: Type.Array(Type.String(), { description: 'SOP Instance UIDs visible again (when stored)' }),
    voidedNotes: Type.Array(Type.String(), { description: 'rejection notes left rejecting nothing: hidden, purged later' }),
    reissuedNotes: Type.Array(InstanceRef, { description: 'new rejection notes for what the voided notes still rejected' }),
  },
  closed,
);
export type RestoreResult = Static<typeof RestoreResult>;

export const PurgeResult = Type.Object(
  {
    purged: Type.Integer({ description: 'rejections purged (their instances removed for good when stored)' }),
    instancesRemoved: Type.Integer(),
  },
  closed,
);
export type PurgeResult = Static<typeof PurgeResult>;

export const DeleteResult = Type.Object(
  {
    studyInstanceUid: Type.String(),
    seriesInstanceUid: Type.Optional(Type.String()),
    sopInstanceUid: Type.Optional(Type.String()),
    instancesRemoved: Type.Integer(),
  },
  closed,
);
export type DeleteResult = Static<typeof DeleteResult>;

/** Another patient: the patient of this Patient ID + issuer, created with this identity when the archive has none. */
export const PatientTargetJson = Type.Object(
  {
    patientId: Type.String({ minLength: 1, maxLength: 64, description: 'Patient ID (0010,0020), 1 to 64 characters' }),
    issuer: Type.Optional(Type.String({ maxLength: 64, description: 'Issuer of Patient ID (0010,0021); "" or left out when none' })),
    name: Type.Optional(Nullable(Type.String({ maxLength: 320 }), "Patient's Name as a DICOM PN string (used only when the patient is new)")),
    birthDate: Type.Optional(Nullable(Type.String({ pattern: '^[0-9]{8}$' }), 'YYYYMMDD (used only when the patient is new)')),
    sex: Type.Optional(Nullable(Type.Union([Type.Literal('M'), Type.Literal('F'), Type.Literal('O')]), 'M, F or O (used only when the patient is new)')),
  },
  { ...closed, description: 'must be a patient {"patientId", "issuer"} (name, birthDate, sex used when the archive does not know the patient yet)' },
);
export type PatientTargetJson = Static<typeof PatientTargetJson>;

/** General Study attributes of a new study (split): absent ones are copied from the source study. */
export const StudyAttributesJson = Type.Object(
  {
    accessionNumber: Type.Optional(Nullable(Type.String({ maxLength: 16 }), 'Accession Number (0008,0050), at most 16 characters')),
    studyDescription: Type.Optional(Nullable(Type.String({ maxLength: 64 }), 'Study Description (0008,1030), at most 64 characters')),
    studyId: Type.Optional(Nullable(Type.String({ maxLength: 16 }), 'Study ID (0020,0010), at most 16 characters')),
    studyDate: Type.Optional(Nullable(Type.String({ pattern: '^[0-9]{8}$' }), 'Study Date YYYYMMDD')),
    studyTime: Type.Optional(Nullable(Type.String({ pattern: '^[0-9]{2,6}(\\.[0-9]{1,6})?$' }), 'Study Time HHMMSS')),
    referringPhysicianName: Type.Optional(Nullable(Type.String({ maxLength: 320 }), "Referring Physician's Name as a DICOM PN string")),
  },
  { ...closed, description: 'must be study attributes {"accessionNumber", "studyDescription", "studyId", "studyDate", "studyTime", "referringPhysicianName"}' },
);
export type StudyAttributesJson = Static<typeof StudyAttributesJson>;

export const MoveFrom = Type.Object(
  {
    studyInstanceUid: Uid('must be the Study Instance UID of the source study'),
    seriesInstanceUids: Type.Optional(UidList('must be Series Instance UIDs of the source study; left out: the whole study')),
    sopInstanceUids: Type.Optional(UidList('must be SOP Instance UIDs of the source study; left out: the whole study or the series named')),
  },
  { ...closed, description: 'must be {"studyInstanceUid", and optionally "seriesInstanceUids" or "sopInstanceUids"}' },
);

export const MoveTo = Type.Union(
  [
    Type.Object({ studyInstanceUid: Uid('must be the Study Instance UID of an existing target study') }, closed),
    Type.Object({ newStudy: Type.Object({ attributes: Type.Optional(StudyAttributesJson), patient: Type.Optional(PatientTargetJson) }, closed) }, closed),
    Type.Object({ patient: PatientTargetJson }, closed),
  ],
  { description: 'must be {"studyInstanceUid"} (an existing study), {"newStudy": {"attributes", "patient"}} (a new study) or {"patient"} (another patient)' },
);

/** `POST /curation/move`. */
export const MoveBody = Type.Object({ from: MoveFrom, to: MoveTo }, closed);
export type MoveBody = Static<typeof MoveBody>;

/** `POST /curation/studies/{study}/split`: chosen series to a new study. */
export const SplitBody = Type.Object(
  {
    seriesInstanceUids: UidList('must be the Series Instance UIDs that go to the new study'),
    attributes: Type.Optional(StudyAttributesJson),
    patient: Type.Optional(PatientTargetJson),
  },
  closed,
);
export type SplitBody = Static<typeof SplitBody>;

/** `POST /curation/studies/{study}/merge`: the whole study into another. */
export const MergeBody = Type.Object({ into: Uid('must be the Study Instance UID of the study that receives this one') }, closed);
export type MergeBody = Static<typeof MergeBody>;

const PatientKeyJson = Type.Object({ patientId: Type.String(), issuer: Type.String() }, closed);

export const MoveResult = Type.Object(
  {
    fromStudy: Type.String(),
    toStudy: Type.String(),
    fromPatient: PatientKeyJson,
    toPatient: PatientKeyJson,
    series: Type.Integer({ description: 'series moved (or made in the target for instances moved out of a series)' }),
    instances: Type.Integer(),
    sourceRemoved: Type.Boolean({ description: 'the source study was left empty and is gone (merge)' }),
  },
  closed,
);
export type MoveResult = Static<typeof MoveResult>;
