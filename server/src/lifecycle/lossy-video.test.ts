/**
 * The video part of the lossy policy through the real app and Debian's ffmpeg: the shared Video
 * Endoscopic object (H.264 in MP4, 720x576, 200 frames of Kvasir colonoscopy) and a Video Endoscopic
 * object of JPEG frames as the live recorder writes it (live/recording.ts) are re-encoded to H.264 High
 * Profile / Level 4.1 under new SOP Instance UIDs: dciodvfy finds no error the original has not, WADO-RS
 * serves the new video (rendered video/mp4, whose frame count is Number of Frames), QIDO-RS and metadata
 * agree, the originals are rejected (113039) then purged, fsck is clean. Without ffmpeg on PATH the
 * videos are kept and the run and status say "ffmpeg not available". A kill -9 of the real server in the
 * middle of a run leaves exactly one copy per original after the restart.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runFsck } from '../archive/fsck.js';
import { MPEG4_HP41 } from '../dicom/transfer-syntax.js';
import { Recording } from '../live/recording.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { reportedCount, runFsckScript } from '../test-support/fsck-script.js';
import { multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { derivedUid, editTopLevel, element } from './lossy.js';
import { fileMeta, metaGroup } from './recompress.js';

type Json = Record<string, { vr?: string; Value?: unknown[] }>;

requireDciodvfy();
for (const tool of ['/usr/bin/ffmpeg', '/usr/bin/ffprobe']) {
  if (!existsSync(tool)) throw new Error(`${tool} is not installed; install it with: apt-get install -y --no-install-recommends ffmpeg`);
}
const data = requireSharedData();
const VIDEO = path.join(data, 'endoscopy-dicom-kvasir', 'video-endoscopic-h264-high41-720x576-200frames.dcm');
const MP4 = path.join(data, 'endoscopy-dicom-kvasir', 'colonoscopy-kvasir-slideshow-720x576-25fps-h264.mp4');
const ENV = {
  PACS_AI_ENABLED: 'false',
  PACS_LOG_LEVEL: 'warn',
  PACS_LIFECYCLE_LOSSY: 'on',
  PACS_LIFECYCLE_LOSSY_VIDEO_CRF: '30',
  PACS_LIFECYCLE_LOSSY_VIDEO_PRESET: 'veryfast',
  PACS_LIFECYCLE_INTERVAL_SECONDS: '0',
  PACS_LIFECYCLE_PAUSE_MS: '0',
  PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '0',
  PACS_LIFECYCLE_BATCH: '1',
  PACS_REJECTION_PURGE_INTERVAL_SECONDS: '1',
};

const value = (dataset: Json, tag: string): unknown[] => dataset[tag]?.Value ?? [];
const PIXEL_HEADER = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);

/** The shared video with new Study / Series / SOP Instance UIDs (the data set before Pixel Data edited). */
function withUids(file: Buffer, study: string, series: string, sop: string): Buffer {
  const at = file.indexOf(PIXEL_HEADER);
  const { preamble, meta, datasetStart } = fileMeta(file.subarray(0, at));
  const dataset = editTopLevel(
    file.subarray(datasetStart, at),
    new Map([
      [0x00080018, element(0x00080018, 'UI', sop)],
      [0x0020000d, element(0x0020000d, 'UI', study)],
      [0x0020000e, element(0x0020000e, 'UI', series)],
    ]),
  );
  const transferSyntax = String(meta.find((m) => m.tag === 0x00020010)!.bytes.toString('latin1', 8)).replace(/\0/g, '');
  return Buffer.concat([preamble, metaGroup(meta, transferSyntax, sop), dataset, file.subarray(at)]);
}

