/**
 * The AI API's JSON on the wire (docs/api.md, "AI" and "Slide analysis"), defined once as JSON Schema
 * (TypeBox): the routes declare these as their Fastify `schema` (requests validated, responses
 * serialized by them, the OpenAPI document generated from them), and the TypeScript types derived
 * from them are what the server returns and what the viewer imports (`import type`, erased at build).
 *
 * Every object is closed (`additionalProperties: false`): a field the server adds must be added here
 * first, or the response serializer leaves it out (and the test app's response check fails).
 * `description` texts are also the messages of a refused request (http/schema-errors.ts).
 */
import { Type, type Static, type TSchema } from 'typebox';

const closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ModelRef = Type.Object({ id: Type.String(), version: Type.String() }, closed);

export const Box = Type.Object(
  { x: Type.Number(), y: Type.Number(), width: Type.Number(), height: Type.Number() },
  { ...closed, description: 'Pixels of the analysed image: x, y of the top-left corner, width, height' },
);

export const Detection = Type.Object({ label: Type.String(), score: Type.Number(), box: Box }, closed);
export type Detection = Static<typeof Detection>;

export const Timings = Type.Object(
  { preprocessMs: Type.Number(), queueMs: Type.Number(), modelMs: Type.Number(), postprocessMs: Type.Number() },
  closed,
);
export type Timings = Static<typeof Timings>;

/** `POST /ai/models/{id}/detect`. */
export const DetectionResult = Type.Object(
  { model: ModelRef, width: Type.Integer(), height: Type.Integer(), detections: Type.Array(Detection), timings: Timings },
  closed,
);
export type DetectionResult = Static<typeof DetectionResult>;

/** `POST /ai/models/{id}/classify`: a tile classifier's answer for one image. */
export const ClassificationResult = Type.Object(
  {
    model: ModelRef,
    width: Type.Integer(),
    height: Type.Integer(),
    probabilities: Type.Array(Type.Number(), { description: "One probability per label, in the model's label order" }),
    positiveScore: Type.Number({ description: "Sum of the probabilities of the model's output.positiveLabels" }),
    label: Type.String({ description: 'The most probable label' }),
    timings: Timings,
  },
  closed,
);
export type ClassificationResult = Static<typeof ClassificationResult>;

/** A model as `GET /ai/models` lists it (the manifest entry without its file name). */
export const ModelInfo = Type.Object(
  {
    id: Type.String(),
    version: Type.String(),
    task: Type.Union([Type.Literal('detection'), Type.Literal('classification')]),
    description: Type.String(),
    labels: Type.Array(Type.String()),
    input: Type.Object(
      {
        width: Type.Integer(),
        height: Type.Integer(),
        layout: Type.String(),
        colorSpace: Type.String(),
        resize: Type.String(),
        pixelSpacingMm: Type.Optional(Type.Number({ description: 'Training resolution in mm per input pixel (slide models)' })),
      },
      closed,
    ),
    // The output contract differs per format (mask-components, class-probabilities): left open.
    output: Type.Object({ name: Type.String(), format: Type.String() }, { additionalProperties: true }),
    operatingThreshold: Type.Number(),
    sha256: Type.String(),
    licence: Type.String(),
    trainingData: Type.String(),
    card: Type.String(),
    metrics: Type.Record(Type.String(), Type.Unknown()),
  },
  closed,
);
export type ModelInfo = Static<typeof ModelInfo>;

export const ModelList = Type.Object({ models: Type.Array(ModelInfo) }, closed);
export type ModelList = Static<typeof ModelList>;

export const SourceFrame = Type.Object(
  { studyInstanceUid: Type.String(), seriesInstanceUid: Type.String(), sopInstanceUid: Type.String(), sopClassUid: Type.String(), frame: Type.Integer() },
  closed,
);

/** A stored detection report (DICOM SR) as the per-frame API shows it. */
export const FrameReport = Type.Object(
  {
    model: ModelRef,
    source: SourceFrame,
    report: Type.Object(
      {
        studyInstanceUid: Type.String(),
        seriesInstanceUid: Type.String(),
        sopInstanceUid: Type.String(),
        contentDate: Type.String(),
        contentTime: Type.String(),
        url: Type.String({ description: 'WADO-RS URL of the SR instance' }),
      },
      closed,
    ),
    detections: Type.Array(Detection),
  },
  closed,
);
export type FrameReport = Static<typeof FrameReport>;

/** `POST .../frames/{n}/detections`: 201 with the new report, 200 with the one stored before. */
export const FrameDetectionOutcome = Type.Object(
  {
    created: Type.Boolean(),
    model: ModelRef,
    source: SourceFrame,
    report: FrameReport.properties.report,
    detections: Type.Array(Detection),
    timings: Type.Optional(Timings),
  },
  closed,
);
export type FrameDetectionOutcome = Static<typeof FrameDetectionOutcome>;

