/**
 * The reports API's JSON on the wire (docs/api.md, "Reports (`/reports`)"), as JSON Schema (TypeBox):
 * the routes of reports/reports.routes.ts declare these as their Fastify `schema` (requests validated,
 * responses serialized, the OpenAPI document generated), and the viewer imports the derived types
 * (`import type`). Every object is closed. `description` texts are also the messages of a refused
 * request (reports.routes.ts names the field by its path, e.g. `content.lesions[0].sizeMm`).
 *
 * A report is about one study and has one kind: `endoscopy` (colonoscopy, structured after the ESGE
 * quality standards), `pathology` or `radiology`. Its content is versioned: version 1 is a draft until it
 * is signed (final); an amendment is the next version, a draft copied from the final one, and when it
 * is signed the version it replaces is `superseded` (still readable). Which codes the DICOM SR uses for
 * each value: reports/report-codes.ts.
 */
import { Type, type Static, type TSchema } from 'typebox';

const closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(schema: T, description?: string) => Type.Union([schema, Type.Null()], description === undefined ? {} : { description });
const Text = (maxLength: number, description: string) => Type.String({ maxLength, description: `${description} (text, at most ${maxLength} characters)` });
const Uid = (description: string) => Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description });

export const REPORT_KINDS = ['endoscopy', 'pathology', 'radiology'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
/** A version: `draft` (editable), `final` (signed, in force), `superseded` (signed, replaced by a later signed version). */
export const VERSION_STATUSES = ['draft', 'final', 'superseded'] as const;
export type VersionStatus = (typeof VERSION_STATUSES)[number];
/** A report: `draft` (nothing signed yet), `final` (version 1 signed), `amended` (a later version signed). FHIR DiagnosticReport.status uses the same words. */
export const REPORT_STATUSES = ['draft', 'final', 'amended'] as const;
export type ReportStatus = (typeof REPORT_STATUSES)[number];
export const REPORT_LANGUAGES = ['vi', 'en'] as const;

/** Colon segments (and the terminal ileum) as lesion locations and the extent reached; SNOMED CT codes in report-codes.ts. */
export const COLON_SEGMENTS = ['terminal-ileum', 'caecum', 'ascending', 'hepatic-flexure', 'transverse', 'splenic-flexure', 'descending', 'sigmoid', 'rectum'] as const;
export type ColonSegment = (typeof COLON_SEGMENTS)[number];
export const INDICATIONS = ['screening', 'positive-fit', 'surveillance', 'symptoms', 'therapeutic', 'other'] as const;
export const CAECAL_LANDMARKS = ['appendiceal-orifice', 'ileocaecal-valve', 'terminal-ileum'] as const;
/** Paris classification of superficial neoplastic lesions (Endoscopic Classification Review Group 2005). */
export const PARIS_CLASSES = ['0-Ip', '0-Isp', '0-Is', '0-IIa', '0-IIb', '0-IIc', '0-III', '0-IIa+IIc', '0-IIa+Is'] as const;
export const RESECTION_METHODS = ['not-resected', 'cold-snare', 'hot-snare', 'cold-forceps', 'hot-forceps', 'emr', 'piecemeal-emr', 'esd', 'biopsy-only'] as const;
export const RESECTION_COMPLETENESS = ['complete', 'incomplete', 'unknown'] as const;
/** Histology of a lesion (confirmed by pathology, or suspected: the endoscopist's optical diagnosis). */
export const HISTOLOGY_TYPES = [
  'adenoma',
  'tubular-adenoma',
  'tubulovillous-adenoma',
  'villous-adenoma',
  'traditional-serrated-adenoma',
  'sessile-serrated-lesion',
  'hyperplastic',
  'adenocarcinoma',
  'inflammatory',
  'hamartomatous',
  'normal-mucosa',
  'other',
] as const;
export type HistologyType = (typeof HISTOLOGY_TYPES)[number];
export const AI_DECISIONS = ['pending', 'accepted', 'rejected'] as const;
export const PATHOLOGY_GRADES = ['G1', 'G2', 'G3', 'G4', 'low-grade-dysplasia', 'high-grade-dysplasia'] as const;
export const SPECIMEN_COLLECTIONS = ['biopsy', 'polypectomy', 'excision', 'resection', 'cytology'] as const;
export const MEASUREMENT_TYPES = ['length', 'area'] as const;

export const CodedJson = Type.Object(
  {
    value: Type.String({ minLength: 1, maxLength: 16, description: 'the code value (DICOM SH: up to 16 characters)' }),
    scheme: Type.String({ minLength: 1, maxLength: 16, description: 'the coding scheme designator, e.g. SCT (SNOMED CT), DCM, LN (LOINC), ICDO3' }),
    meaning: Type.String({ minLength: 1, maxLength: 64, description: 'the code meaning (up to 64 characters)' }),
  },
  { ...closed, description: 'must be a code {"value","scheme","meaning"}' },
);
export type CodedJson = Static<typeof CodedJson>;

const imageRefProperties = {
  seriesInstanceUid: Uid("the Series Instance UID of the image (an image of the report's study)"),
  sopInstanceUid: Uid('the SOP Instance UID of the image'),
  sopClassUid: Type.Optional(Uid('the SOP Class UID (filled in by the server from the archive)')),
  frame: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'the 1-based frame number of a multi-frame image (video, slide tile); left out for single-frame images' })),
};
const IMAGE_REF_SHAPE = 'must be an image of the study {"seriesInstanceUid","sopInstanceUid","frame"}';
/** An image (or one frame of a multi-frame image: a video frame, a slide tile) of the report's study. */
export const ImageRef = Type.Object(imageRefProperties, { ...closed, description: IMAGE_REF_SHAPE });
export type ImageRef = Static<typeof ImageRef>;

