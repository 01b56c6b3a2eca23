/**
 * The disaster an administrator prepares for (docs/operations.md, "Restore"), with the real server as a
 * child process and the real `npm run restore`:
 *
 *  1. the server stores instances (study A, and D1), copies them to the backup folder; D1 is deleted
 *     and the next start records its deletion on the backup store (a tombstone);
 *  2. an index backup is taken (`POST /api/backup/index-backups`);
 *  3. more instances are stored (study B, and D2, deleted again), one instance of A is deleted; the
 *     copies and tombstones reach the backup folder;
 *  4. the server is stopped; the primary blob folder and the index (with its -wal/-shm) are deleted;
 *  5. `npm run restore` puts the index backup back, copies the blobs back, re-indexes B from its copies
 *     (stored after the backup), leaves D1 and D2 out (deleted on purpose) and names the instance of A
 *     deleted after the backup, which came back with the index; its fsck is clean;
 *  6. `npm run fsck` is clean; the server starts again and serves every instance byte for byte by
 *     WADO-RS; QIDO counts are right; the audit trail (its own tables are in the index backup) still
 *     holds the records made before the backup, and the restore itself.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackupStatusJson } from '../contracts/backup.js';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { runRestoreScript } from '../test-support/restore-script.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import type { RestoreReport } from './restore-procedure.js';

const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';

const servers: SpawnedServer[] = [];
const folders: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.kill('SIGKILL');
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

interface Stored {
  study: string;
  series: string;
  sop: string;
  bytes: Buffer;
}

describe('disaster recovery from the backup folder', () => {
  it('restores the index and every blob after both were deleted, recovering what was stored after the index backup', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'pacs-disaster-'));
    folders.push(root);
    const dataDir = path.join(root, 'data');
    const backupDir = path.join(root, 'second-disk');
    const env = {
      PACS_DATA_DIR: dataDir,
      PACS_AI_ENABLED: 'false',
      PACS_BACKUP_STORE: 'fs',
      PACS_BACKUP_DIR: backupDir,
      PACS_BACKUP_POLL_SECONDS: '1',
      PACS_BACKUP_INDEX_INTERVAL_MINUTES: '0',
      PACS_REJECTION_PURGE_INTERVAL_SECONDS: '0',
    };
    const start = async () => {
      const server = await spawnServer(env);
      servers.push(server);
      return server;
    };
    const stop = async (server: SpawnedServer) => {
      await server.kill('SIGTERM');
      servers.splice(servers.indexOf(server), 1);
    };
    const stow = async (server: SpawnedServer, study: string, count: number, columns = 64): Promise<Stored[]> => {
      const series = newUid();
      const items = Array.from({ length: count }, (_, i) => {
        const sop = newUid();
        return { study, series, sop, bytes: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 64, columns: columns + i }) };
      });
      const response = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE() }, body: new Uint8Array(multipartBody(items.map((item) => ({ body: item.bytes })))) });
      expect(response.status, await response.clone().text()).toBe(200);
      return items;
    };
    const remove = async (server: SpawnedServer, item: Stored) => {
      const response = await fetch(`${server.url}/dicomweb/studies/${item.study}/series/${item.series}/instances/${item.sop}`, { method: 'DELETE' });
      expect(response.status, await response.clone().text()).toBeLessThan(300);
    };
    /** Waits until `copied` copies are made, none pending, and `deletedKept` copies of deleted blobs are recorded. */
    const settled = async (server: SpawnedServer, copied: number, deletedKept: number): Promise<BackupStatusJson> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const state = (await (await fetch(`${server.url}/api/backup/status`)).json()) as BackupStatusJson;
        if (state.copies!.pending === 0 && state.copies!.copied === copied && state.copies!.deletedKept === deletedKept) return state;
        if (Date.now() > deadline) throw new Error(`backup not settled: ${JSON.stringify(state)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };

    // 1. Study A and D1; D1 deleted; the next start's pass over the index records the deletion.
    let server = await start();
    const studyA = newUid();
    const a = await stow(server, studyA, 3);
    const [d1] = await stow(server, newUid(), 1, 40);
    await settled(server, 4, 0);
    await remove(server, d1!);
    await stop(server);
    server = await start();
    await settled(server, 3, 1);

    // 2. The index backup.
    const backup = await fetch(`${server.url}/api/backup/index-backups`, { method: 'POST' });
    expect(backup.status).toBe(201);
    const generation = (await backup.json()) as { id: string; instances: number; tables: string[] };
    expect(generation.instances).toBe(3);
    expect(generation.tables).toContain('audit_event');

    // 3. After the backup: study B, D2 (deleted again), and A's last instance deleted.
    const studyB = newUid();
    const b = await stow(server, studyB, 2, 80);
    const [d2] = await stow(server, newUid(), 1, 50);
    await settled(server, 6, 1);
    await remove(server, d2!);
    await remove(server, a[2]!);
    await stop(server);
    server = await start();
    await settled(server, 4, 3);
    await stop(server);

    // 4. The disaster: the blob folder and the index are gone.
    await rm(path.join(dataDir, 'blobs'), { recursive: true, force: true });
    for (const suffix of ['', '-wal', '-shm']) await rm(path.join(dataDir, `index.sqlite${suffix}`), { force: true });

    // 5. The restore.
    const reportFile = path.join(root, 'restore-report.json');
    const restored = await runRestoreScript(env, ['--report', reportFile]);
    expect(restored.code, restored.output).toBe(0);
    expect(restored.output).toContain(`restored from backup ${generation.id}`);
    expect(restored.output).toContain('restore complete: index and blob store agree');
    const { restore: report } = JSON.parse(await readFile(reportFile, 'utf8')) as { restore: RestoreReport };
    expect(report.backup!.id).toBe(generation.id);
    expect(report.copiedBack).toBe(3);
    expect(report.recovered.map((r) => r.sopInstanceUid).sort()).toEqual(b.map((item) => item.sop).sort());
    expect(report.deletedOnPurpose).toBe(2);
    expect(report.deletedAfterBackup.map((r) => r.sopInstanceUid)).toEqual([a[2]!.sop]);
    expect(report.lost).toEqual([]);
    expect(report.corrupt).toEqual([]);
    expect(report.reindexFailures).toEqual([]);

    // 6. fsck, then the server again: every instance byte for byte.
    const fsck = await runFsckScript({ PACS_DATA_DIR: dataDir });
    expect(fsck.code, fsck.output).toBe(0);
    expect(reportedCount(fsck.output, 'indexed instances checked')).toBe(5);
    expect(reportedCount(fsck.output, 'problems found')).toBe(0);
    server = await start();
    for (const item of [...a, ...b]) {
      const response = await fetch(`${server.url}/dicomweb/studies/${item.study}/series/${item.series}/instances/${item.sop}`, { headers: { accept: ANY_TS } });
      expect(response.status).toBe(200);
      const [part] = splitMultipart(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type'));
      expect(part!.body.equals(item.bytes)).toBe(true);
    }
    for (const gone of [d1!, d2!]) {
      const response = await fetch(`${server.url}/dicomweb/studies/${gone.study}/series/${gone.series}/instances/${gone.sop}`, { headers: { accept: ANY_TS } });
      expect(response.status).toBe(404);
    }
    const studies = (await (await fetch(`${server.url}/dicomweb/studies?StudyInstanceUID=${encodeURIComponent(`${studyA}\\${studyB}`)}&includefield=00201208`)).json()) as Array<Record<string, { Value?: unknown[] }>>;
    expect(studies.map((s) => s['00201208']!.Value![0]).sort()).toEqual([2, 3]);
    // The audit trail came back with the index: the stores of study A, and the restore itself.
    const stores = (await (await fetch(`${server.url}/admin/audit?action=store&study=${studyA}`)).json()) as { records: unknown[] };
    expect(stores.records.length).toBeGreaterThan(0);
    const backups = (await (await fetch(`${server.url}/admin/audit?action=backup`)).json()) as { records: Array<{ route: string; detail?: Record<string, unknown> }> };
    expect(backups.records.find((r) => r.route === 'npm run restore')?.detail).toMatchObject({ restore: true, recovered: 2, lost: 0 });
    // The recovered instances are copied to the backup store again under their new keys.
    await settled(server, 5, 3);
  }, 300_000);
});
