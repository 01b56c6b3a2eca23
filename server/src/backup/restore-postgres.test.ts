/**
 * Backup and restore with the production index, PostgreSQL (the machine's server, a schema of its own):
 * the index backup is a `pg_dump` on the backup folder; after the schema is dropped and the blob folder
 * deleted, `npm run restore` brings the schema back with `pg_restore`, copies the blobs back and
 * re-indexes the instance stored after the backup; fsck is clean and every instance is served byte for
 * byte.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { createTestSchema, isPostgresAvailable, type TestSchema } from '../test-support/postgres-test-schema.js';
import { runRestoreScript } from '../test-support/restore-script.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const available = await isPostgresAvailable();
if (!available) console.warn('PostgreSQL is not reachable on 127.0.0.1:5432: the PostgreSQL restore test is skipped');

describe.skipIf(!available)('restore with a PostgreSQL index', () => {
  let schema: TestSchema;
  let root: string;
  const apps: TestApp[] = [];
  afterAll(async () => {
    for (const app of apps) await app.app.close().catch(() => undefined);
    await schema?.drop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('brings back the dropped schema from pg_dump, the deleted blobs from their copies, and what came after the backup', async () => {
    schema = createTestSchema('pacs_backup');
    root = await mkdtemp(path.join(os.tmpdir(), 'pacs-pg-restore-'));
    const env = {
      PACS_DATA_DIR: path.join(root, 'data'),
      PACS_INDEX: 'postgres',
      PACS_POSTGRES_URL: schema.connectionString,
      PACS_POSTGRES_SCHEMA: schema.schema,
      PACS_AI_ENABLED: 'false',
      PACS_BACKUP_STORE: 'fs',
      PACS_BACKUP_DIR: path.join(root, 'backup'),
      PACS_BACKUP_POLL_SECONDS: '1',
      PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0',
    };
    const t = await buildTestApp(env);
    apps.push(t);
    const study = newUid();
    const series = newUid();
    const files = new Map<string, Buffer>();
    const stow = async (count: number) => {
      const parts = Array.from({ length: count }, () => {
        const sop = newUid();
        const bytes = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 32, columns: 32 });
        files.set(sop, bytes);
        return { body: bytes };
      });
      const response = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE() }, payload: multipartBody(parts) });
      expect(response.statusCode, response.body).toBe(200);
    };
    await stow(2);
    const backup = await t.app.inject({ method: 'POST', url: '/api/backup/index-backups' });
    expect(backup.statusCode, backup.body).toBe(201);
    expect(backup.json()).toMatchObject({ engine: 'postgres' });
    await stow(1);
    expect(await t.services.backup!.replicator.drain(20_000)).toBe(true);
    await t.app.close();
    apps.length = 0;

    // The disaster: the index schema and the blob folder are gone.
    await schema.drop();
    await rm(path.join(root, 'data', 'blobs'), { recursive: true, force: true });

    const restored = await runRestoreScript(env);
    expect(restored.code, restored.output).toBe(0);
    expect(restored.output).toMatch(/copied back from the backup store\s+2/);
    expect(restored.output).toMatch(/instances stored after the backup, recovered\s+1/);
    const fsck = await runFsckScript(env);
    expect(fsck.code, fsck.output).toBe(0);

    const again = await buildTestApp(env);
    apps.push(again);
    for (const [sop, bytes] of files) {
      const response = await again.app.inject({
        method: 'GET',
        url: `/dicomweb/studies/${study}/series/${series}/instances/${sop}`,
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      });
      expect(response.statusCode).toBe(200);
      expect(splitMultipart(response.rawPayload, response.headers['content-type'])[0]!.body.equals(bytes)).toBe(true);
    }
  }, 120_000);
});
