/**
 * The backup's administrators' API on the wire (docs/api.md, "Backup"): `GET /api/backup/status` (the
 * replication lag, the index backups), `POST /api/backup/index-backups` (take one now) and
 * `POST /api/backup/verify` (fsck of the copies). Objects are closed; `description` texts are also the
 * messages of a refused request. No patient data: blob keys are opaque.
 */
import { Type, type Static } from 'typebox';

const closed = { additionalProperties: false } as const;
const Iso = (description: string) => Type.Union([Type.String(), Type.Null()], { description: `${description} (ISO 8601, UTC), null: none` });

export const IndexGenerationJson = Type.Object(
  {
    id: Type.String({ description: 'the backup (its creation time)' }),
    key: Type.String({ description: 'object key on the backup store' }),
    engine: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')]),
    createdAt: Type.String({ description: 'when the snapshot was taken (ISO 8601, UTC)' }),
    bytes: Type.Integer({ description: 'size on the backup store (SQLite: gzip)' }),
    sha256: Type.String(),
    instances: Type.Union([Type.Integer(), Type.Null()], { description: 'instances in the backed-up index (SQLite)' }),
    tables: Type.Array(Type.String(), { description: 'tables in the snapshot: the catalog and every side store (audit trail included)' }),
  },
  closed,
);
export type IndexGenerationJson = Static<typeof IndexGenerationJson>;

export const BackupStatusJson = Type.Object(
  {
    enabled: Type.Boolean({ description: 'false: no backup store configured (PACS_BACKUP_STORE)' }),
    store: Type.Union([Type.String(), Type.Null()], { description: 'the backup store: fs:<folder> or s3:<endpoint>/<bucket> (no credentials)' }),
    copies: Type.Union([
      Type.Object(
        {
          pending: Type.Integer({ description: 'blobs not yet copied' }),
          failing: Type.Integer({ description: 'pending copies whose last attempt failed (retried with back-off)' }),
          copied: Type.Integer(),
          deletedKept: Type.Integer({ description: 'copies of deleted blobs kept for the retention' }),
          bytesCopied: Type.Integer(),
          oldestPendingAt: Iso('when the oldest pending copy was queued'),
          lagSeconds: Type.Integer({ description: 'age of the oldest pending copy; 0 when none is pending' }),
          lastCopiedAt: Iso('the last copy made'),
          lastError: Type.Union([Type.String(), Type.Null()], { description: 'why the latest failing copy failed (no patient data)' }),
          passError: Type.Union([Type.String(), Type.Null()], { description: 'why the last pass over the index failed, if it did' }),
          keepDeletedDays: Type.Number(),
        },
        closed,
      ),
      Type.Null(),
    ]),
    indexBackups: Type.Union([
      Type.Object(
        {
          intervalMinutes: Type.Integer({ description: '0: only on request' }),
          generationsKept: Type.Integer(),
          inProgress: Type.Boolean(),
          last: Type.Union([IndexGenerationJson, Type.Null()], { description: 'the newest index backup on the backup store' }),
          lastAttemptAt: Iso('the last index backup attempt'),
          lastError: Type.Union([Type.String(), Type.Null()], { description: 'why the last attempt failed, when it did' }),
          nextDueAt: Iso('when the schedule takes the next one'),
          generations: Type.Integer({ description: 'index backups on the backup store' }),
        },
        closed,
      ),
      Type.Null(),
    ]),
  },
  closed,
);
export type BackupStatusJson = Static<typeof BackupStatusJson>;

export const BackupVerifyQuery = Type.Object(
  {
    checksums: Type.Optional(Type.Boolean({ description: 'checksums must be true or false (true: read every copy and compare its sha256)' })),
  },
  closed,
);
export type BackupVerifyQuery = Static<typeof BackupVerifyQuery>;

export const BackupVerifyJson = Type.Object(
  {
    indexedBlobs: Type.Integer(),
    present: Type.Integer({ description: 'indexed blobs with a copy of the right size' }),
    missing: Type.Integer({ description: 'indexed blobs without a copy (pending ones included)' }),
    pending: Type.Integer({ description: 'of the missing: not yet copied (replication lag)' }),
    sizeMismatch: Type.Integer(),
    checksumMismatch: Type.Integer(),
    checksumsVerified: Type.Integer(),
    problems: Type.Array(
      Type.Object(
        {
          blobKey: Type.String(),
          problem: Type.Union([Type.Literal('missing'), Type.Literal('size-mismatch'), Type.Literal('checksum-mismatch'), Type.Literal('unreadable')]),
        },
        closed,
      ),
      { description: 'at most 100' },
    ),
  },
  closed,
);
export type BackupVerifyJson = Static<typeof BackupVerifyJson>;
