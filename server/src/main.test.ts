/** What an administrator sees when starting the server with a broken configuration. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './test-support/shared-data.js';

describe('server start-up', () => {
  it('refuses a broken configuration, naming every problem at once, before listening', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/main.ts')], {
      cwd: repoRoot,
      env: { ...process.env, PACS_PORT: 'http', PACS_INDEX: 'postgres', PACS_BLOB_STORE: 'minio' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('Invalid configuration');
    expect(result.stderr).toContain('PACS_PORT must be a whole number');
    expect(result.stderr).toContain('PACS_POSTGRES_URL is required');
    expect(result.stderr).toContain('PACS_BLOB_STORE must be one of fs, s3');
  });
});
