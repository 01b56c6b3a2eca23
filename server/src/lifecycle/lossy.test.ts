/**
 * The optional lossy policy through the real app (folder store, SQLite index, in-process queue,
 * curation): an endoscopy still (VL Endoscopic Image, 8-bit RGB), a multi-frame 8-bit RGB Secondary
 * Capture and a 16-bit MR (10 frames) are replaced by lossy copies (JPEG Baseline, JPEG 2000
 * irreversible) under new SOP Instance UIDs; each copy passes dciodvfy with no error the original does
 * not have, says Lossy Image Compression 01 with ratio and method, names the original in its Source
 * Image Sequence, and decodes with a PSNR above the documented floor (PSNR_FLOOR). QIDO-RS, WADO-RS and
 * metadata agree: the originals are gone (rejected with 113039, then purged), the copies are there.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsck } from '../archive/fsck.js';
import { pixelAttributesFromJson } from '../archive/transcode.js';
import { JPEG_2000, JPEG_BASELINE_8BIT } from '../dicom/transfer-syntax.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { derivedUid, framePsnr } from './lossy.js';

type Json = Record<string, { vr?: string; Value?: unknown[] }>;

requireDciodvfy();

/** The documented floor: JPEG quality 90 and JPEG 2000 at 10:1 stay above it on these images. */
const PSNR_FLOOR = 35;
const data = requireSharedData();
const SAMPLES = [
  path.join(data, 'endoscopy-dicom-kvasir', 'vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-explicit-le-rgb.dcm'),
  path.join(data, 'dicom-pydicom', 'pydicom-data', 'SC_rgb_2frame.dcm'),
  path.join(data, 'dicom-pydicom', 'pydicom-data', 'emri_small.dcm'),
];
const ENV = {
  PACS_AI_ENABLED: 'false',
  PACS_LOG_LEVEL: 'warn',
  PACS_LIFECYCLE_LOSSY: 'on',
  PACS_LIFECYCLE_LOSSY_MIN_PSNR: String(PSNR_FLOOR),
  PACS_LIFECYCLE_INTERVAL_SECONDS: '0',
  PACS_LIFECYCLE_PAUSE_MS: '0',
  PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '0',
  PACS_LIFECYCLE_BATCH: '2',
  PACS_REJECTION_PURGE_INTERVAL_SECONDS: '1',
};