/** A Video Endoscopic object of JPEG frames, made by the live recorder from the first 50 frames of the shared MP4. */
async function recordedVideo(dir: string, identity: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }): Promise<Buffer> {
  const frames = path.join(dir, 'frames');
  await mkdir(frames, { recursive: true });
  execFileSync('/usr/bin/ffmpeg', ['-hide_banner', '-loglevel', 'error', '-threads', '1', '-i', MP4, '-frames:v', '50', '-q:v', '3', path.join(frames, '%03d.jpg')]);
  const recording = await Recording.open(dir, identity, { PatientName: 'TEST^RECORDING', PatientID: 'REC-TEST-1', StudyDate: '20240115' }, 25);
  const names = (await readdir(frames)).sort();
  for (const [i, name] of names.entries()) await recording.add(await readFile(path.join(frames, name)), 720, 576, 1_000_000 + i * 40);
  const chunks: Buffer[] = [];
  for await (const chunk of recording.part10()) chunks.push(chunk);
  await recording.discard();
  return Buffer.concat(chunks);
}

function ffprobe(file: string): { frames: number; profile: string; level: number; width: number; height: number } {
  const out = execFileSync('/usr/bin/ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets,profile,level,width,height', '-of', 'json', file]).toString();
  const s = (JSON.parse(out) as { streams: Array<Record<string, unknown>> }).streams[0]!;
  return { frames: Number(s['nb_read_packets']), profile: String(s['profile']), level: Number(s['level']), width: Number(s['width']), height: Number(s['height']) };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

type Status = { run: Record<string, unknown> | null; rules: { lossy: { video: { ffmpeg: string; crf: number } } } };
async function finishedRun(t: TestApp): Promise<Status> {
  const started = await t.app.inject({ method: 'POST', url: '/api/storage/housekeeping' });
  expect(started.statusCode, started.body).toBe(202);
  return waitFor('the housekeeping run', async () => {
    const status = (await t.app.inject({ method: 'GET', url: '/api/storage/housekeeping' })).json() as Status;
    return status.run?.['state'] === 'finished' ? status : undefined;
  });
}