export const KeyImage = Type.Object(
  { ...imageRefProperties, caption: Type.Optional(Text(200, 'what the image shows')) },
  { ...closed, description: 'must be a key image {"seriesInstanceUid","sopInstanceUid","frame","caption"}' },
);
export type KeyImage = Static<typeof KeyImage>;

const keyImages = Type.Optional(Type.Array(KeyImage, { maxItems: 24, description: 'must be a list of at most 24 key images (printed in the PDF, referenced by the SR)' }));
const language = Type.Optional(Type.Enum(REPORT_LANGUAGES, { description: 'must be vi (Vietnamese, default) or en: the language of the text and of the PDF labels' }));

// ---------------------------------------------------------------------------------------------------
// Endoscopy (colonoscopy), after the ESGE quality standards

export const Box = Type.Object(
  { x: Type.Number(), y: Type.Number(), width: Type.Number(), height: Type.Number() },
  { ...closed, description: 'pixels of the analysed frame: x, y of the top-left corner, width, height' },
);

export const AiFindingDecision = Type.Object(
  {
    report: Uid('the SOP Instance UID of the stored AI detection report (DICOM SR) in the study'),
    frame: Type.Integer({ minimum: 1, description: "the 1-based frame of the report's source image the detection is on" }),
    index: Type.Integer({ minimum: 1, description: "the detection's 1-based position among that frame's detections in the report" }),
    decision: Type.Enum(AI_DECISIONS, { description: 'must be pending, accepted or rejected' }),
    lesion: Type.Optional(Type.Integer({ minimum: 1, description: 'the 1-based number of the lesion an accepted finding is recorded as' })),
    // Filled in by the server from the stored SR (what was offered):
    reportSeriesInstanceUid: Type.Optional(Uid('the Series Instance UID of the AI report (filled in by the server)')),
    label: Type.Optional(Type.String({ maxLength: 64, description: "the model's label (filled in by the server)" })),
    score: Type.Optional(Type.Number({ description: "the model's score (filled in by the server)" })),
    box: Type.Optional(Box),
    source: Type.Optional(ImageRef),
    timeOffsetMs: Type.Optional(Type.Number({ description: 'milliseconds from the first frame of a recording (filled in by the server)' })),
    model: Type.Optional(Type.Object({ id: Type.String({ maxLength: 64 }), version: Type.String({ maxLength: 64 }) }, closed)),
  },
  { ...closed, description: 'must be an AI finding decision {"report","frame","index","decision"}' },
);
export type AiFindingDecision = Static<typeof AiFindingDecision>;