/** `GET .../frames/{n}/detections`. */
export const FrameReports = Type.Object({ results: Type.Array(FrameReport) }, closed);

export const FrameDetectionQuery = Type.Object(
  { model: Type.String({ minLength: 1, description: 'is required: the id of a model from GET /ai/models' }) },
  { additionalProperties: true },
);

export const DetectQuery = Type.Object(
  { minScore: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'must be a number between 0 and 1' })) },
  { additionalProperties: true },
);

// ---------------------------------------------------------------------------------------------------
// Slide analysis jobs

export const JOB_STATES = ['queued', 'running', 'finalizing', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const Region = Type.Object(
  {
    x: Type.Integer({ description: 'whole pixels of the base level' }),
    y: Type.Integer({ description: 'whole pixels of the base level' }),
    width: Type.Integer({ description: 'whole pixels of the base level' }),
    height: Type.Integer({ description: 'whole pixels of the base level' }),
  },
  { ...closed, description: 'must be {"x","y","width","height"}: whole numbers, in pixels of the slide\'s base level' },
);
export type Region = Static<typeof Region>;

const CREATE_BODY_SHAPE = 'must be a JSON object such as {"model":"dark-spot"}';

/** `POST /ai/studies/{s}/series/{se}/analyses` body (the model may also come as `?model=`; no body at all is allowed). */
export const CreateAnalysisBody = Type.Union(
  [
    Type.Object(
      {
        model: Type.Optional(Type.String({ minLength: 1, description: 'the id of a model from GET /ai/models' })),
        region: Type.Optional(Nullable(Region)),
      },
      { additionalProperties: true, description: CREATE_BODY_SHAPE },
    ),
    Type.Null(),
  ],
  { description: CREATE_BODY_SHAPE },
);

export const CreateAnalysisQuery = Type.Object(
  {
    model: Type.Optional(Type.String({ description: 'the id of a model from GET /ai/models' })),
    recompute: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'must be true or false' })),
  },
  { additionalProperties: true },
);

export const JobLinks = Type.Object(
  {
    self: Type.String(),
    events: Type.String({ description: 'Server-Sent Events of the progress' }),
    geojson: Type.Optional(Type.String({ description: 'the result as GeoJSON (when completed)' })),
    annotations: Type.Optional(Type.String({ description: 'WADO-RS URL of the Microscopy Bulk Simple Annotations instance' })),
  },
  closed,
);

const jobProperties = {
  id: Type.String(),
  state: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('finalizing'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')]),
  reason: Nullable(Type.String()),
  studyInstanceUid: Type.String(),
  seriesInstanceUid: Type.String(),
  model: ModelRef,
  region: Nullable(Region),
  level: Nullable(Type.Object({ index: Type.Integer(), spacingMm: Type.Number(), windowSize: Type.Integer(), overlap: Type.Integer() }, closed)),
  progress: Type.Object(
    {
      unitsDone: Type.Integer(),
      unitsTotal: Type.Integer(),
      tilesDone: Type.Integer(),
      tilesTotal: Type.Integer(),
      tilesSkippedAsBackground: Type.Integer(),
      annotations: Type.Integer(),
      fraction: Type.Number(),
    },
    closed,
  ),
  createdAt: Type.String(),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  elapsedMs: Type.Number(),
  estimatedRemainingMs: Nullable(Type.Number()),
  result: Nullable(Type.Object({ seriesInstanceUid: Type.String(), sopInstanceUid: Type.String() }, closed)),
  duplicateCompletions: Type.Integer(),
};

/** A job's state and progress, without links (pathology/analysis-service.ts builds it). */
export const JobView = Type.Object(jobProperties, closed);
export type JobView = Static<typeof JobView>;

/** A job as the API returns it. */
export const AnalysisJob = Type.Object({ ...jobProperties, links: JobLinks }, closed);
export type AnalysisJob = Static<typeof AnalysisJob>;

/** The answer to a create: whether this request created the job. */
export const CreatedAnalysisJob = Type.Object({ created: Type.Boolean(), ...jobProperties, links: JobLinks }, closed);

export const AnalysisJobList = Type.Object({ analyses: Type.Array(AnalysisJob) }, closed);

// ---------------------------------------------------------------------------------------------------
// Shared

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String({ description: 'stable error code (server/src/errors.ts)' }), message: Type.String() }, closed) },
  closed,
);

export const StudySeriesParams = Type.Object({ study: Type.String(), series: Type.String() }, closed);
export const FrameParams = Type.Object({ study: Type.String(), series: Type.String(), instance: Type.String(), frame: Type.String() }, closed);
export const IdParams = Type.Object({ id: Type.String() }, closed);
