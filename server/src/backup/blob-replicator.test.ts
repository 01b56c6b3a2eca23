/**
 * The second copy of every blob as an administrator sees it, on a real server (folder blob store and
 * SQLite index) with the backup store a second folder, then the real S3-protocol test server: stored
 * instances reach the backup store byte for byte; a copy that cannot be made stays pending with its
 * error and lag in `GET /api/backup/status`, survives a restart and is made once the store is back;
 * deleted instances keep their copy (with a tombstone) for the retention; index backups land on the
 * backup store as checked SQLite snapshots holding every side store (audit trail included), N kept;
 * `POST /api/backup/verify` agrees; the API needs `admin`.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { BackupStatusJson } from '../contracts/backup.js';
import { createBlobStore } from '../storage/create-blob-store.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { startS3TestServer, type S3TestServer } from '../test-support/s3-test-server.js';
import { authEnv, startTestIssuer } from '../test-support/test-issuer.js';
import { readCatalogue } from './backup-layout.js';

/** SOP Instance UID → blob key of what the tests stored. */
const blobKeys = new Map<string, string>();
const apps: TestApp[] = [];
const folders: string[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

async function tempFolder(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-backup-'));
  folders.push(dir);
  return dir;
}

async function start(env: Record<string, string>): Promise<TestApp> {
  const t = await buildTestApp({ PACS_AI_ENABLED: 'false', PACS_BACKUP_POLL_SECONDS: '1', PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0', ...env });
  apps.push(t);
  return t;
}

async function stow(t: TestApp, count: number, studyInstanceUid = newUid()): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const sop = newUid();
    files.set(sop, makeInstance({ studyInstanceUid, sopInstanceUid: sop, rows: 16, columns: 16 + i }));
  }
  const response = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE() }, payload: multipartBody([...files.values()].map((body) => ({ body }))) });
  expect(response.statusCode, response.body).toBe(200);
  for (const instance of await t.services.archive.listInstances({ studyInstanceUid })) blobKeys.set(instance.sopInstanceUid, instance.blobKey);
  return files;
}

async function status(t: TestApp): Promise<BackupStatusJson> {
  const response = await t.app.inject({ method: 'GET', url: '/api/backup/status' });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as BackupStatusJson;
}

