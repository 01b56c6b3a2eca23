/**
 * The share links and consults API on the wire (docs/api.md, "Share links" and "Consults"), as JSON
 * Schema (TypeBox): the routes of sharing/ declare these as their Fastify `schema` (requests validated,
 * responses serialized, the OpenAPI document generated), and the viewer (the patient phone page, the
 * consult pages) imports the derived types (`import type`). Every object is closed. `description` texts
 * are also the messages of a refused request.
 *
 * A share link opens one study (optionally chosen series, with or without its signed report) read-only
 * to whoever holds its token: the patient's result slip (`patient`, months) or a specialist asked for a
 * second opinion (`consult`, days). The token is shown once, when the link is made; the archive keeps
 * only its SHA-256. A consult asks a named specialist about a study, usually on a de-identified copy
 * (PS3.15 Annex E Basic Profile) reached through a consult link; the answer comes back on the original.
 */
import { Type, type Static, type TSchema } from 'typebox';

const closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(schema: T, description?: string) => Type.Union([schema, Type.Null()], description === undefined ? {} : { description });
const Text = (maxLength: number, description: string) => Type.String({ maxLength, description: `${description} (text, at most ${maxLength} characters)` });
const Uid = (description: string) => Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description });
const Iso = (description: string) => Type.String({ description: `${description} (ISO 8601, UTC)` });

export const SHARE_PURPOSES = ['patient', 'consult'] as const;
export type SharePurpose = (typeof SHARE_PURPOSES)[number];
/** `active` (opens its study), `expired` (past `expiresAt`), `revoked` (someone revoked it). */
export const LINK_STATES = ['active', 'expired', 'revoked'] as const;
export type LinkState = (typeof LINK_STATES)[number];
export const SLIP_SIZES = ['A5', 'A4'] as const;
/** `requested` (sent), `viewed` (the specialist opened it), `answered`. */
export const CONSULT_STATUSES = ['requested', 'viewed', 'answered'] as const;
export type ConsultStatus = (typeof CONSULT_STATUSES)[number];

/** A user as the archive knows them: the token's subject and display name. */
export const SharePerson = Type.Object(
  { subject: Type.String({ description: "the sign-in token's subject" }), name: Nullable(Type.String(), 'the display name') },
  closed,
);
export type SharePerson = Static<typeof SharePerson>;

/** A share credential in the URL: 43 characters of base64url (256 random bits). */
const Token = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'must be the token of a share link (43 characters of base64url, as printed in its URL)' });
const Pin = Type.String({ pattern: '^[0-9]{6}$', description: 'must be the 6-digit PIN printed on the result slip' });

// ------------------------------------------------------------------------------------------------
// Share links (staff)

export const ShareLinkJson = Type.Object(
  {
    id: Type.String({ description: "the link's id (not its token): for listing, revoking, the audit trail (`link:<id>`)" }),
    purpose: Type.Enum(SHARE_PURPOSES, { description: 'patient (the result slip) or consult (a second opinion)' }),
    studyInstanceUid: Type.String(),
    seriesInstanceUids: Nullable(Type.Array(Type.String()), 'the series it opens; null: the whole study'),
    includeReport: Type.Boolean({ description: "whether the study's signed report (PDF) is shared too" }),
    state: Type.Enum(LINK_STATES, { description: 'active, expired or revoked' }),
    createdAt: Iso('when it was made'),
    createdBy: SharePerson,
    expiresAt: Iso('when it stops working'),
    revokedAt: Nullable(Iso('when it was revoked')),
    revokedBy: Nullable(SharePerson),
    hasPin: Type.Boolean({ description: 'whether opening it needs a PIN' }),
    lockedUntil: Nullable(Iso('after too many wrong PINs, the link opens again at this time')),
    consultId: Nullable(Type.String(), 'the consult it was made for'),
  },
  closed,
);
export type ShareLinkJson = Static<typeof ShareLinkJson>;

