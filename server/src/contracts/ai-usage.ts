/**
 * "AI in use, measured" on the wire (docs/api.md, "AI in use"): a clinician's verdict on one stored AI
 * finding, and the administrators' figures per model version. TypeBox schemas, declared by
 * ai-usage/ai-usage.routes.ts as its Fastify `schema`; the viewer imports the types (`import type`).
 *
 * A finding is named by the stored AI result that holds it and an item within it:
 * - a detection report (TID 1500 Comprehensive 3D SR): `{frame}-{index}`, the 1-based frame of its
 *   source image and the detection's 1-based position among that frame's detections (the numbering of
 *   the report editors' AI findings and of the viewer's AI panel);
 * - a Microscopy Bulk Simple Annotations instance: `{group}` (an AI annotation group as a whole, the
 *   unit a pathology report cites) or `{group}-{annotation}` (one annotation of the group).
 */
import { Type, type Static } from 'typebox';

const closed = { additionalProperties: false } as const;

export const AI_VERDICTS = ['right', 'wrong'] as const;
export type AiVerdict = (typeof AI_VERDICTS)[number];

export const FindingParams = Type.Object(
  {
    sop: Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'must be the SOP Instance UID of a stored AI result (detection SR or bulk annotations)' }),
    item: Type.String({ pattern: '^[0-9]{1,9}(-[0-9]{1,9})?$', description: 'must be an item of the AI result: {frame}-{index} (detection report) or {group}[-{annotation}] (annotations)' }),
  },
  closed,
);
export type FindingParams = Static<typeof FindingParams>;

export const VerdictBody = Type.Object(
  {
    verdict: Type.Union(
      AI_VERDICTS.map((v) => Type.Literal(v)),
      { description: 'is required: right (the finding is true: counted as accepted) or wrong (counted as rejected)' },
    ),
    comment: Type.Optional(Type.String({ maxLength: 500, description: 'a short note (at most 500 characters; no patient data)' })),
  },
  { ...closed, description: 'must be {"verdict":"right"|"wrong","comment"?}' },
);
export type VerdictBody = Static<typeof VerdictBody>;

const Model = Type.Object({ id: Type.String(), version: Type.String() }, closed);

export const VerdictResult = Type.Object(
  {
    finding: Type.Object(
      {
        sopInstanceUid: Type.String(),
        item: Type.String(),
        studyInstanceUid: Type.String(),
        seriesInstanceUid: Type.String(),
        model: Model,
        label: Type.String({ description: "the model's label of the finding" }),
      },
      closed,
    ),
    decision: Type.Union([Type.Literal('accepted'), Type.Literal('rejected')]),
    decidedAt: Type.String({ description: 'ISO 8601' }),
    decidedBy: Type.Object({ subject: Type.String(), name: Type.Union([Type.String(), Type.Null()]) }, closed),
  },
  closed,
);
export type VerdictResult = Static<typeof VerdictResult>;

export const UsageQuery = Type.Object(
  {
    from: Type.String({ pattern: '^[0-9]{8}$', description: 'is required: the first day, YYYYMMDD (the server\'s local day)' }),
    to: Type.String({ pattern: '^[0-9]{8}$', description: 'is required: the last day, YYYYMMDD (the server\'s local day)' }),
  },
  closed,
);
export type UsageQuery = Static<typeof UsageQuery>;

export const ModelUsage = Type.Object(
  {
    model: Model,
    shown: Type.Integer({ description: 'findings first shown to a user in the period' }),
    accepted: Type.Integer({ description: 'findings whose latest decision, made in the period, is accepted (report) or right (verdict)' }),
    rejected: Type.Integer({ description: 'findings whose latest decision, made in the period, is rejected (report) or wrong (verdict)' }),
    acceptanceRate: Type.Union([Type.Number(), Type.Null()], { description: 'accepted / (accepted + rejected); null without decisions' }),
    testSet: Type.Union(
      [
        Type.Object(
          {
            split: Type.Union([Type.String(), Type.Null()], { description: "the model card's test split" }),
            precisionAtThreshold: Type.Union([Type.Number(), Type.Null()], { description: 'precision at the operating threshold on the test split: what the acceptance rate is compared with' }),
            card: Type.Union([Type.String(), Type.Null()]),
          },
          closed,
        ),
        Type.Null(),
      ],
      { description: "the model card's test-set figures (models/manifest.json), when this server runs that model id and version" },
    ),
  },
  closed,
);
export type ModelUsage = Static<typeof ModelUsage>;

export const UsageReport = Type.Object(
  {
    from: Type.String(),
    to: Type.String(),
    models: Type.Array(ModelUsage),
    definitions: Type.Record(Type.String(), Type.String()),
  },
  closed,
);
export type UsageReport = Static<typeof UsageReport>;