export const Lesion = Type.Object(
  {
    location: Type.Enum(COLON_SEGMENTS, { description: `must be a colon segment: ${COLON_SEGMENTS.join(', ')}` }),
    sizeMm: Type.Optional(Type.Number({ minimum: 0, maximum: 300, description: 'must be the size in mm (largest dimension), 0 to 300' })),
    paris: Type.Optional(Type.Enum(PARIS_CLASSES, { description: `must be a Paris class: ${PARIS_CLASSES.join(', ')}` })),
    resection: Type.Optional(
      Type.Object(
        {
          method: Type.Enum(RESECTION_METHODS, { description: `must be one of ${RESECTION_METHODS.join(', ')}` }),
          completeness: Type.Optional(Type.Enum(RESECTION_COMPLETENESS, { description: 'must be complete, incomplete or unknown' })),
          retrieved: Type.Optional(Type.Boolean({ description: 'true when the specimen was retrieved for histology' })),
        },
        { ...closed, description: 'must be {"method","completeness","retrieved"}' },
      ),
    ),
    histology: Type.Optional(
      Type.Object(
        {
          type: Type.Enum(HISTOLOGY_TYPES, { description: `must be one of ${HISTOLOGY_TYPES.join(', ')}` }),
          status: Type.Enum(['suspected', 'confirmed'], { description: 'must be suspected (optical diagnosis) or confirmed (by pathology)' }),
          dysplasia: Type.Optional(Type.Enum(['low-grade', 'high-grade'], { description: 'must be low-grade or high-grade' })),
        },
        { ...closed, description: 'must be {"type","status","dysplasia"}' },
      ),
    ),
    images: Type.Optional(Type.Array(ImageRef, { maxItems: 12, description: 'must be at most 12 images of the lesion' })),
    comment: Type.Optional(Text(2000, 'a comment on the lesion')),
  },
  { ...closed, description: 'must be a lesion {"location","sizeMm","paris","resection","histology","images"}' },
);
export type Lesion = Static<typeof Lesion>;

export const WithdrawalTime = Type.Object(
  {
    seconds: Nullable(Type.Number({ minimum: 0, maximum: 14_400 }), 'must be the withdrawal time in seconds (0 to 14400) or null'),
    source: Type.Enum(['manual', 'recording'], {
      description: 'must be manual (entered) or recording (computed by the server from the live recording: from the first caecal landmark photographed in it to its last frame)',
    }),
    recording: Type.Optional(
      Type.Object(
        {
          seriesInstanceUid: Type.String(),
          sopInstanceUid: Type.String(),
          fromFrame: Nullable(Type.Integer(), 'the frame of the first caecal landmark photographed in the recording (null: none yet)'),
          toFrame: Type.Integer({ description: 'the last frame of the recording' }),
          recordingSeconds: Type.Number({ description: 'the whole recording, from its Frame Time Vector' }),
        },
        { ...closed, description: 'the live recording the time was taken from (filled in by the server)' },
      ),
    ),
  },
  { ...closed, description: 'must be {"seconds","source"}' },
);
export type WithdrawalTime = Static<typeof WithdrawalTime>;

