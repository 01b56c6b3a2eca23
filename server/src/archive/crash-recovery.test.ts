/**
 * Power-cut behaviour as an administrator sees it: the real server (a child process) is killed with
 * SIGKILL in the middle of a 3 GiB STOW-RS upload, of a large DIMSE C-STORE and of a whole-slide AI
 * job, then restarted on the same data folder. Afterwards the index and the blob store agree
 * (`npm run fsck` reports nothing, every checksum verified), what was stored before is served byte
 * for byte, the half-received instance is nowhere to be seen, the leftovers are cleaned up by the
 * restarted server, and the AI job is finished (or failed with a reason), never lost.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { datasetBytes } from '../test-support/dimse-files.js';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { freePort, spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { requireDcmtk, runTool } from '../test-support/dimse-peer.js';
import { STOW_CONTENT_TYPE, makeInstance, makeLargeInstanceHeader, multipartBody, newUid, writeLargeInstanceBody } from '../test-support/make-dicom.js';
import { repoRoot, sharedDataDir } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const MiB = 1024 * 1024;
const BOUNDARY = 'crash-test-boundary-9d1';
const TEST_MODELS_DIR = path.join(repoRoot, 'test-fixtures/models');

const servers: SpawnedServer[] = [];
const folders: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.kill('SIGKILL');
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

async function tempFolder(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `pacs-crash-${label}-`));
  folders.push(dir);
  return dir;
}

/**
 * The restarted server removes leftovers older than 1 s (PACS_ORPHAN_MIN_AGE_SECONDS): nothing else
 * writes to this data folder, and its start takes longer than that. Production keeps the 24 h default.
 */
async function start(dataDir: string, env: Record<string, string> = {}): Promise<SpawnedServer> {
  const server = await spawnServer({ PACS_DATA_DIR: dataDir, PACS_AI_ENABLED: 'false', PACS_ORPHAN_MIN_AGE_SECONDS: '1', PACS_LOG_LEVEL: 'info', ...env });
  servers.push(server);
  return server;
}