describe('storage lifecycle: lossy policy for video (H.264 High Profile / Level 4.1 by ffmpeg)', { timeout: 180_000 }, () => {
  let t: TestApp;
  let dir: string;
  const originals = new Map<string, { study: string; series: string; file: Buffer; sopClass: string; frames: number }>();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'lossy-video-'));
    t = await buildTestApp(ENV);
    const shared = await readFile(VIDEO);
    const identity = { studyInstanceUid: newUid(), seriesInstanceUid: newUid(), sopInstanceUid: newUid() };
    const recorded = await recordedVideo(dir, identity);
    const stored = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, payload: multipartBody([{ body: shared }, { body: recorded }]) });
    expect(stored.statusCode, stored.body).toBe(200);
    for (const row of await t.services.catalog.listIndexedBlobs(undefined, 100)) {
      const [entry] = await t.services.catalog.listInstancesWithAttributes({ studyInstanceUid: row.studyInstanceUid, seriesInstanceUid: row.seriesInstanceUid, sopInstanceUid: row.sopInstanceUid });
      originals.set(row.sopInstanceUid, { study: row.studyInstanceUid, series: row.seriesInstanceUid, sopClass: entry!.instance.sopClassUid, ...(row.sopInstanceUid === identity.sopInstanceUid ? { file: recorded, frames: 50 } : { file: shared, frames: 200 }) });
    }
    expect(originals.size).toBe(2);
  });
  afterAll(async () => {
    await t?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('replaces each video by a smaller H.264 copy that reads consistently through QIDO-RS, WADO-RS and metadata', async () => {
    const status = await finishedRun(t);
    expect(status.run!['lossy'], JSON.stringify(status.run)).toBe(2);
    expect(status.rules.lossy.video).toMatchObject({ ffmpeg: 'available', crf: 30 });
    expect(Number(status.run!['bytesAfter'])).toBeLessThan(Number(status.run!['bytesBefore']));

    for (const [sop, original] of originals) {
      const copy = derivedUid(sop);
      const base = `/dicomweb/studies/${original.study}/series/${original.series}/instances`;
      const qido = (await t.app.inject({ method: 'GET', url: base })).json() as Json[];
      const uids = qido.map((d) => value(d, '00080018')[0]);
      expect(uids).toContain(copy);
      expect(uids).not.toContain(sop);
      expect((await t.app.inject({ method: 'GET', url: `${base}/${sop}/metadata` })).statusCode).toBe(404);
      const metadata = ((await t.app.inject({ method: 'GET', url: `${base}/${copy}/metadata` })).json() as Json[])[0]!;
      expect(value(metadata, '00020010')[0]).toBe(MPEG4_HP41);
      expect(value(metadata, '00080016')[0]).toBe(original.sopClass);
      expect(value(metadata, '00282110')[0]).toBe('01');
      expect(value(metadata, '00282114').at(-1)).toBe('ISO_14496_10');
      expect(Number(value(metadata, '00282112').at(-1))).toBeGreaterThan(1);
      expect(value(metadata, '00280004')[0]).toBe('YBR_PARTIAL_420');
      expect(value(metadata, '00181065')).toEqual([]);
      expect(Number(value(metadata, '00181063')[0])).toBeCloseTo(40, 1);
      const source = value(metadata, '00082112')[0] as Json;
      expect(value(source, '00081155')[0]).toBe(sop);
      expect(value(value(source, '0040A170')[0] as Json, '00080100')[0]).toBe('121330');
      // Rendered: the stored MP4 as video/mp4, whose frame count is Number of Frames.
      const rendered = await t.app.inject({ method: 'GET', url: `${base}/${copy}/rendered`, headers: { accept: 'video/mp4' } });
      expect(rendered.statusCode).toBe(200);
      expect(String(rendered.headers['content-type'])).toContain('video/mp4');
      const mp4 = path.join(dir, 'rendered.mp4');
      await writeFile(mp4, rendered.rawPayload);
      const stream = ffprobe(mp4);
      expect(stream).toMatchObject({ profile: 'High', width: 720, height: 576 });
      expect(stream.level).toBeLessThanOrEqual(41);
      expect(Number(value(metadata, '00280008')[0])).toBe(stream.frames);
      expect(stream.frames).toBe(original.frames);
      // The whole instance: dciodvfy finds no error the original has not.
      const response = await t.app.inject({ method: 'GET', url: `${base}/${copy}`, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(response.statusCode).toBe(200);
      const [part] = splitMultipart(response.rawPayload, String(response.headers['content-type']));
      expect(part!.body.length).toBeLessThan(original.file.length);
      const before = await dciodvfyErrors(original.file, 'original.dcm', { withoutValues: true });
      const after = await dciodvfyErrors(part!.body, 'lossy.dcm', { withoutValues: true });
      expect(after.filter((line) => !before.includes(line)), sop).toEqual([]);
    }
    await waitFor('the originals purged', async () => ((await t.services.catalog.listIndexedBlobs(undefined, 100)).some((r) => originals.has(r.sopInstanceUid)) ? undefined : true));
    await t.services.housekeeping!.settle();
    const fsck = await runFsck(t.services.blobStore, t.services.catalog, { repair: false, minAgeMs: 0 });
    expect(fsck.problems).toEqual([]);
    expect(await readdir(path.join(t.dataDir, 'lifecycle-tmp')).catch(() => [])).toEqual([]);
    // A second run re-encodes nothing: the copies are this policy's own.
    const second = await finishedRun(t);
    expect(second.run!['lossy']).toBe(0);
    expect((second.run!['skipReasons'] as Record<string, number>)['already a lossy copy made by this policy']).toBe(2);
  });
});

describe('storage lifecycle: lossy video without ffmpeg', { timeout: 60_000 }, () => {
  let t: TestApp | undefined;
  const path0 = process.env['PATH'];
  afterAll(async () => {
    process.env['PATH'] = path0;
    await t?.close();
  });

  it('keeps the video and says "ffmpeg not available" in the run and the rules', async () => {
    t = await buildTestApp(ENV);
    const stored = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, payload: multipartBody([{ body: await readFile(VIDEO) }]) });
    expect(stored.statusCode, stored.body).toBe(200);
    const [row] = await t.services.catalog.listIndexedBlobs(undefined, 10);
    process.env['PATH'] = path.join(os.tmpdir(), 'no-ffmpeg-here');
    const status = await finishedRun(t);
    process.env['PATH'] = path0;
    expect(status.rules.lossy.video.ffmpeg).toBe('ffmpeg not available');
    expect(status.run!['lossy']).toBe(0);
    expect((status.run!['skipReasons'] as Record<string, number>)['ffmpeg not available']).toBe(1);
    const qido = (await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${row!.studyInstanceUid}/instances` })).json() as Json[];
    expect(qido.map((d) => value(d, '00080018')[0])).toEqual([row!.sopInstanceUid]);
  });
});

describe('kill -9 during a lossy video run', () => {
  const servers: SpawnedServer[] = [];
  const folders: string[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.kill('SIGKILL');
    for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
  });

  it('leaves every video as it was or replaced by one whole copy; the restarted server finishes with exactly one copy each', { timeout: 240_000 }, async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-lossy-video-crash-'));
    folders.push(dataDir);
    const env = { ...ENV, PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '1', PACS_LIFECYCLE_PAUSE_MS: '30', PACS_LOG_LEVEL: 'warn' };
    const start = async () => {
      const server = await spawnServer(env);
      servers.push(server);
      return server;
    };
    const run = async (server: SpawnedServer) => ((await (await fetch(`${server.url}/api/storage/housekeeping`)).json()) as { run: { state: string; lossy?: number } | null }).run;
    // The series (the study also holds the 113039 rejection notes).
    const visible = async (server: SpawnedServer, study: string) => {
      const response = await fetch(`${server.url}/dicomweb/studies/${study}/series/${series}/instances`);
      return response.status === 204 ? [] : ((await response.json()) as Json[]).map((d) => String(value(d, '00080018')[0]));
    };
    const study = newUid();
    const series = newUid();
    const sops = Array.from({ length: 4 }, () => newUid());
    const shared = await readFile(VIDEO);
    const files = sops.map((sop) => withUids(shared, study, series, sop));

    let server = await start();
    const stored = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(multipartBody(files.map((body) => ({ body })))) });
    expect(stored.status).toBe(200);
    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await waitFor('a first video replaced', async () => (((await run(server))?.lossy ?? 0) >= 1 ? true : undefined));
    await server.kill('SIGKILL');

    const afterKill = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '3600' });
    expect(afterKill.output.split('\n').filter((l) => /^(missing-blob|size-mismatch|checksum-mismatch|unreadable-blob)\b/.test(l)), afterKill.output).toEqual([]);

    await new Promise((resolve) => setTimeout(resolve, 1100));
    server = await start();
    const seen = new Set(await visible(server, study));
    for (const sop of sops) expect(seen.has(sop) || seen.has(derivedUid(sop)), sop).toBe(true);
    expect((await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' })).status).toBe(202);
    await waitFor('the run to finish', async () => ((await run(server))?.state === 'finished' ? true : undefined), 180_000);
    expect((await visible(server, study)).sort()).toEqual(sops.map((sop) => derivedUid(sop)).sort());
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await server.kill('SIGTERM');
    // Temporary files of the killed re-encoding are gone (removed at the restart).
    expect(await readdir(path.join(dataDir, 'lifecycle-tmp')).catch(() => [])).toEqual([]);
    const final = await runFsckScript({ PACS_DATA_DIR: dataDir, PACS_ORPHAN_MIN_AGE_SECONDS: '1' });
    expect(final.code, final.output).toBe(0);
    expect(reportedCount(final.output, 'problems found')).toBe(0);
  });
});
