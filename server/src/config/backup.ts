/**
 * Backup section (PACS_BACKUP_*): the second store that holds a copy of every blob and the index
 * backups (a folder on another disk, or an S3 bucket elsewhere), how often the index is backed up and
 * how many generations are kept, and how long copies of deleted blobs stay (server/src/backup,
 * docs/operations.md). Off unless PACS_BACKUP_STORE is set.
 */
import path from 'node:path';
import { GiB, MiB, type EnvReader } from './env-reader.js';
import type { BlobStoreConfig } from './storage.js';

export interface BackupConfig {
  /** PACS_BACKUP_STORE=fs|s3: where the copies and index backups go; null (the default): no backup. */
  store: BlobStoreConfig | null;
  /** PACS_BACKUP_INDEX_INTERVAL_MINUTES: index backup schedule (default 1440 = daily); 0: only on request. */
  indexIntervalMinutes: number;
  /** PACS_BACKUP_INDEX_GENERATIONS: index backups kept on the backup store (default 7). */
  indexGenerations: number;
  /** PACS_BACKUP_KEEP_DELETED_DAYS: days the copy of a deleted or purged blob stays on the backup store (default 30). */
  keepDeletedDays: number;
  /** PACS_BACKUP_POLL_SECONDS: how often new instances and due copies are looked for (default 10). */
  pollSeconds: number;
  /** PACS_BACKUP_RECONCILE_MINUTES: full comparison of the index with the copies (new keys, deletions; default 15). */
  reconcileMinutes: number;
  /** PACS_BACKUP_CONCURRENCY: copies made at once by this process (default 2). */
  concurrency: number;
}

/** Reads the section; the backup folder must not be (or lie inside) the primary blob folder. */
export function readBackupConfig(read: EnvReader, dataDir: string, primary: BlobStoreConfig): BackupConfig {
  const kind = read.oneOf('PACS_BACKUP_STORE', ['none', 'fs', 's3'] as const, 'none');
  let store: BlobStoreConfig | null = null;
  if (kind === 'fs') {
    const root = path.resolve(dataDir, read.required('PACS_BACKUP_DIR', 'PACS_BACKUP_STORE=fs'));
    if (primary.kind === 'fs' && (isInside(root, primary.root) || isInside(primary.root, root))) {
      read.problems.push('PACS_BACKUP_DIR must be a folder outside the blob folder (PACS_BLOB_DIR), ideally on another disk');
    }
    store = { kind: 'fs', root };
  } else if (kind === 's3') {
    store = {
      kind: 's3',
      endPoint: read.required('PACS_BACKUP_S3_ENDPOINT', 'PACS_BACKUP_STORE=s3'),
      port: read.integer('PACS_BACKUP_S3_PORT', 9000, 1, 65535),
      useSSL: read.boolean('PACS_BACKUP_S3_USE_SSL', false),
      accessKey: read.required('PACS_BACKUP_S3_ACCESS_KEY', 'PACS_BACKUP_STORE=s3'),
      secretKey: read.required('PACS_BACKUP_S3_SECRET_KEY', 'PACS_BACKUP_STORE=s3'),
      bucket: read.string('PACS_BACKUP_S3_BUCKET', 'dicom-backup'),
      region: read.string('PACS_BACKUP_S3_REGION', 'us-east-1'),
      prefix: read.string('PACS_BACKUP_S3_PREFIX', ''),
      partSize: read.integer('PACS_BACKUP_S3_PART_SIZE', 16 * MiB, 5 * MiB, 5 * GiB),
    };
    if (primary.kind === 's3' && primary.endPoint === store.endPoint && primary.port === store.port && primary.bucket === store.bucket && primary.prefix === store.prefix) {
      read.problems.push('PACS_BACKUP_S3_BUCKET (with its endpoint and prefix) must differ from the primary bucket');
    }
  }
  const rawDays = read.string('PACS_BACKUP_KEEP_DELETED_DAYS', '30').trim();
  let keepDeletedDays = 30;
  if (!/^\d+(\.\d+)?$/.test(rawDays) || Number(rawDays) > 36500) {
    read.problems.push(`PACS_BACKUP_KEEP_DELETED_DAYS must be a number of days from 0 to 36500 (decimals allowed), got "${rawDays}"`);
  } else {
    keepDeletedDays = Number(rawDays);
  }
  return {
    store,
    indexIntervalMinutes: read.integer('PACS_BACKUP_INDEX_INTERVAL_MINUTES', 1440, 0, 60 * 24 * 366),
    indexGenerations: read.integer('PACS_BACKUP_INDEX_GENERATIONS', 7, 1, 1000),
    keepDeletedDays,
    pollSeconds: read.integer('PACS_BACKUP_POLL_SECONDS', 10, 1, 3600),
    reconcileMinutes: read.integer('PACS_BACKUP_RECONCILE_MINUTES', 15, 1, 7 * 24 * 60),
    concurrency: read.integer('PACS_BACKUP_CONCURRENCY', 2, 1, 64),
  };
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