/** Resolves with the startup recovery's log record (archive/fsck.ts startStorageRecovery). */
async function recoveryReport(server: SpawnedServer): Promise<Record<string, number>> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const line = server.output().split('\n').find((l) => l.includes('"storage recovery finished"'));
    if (line !== undefined) return JSON.parse(line) as Record<string, number>;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no storage recovery report: ${server.output().slice(-2000)}`);
}

async function expectFsckClean(dataDir: string, indexed: number): Promise<void> {
  const { code, output } = await runFsckScript({ PACS_DATA_DIR: dataDir });
  expect(code, output).toBe(0);
  expect(output).toContain('index and blob store agree');
  expect(reportedCount(output, 'indexed instances checked')).toBe(indexed);
  expect(reportedCount(output, 'checksums verified')).toBe(indexed);
  expect(reportedCount(output, 'problems found')).toBe(0);
}

/** Temp files of unfinished blob writes (FsBlobStore keeps them in `<blobs>/.tmp`). */
async function partialFiles(dataDir: string): Promise<{ name: string; size: number }[]> {
  const tmp = path.join(dataDir, 'blobs', '.tmp');
  const names = await readdir(tmp).catch(() => [] as string[]);
  return Promise.all(names.map(async (name) => ({ name, size: (await stat(path.join(tmp, name))).size })));
}

/**
 * A complete blob with no index row, as a kill between the blob's rename and the index commit leaves
 * (a window of milliseconds that a test cannot hit by timing, so it is planted), written 10 s ago.
 */
async function plantOrphan(dataDir: string): Promise<string> {
  const id = randomUUID();
  const file = path.join(dataDir, 'blobs', id.slice(0, 2), id.slice(2, 4), `${id}.dcm`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, randomBytes(4096));
  const tenSecondsAgo = new Date(Date.now() - 10_000);
  await utimes(file, tenSecondsAgo, tenSecondsAgo);
  return file;
}

async function stowSmall(url: string, instances: Buffer[]): Promise<void> {
  const response = await fetch(`${url}/dicomweb/studies`, {
    method: 'POST',
    headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' },
    body: new Uint8Array(multipartBody(instances.map((body) => ({ body })))),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

async function qidoCount(url: string, query: string): Promise<number> {
  const response = await fetch(`${url}/dicomweb/instances?${query}`);
  expect(response.status).toBe(200);
  return ((await response.json()) as unknown[]).length;
}

/** WADO-RS of one instance as stored; undefined for 404. */
async function wadoInstance(url: string, study: string, sop: string): Promise<Buffer | undefined> {
  const found = (await (await fetch(`${url}/dicomweb/instances?SOPInstanceUID=${sop}`)).json()) as Array<Record<string, { Value: string[] }>>;
  const series = found[0]?.['0020000E']?.Value[0] ?? newUid();
  const response = await fetch(`${url}/dicomweb/studies/${study}/series/${series}/instances/${sop}`, {
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  if (response.status === 404) return undefined;
  expect(response.status).toBe(200);
  const parts = splitMultipart(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type'));
  expect(parts).toHaveLength(1);
  return parts[0]!.body;
}

/**
 * Streams one instance of `header` + `pixelBytes` generated bytes as a STOW-RS body without holding
 * it; `onProgress` may kill the server. Settles when the request ends one way or another.
 */
function postLargeInstance(url: string, header: Buffer, pixelBytes: number, onProgress: (sent: number, request: http.ClientRequest) => void): Promise<void> {
  return new Promise((resolve) => {
    const request = http.request(`${url}/dicomweb/studies`, {
      method: 'POST',
      headers: { 'content-type': STOW_CONTENT_TYPE(BOUNDARY), accept: 'application/dicom+json' },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve());
      response.on('error', () => resolve());
    });
    request.on('error', () => resolve());
    request.on('close', () => resolve());
    writeLargeInstanceBody(request, header, pixelBytes, BOUNDARY, onProgress);
  });
}

describe('a server killed mid-write and restarted', () => {
  it('STOW-RS of 3 GiB killed mid-upload: the half instance is nowhere, earlier ones are byte-identical, leftovers cleaned, fsck clean', async () => {
    const dataDir = await tempFolder('stow');
    const first = await start(dataDir);
    const study = newUid();
    const kept = Array.from({ length: 3 }, () => makeInstance({ studyInstanceUid: study, sopInstanceUid: newUid(), rows: 64, columns: 64 }));
    await stowSmall(first.url, kept);
    const listed = (await (await fetch(`${first.url}/dicomweb/studies/${study}/instances`)).json()) as Array<Record<string, { Value: string[] }>>;
    const sops = listed.map((ds) => ds['00080018']!.Value[0]!);
    expect(sops).toHaveLength(3);

    // 768 frames of 2048×2048: a 3 GiB instance, streamed from a generator; killed after 384 MiB.
    const cutSop = newUid();
    const { header, pixelBytes } = makeLargeInstanceHeader({ studyInstanceUid: study, sopInstanceUid: cutSop, rows: 2048, columns: 2048, numberOfFrames: 768 });
    expect(pixelBytes).toBe(3 * 1024 * MiB);
    let killing: Promise<void> | undefined;
    await postLargeInstance(first.url, header, pixelBytes, (sent, request) => {
      if (killing === undefined && sent >= 384 * MiB) killing = first.kill('SIGKILL').then(() => void request.destroy());
    });
    await killing;
    expect(killing).toBeDefined();
    // What the kill left: the half-written file (never under a key), and an orphan of the crash window.
    const partial = await partialFiles(dataDir);
    expect(partial).toHaveLength(1);
    expect(partial[0]!.size).toBeGreaterThan(64 * MiB);
    expect(partial[0]!.size).toBeLessThan(pixelBytes);
    const orphan = await plantOrphan(dataDir);
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const second = await start(dataDir);
    const recovery = await recoveryReport(second);
    expect(recovery).toMatchObject({ orphanBlobsRemoved: 1, partialUploadsRemoved: 1, orphanBlobsLeft: 0 });
    expect(await partialFiles(dataDir)).toEqual([]);
    await expect(stat(orphan)).rejects.toThrow();

    expect(await qidoCount(second.url, `SOPInstanceUID=${cutSop}`)).toBe(0);
    expect(await wadoInstance(second.url, study, cutSop)).toBeUndefined();
    for (const sop of sops) {
      const served = await wadoInstance(second.url, study, sop);
      expect(kept.some((bytes) => served?.equals(bytes))).toBe(true);
    }
    await expectFsckClean(dataDir, 3);
  }, 300_000);

  it('DIMSE C-STORE of a 512 MiB instance killed mid-transfer: nothing half-stored, earlier C-STOREs intact, fsck clean', async () => {
    requireDcmtk();
    const dataDir = await tempFolder('dimse');
    const files = await tempFolder('dimse-files');
    const port = await freePort();
    const env = { PACS_DIMSE_ENABLED: 'true', PACS_DIMSE_PORT: String(port) };
    const first = await start(dataDir, env);
    const study = newUid();

    const keptSops = [newUid(), newUid()];
    const keptFiles = await Promise.all(
      keptSops.map(async (sop, i) => {
        const file = path.join(files, `kept-${i}.dcm`);
        await writeFile(file, makeInstance({ studyInstanceUid: study, sopInstanceUid: sop, rows: 64, columns: 64 }));
        return file;
      }),
    );
    const storedKept = await runTool('storescu', ['-aec', 'FILMLESS', '127.0.0.1', String(port), ...keptFiles], 60_000);
    expect(storedKept.code, storedKept.stdout + storedKept.stderr).toBe(0);

    const cutSop = newUid();
    const { header, pixelBytes } = makeLargeInstanceHeader({ studyInstanceUid: study, sopInstanceUid: cutSop, rows: 1024, columns: 1024, numberOfFrames: 512 });
    const large = path.join(files, 'large.dcm');
    const out = createWriteStream(large);
    out.write(header);
    const chunk = Buffer.alloc(MiB, 0x5a);
    for (let written = 0; written < pixelBytes; written += chunk.length) {
      if (!out.write(chunk)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');

    const sending = runTool('storescu', ['-aec', 'FILMLESS', '127.0.0.1', String(port), large], 240_000);
    // Killed once the server has written a good part of the data set into its temp file.
    const deadline = Date.now() + 180_000;
    let biggest = 0;
    while (Date.now() < deadline && biggest < 128 * MiB) {
      biggest = Math.max(0, ...(await partialFiles(dataDir)).map((p) => p.size));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(biggest).toBeGreaterThanOrEqual(128 * MiB);
    await first.kill('SIGKILL');
    const sent = await sending;
    expect(sent.code).not.toBe(0);
    const partial = await partialFiles(dataDir);
    expect(partial).toHaveLength(1);
    expect(partial[0]!.size).toBeLessThan(pixelBytes);
    await rm(large);
    const orphan = await plantOrphan(dataDir);
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const second = await start(dataDir, env);
    expect(await recoveryReport(second)).toMatchObject({ orphanBlobsRemoved: 1, partialUploadsRemoved: 1, orphanBlobsLeft: 0 });
    expect(await partialFiles(dataDir)).toEqual([]);
    await expect(stat(orphan)).rejects.toThrow();
    expect(await qidoCount(second.url, `SOPInstanceUID=${cutSop}`)).toBe(0);
    expect(await wadoInstance(second.url, study, cutSop)).toBeUndefined();
    for (const [i, sop] of keptSops.entries()) {
      const served = await wadoInstance(second.url, study, sop);
      // C-STORE carries the data set; the archive writes its own File Meta around it.
      expect(datasetBytes(served!).equals(datasetBytes(await readFile(keptFiles[i]!)))).toBe(true);
    }
    // The restarted SCP accepts C-STOREs again.
    const again = await runTool('storescu', ['-aec', 'FILMLESS', '127.0.0.1', String(port), keptFiles[0]!], 60_000);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    await expectFsckClean(dataDir, 2);
  }, 400_000);

  it('a whole-slide AI job killed mid-run resumes to completion after restart; its result, index and blobs agree', async () => {
    const dataDir = await tempFolder('ai');
    const env = { PACS_AI_ENABLED: 'true', PACS_MODELS_DIR: TEST_MODELS_DIR, PACS_JOBS_WINDOWS_PER_UNIT: '1', PACS_AI_THREADS: '1' };
    const first = await start(dataDir, env);
    const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', 'tiled-full-gcp-wsi2dcm');
    const slideFiles = await Promise.all((await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort().map((n) => readFile(path.join(folder, n))));
    await stowSmall(first.url, slideFiles);
    const slides = (await (await fetch(`${first.url}/dicomweb/series?Modality=SM`)).json()) as Array<Record<string, { Value: string[] }>>;
    expect(slides).toHaveLength(1);
    const study = slides[0]!['0020000D']!.Value[0]!;
    const series = slides[0]!['0020000E']!.Value[0]!;

    const created = await fetch(`${first.url}/ai/studies/${study}/series/${series}/analyses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dark-spot' }),
    });
    expect(created.status, await created.clone().text()).toBeLessThan(300);
    const { id } = (await created.json()) as { id: string };
    // Killed while its units run: some done, not all.
    let seen: { state: string; progress: { unitsDone: number; unitsTotal: number } } | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      seen = (await (await fetch(`${first.url}/ai/analyses/${id}`)).json()) as typeof seen;
      if (seen!.state === 'running' && seen!.progress.unitsDone >= 1) break;
      if (['completed', 'failed', 'cancelled'].includes(seen!.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await first.kill('SIGKILL');
    console.info(`AI job killed at ${seen?.state} ${seen?.progress.unitsDone}/${seen?.progress.unitsTotal} units`);
    expect(seen?.state).toBe('running');
    expect(seen!.progress.unitsDone).toBeLessThan(seen!.progress.unitsTotal);

    const second = await start(dataDir, env);
    let job: { state: string; reason: string | null; progress: { unitsDone: number; unitsTotal: number }; result: { seriesInstanceUid: string; sopInstanceUid: string } | null } | undefined;
    const finishBy = Date.now() + 120_000;
    while (Date.now() < finishBy) {
      job = (await (await fetch(`${second.url}/ai/analyses/${id}`)).json()) as typeof job;
      if (['completed', 'failed', 'cancelled'].includes(job!.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Resumed, not lost and not restarted from scratch: every unit done once.
    expect(job!.state, job!.reason ?? '').toBe('completed');
    expect(job!.progress.unitsDone).toBe(job!.progress.unitsTotal);
    const result = job!.result!;
    // Exactly one annotation instance in the result series, retrievable, and its blob verified by fsck.
    expect(await qidoCount(second.url, `SeriesInstanceUID=${result.seriesInstanceUid}`)).toBe(1);
    const annotation = await wadoInstance(second.url, study, result.sopInstanceUid);
    expect(annotation?.subarray(128, 132).toString('latin1')).toBe('DICM');
    expect((await fetch(`${second.url}/ai/analyses/${id}/result`)).status).toBe(200);
    await recoveryReport(second);
    await expectFsckClean(dataDir, slideFiles.length + 1);
  }, 300_000);
});
