/**
 * The storage lifecycle through the real app (folder store, SQLite index, in-process queue, audit
 * trail): every rule off by default leaves the stored files byte for byte; the usage API adds up what
 * is stored; compression at ingest and by a housekeeping run for older studies (rules by modality and
 * age) replace uncompressed files by JPEG-LS ones that decode to the same frames, with fsck clean; an
 * interrupted recompression (journal entry and converted blob, no swap: what a kill leaves) is left
 * alone while young and removed by fsck --repair once old, the instance intact; retention expiry
 * rejects old studies with a 113039 Data Retention Policy Expired note, then the purge removes them.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsck } from '../archive/fsck.js';
import { pixelAttributesFromJson } from '../archive/transcode.js';
import type { StorageUsageJson, StudyUsageJson } from '../contracts/storage.js';
import { JPEG_LS_LOSSLESS } from '../dicom/transfer-syntax.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { recompressInstance, recompressionEligibility } from './recompress.js';

type Json = Record<string, unknown>;

const sample = (name: string) => path.join(requireSharedData(), 'dicom-pydicom', name);
const SAMPLES = ['debian-python3-pydicom-2.3.1/CT_small.dcm', 'debian-python3-pydicom-2.3.1/MR_small_implicit.dcm', 'pydicom-data/SC_rgb.dcm'].map(sample);
const QUIET = { PACS_AI_ENABLED: 'false', PACS_LOG_LEVEL: 'warn' };
const FAST = { PACS_LIFECYCLE_INTERVAL_SECONDS: '0', PACS_LIFECYCLE_PAUSE_MS: '0', PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '0', PACS_LIFECYCLE_BATCH: '2' };

async function stow(t: TestApp, files: Buffer[]): Promise<void> {
  const response = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, payload: multipartBody(files.map((body) => ({ body }))) });
  expect(response.statusCode, response.body).toBe(200);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function blobBytes(t: TestApp, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await t.services.blobStore.get(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function allInstances(t: TestApp) {
  const rows = await t.services.catalog.listIndexedBlobs(undefined, 10_000);
  return Promise.all(rows.map(async (r) => (await t.services.catalog.listInstancesWithAttributes({ studyInstanceUid: r.studyInstanceUid, seriesInstanceUid: r.seriesInstanceUid, sopInstanceUid: r.sopInstanceUid }))[0]!));
}

/** Decoded frames of every stored instance, by SOP Instance UID. */
async function decodedFrames(t: TestApp): Promise<Map<string, Buffer[]>> {
  const out = new Map<string, Buffer[]>();
  for (const entry of await allInstances(t)) {
    if (entry.instance.pixelData === undefined) continue;
    const frames = Array.from({ length: entry.instance.numberOfFrames }, (_, i) => i + 1);
    out.set(entry.instance.sopInstanceUid, await t.services.archive.readDecodedFrames(entry.instance, pixelAttributesFromJson(entry.attributes), frames));
  }
  return out;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runHousekeeping(t: TestApp): Promise<Json> {
  const started = await t.app.inject({ method: 'POST', url: '/api/storage/housekeeping' });
  expect(started.statusCode, started.body).toBe(202);
  return waitFor('the housekeeping run', async () => {
    const status = (await t.app.inject({ method: 'GET', url: '/api/storage/housekeeping' })).json() as { run: Json | null };
    return status.run?.['state'] === 'finished' ? status.run : undefined;
  });
}

describe('storage lifecycle: every rule off by default', () => {
  let t: TestApp;
  const files: Buffer[] = [];
  beforeAll(async () => {
    t = await buildTestApp(QUIET);
    for (const file of SAMPLES) files.push(await readFile(file));
    files.push(makeInstance({ rows: 32, columns: 32, modality: 'ES' }));
    await stow(t, files);
  });
  afterAll(() => t?.close());

  it('keeps every stored file byte for byte and has nothing to run', async () => {
    expect(t.config.lifecycle.compression).toBeNull();
    expect(t.config.lifecycle.retention).toBeNull();
    expect(t.services.housekeeping?.enabled).toBe(false);
    const refused = await t.app.inject({ method: 'POST', url: '/api/storage/housekeeping' });
    expect(refused.statusCode).toBe(409);
    expect((refused.json() as { error: { code: string; message: string } }).error).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/every storage lifecycle rule is off/i) });
    const stored = new Set<string>();
    for (const entry of await allInstances(t)) stored.add(sha256(await blobBytes(t, entry.instance.blobKey)));
    expect(stored).toEqual(new Set(files.map(sha256)));
    expect(await t.services.catalog.listConversions(10)).toEqual([]);
  });

  it('reports usage in total, by modality and transfer syntax, per study; refuses bad input; audits it', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/api/storage/usage?limit=2' });
    expect(response.statusCode, response.body).toBe(200);
    const usage = response.json() as StorageUsageJson;
    const total = files.reduce((n, f) => n + f.length, 0);
    expect(usage.total).toMatchObject({ instances: 4, studies: 4, bytes: total, receivedBytes: total, savedBytes: 0, recompressedInstances: 0, rejectedInstances: 0 });
    expect(usage.byModality.reduce((n, m) => n + m.bytes, 0)).toBe(total);
    expect(usage.byModality.map((m) => m.modality).sort()).toEqual(['CT', 'ES', 'MR', 'OT']);
    expect(usage.byTransferSyntax.find((s) => s.transferSyntaxUid === '1.2.840.10008.1.2')?.instances).toBe(1);
    expect(usage.studies).toHaveLength(2);
    expect(usage.studies[0]!.bytes).toBeGreaterThanOrEqual(usage.studies[1]!.bytes);
    const [largest] = usage.studies;
    const study = (await t.app.inject({ method: 'GET', url: `/api/storage/usage/studies/${largest!.studyInstanceUid}` })).json() as StudyUsageJson;
    expect(study).toMatchObject({ studyInstanceUid: largest!.studyInstanceUid, instances: 1, bytes: largest!.bytes });
    expect(study.series).toHaveLength(1);
    expect((await t.app.inject({ method: 'GET', url: `/api/storage/usage/studies/${newUid()}` })).statusCode).toBe(404);
    const bad = await t.app.inject({ method: 'GET', url: '/api/storage/usage/studies/not-a-uid' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toMatch(/Study Instance UID/);
    expect((await t.app.inject({ method: 'GET', url: '/api/storage/usage?limit=0' })).statusCode).toBe(400);
    await t.services.audit!.flush();
    const audit = (await t.app.inject({ method: 'GET', url: '/admin/audit?action=storage-read&limit=10' })).json() as { records: Array<{ interface: string; objects: Json[] }> };
    expect(audit.records.length).toBeGreaterThanOrEqual(2);
    expect(audit.records.every((r) => r.interface === 'storage')).toBe(true);
    expect(JSON.stringify(audit.records)).not.toContain('TEST^PATIENT');
  });
});