/** Each stored instance's blob, read from the backup store, is the file as sent. */
async function expectCopies(t: TestApp, files: Map<string, Buffer>): Promise<void> {
  const replica = await createBlobStore(t.config.backup.store!);
  try {
    for (const [sop, bytes] of files) {
      const key = blobKeys.get(sop)!;
      const chunks: Buffer[] = [];
      for await (const chunk of await replica.get(key)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    }
  } finally {
    await replica.close();
  }
}

describe('blob replication to a second folder', () => {
  it('copies every stored instance byte for byte, with the lag at zero once done', async () => {
    const backupDir = await tempFolder();
    const t = await start({ PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir });
    const files = await stow(t, 3);
    expect(await t.services.backup!.replicator.drain(20_000)).toBe(true);
    await expectCopies(t, files);
    const state = await status(t);
    expect(state.enabled).toBe(true);
    expect(state.store).toBe(`fs:${backupDir}`);
    expect(state.copies).toMatchObject({ pending: 0, failing: 0, copied: 3, lagSeconds: 0, lastError: null });
    const verify = await t.app.inject({ method: 'POST', url: '/api/backup/verify?checksums=true' });
    expect(verify.json()).toMatchObject({ indexedBlobs: 3, present: 3, missing: 0, checksumsVerified: 3, checksumMismatch: 0, problems: [] });
  }, 60_000);

  it('keeps a copy that cannot be made pending, with its error and lag, through a restart, and makes it when the store is back', async () => {
    const backupDir = await tempFolder();
    const env = { PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir };
    const first = await start(env);
    // The backup disk refuses writes: its temp folder is a file now.
    await rm(path.join(backupDir, '.tmp'), { recursive: true, force: true });
    await writeFile(path.join(backupDir, '.tmp'), 'not a folder');
    const files = await stow(first, 2);
    await first.services.backup!.replicator.poll();
    let state: BackupStatusJson | undefined;
    for (let i = 0; i < 100 && (state?.copies?.failing ?? 0) < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = await status(first);
    }
    expect(state!.copies).toMatchObject({ pending: 2, failing: 2, copied: 0 });
    expect(state!.copies!.lastError).toMatch(/STORAGE_FAILURE|ENOTDIR|EEXIST/);
    expect(state!.copies!.oldestPendingAt).not.toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await status(first)).copies!.lagSeconds).toBeGreaterThanOrEqual(1);
    // The server stops with the copies pending; the disk is fixed; the server starts again on the same data.
    apps.splice(apps.indexOf(first), 1);
    await first.app.close();
    await rm(path.join(backupDir, '.tmp'), { force: true });
    await mkdir(path.join(backupDir, '.tmp'));
    const second = await buildTestApp({ PACS_DATA_DIR: first.dataDir, PACS_AI_ENABLED: 'false', PACS_BACKUP_POLL_SECONDS: '1', PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0', ...env });
    apps.push(second);
    folders.push(first.dataDir);
    expect(await second.services.backup!.replicator.drain(20_000)).toBe(true);
    await expectCopies(second, files);
    expect((await status(second)).copies).toMatchObject({ pending: 0, failing: 0, copied: 2, lagSeconds: 0 });
  }, 60_000);

  it('copies instances stored while no backup was configured, found in the index at start', async () => {
    const backupDir = await tempFolder();
    const first = await start({});
    const files = await stow(first, 2);
    expect((await status(first)).enabled).toBe(false);
    apps.splice(apps.indexOf(first), 1);
    await first.app.close();
    folders.push(first.dataDir);
    const second = await buildTestApp({ PACS_DATA_DIR: first.dataDir, PACS_AI_ENABLED: 'false', PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir, PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0' });
    apps.push(second);
    expect(await second.services.backup!.replicator.drain(20_000)).toBe(true);
    await expectCopies(second, files);
  }, 60_000);

  it('keeps the copy of a deleted instance for the retention, with a tombstone, and deletes it after', async () => {
    const backupDir = await tempFolder();
    const t = await start({ PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir });
    const study = newUid();
    const files = await stow(t, 2, study);
    expect(await t.services.backup!.replicator.drain(20_000)).toBe(true);
    const [gone] = [...files.keys()];
    const key = blobKeys.get(gone!)!;
    const series = (await t.services.archive.listInstances({ studyInstanceUid: study })).find((i) => i.sopInstanceUid === gone)!.seriesInstanceUid;
    const deleted = await t.app.inject({ method: 'DELETE', url: `/dicomweb/studies/${study}/series/${series}/instances/${gone}` });
    expect(deleted.statusCode, deleted.body).toBeLessThan(300);
    await t.services.backup!.replicator.reconcile();
    expect((await status(t)).copies).toMatchObject({ copied: 1, deletedKept: 1 });
    const tombstone = JSON.parse(await readFile(path.join(backupDir, '_backup/deleted', key), 'utf8')) as { removedAt: string };
    expect(Date.parse(tombstone.removedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect((await readFile(path.join(backupDir, key))).equals(files.get(gone!)!)).toBe(true);
    // Retention over (0 days): the next whole-index pass deletes the copy and its tombstone.
    await t.app.close();
    apps.splice(apps.indexOf(t), 1);
    folders.push(t.dataDir);
    const later = await buildTestApp({ PACS_DATA_DIR: t.dataDir, PACS_AI_ENABLED: 'false', PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir, PACS_BACKUP_KEEP_DELETED_DAYS: '0', PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0' });
    apps.push(later);
    await later.services.backup!.replicator.reconcile();
    await expect(readFile(path.join(backupDir, key))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFile(path.join(backupDir, '_backup/deleted', key))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await status(later)).copies).toMatchObject({ copied: 1, deletedKept: 0 });
  }, 60_000);

  it('takes index backups on request: checked SQLite snapshots with every side store, the newest N kept', async () => {
    const backupDir = await tempFolder();
    const t = await start({ PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir, PACS_BACKUP_INDEX_GENERATIONS: '2' });
    await stow(t, 2);
    const taken: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await t.app.inject({ method: 'POST', url: '/api/backup/index-backups' });
      expect(response.statusCode, response.body).toBe(201);
      const generation = response.json() as { id: string; key: string; instances: number; tables: string[]; bytes: number };
      expect(generation.instances).toBe(2);
      for (const table of ['instances', 'studies', 'series', 'audit_event', 'backup_blob_copies']) expect(generation.tables).toContain(table);
      taken.push(generation.key);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const replica = await createBlobStore(t.config.backup.store!);
    try {
      const { generations } = await readCatalogue(replica);
      expect(generations.map((g) => g.key)).toEqual([taken[2], taken[1]]);
      expect(await replica.stat(taken[0]!)).toBeUndefined();
    } finally {
      await replica.close();
    }
    // The newest snapshot is a whole SQLite database.
    const dir = await tempFolder();
    const file = path.join(dir, 'copy.sqlite');
    await writeFile(file, gunzipSync(await readFile(path.join(backupDir, taken[2]!))));
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect((db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number }).n).toBe(2);
      expect((db.prepare('SELECT count(*) AS n FROM audit_event').get() as { n: number }).n).toBeGreaterThan(0);
    } finally {
      db.close();
    }
    const state = await status(t);
    expect(state.indexBackups).toMatchObject({ generations: 2, generationsKept: 2, lastError: null, inProgress: false, intervalMinutes: 0, nextDueAt: null });
    expect(state.indexBackups!.last!.key).toBe(taken[2]);
  }, 60_000);

  it('answers the backup API to administrators only', async () => {
    const issuer = await startTestIssuer();
    try {
      const backupDir = await tempFolder();
      const t = await start(authEnv(issuer, { PACS_BACKUP_STORE: 'fs', PACS_BACKUP_DIR: backupDir }));
      const as = async (roles: string[]) => `Bearer ${await issuer.token({ sub: `u-${roles.join('-')}`, roles })}`;
      expect((await t.app.inject({ method: 'GET', url: '/api/backup/status' })).statusCode).toBe(401);
      expect((await t.app.inject({ method: 'GET', url: '/api/backup/status', headers: { authorization: await as(['physician']) } })).statusCode).toBe(403);
      expect((await t.app.inject({ method: 'POST', url: '/api/backup/index-backups', headers: { authorization: await as(['physician']) } })).statusCode).toBe(403);
      expect((await t.app.inject({ method: 'GET', url: '/api/backup/status', headers: { authorization: await as(['admin']) } })).statusCode).toBe(200);
      const bad = await t.app.inject({ method: 'POST', url: '/api/backup/verify?checksums=maybe', headers: { authorization: await as(['admin']) } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ error: { code: 'BAD_QUERY' } });
    } finally {
      await issuer.close();
    }
  }, 60_000);
});

describe('blob replication to an S3 bucket (real S3-protocol server)', () => {
  let s3: S3TestServer | undefined;
  afterAll(async () => {
    await s3?.close();
  });

  it('copies every stored instance byte for byte and keeps the index backups beside them', async () => {
    s3 = await startS3TestServer();
    const t = await start({
      PACS_BACKUP_STORE: 's3',
      PACS_BACKUP_S3_ENDPOINT: s3.endPoint,
      PACS_BACKUP_S3_PORT: String(s3.port),
      PACS_BACKUP_S3_ACCESS_KEY: s3.accessKey,
      PACS_BACKUP_S3_SECRET_KEY: s3.secretKey,
      PACS_BACKUP_S3_BUCKET: s3.bucket,
      PACS_BACKUP_S3_PREFIX: 'hospital-a',
    });
    const files = await stow(t, 3);
    expect(await t.services.backup!.replicator.drain(20_000)).toBe(true);
    await expectCopies(t, files);
    expect((await status(t)).copies).toMatchObject({ pending: 0, copied: 3, lagSeconds: 0 });
    const backup = await t.app.inject({ method: 'POST', url: '/api/backup/index-backups' });
    expect(backup.statusCode, backup.body).toBe(201);
    const verify = await t.app.inject({ method: 'POST', url: '/api/backup/verify?checksums=true' });
    expect(verify.json()).toMatchObject({ indexedBlobs: 3, present: 3, checksumsVerified: 3, problems: [] });
  }, 60_000);
});