export const CreateShareLinkBody = Type.Object(
  {
    studyInstanceUid: Uid('must be the Study Instance UID of a stored study'),
    purpose: Type.Optional(Type.Enum(SHARE_PURPOSES, { description: 'must be patient (default: the result slip, lives PACS_SHARE_PATIENT_DAYS) or consult (PACS_SHARE_CONSULT_DAYS)' })),
    seriesInstanceUids: Type.Optional(
      Type.Array(Uid('must be a Series Instance UID'), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'must list 1 to 1000 series of the study (leave it out for the whole study)' }),
    ),
    includeReport: Type.Optional(Type.Boolean({ description: "must be true (default) to share the study's signed report, or false" })),
    pin: Type.Optional(Type.Boolean({ description: 'must be true to protect the link with a 6-digit PIN the server draws (shown once, printed on the slip), or false (default)' })),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, description: 'must be the number of days the link works, 1 to PACS_SHARE_MAX_DAYS (default by purpose)' })),
  },
  { ...closed, description: 'must be {"studyInstanceUid","purpose"?,"seriesInstanceUids"?,"includeReport"?,"pin"?,"expiresInDays"?}' },
);
export type CreateShareLinkBody = Static<typeof CreateShareLinkBody>;

export const CreatedShareLink = Type.Object(
  {
    link: ShareLinkJson,
    token: Type.String({ description: 'the credential, shown this once (the archive keeps its SHA-256 only)' }),
    url: Type.String({ description: 'the short URL for the QR code: PACS_PUBLIC_BASE_URL + /s/{token}' }),
    pin: Nullable(Type.String(), 'the PIN, shown this once (the archive keeps a salted scrypt hash only)'),
    slip: Type.String({ description: 'where to POST {"token","pin"} for the printable result slip (PDF)' }),
  },
  closed,
);
export type CreatedShareLink = Static<typeof CreatedShareLink>;

export const ShareLinkList = Type.Object({ links: Type.Array(ShareLinkJson, { description: 'newest first' }) }, closed);
export type ShareLinkList = Static<typeof ShareLinkList>;
export const ShareLinkQuery = Type.Object({ study: Uid('must be the Study Instance UID whose links to list') }, closed);
export const ShareLinkIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: "the link's id" }) }, closed);
export const SlipQuery = Type.Object({ size: Type.Optional(Type.Enum(SLIP_SIZES, { description: 'must be A5 (default) or A4' })) }, closed);
export const SlipBody = Type.Object(
  {
    token: Token,
    pin: Type.Optional(Pin),
  },
  { ...closed, description: 'must be {"token","pin"?}: the token (and PIN) the link was made with, which the archive cannot show again' },
);
export type SlipBody = Static<typeof SlipBody>;

// ------------------------------------------------------------------------------------------------
// Opening a link (the patient's phone, the specialist's browser)

export const TokenParams = Type.Object({ token: Token }, closed);
export const OpenShareBody = Type.Object(
  { pin: Type.Optional(Pin) },
  { ...closed, description: 'must be {} or {"pin"} for a link with a PIN' },
);
export type OpenShareBody = Static<typeof OpenShareBody>;

export const SharedSeries = Type.Object(
  {
    seriesInstanceUid: Type.String(),
    modality: Nullable(Type.String()),
    seriesNumber: Nullable(Type.Integer()),
    seriesDescription: Nullable(Type.String()),
    numberOfInstances: Type.Integer(),
    thumbnail: Type.String({ description: "URL of the series' thumbnail (JPEG; with the link's credentials)" }),
    instances: Type.String({ description: "URL of the QIDO-RS search of the series' instances (with the link's credentials)" }),
  },
  closed,
);

export const SharedReport = Type.Object(
  {
    id: Type.String(),
    kind: Type.String({ description: 'endoscopy, pathology or radiology' }),
    title: Type.String({ description: 'the document title' }),
    signedAt: Iso('when the version in force was signed'),
    pdf: Type.String({ description: 'URL of its PDF (with the link credentials)' }),
  },
  closed,
);

