/** The backup section as an administrator configures it: off by default, problems named at start. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';

const cwd = '/srv/pacs';

describe('backup configuration (PACS_BACKUP_*)', () => {
  it('is off by default, with a daily index backup and 30 days of deleted copies once a store is set', () => {
    expect(loadConfig({}, cwd).backup.store).toBeNull();
    const config = loadConfig({ PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: '/mnt/backup/pacs' }, cwd);
    expect(config.backup).toMatchObject({ store: { kind: 'fs', root: '/mnt/backup/pacs' }, indexIntervalMinutes: 1440, indexGenerations: 7, keepDeletedDays: 30 });
  });

  it('refuses a backup folder inside the blob folder, a missing folder, and a bad retention, all at once', () => {
    expect(() => loadConfig({ PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: 'blobs/copy', PACS_BACKUP_KEEP_DELETED_DAYS: 'soon' }, cwd)).toThrow(/PACS_BACKUP_DIR must be a folder outside the blob folder[\s\S]*PACS_BACKUP_KEEP_DELETED_DAYS/);
    expect(() => loadConfig({ PACS_BACKUP_STORE: 'fs' }, cwd)).toThrow(/PACS_BACKUP_DIR is required when PACS_BACKUP_STORE=fs/);
    expect(() => loadConfig({ PACS_BACKUP_STORE: 'tape' }, cwd)).toThrow(/PACS_BACKUP_STORE must be one of none, fs, s3/);
  });

  it('needs the S3 endpoint and keys, and a bucket other than the primary one', () => {
    expect(() => loadConfig({ PACS_BACKUP_STORE: 's3' }, cwd)).toThrow(/PACS_BACKUP_S3_ENDPOINT is required[\s\S]*PACS_BACKUP_S3_ACCESS_KEY/);
    const s3 = { PACS_S3_ENDPOINT: 'minio', PACS_S3_ACCESS_KEY: 'a', PACS_S3_SECRET_KEY: 'b', PACS_S3_BUCKET: 'dicom' };
    const backup = { PACS_BACKUP_STORE: 's3', PACS_BACKUP_S3_ENDPOINT: 'minio', PACS_BACKUP_S3_ACCESS_KEY: 'a', PACS_BACKUP_S3_SECRET_KEY: 'b' };
    expect(() => loadConfig({ PACS_BLOB_STORE: 's3', ...s3, ...backup, PACS_BACKUP_S3_BUCKET: 'dicom' }, cwd)).toThrow(/must differ from the primary bucket/);
    expect(loadConfig({ PACS_BLOB_STORE: 's3', ...s3, ...backup }, cwd).backup.store).toMatchObject({ kind: 's3', bucket: 'dicom-backup' });
  });
});
