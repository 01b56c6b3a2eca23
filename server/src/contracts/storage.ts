/**
 * The storage API's JSON on the wire (docs/api.md, "Storage lifecycle"), as JSON Schema (TypeBox):
 * usage of the archive in total, by modality, by transfer syntax and per study, and the housekeeping
 * runs (lossless recompression, retention expiry). The viewer's `#/storage` page imports the derived
 * types (`import type`). Every object is closed; `description` texts are also the messages of a refused
 * request. No patient data: studies are named by UID and date only.
 */
import { Type, type Static } from 'typebox';

const closed = { additionalProperties: false } as const;
const Uid = (description: string) => Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description });
const Bytes = (description: string) => Type.Number({ minimum: 0, description });

const figures = {
  instances: Type.Integer({ minimum: 0 }),
  bytes: Bytes('bytes of the stored files now'),
  receivedBytes: Bytes('bytes of the files as received (recompressed ones at their original size)'),
  savedBytes: Bytes('receivedBytes − bytes: what recompression saved'),
  recompressedInstances: Type.Integer({ minimum: 0, description: 'instances whose stored file is a lossless recompression of the one received' }),
};

export const UsageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'must be a whole number of studies from 1 to 1000 (largest first; default 50)' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'must be a whole number of studies to skip, 0 or more' })),
  },
  closed,
);
export type UsageQuery = Static<typeof UsageQuery>;

export const StorageUsageJson = Type.Object(
  {
    total: Type.Object(
      {
        ...figures,
        studies: Type.Integer({ minimum: 0 }),
        series: Type.Integer({ minimum: 0 }),
        rejectedInstances: Type.Integer({ minimum: 0, description: 'hidden by a rejection note, stored until restored or purged' }),
        rejectedBytes: Bytes('bytes of the rejected instances'),
        pendingBlobDeletes: Type.Integer({ minimum: 0, description: 'files of removed or recompressed instances still to delete' }),
        conversionsUnderWay: Type.Integer({ minimum: 0, description: 'recompressions written but not yet swapped in (or interrupted)' }),
      },
      closed,
    ),
    byModality: Type.Array(Type.Object({ modality: Type.String({ description: 'empty when the series has none' }), ...figures }, closed)),
    byTransferSyntax: Type.Array(Type.Object({ transferSyntaxUid: Type.String(), ...figures }, closed)),
    studies: Type.Array(Type.Object({ studyInstanceUid: Type.String(), studyDate: Type.Union([Type.String(), Type.Null()]), modalities: Type.Union([Type.String(), Type.Null()]), ...figures }, closed), {
      description: 'largest studies first (limit, offset)',
    }),
  },
  closed,
);
export type StorageUsageJson = Static<typeof StorageUsageJson>;

export const StudyUsageParams = Type.Object({ study: Uid('must be a Study Instance UID (digits and dots, at most 64 characters)') }, closed);

export const StudyUsageJson = Type.Object(
  {
    studyInstanceUid: Type.String(),
    studyDate: Type.Union([Type.String(), Type.Null()]),
    modalities: Type.Union([Type.String(), Type.Null()]),
    ...figures,
    rejectedInstances: Type.Integer({ minimum: 0 }),
    series: Type.Array(Type.Object({ seriesInstanceUid: Type.String(), modality: Type.Union([Type.String(), Type.Null()]), ...figures }, closed)),
    byTransferSyntax: Type.Array(Type.Object({ transferSyntaxUid: Type.String(), ...figures }, closed)),
  },
  closed,
);
export type StudyUsageJson = Static<typeof StudyUsageJson>;

/** What the last (or current) housekeeping run did, and the rules in force. */
export const HousekeepingStatusJson = Type.Object(
  {
    rules: Type.Object(
      {
        compression: Type.Union([
          Type.Object({ target: Type.String(), modalities: Type.Array(Type.String()), sopClasses: Type.Array(Type.String()), minAgeDays: Type.Integer() }, closed),
          Type.Null(),
        ]),
        retention: Type.Union([Type.Object({ years: Type.Integer(), modalities: Type.Array(Type.String()), sopClasses: Type.Array(Type.String()) }, closed), Type.Null()]),
        lossy: Type.Optional(
          Type.Union([
            Type.Object(
              {
                jpegQuality: Type.Integer(),
                j2kRatio: Type.Integer(),
                minPsnr: Type.Number(),
                modalities: Type.Array(Type.String()),
                sopClasses: Type.Array(Type.String()),
                minAgeDays: Type.Integer(),
                video: Type.Optional(
                  Type.Object(
                    {
                      crf: Type.Integer(),
                      preset: Type.String(),
                      maxKbps: Type.Integer({ description: '0: only H.264 Level 4.1\'s own cap' }),
                      ffmpeg: Type.Union([Type.Literal('available'), Type.Literal('ffmpeg not available'), Type.Literal('not checked')], {
                        description: 'whether ffmpeg and ffprobe were found when the last run started (videos are skipped without them)',
                      }),
                    },
                    closed,
                  ),
                ),
              },
              closed,
            ),
            Type.Null(),
          ]),
        ),
        intervalSeconds: Type.Integer(),
      },
      closed,
    ),
    run: Type.Union([
      Type.Object(
        {
          id: Type.String(),
          state: Type.Union([Type.Literal('running'), Type.Literal('finished')]),
          startedAt: Type.String(),
          finishedAt: Type.Union([Type.String(), Type.Null()]),
          recompressed: Type.Integer({ minimum: 0 }),
          skipped: Type.Integer({ minimum: 0, description: 'instances a rule selected that cannot be recompressed losslessly (reasons in skipReasons)' }),
          failed: Type.Integer({ minimum: 0 }),
          bytesBefore: Bytes('bytes of the files recompressed, before'),
          bytesAfter: Bytes('and after'),
          expired: Type.Integer({ minimum: 0, description: 'instances rejected with 113039 Data Retention Policy Expired' }),
          lossy: Type.Optional(Type.Integer({ minimum: 0, description: 'instances replaced by a lossy compressed copy with a new SOP Instance UID (the original rejected with 113039)' })),
          skipReasons: Type.Record(Type.String(), Type.Integer()),
        },
        closed,
      ),
      Type.Null(),
    ]),
  },
  closed,
);
export type HousekeepingStatusJson = Static<typeof HousekeepingStatusJson>;
