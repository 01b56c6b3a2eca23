/**
 * A power cut in the middle of a housekeeping run: the real server (a child process) recompresses the
 * uncompressed instances of its archive one at a time and is killed with SIGKILL part-way. The index
 * and the blob store then agree (`npm run fsck`: nothing missing, truncated or corrupt; at most the old
 * blobs of swapped rows still queued for deletion); restarted, the server finishes the run; stopped
 * again, fsck reports nothing at all, and every instance decodes to exactly the frames stored at first.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const servers: SpawnedServer[] = [];
const folders: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.kill('SIGKILL');
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

const INSTANCES = 40;
const ENV = {
  PACS_AI_ENABLED: 'false',
  PACS_ORPHAN_MIN_AGE_SECONDS: '1',
  PACS_LIFECYCLE_COMPRESS: 'jpeg-ls',
  PACS_LIFECYCLE_COMPRESS_AFTER_DAYS: '1',
  PACS_LIFECYCLE_INTERVAL_SECONDS: '0',
  PACS_LIFECYCLE_PAUSE_MS: '30',
  PACS_LIFECYCLE_BATCH: '4',
  PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '1',
};

async function start(dataDir: string): Promise<SpawnedServer> {
  const server = await spawnServer({ PACS_DATA_DIR: dataDir, ...ENV });
  servers.push(server);
  return server;
}

async function status(server: SpawnedServer): Promise<{ run: { state: string; recompressed: number } | null }> {
  return (await (await fetch(`${server.url}/api/storage/housekeeping`)).json()) as { run: { state: string; recompressed: number } | null };
}

async function until(what: string, probe: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every frame of every instance decoded (WADO-RS, transfer-syntax Explicit VR LE: raw pixels). */
async function framesOf(server: SpawnedServer, study: string, sops: Array<{ series: string; sop: string }>): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const { series, sop } of sops) {
    const response = await fetch(`${server.url}/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/1`, {
      headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1' },
    });
    expect(response.status, sop).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    const [part] = splitMultipart(body, response.headers.get('content-type') ?? '');
    out.set(sop, part!.body);
  }
  return out;
}

describe('kill -9 during a housekeeping run', () => {
  it('loses nothing, leaves nothing half-converted, and the restarted server finishes the run', { timeout: 240_000 }, async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-housekeeping-crash-'));
    folders.push(dataDir);
    const study = newUid();
    const series = newUid();
    const sops = Array.from({ length: INSTANCES }, () => ({ series, sop: newUid() }));
    const files = sops.map(({ sop }, i) => {
      const pixels = new Uint8Array(128 * 128);
      for (let p = 0; p < pixels.length; p += 1) pixels[p] = (p + i * 7) % 200;
      return makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 128, columns: 128, modality: 'CT', studyDate: '20100101', pixels });
    });

    let server = await start(dataDir);
    const stored = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(multipartBody(files.map((body) => ({ body })))) });
    expect(stored.status).toBe(200);
    const original = await framesOf(server, study, sops);

    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await until('a few recompressions', async () => ((await status(server)).run?.recompressed ?? 0) >= 6);
    await server.kill('SIGKILL');

    // Right after the kill: nothing missing, truncated or corrupt; every problem is an old blob of a
    // swapped row still queued for deletion (the journalled conversion in flight is too young to judge).
    const afterKill = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '3600' });
    const kinds = afterKill.output.split('\n').filter((l) => /^(missing-blob|size-mismatch|checksum-mismatch|unreadable-blob|orphan-blob|pending-delete|interrupted-conversion)\b/.test(l)).map((l) => l.split(/\s+/)[0]);
    expect(kinds.filter((k) => k !== 'pending-delete'), afterKill.output).toEqual([]);
    const converted = reportedCount(afterKill.output, 'recompressed instances');
    expect(converted).toBeGreaterThanOrEqual(6);
    expect(converted).toBeLessThan(INSTANCES);

    // Restarted: the startup recovery finishes the queued deletions and drops the interrupted
    // conversion; a new run goes on where the index says the last one stopped.
    server = await start(dataDir);
    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await until('the run to finish', async () => (await status(server)).run?.state === 'finished');
    expect((await status(server)).run!.recompressed).toBe(INSTANCES - converted);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = await framesOf(server, study, sops);
    for (const { sop } of sops) expect(after.get(sop)!.equals(original.get(sop)!), sop).toBe(true);
    await server.kill('SIGTERM');

    const final = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '1' });
    expect(final.code, final.output).toBe(0);
    expect(reportedCount(final.output, 'problems found')).toBe(0);
    expect(reportedCount(final.output, 'recompressed instances')).toBe(INSTANCES);
    expect(reportedCount(final.output, 'blobs listed')).toBe(INSTANCES);
    expect(reportedCount(final.output, 'checksums verified')).toBe(INSTANCES);
  });
});
