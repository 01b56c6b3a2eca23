/**
 * A power cut in the middle of a lossy-policy run: the real server (a child process) replaces 8-bit
 * images by lossy copies (new SOP Instance UIDs) and rejects their originals, and is killed with SIGKILL
 * part-way. Index and store then agree (fsck: nothing missing, truncated or corrupt); restarted, the
 * server finishes: every original is replaced by exactly one copy (its UID derived from the original's),
 * none is left half-converted or duplicated, and fsck is clean once the originals are purged.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { derivedUid } from './lossy.js';

const servers: SpawnedServer[] = [];
const folders: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.kill('SIGKILL');
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

const INSTANCES = 24;
const ENV = {
  PACS_AI_ENABLED: 'false',
  PACS_ORPHAN_MIN_AGE_SECONDS: '1',
  PACS_LIFECYCLE_LOSSY: 'on',
  PACS_LIFECYCLE_LOSSY_AFTER_DAYS: '1',
  PACS_LIFECYCLE_LOSSY_MIN_PSNR: '30',
  PACS_LIFECYCLE_INTERVAL_SECONDS: '0',
  PACS_LIFECYCLE_PAUSE_MS: '30',
  PACS_LIFECYCLE_BATCH: '4',
  PACS_REJECTION_PURGE_INTERVAL_SECONDS: '1',
};

async function start(dataDir: string): Promise<SpawnedServer> {
  const server = await spawnServer({ PACS_DATA_DIR: dataDir, ...ENV });
  servers.push(server);
  return server;
}

type Run = { state: string; lossy?: number } | null;
async function run(server: SpawnedServer): Promise<Run> {
  return ((await (await fetch(`${server.url}/api/storage/housekeeping`)).json()) as { run: Run }).run;
}

async function until(what: string, probe: () => Promise<boolean>, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function seriesUids(server: SpawnedServer, study: string, series: string): Promise<string[]> {
  const response = await fetch(`${server.url}/dicomweb/studies/${study}/series/${series}/instances`);
  if (response.status === 204) return [];
  return ((await response.json()) as Array<Record<string, { Value?: string[] }>>).map((d) => d['00080018']!.Value![0]!);
}

describe('kill -9 during a lossy-policy run', () => {
  it('leaves every image either as it was or replaced by one whole copy; the restarted server finishes', { timeout: 240_000 }, async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-lossy-crash-'));
    folders.push(dataDir);
    const study = newUid();
    const series = newUid();
    const sops = Array.from({ length: INSTANCES }, () => newUid());
    const files = sops.map((sop, i) => {
      const pixels = new Uint8Array(128 * 128);
      for (let p = 0; p < pixels.length; p += 1) pixels[p] = Math.round(120 + 80 * Math.sin((p + i * 7) / 90));
      return makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 128, columns: 128, modality: 'ES', studyDate: '20100101', pixels });
    });

    let server = await start(dataDir);
    const stored = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(multipartBody(files.map((body) => ({ body })))) });
    expect(stored.status).toBe(200);
    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await until('a few lossy copies', async () => ((await run(server))?.lossy ?? 0) >= 4);
    await server.kill('SIGKILL');

    // Right after the kill: nothing missing, truncated or corrupt (a copy being written is an unreferenced
    // blob too young to judge; the store's put is atomic).
    const afterKill = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '3600' });
    const kinds = afterKill.output.split('\n').filter((l) => /^(missing-blob|size-mismatch|checksum-mismatch|unreadable-blob)\b/.test(l));
    expect(kinds, afterKill.output).toEqual([]);

    server = await start(dataDir);
    // Every original, or its copy, or (killed between store and rejection) both, each whole; never neither.
    const visible = new Set(await seriesUids(server, study, series));
    for (const sop of sops) expect(visible.has(sop) || visible.has(derivedUid(sop)), sop).toBe(true);
    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await until('the run to finish', async () => (await run(server))?.state === 'finished');
    const uids = (await seriesUids(server, study, series)).sort();
    expect(uids).toEqual(sops.map((sop) => derivedUid(sop)).sort());
    for (const sop of sops.slice(0, 3)) {
      const metadata = (await (await fetch(`${server.url}/dicomweb/studies/${study}/series/${series}/instances/${derivedUid(sop)}/metadata`)).json()) as Array<Record<string, { Value?: unknown[] }>>;
      expect(metadata[0]!['00282110']!.Value![0]).toBe('01');
      expect(metadata[0]!['00020010']!.Value![0]).toBe('1.2.840.10008.1.2.4.50');
    }
    // The purge removes the rejected originals (113039 at once).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await server.kill('SIGTERM');

    const final = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '1' });
    expect(final.code, final.output).toBe(0);
    expect(reportedCount(final.output, 'problems found')).toBe(0);
  });
});