/** What a link shows: everything the phone page needs besides the images themselves. */
export const SharedView = Type.Object(
  {
    linkId: Type.String(),
    purpose: Type.Enum(SHARE_PURPOSES),
    expiresAt: Iso('when the link stops working'),
    consultId: Nullable(Type.String(), 'the consult the link was made for'),
    hospital: Type.Object({ name: Type.String({ description: 'PACS_HOSPITAL_NAME' }), logo: Nullable(Type.String(), 'URL of PACS_HOSPITAL_LOGO_FILE') }, closed),
    study: Type.Object(
      {
        studyInstanceUid: Type.String(),
        studyDate: Nullable(Type.String(), 'YYYYMMDD'),
        studyTime: Nullable(Type.String()),
        studyDescription: Nullable(Type.String()),
        accessionNumber: Nullable(Type.String()),
        modalities: Type.Array(Type.String()),
        patientName: Nullable(Type.String(), 'DICOM PN (Family^Given^Middle); a pseudonym on a de-identified consult copy'),
        patientId: Nullable(Type.String()),
        patientBirthDate: Nullable(Type.String(), 'YYYYMMDD'),
        patientSex: Nullable(Type.String()),
      },
      closed,
    ),
    series: Type.Array(SharedSeries, { description: 'the series the link opens' }),
    reports: Type.Array(SharedReport, { description: 'signed reports of the study, when the link shares them' }),
    dicomweb: Type.String({ description: 'the DICOMweb root to use with the link credentials (QIDO-RS, WADO-RS, rendered, thumbnails)' }),
  },
  closed,
);
export type SharedView = Static<typeof SharedView>;

export const ShareSession = Type.Object(
  {
    accessToken: Type.String({ description: 'send as "Authorization: Bearer <accessToken>" (it starts with "share."); also set as an HttpOnly cookie honoured on GET and HEAD' }),
    tokenType: Type.Literal('Bearer'),
    expiresAt: Iso('when the session ends (never after the link)'),
    view: SharedView,
  },
  closed,
);
export type ShareSession = Static<typeof ShareSession>;

export const ReportIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: "the report's id" }) }, closed);

// ------------------------------------------------------------------------------------------------
// Consults

export const ConsultSpecialist = Type.Object(
  {
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "must be the sign-in subject of a user of this archive (leave it out for a specialist outside, reached by the consult link)" })),
    name: Text(128, 'must be the specialist\'s name'),
    contact: Type.Optional(Text(256, 'must be how to reach the specialist (e-mail, phone)')),
  },
  { ...closed, description: 'must be {"subject"?,"name","contact"?}' },
);
export type ConsultSpecialist = Static<typeof ConsultSpecialist>;

export const ConsultRegion = Type.Object(
  {
    seriesInstanceUid: Uid('must be the Series Instance UID of an image of the consult'),
    sopInstanceUid: Uid('must be the SOP Instance UID of the image'),
    frame: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'must be the 1-based frame of a multi-frame image' })),
    points: Type.Array(Type.Number({ minimum: 0, maximum: 1_000_000 }), {
      minItems: 2,
      maxItems: 2000,
      description: 'must be image pixel coordinates x1,y1,x2,y2,… (one point, a line, or a polygon)',
    }),
    label: Type.Optional(Text(64, 'must be a label')),
  },
  { ...closed, description: 'must be a region {"seriesInstanceUid","sopInstanceUid","frame"?,"points","label"?}' },
);
export type ConsultRegion = Static<typeof ConsultRegion>;

export const CreateConsultBody = Type.Object(
  {
    studyInstanceUid: Uid('must be the Study Instance UID of a stored study'),
    seriesInstanceUids: Type.Optional(Type.Array(Uid('must be a Series Instance UID'), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'must list 1 to 1000 series of the study (leave it out for the whole study)' })),
    specialist: ConsultSpecialist,
    message: Text(4000, 'must be the question for the specialist'),
    deidentify: Type.Optional(Type.Boolean({ description: 'must be true (default: a de-identified copy, PS3.15 Annex E Basic Profile) or false (the study as stored)' })),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, description: 'must be the number of days the consult link works (default PACS_SHARE_CONSULT_DAYS)' })),
  },
  { ...closed, description: 'must be {"studyInstanceUid","specialist","message","seriesInstanceUids"?,"deidentify"?,"expiresInDays"?}' },
);
export type CreateConsultBody = Static<typeof CreateConsultBody>;