const value = (dataset: Json, tag: string): unknown[] => dataset[tag]?.Value ?? [];

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('storage lifecycle: lossy policy (new SOP Instance UID, original rejected with 113039)', () => {
  let t: TestApp;
  let dir: string;
  const originals = new Map<string, { study: string; series: string; sopClass: string; frames: Buffer[]; attributes: ReturnType<typeof pixelAttributesFromJson>; file: Buffer }>();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'lossy-'));
    t = await buildTestApp(ENV);
    const files = await Promise.all(SAMPLES.map((f) => readFile(f)));
    const stored = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, payload: multipartBody(files.map((body) => ({ body }))) });
    expect(stored.statusCode, stored.body).toBe(200);
    const rows = await t.services.catalog.listIndexedBlobs(undefined, 100);
    for (const row of rows) {
      const [entry] = await t.services.catalog.listInstancesWithAttributes({ studyInstanceUid: row.studyInstanceUid, seriesInstanceUid: row.seriesInstanceUid, sopInstanceUid: row.sopInstanceUid });
      const attributes = pixelAttributesFromJson(entry!.attributes);
      const frames = await t.services.archive.readDecodedFrames(entry!.instance, attributes, Array.from({ length: entry!.instance.numberOfFrames }, (_, i) => i + 1));
      originals.set(row.sopInstanceUid, { study: row.studyInstanceUid, series: row.seriesInstanceUid, sopClass: entry!.instance.sopClassUid, frames, attributes, file: files.find((f) => f.includes(Buffer.from(row.sopInstanceUid)))! });
    }
    expect(originals.size).toBe(3);
  });
  afterAll(async () => {
    await t?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('replaces each image by a lossy copy that reads consistently through QIDO-RS, WADO-RS and metadata', async () => {
    const started = await t.app.inject({ method: 'POST', url: '/api/storage/housekeeping' });
    expect(started.statusCode, started.body).toBe(202);
    const run = await waitFor('the housekeeping run', async () => {
      const status = (await t.app.inject({ method: 'GET', url: '/api/storage/housekeeping' })).json() as { run: Record<string, unknown> | null; rules: Record<string, unknown> };
      return status.run?.['state'] === 'finished' ? status : undefined;
    });
    expect(run.run!['lossy'], JSON.stringify(run.run)).toBe(3);
    expect((run.rules['lossy'] as Record<string, unknown>)['jpegQuality']).toBe(90);

    for (const [sop, original] of originals) {
      const copy = derivedUid(sop);
      const base = `/dicomweb/studies/${original.study}/series/${original.series}/instances`;
      // QIDO-RS: the copy, never the original (rejected, then purged).
      const qido = (await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${original.study}/series/${original.series}/instances` })).json() as Json[];
      const uids = qido.map((d) => value(d, '00080018')[0]);
      expect(uids).toContain(copy);
      expect(uids).not.toContain(sop);
      expect((await t.app.inject({ method: 'GET', url: `${base}/${sop}/metadata` })).statusCode).toBe(404);
      // Metadata: lossy, ratio and method, and the original named as source.
      const metadata = ((await t.app.inject({ method: 'GET', url: `${base}/${copy}/metadata` })).json() as Json[])[0]!;
      const syntax = original.attributes.bitsAllocated === 8 ? JPEG_BASELINE_8BIT : JPEG_2000;
      expect(value(metadata, '00020010')[0]).toBe(syntax);
      expect(value(metadata, '00282110')[0]).toBe('01');
      expect(Number(value(metadata, '00282112').at(-1))).toBeGreaterThan(1);
      expect(value(metadata, '00282114').at(-1)).toBe(syntax === JPEG_BASELINE_8BIT ? 'ISO_10918_1' : 'ISO_15444_1');
      const source = value(metadata, '00082112')[0] as Json;
      expect(value(source, '00081155')[0]).toBe(sop);
      expect(value(source, '00081150')[0]).toBe(original.sopClass);
      expect(String(value(metadata, '00082111')[0])).toContain(sop);
      // WADO-RS: the whole instance as stored, checked by dciodvfy against the original's errors.
      const response = await t.app.inject({ method: 'GET', url: `${base}/${copy}`, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(response.statusCode).toBe(200);
      const [part] = splitMultipart(response.rawPayload, String(response.headers['content-type']));
      const before = await dciodvfyErrors(original.file, 'original.dcm', { withoutValues: true });
      const after = await dciodvfyErrors(part!.body, 'lossy.dcm', { withoutValues: true });
      expect(after.filter((line) => !before.includes(line)), `${sop}`).toEqual([]);
      // Decoded frames (WADO-RS frames as raw pixels) against the original: PSNR above the floor.
      const [entry] = await t.services.catalog.listInstancesWithAttributes({ studyInstanceUid: original.study, seriesInstanceUid: original.series, sopInstanceUid: copy });
      const frames = await t.services.archive.readDecodedFrames(entry!.instance, pixelAttributesFromJson(entry!.attributes), original.frames.map((_, i) => i + 1));
      expect(frames).toHaveLength(original.frames.length);
      frames.forEach((frame, i) => expect(framePsnr(original.frames[i]!, frame, original.attributes), `${sop} frame ${i + 1}`).toBeGreaterThan(PSNR_FLOOR));
      const frame = await t.app.inject({ method: 'GET', url: `${base}/${copy}/frames/1`, headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      expect(frame.statusCode).toBe(200);
    }
    // The originals are purged (113039) and the index and store agree.
    await waitFor('the originals purged', async () => ((await t.services.catalog.listIndexedBlobs(undefined, 100)).some((r) => originals.has(r.sopInstanceUid)) ? undefined : true));
    await t.services.housekeeping!.settle();
    const fsck = await runFsck(t.services.blobStore, t.services.catalog, { repair: false, minAgeMs: 0 });
    expect(fsck.problems).toEqual([]);
    // A second run finds nothing more to do (the copies are lossy JPEG: no rule selects them).
    await t.app.inject({ method: 'POST', url: '/api/storage/housekeeping' });
    const second = await waitFor('the second run', async () => {
      const status = (await t.app.inject({ method: 'GET', url: '/api/storage/housekeeping' })).json() as { run: Record<string, unknown> | null };
      return status.run?.['state'] === 'finished' ? status.run : undefined;
    });
    expect(second['lossy']).toBe(0);
  });
});