export const EndoscopyContent = Type.Object(
  {
    kind: Type.Literal('endoscopy'),
    language,
    procedure: Type.Optional(Type.Literal('colonoscopy', { description: 'must be colonoscopy' })),
    indication: Type.Optional(
      Type.Object(
        {
          category: Type.Optional(Type.Enum(INDICATIONS, { description: `must be one of ${INDICATIONS.join(', ')}` })),
          text: Type.Optional(Text(1000, 'the indication in words')),
        },
        { ...closed, description: 'must be {"category","text"}' },
      ),
    ),
    bowelPreparation: Type.Optional(
      Type.Object(
        {
          right: Type.Integer({ minimum: 0, maximum: 3, description: 'must be the Boston Bowel Preparation Scale score of the right colon, 0 to 3' }),
          transverse: Type.Integer({ minimum: 0, maximum: 3, description: 'must be the Boston Bowel Preparation Scale score of the transverse colon, 0 to 3' }),
          left: Type.Integer({ minimum: 0, maximum: 3, description: 'must be the Boston Bowel Preparation Scale score of the left colon, 0 to 3' }),
          total: Type.Optional(Type.Integer({ minimum: 0, maximum: 9, description: 'must be the sum of the three segment scores, 0 to 9 (computed by the server)' })),
        },
        { ...closed, description: 'must be the Boston Bowel Preparation Scale {"right","transverse","left"} (0 to 3 each)' },
      ),
    ),
    extent: Type.Optional(
      Type.Object(
        {
          reached: Type.Enum(COLON_SEGMENTS, { description: `must be the furthest segment reached: ${COLON_SEGMENTS.join(', ')}` }),
          limitation: Type.Optional(Text(500, 'why the caecum was not reached')),
        },
        { ...closed, description: 'must be {"reached","limitation"}' },
      ),
    ),
    landmarks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            landmark: Type.Enum(CAECAL_LANDMARKS, { description: `must be one of ${CAECAL_LANDMARKS.join(', ')}` }),
            image: Type.Optional(ImageRef),
          },
          { ...closed, description: 'must be a caecal landmark {"landmark","image"} (the image is its photo-documentation)' },
        ),
        { maxItems: 6, description: 'must be at most 6 caecal landmarks' },
      ),
    ),
    withdrawal: Type.Optional(WithdrawalTime),
    lesions: Type.Optional(Type.Array(Lesion, { maxItems: 50, description: 'must be at most 50 lesions' })),
    aiFindings: Type.Optional(Type.Array(AiFindingDecision, { maxItems: 500, description: 'must be at most 500 AI findings' })),
    keyImages,
    conclusion: Type.Optional(Text(4000, 'the conclusion')),
    recommendation: Type.Optional(Text(2000, 'the recommendation (surveillance interval, referral)')),
  },
  { ...closed, description: 'must be endoscopy report content' },
);
export type EndoscopyContent = Static<typeof EndoscopyContent>;

// ---------------------------------------------------------------------------------------------------
// Pathology

export const AnnotationRegionRef = Type.Object(
  {
    seriesInstanceUid: Uid('the Series Instance UID of the annotation instance'),
    sopInstanceUid: Uid('the SOP Instance UID of a Microscopy Bulk Simple Annotations instance of the study'),
    group: Type.Integer({ minimum: 1, description: 'the Annotation Group Number' }),
    annotation: Type.Optional(Type.Integer({ minimum: 1, description: 'the 1-based index of one annotation in the group (left out: the whole group)' })),
    // Filled in by the server from the stored instance:
    groupUid: Type.Optional(Type.String({ description: 'the Annotation Group UID (filled in by the server)' })),
    groupLabel: Type.Optional(Type.String({ description: 'the Annotation Group Label (filled in by the server)' })),
    ai: Type.Optional(Type.Boolean({ description: 'true when the group was made by an algorithm (Annotation Group Generation Type AUTOMATIC or SEMIAUTOMATIC; filled in by the server)' })),
  },
  { ...closed, description: 'must be an annotation region {"seriesInstanceUid","sopInstanceUid","group","annotation"}' },
);
export type AnnotationRegionRef = Static<typeof AnnotationRegionRef>;

export const PathologyContent = Type.Object(
  {
    kind: Type.Literal('pathology'),
    language,
    specimen: Type.Optional(
      Type.Object(
        {
          identifier: Type.Optional(Text(64, 'the specimen identifier')),
          description: Type.Optional(Text(1000, 'the specimen as received')),
          collection: Type.Optional(Type.Enum(SPECIMEN_COLLECTIONS, { description: `must be one of ${SPECIMEN_COLLECTIONS.join(', ')}` })),
          site: Type.Optional(CodedJson),
          siteText: Type.Optional(Text(200, 'the site in words')),
        },
        { ...closed, description: 'must be {"identifier","description","collection","site","siteText"}' },
      ),
    ),
    diagnosis: Type.Optional(
      Type.Object(
        { text: Text(4000, 'the diagnosis'), code: Type.Optional(CodedJson) },
        { ...closed, description: 'must be {"text","code"}' },
      ),
    ),
    grade: Type.Optional(Type.Enum(PATHOLOGY_GRADES, { description: `must be one of ${PATHOLOGY_GRADES.join(', ')}` })),
    findings: Type.Optional(
      Type.Array(
        Type.Object(
          {
            text: Text(4000, 'the finding'),
            code: Type.Optional(CodedJson),
            regions: Type.Optional(Type.Array(AnnotationRegionRef, { maxItems: 50, description: 'must be at most 50 annotation regions' })),
          },
          { ...closed, description: 'must be a finding {"text","code","regions"}' },
        ),
        { maxItems: 50, description: 'must be at most 50 findings' },
      ),
    ),
    keyImages,
    conclusion: Type.Optional(Text(4000, 'a comment')),
  },
  { ...closed, description: 'must be pathology report content' },
);
export type PathologyContent = Static<typeof PathologyContent>;