describe('storage lifecycle: JPEG-LS lossless at ingest', () => {
  let t: TestApp;
  let before: Map<string, Buffer[]>;
  beforeAll(async () => {
    t = await buildTestApp({ ...QUIET, ...FAST, PACS_LIFECYCLE_COMPRESS: 'jpeg-ls', PACS_LIFECYCLE_COMPRESS_MODALITIES: 'CT,MR,OT' });
    // Frames as stored, read before the conversion (compression at ingest starts right after the store).
    const reference = await buildTestApp(QUIET);
    try {
      await stow(reference, await Promise.all(SAMPLES.map((f) => readFile(f))));
      before = await decodedFrames(reference);
    } finally {
      await reference.close();
    }
    await stow(t, [...(await Promise.all(SAMPLES.map((f) => readFile(f)))), makeInstance({ rows: 64, columns: 64, modality: 'ES' })]);
  });
  afterAll(() => t?.close());

  it('recompresses each instance a rule selects, to the same frames, keeping its UID and recording the original syntax', async () => {
    const entries = await waitFor('three recompressed instances', async () => {
      const all = await allInstances(t);
      return all.filter((e) => e.instance.transferSyntaxUid === JPEG_LS_LOSSLESS).length === 3 ? all : undefined;
    });
    const es = entries.find((e) => e.instance.transferSyntaxUid !== JPEG_LS_LOSSLESS)!;
    expect(es.instance.transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
    const after = await decodedFrames(t);
    for (const [sop, frames] of before) frames.forEach((frame, i) => expect(after.get(sop)![i]!.equals(frame), `${sop} frame ${i + 1}`).toBe(true));
    const rows = await t.services.catalog.listIndexedBlobs(undefined, 100);
    expect(rows.filter((r) => r.originalTransferSyntaxUid !== undefined).map((r) => r.originalTransferSyntaxUid).sort()).toEqual(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1']);
    // Metadata and the stored instance say the new syntax; the instance keeps its SOP Instance UID.
    const ct = entries.find((e) => e.instance.sopClassUid === '1.2.840.10008.5.1.4.1.1.2')!.instance;
    const metadata = (await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${ct.studyInstanceUid}/series/${ct.seriesInstanceUid}/instances/${ct.sopInstanceUid}/metadata` })).json() as Json[];
    expect((metadata[0]!['00020010'] as { Value: string[] }).Value[0]).toBe(JPEG_LS_LOSSLESS);
    expect((metadata[0]!['00080018'] as { Value: string[] }).Value[0]).toBe(ct.sopInstanceUid);
    await t.services.housekeeping!.settle();
    const usage = (await t.app.inject({ method: 'GET', url: '/api/storage/usage' })).json() as StorageUsageJson;
    expect(usage.total.recompressedInstances).toBe(3);
    expect(usage.total.savedBytes).toBeGreaterThan(0);
    expect(usage.total.bytes).toBe(usage.total.receivedBytes - usage.total.savedBytes);
    const fsck = await runFsck(t.services.blobStore, t.services.catalog, { repair: false, minAgeMs: 0 });
    expect(fsck.problems).toEqual([]);
    expect(fsck.recompressedInstances).toBe(3);
    expect(fsck.blobsListed).toBe(4);
    await t.services.audit!.flush();
    const audit = (await t.app.inject({ method: 'GET', url: '/admin/audit?action=recompress&limit=10' })).json() as { records: Array<{ who: Json; detail: Json }> };
    expect(audit.records).toHaveLength(3);
    expect(audit.records[0]!.detail['to']).toBe(JPEG_LS_LOSSLESS);
  });
});

describe('storage lifecycle: housekeeping run by age and modality; an interrupted recompression', () => {
  let t: TestApp;
  const oldCt = { studyInstanceUid: newUid(), sop: newUid() };
  beforeAll(async () => {
    t = await buildTestApp({ ...QUIET, ...FAST, PACS_LIFECYCLE_COMPRESS: 'jpeg-ls', PACS_LIFECYCLE_COMPRESS_AFTER_DAYS: '365', PACS_LIFECYCLE_COMPRESS_MODALITIES: 'CT' });
    await stow(t, [
      makeInstance({ rows: 64, columns: 64, modality: 'CT', studyDate: '20050101', studyInstanceUid: oldCt.studyInstanceUid, sopInstanceUid: oldCt.sop }),
      ...Array.from({ length: 4 }, () => makeInstance({ rows: 64, columns: 64, modality: 'CT', studyDate: '20060101' })),
      makeInstance({ rows: 64, columns: 64, modality: 'CT', studyDate: new Date().toISOString().slice(0, 10).replace(/-/g, '') }),
      makeInstance({ rows: 64, columns: 64, modality: 'MR', studyDate: '20050101' }),
    ]);
  });
  afterAll(() => t?.close());

  it('recompresses only what is older than the rule says and of its modality, in several queued units', async () => {
    const run = await runHousekeeping(t);
    expect(run).toMatchObject({ recompressed: 5, failed: 0 });
    expect((run['bytesBefore'] as number) - (run['bytesAfter'] as number)).toBeGreaterThan(0);
    const bySyntax = new Map<string, number>();
    for (const r of await t.services.catalog.listIndexedBlobs(undefined, 100)) bySyntax.set(r.originalTransferSyntaxUid ?? 'as received', (bySyntax.get(r.originalTransferSyntaxUid ?? 'as received') ?? 0) + 1);
    expect(Object.fromEntries(bySyntax)).toEqual({ 'as received': 2, '1.2.840.10008.1.2.1': 5 });
    // A second run finds nothing left to do (progress is the index itself).
    expect(await runHousekeeping(t)).toMatchObject({ recompressed: 0 });
  });

  it('leaves a young interrupted recompression alone; fsck --repair removes an old one; the instance stays readable', async () => {
    const { catalog, blobStore } = t.services;
    // What a kill between writing the converted blob and swapping the row leaves.
    const mr = (await allInstances(t)).find((e) => e.instance.transferSyntaxUid === '1.2.840.10008.1.2.1' && e.attributes['00080060'] !== undefined && (e.attributes['00080060'] as { Value: string[] }).Value[0] === 'MR')!;
    const eligibility = recompressionEligibility(mr.instance, mr.attributes, 1 << 30);
    if (!eligibility.ok) throw new Error(eligibility.reason);
    const file = await recompressInstance(blobStore, mr.instance, eligibility.attributes, JPEG_LS_LOSSLESS, { maxBytes: 1 << 30, maxHeaderBytes: 1 << 26 });
    const key = 'ab/cd/abcdabcd-0000-4000-8000-interrupted.dcm';
    await catalog.beginConversion({ blobKey: key, sopInstanceUid: mr.instance.sopInstanceUid, sourceBlobKey: mr.instance.blobKey, transferSyntaxUid: JPEG_LS_LOSSLESS, startedAt: new Date().toISOString() });
    await blobStore.put(key, Readable.from(file.chunks));

    const young = await runFsck(blobStore, catalog, { repair: false, minAgeMs: 3_600_000 });
    expect(young.problems).toEqual([]);
    expect(young.conversionsUnderWay).toBe(1);
    const old = await runFsck(blobStore, catalog, { repair: false, minAgeMs: 0, now: () => Date.now() + 1000 });
    expect(old.problems.map((p) => p.kind)).toEqual(['interrupted-conversion']);
    const repaired = await runFsck(blobStore, catalog, { repair: true, minAgeMs: 0, now: () => Date.now() + 1000 });
    expect(repaired.problems.map((p) => p.action)).toEqual(['removed journal entry and blob']);
    expect(await blobStore.stat(key)).toBeUndefined();
    const clean = await runFsck(blobStore, catalog, { repair: false, minAgeMs: 0 });
    expect(clean.problems).toEqual([]);
    expect(clean.recompressedInstances).toBe(5);
    const frames = await t.services.archive.readDecodedFrames(mr.instance, pixelAttributesFromJson(mr.attributes), [1]);
    expect(frames[0]!.length).toBe(64 * 64);
  });
});

describe('storage lifecycle: retention expiry', () => {
  let t: TestApp;
  const old = newUid();
  const recent = newUid();
  beforeAll(async () => {
    t = await buildTestApp({ ...QUIET, ...FAST, PACS_LIFECYCLE_RETENTION_YEARS: '10', PACS_LIFECYCLE_RETENTION_MODALITIES: 'CT' });
    await stow(t, [
      makeInstance({ modality: 'CT', studyDate: '19990101', studyInstanceUid: old }),
      makeInstance({ modality: 'CT', studyDate: '19990101', studyInstanceUid: old }),
      makeInstance({ modality: 'CT', studyDate: '19990101', studyInstanceUid: old }),
      makeInstance({ modality: 'CT', studyDate: new Date().toISOString().slice(0, 10).replace(/-/g, ''), studyInstanceUid: recent }),
    ]);
  });
  afterAll(() => t?.close());

  it('rejects the instances of studies older than the rule with a 113039 note, then the purge removes them', async () => {
    const run = await runHousekeeping(t);
    // Three instances over two units of two (PACS_LIFECYCLE_BATCH): one note for the study.
    expect(run).toMatchObject({ expired: 3, failed: 0 });
    const rejected = (await t.app.inject({ method: 'GET', url: `/curation/rejected?study=${old}` })).json() as { rejected: Array<{ reason: { code: string; meaning: string }; kind: string }> };
    expect(rejected.rejected).toHaveLength(3);
    expect(rejected.rejected.every((r) => r.reason.code === '113039' && r.reason.meaning === 'Data Retention Policy Expired')).toBe(true);
    // The note is in the study, visible (the record); the expired instances are not.
    const visible = (await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${old}/instances` })).json() as Json[];
    expect(visible.map((i) => (i['00080016'] as { Value: string[] }).Value[0])).toEqual(['1.2.840.10008.5.1.4.1.1.88.59']);
    expect(((await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${recent}/instances` })).json() as Json[]).length).toBe(1);
    // A second run does not reject the note itself, nor anything else.
    expect(await runHousekeeping(t)).toMatchObject({ expired: 0 });
    // 113039 is purged at the next sweep.
    const purge = await t.app.inject({ method: 'POST', url: '/curation/purge' });
    expect(purge.json()).toMatchObject({ instancesRemoved: 3 });
    const fsck = await runFsck(t.services.blobStore, t.services.catalog, { repair: false, minAgeMs: 0 });
    expect(fsck.problems).toEqual([]);
    expect(fsck.instancesChecked).toBe(2);
  });
});