export const AnswerConsultBody = Type.Object(
  {
    text: Text(8000, 'must be the answer'),
    regions: Type.Optional(Type.Array(ConsultRegion, { maxItems: 100, description: 'must be at most 100 regions on images of the consult' })),
  },
  { ...closed, description: 'must be {"text","regions"?}' },
);
export type AnswerConsultBody = Static<typeof AnswerConsultBody>;

export const ConsultAnswerJson = Type.Object(
  {
    text: Type.String(),
    regions: Type.Array(ConsultRegion, { description: "on the requester's side, on the original study's images (re-identified)" }),
    answeredAt: Iso('when it was answered'),
    answeredBy: Type.Object({ subject: Type.String({ description: 'the user, or link:<id> for an answer through the consult link' }), name: Nullable(Type.String()) }, closed),
  },
  closed,
);

export const ConsultCopyJson = Type.Object(
  {
    instances: Type.Integer({ description: 'instances in the de-identified copy' }),
    excluded: Type.Array(
      Type.Object({ seriesInstanceUid: Type.String(), sopInstanceUid: Type.String(), reason: Type.String() }, closed),
      { description: 'instances left out of the copy, with why (burned-in annotation, a document or report, too large)' },
    ),
    burnedInUnknown: Type.Integer({ description: 'copied instances whose Burned In Annotation (0028,0301) is absent: check their pixels' }),
  },
  closed,
);

export const ConsultJson = Type.Object(
  {
    id: Type.String(),
    status: Type.Enum(CONSULT_STATUSES, { description: 'requested, viewed or answered' }),
    requestedAt: Iso('when it was asked'),
    requestedBy: SharePerson,
    specialist: Type.Object({ subject: Nullable(Type.String()), name: Type.String(), contact: Nullable(Type.String()) }, closed),
    message: Type.String(),
    deidentified: Type.Boolean({ description: 'whether the specialist sees a de-identified copy' }),
    caseStudyInstanceUid: Type.String({ description: 'the study the specialist opens: the de-identified copy, or the original' }),
    originalStudyInstanceUid: Nullable(Type.String(), "the requester's study; null for the specialist"),
    copy: Nullable(ConsultCopyJson, 'the de-identified copy (requester only)'),
    linkId: Type.String({ description: 'the consult link (revoke it with DELETE /share/links/{id})' }),
    expiresAt: Iso('when the consult link stops working'),
    viewedAt: Nullable(Iso('when the specialist first opened it')),
    answeredAt: Nullable(Iso('when it was answered')),
    turnaroundSeconds: Nullable(Type.Integer(), 'from request to answer'),
    answer: Nullable(ConsultAnswerJson),
  },
  closed,
);
export type ConsultJson = Static<typeof ConsultJson>;

export const CreatedConsult = Type.Object(
  {
    consult: ConsultJson,
    link: Type.Object(
      {
        url: Type.String({ description: 'the consult link for the specialist: PACS_PUBLIC_BASE_URL + /s/{token} (send it; shown this once)' }),
        token: Type.String({ description: 'the credential, shown this once' }),
        expiresAt: Iso('when it stops working'),
      },
      closed,
    ),
  },
  closed,
);
export type CreatedConsult = Static<typeof CreatedConsult>;

export const ConsultList = Type.Object({ consults: Type.Array(ConsultJson, { description: 'newest first' }) }, closed);
export const ConsultQuery = Type.Object(
  {
    role: Type.Optional(Type.Enum(['requester', 'specialist'], { description: 'must be requester (default: the consults you asked for) or specialist (those asked of you)' })),
    study: Type.Optional(Uid('must be the Study Instance UID of the original study')),
  },
  closed,
);
export const ConsultIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: "the consult's id" }) }, closed);