// ---------------------------------------------------------------------------------------------------
// Radiology

export const Measurement = Type.Object(
  {
    type: Type.Enum(MEASUREMENT_TYPES, { description: 'must be length or area' }),
    value: Type.Number({ minimum: 0, description: 'must be the value in mm (length) or mm² (area)' }),
    image: ImageRef,
    points: Type.Array(Type.Number(), {
      minItems: 4,
      maxItems: 2000,
      description: 'must be image pixel coordinates x1,y1,x2,y2,…: two points for a length, at least three for an area (a polygon)',
    }),
    label: Type.Optional(Text(64, 'a name for the measurement')),
  },
  { ...closed, description: 'must be a measurement {"type","value","image","points","label"}' },
);
export type Measurement = Static<typeof Measurement>;

export const RadiologyContent = Type.Object(
  {
    kind: Type.Literal('radiology'),
    language,
    procedure: Type.Optional(Text(200, 'the procedure')),
    procedureCode: Type.Optional(CodedJson),
    clinicalInformation: Type.Optional(Text(4000, 'the clinical information')),
    findings: Type.Optional(Text(10_000, 'the findings')),
    findingCodes: Type.Optional(Type.Array(CodedJson, { maxItems: 20, description: 'must be at most 20 coded findings' })),
    impression: Type.Optional(Text(4000, 'the impression')),
    measurements: Type.Optional(Type.Array(Measurement, { maxItems: 100, description: 'must be at most 100 measurements' })),
    keyImages,
  },
  { ...closed, description: 'must be radiology report content' },
);
export type RadiologyContent = Static<typeof RadiologyContent>;

export type ReportContent = EndoscopyContent | PathologyContent | RadiologyContent;

const CONTENT_SHAPE = 'must be report content: an object with "kind" (endoscopy, pathology or radiology) and the fields of that kind';

/** Content as responses carry it. */
export const ReportContentJson = Type.Union([EndoscopyContent, PathologyContent, RadiologyContent], { description: CONTENT_SHAPE });

/**
 * Content in a request: chosen by `kind` (if/then), so a mistake is reported for the field of the
 * right kind rather than as "matches none of three schemas".
 */
export const ReportContentInput = Type.Unsafe<ReportContent>({
  type: 'object',
  required: ['kind'],
  properties: { kind: Type.Enum(REPORT_KINDS, { description: 'must be endoscopy, pathology or radiology' }) },
  description: CONTENT_SHAPE,
  allOf: [
    { if: { properties: { kind: { const: 'endoscopy' } } }, then: EndoscopyContent },
    { if: { properties: { kind: { const: 'pathology' } } }, then: PathologyContent },
    { if: { properties: { kind: { const: 'radiology' } } }, then: RadiologyContent },
  ],
});

// ---------------------------------------------------------------------------------------------------
// Reports and versions

export const Person = Type.Object(
  { subject: Type.String({ description: "the token's subject (sub)" }), name: Nullable(Type.String(), 'the display name, when the token has one') },
  closed,
);
export type Person = Static<typeof Person>;

export const Signature = Type.Object(
  {
    signer: Person,
    signedAt: Type.String({ description: 'ISO 8601, UTC' }),
    contentSha256: Type.String({ description: 'SHA-256 (hex) of the content as canonical JSON (RFC 8785: keys sorted, no white space)' }),
  },
  closed,
);
export type Signature = Static<typeof Signature>;

export const DicomInstanceRef = Type.Object(
  {
    seriesInstanceUid: Type.String(),
    sopInstanceUid: Type.String(),
    sopClassUid: Type.String(),
    url: Type.String({ description: 'WADO-RS URL of the instance' }),
  },
  closed,
);

export const StoredDicom = Type.Object(
  {
    sr: DicomInstanceRef,
    pdf: DicomInstanceRef,
    stored: Type.Boolean({ description: 'false while the signed version is not yet stored in the study (sign again to retry)' }),
  },
  { ...closed, description: 'the DICOM objects of a signed version: a Comprehensive SR and an Encapsulated PDF in the study' },
);

export const ReportSummary = Type.Object(
  {
    title: Type.String({ description: 'the document title' }),
    code: CodedJson,
    conclusion: Nullable(Type.String(), 'the conclusion text (endoscopy: conclusion; pathology: diagnosis; radiology: impression)'),
    codes: Type.Array(CodedJson, { description: 'coded conclusions: findings, histology, diagnosis' }),
  },
  closed,
);
export type ReportSummary = Static<typeof ReportSummary>;

export const ReportVersionJson = Type.Object(
  {
    reportId: Type.String(),
    version: Type.Integer({ description: '1, 2, …' }),
    status: Type.Enum(VERSION_STATUSES, { description: 'draft, final or superseded' }),
    kind: Type.Enum(REPORT_KINDS),
    studyInstanceUid: Type.String(),
    revision: Type.Integer({ description: 'counts the saves of a draft: send it back with an update or a signature to refuse a lost update (409)' }),
    content: ReportContentJson,
    summary: ReportSummary,
    createdAt: Type.String({ description: 'ISO 8601, UTC' }),
    createdBy: Person,
    updatedAt: Type.String({ description: 'ISO 8601, UTC' }),
    updatedBy: Person,
    amends: Nullable(Type.Integer(), 'the version this one amends'),
    amendmentReason: Nullable(Type.String()),
    signature: Nullable(Signature),
    supersededAt: Nullable(Type.String(), 'ISO 8601, UTC'),
    supersededBy: Nullable(Type.Integer(), 'the version that replaced this one'),
    dicom: Nullable(StoredDicom),
    pdf: Type.String({ description: 'URL of this version as PDF' }),
  },
  closed,
);
export type ReportVersionJson = Static<typeof ReportVersionJson>;

export const VersionListItem = Type.Object(
  {
    version: Type.Integer(),
    status: Type.Enum(VERSION_STATUSES),
    createdAt: Type.String(),
    signature: Nullable(Signature),
    supersededAt: Nullable(Type.String()),
  },
  closed,
);

export const ReportJson = Type.Object(
  {
    id: Type.String(),
    studyInstanceUid: Type.String(),
    kind: Type.Enum(REPORT_KINDS),
    status: Type.Enum(REPORT_STATUSES, { description: 'draft (nothing signed yet), final (version 1 signed) or amended (a later version signed)' }),
    procedureDate: Type.String({ description: "YYYYMMDD: the study's date (the quality figures' period)" }),
    createdAt: Type.String({ description: 'ISO 8601, UTC' }),
    createdBy: Person,
    signedVersion: Nullable(Type.Integer(), 'the version in force (final); null until one is signed'),
    latestVersion: Type.Integer(),
    amendmentInProgress: Type.Boolean({ description: 'the latest version is a draft amending a signed one' }),
    versions: Type.Array(VersionListItem),
    /** The latest version, whole. */
    version: ReportVersionJson,
  },
  closed,
);
export type ReportJson = Static<typeof ReportJson>;

export const ReportList = Type.Object({ reports: Type.Array(ReportJson) }, closed);
export type ReportList = Static<typeof ReportList>;

// ---------------------------------------------------------------------------------------------------
// Requests

export const CreateReportBody = Type.Object(
  {
    studyInstanceUid: Uid('the Study Instance UID of a stored study'),
    kind: Type.Enum(REPORT_KINDS, { description: 'must be endoscopy, pathology or radiology' }),
    content: Type.Optional(ReportContentInput),
  },
  { ...closed, description: 'must be {"studyInstanceUid","kind","content"}' },
);
export type CreateReportBody = Static<typeof CreateReportBody>;

export const UpdateReportBody = Type.Object(
  {
    content: ReportContentInput,
    revision: Type.Optional(Type.Integer({ minimum: 0, description: 'the revision the change is based on (409 when the draft changed since)' })),
  },
  { ...closed, description: 'must be {"content","revision"}' },
);
export type UpdateReportBody = Static<typeof UpdateReportBody>;

export const SignReportBody = Type.Union(
  [Type.Object({ revision: Type.Optional(Type.Integer({ minimum: 0, description: 'the revision being signed (409 when the draft changed since)' })) }, closed), Type.Null()],
  { description: 'must be empty or {"revision"}' },
);
export type SignReportBody = Static<typeof SignReportBody>;

export const AmendReportBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 1000, description: 'is required: why the signed report is amended (1 to 1000 characters)' }) },
  { ...closed, description: 'must be {"reason"}' },
);
export type AmendReportBody = Static<typeof AmendReportBody>;

export const ReportIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: "the report's id" }) }, closed);
export const ReportVersionParams = Type.Object(
  { id: Type.String({ maxLength: 64, description: "the report's id" }), version: Type.Integer({ minimum: 1, description: 'must be a version number (1, 2, …)' }) },
  closed,
);
export const StudyParams = Type.Object({ study: Uid('must be a Study Instance UID') }, closed);

// ---------------------------------------------------------------------------------------------------
// AI findings offered for a study

export const OfferedAiFinding = Type.Object(
  {
    report: Type.Object({ seriesInstanceUid: Type.String(), sopInstanceUid: Type.String(), contentDate: Type.String(), contentTime: Type.String() }, closed),
    model: Type.Object({ id: Type.String(), version: Type.String() }, closed),
    source: ImageRef,
    frame: Type.Integer(),
    index: Type.Integer({ description: "1-based position among the frame's detections" }),
    label: Type.String(),
    score: Type.Number(),
    box: Box,
    timeOffsetMs: Nullable(Type.Number(), 'milliseconds from the first frame of a recording'),
  },
  closed,
);
export type OfferedAiFinding = Static<typeof OfferedAiFinding>;

export const AiFindingList = Type.Object({ findings: Type.Array(OfferedAiFinding) }, closed);
export type AiFindingList = Static<typeof AiFindingList>;

// ---------------------------------------------------------------------------------------------------
// Endoscopy quality figures

export const QualityQuery = Type.Object(
  {
    from: Type.String({ pattern: '^[0-9]{8}$', description: 'is required: the first procedure date, YYYYMMDD' }),
    to: Type.String({ pattern: '^[0-9]{8}$', description: 'is required: the last procedure date, YYYYMMDD' }),
    endoscopist: Type.Optional(Type.String({ maxLength: 256, description: "the endoscopist's subject (the signer of the report)" })),
  },
  closed,
);
export type QualityQuery = Static<typeof QualityQuery>;

export const QualityTarget = Type.Object(
  {
    minimum: Nullable(Type.Number(), 'the minimum standard (a rate 0 to 1, or seconds); null where the source sets none'),
    source: Type.String({ description: 'where the target comes from' }),
  },
  closed,
);

export const RateMeasure = Type.Object(
  {
    value: Nullable(Type.Number(), 'numerator / denominator, 0 to 1; null when the denominator is 0'),
    numerator: Type.Integer(),
    denominator: Type.Integer(),
    target: QualityTarget,
    met: Nullable(Type.Boolean(), 'null when there is no target or no data'),
  },
  closed,
);
export type RateMeasure = Static<typeof RateMeasure>;

export const MedianMeasure = Type.Object(
  {
    value: Nullable(Type.Number(), 'the median in seconds; null without data'),
    count: Type.Integer({ description: 'procedures with a withdrawal time that count' }),
    target: QualityTarget,
    met: Nullable(Type.Boolean()),
  },
  closed,
);
export type MedianMeasure = Static<typeof MedianMeasure>;

export const QualityFigures = Type.Object(
  {
    procedures: Type.Integer({ description: 'final colonoscopy reports in the period' }),
    adenomaDetectionRate: RateMeasure,
    polypDetectionRate: RateMeasure,
    caecalIntubationRate: RateMeasure,
    adequateBowelPreparationRate: RateMeasure,
    medianWithdrawalTimeSeconds: MedianMeasure,
    awaitingHistology: Type.Integer({ description: 'procedures with a resected lesion whose histology is only suspected' }),
  },
  closed,
);
export type QualityFigures = Static<typeof QualityFigures>;

export const QualityReport = Type.Object(
  {
    from: Type.String(),
    to: Type.String(),
    source: Type.String({ description: 'the ESGE paper the targets come from' }),
    definitions: Type.Record(Type.String(), Type.String()),
    endoscopists: Type.Array(Type.Object({ endoscopist: Person, figures: QualityFigures }, closed)),
    overall: QualityFigures,
  },
  closed,
);
export type QualityReport = Static<typeof QualityReport>;
