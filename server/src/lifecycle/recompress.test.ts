/**
 * Lossless recompression of every uncompressed sample of the shared public data sets
 * (../shared/data/dicom-*, found by the transfer syntax their INVENTORY.tsv lists: Implicit VR Little
 * Endian, Explicit VR Little Endian, Explicit VR Big Endian), into JPEG-LS Lossless and into HTJ2K
 * Lossless, through the real archive (folder store + SQLite index) and housekeeping: every sample with
 * pixel data a lossless codec can carry decodes (WADO-RS decoded frames) to exactly the frames stored
 * before; the others are named with the reason they were kept as received; the space saved is reported;
 * dciodvfy (dicom3tools) finds no error in a recompressed file that the original does not have.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archive } from '../archive/archive.js';
import { pixelAttributesFromJson } from '../archive/transcode.js';
import { createCatalog } from '../catalog/create-catalog.js';
import type { Catalog } from '../catalog/catalog.js';
import { loadConfig } from '../config.js';
import { HTJ2K_LOSSLESS, JPEG_LS_LOSSLESS } from '../dicom/transfer-syntax.js';
import { InProcessQueue } from '../pathology/job-queue.js';
import { createBlobStore } from '../storage/create-blob-store.js';
import type { BlobStore } from '../storage/blob-store.js';
import { runTool } from '../test-support/dimse-peer.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { Housekeeping, type HousekeepingMessage } from './housekeeping.js';
import { interleave, recompressInstance, recompressionEligibility } from './recompress.js';
import { readLifecycleConfig } from '../config/lifecycle.js';
import { EnvReader } from '../config/env-reader.js';

const DCIODVFY = '/usr/bin/dciodvfy';
if (!existsSync(DCIODVFY)) throw new Error("dicom3tools' dciodvfy is not installed; install it with: apt-get install -y --no-install-recommends dicom3tools");

const UNCOMPRESSED = new Set(['Implicit VR Little Endian', 'Explicit VR Little Endian', 'Explicit VR Big Endian']);

/** Why a sample may be kept as received: what no lossless codec of the archive carries exactly. */
const ACCEPTED_REASONS = [
  /^bit-packed pixel data/,
  /^float pixel data/,
  /BitsAllocated 8 and 16 only/,
  /^photometric interpretation YBR_/,
  /^no pixel data$/,
  /^frames not located$/,
  /^frames shorter than the image pixel module says$/,
  /no valid (rows|columns|bitsAllocated)/,
  /^no space saved/,
  /^larger than \d+ bytes \(PACS_DECODE_MAX_BYTES\)$/,
];

interface Sample {
  file: string;
  syntax: string;
}

async function uncompressedSamples(): Promise<Sample[]> {
  const root = requireSharedData();
  const samples: Sample[] = [];
  for (const folder of ['dicom-dcmjs-tests', 'dicom-highdicom', 'dicom-orthanc-tests', 'dicom-pydicom']) {
    const inventory = await readFile(path.join(root, folder, 'INVENTORY.tsv'), 'utf8');
    for (const line of inventory.split('\n').slice(1)) {
      const [, file, , syntax, , geometry] = line.split('\t');
      // Images only: rows × columns × frames known (not "xx1": SR, PDF, DICOMDIR, waveforms).
      if (file === undefined || syntax === undefined || !UNCOMPRESSED.has(syntax) || geometry === undefined || geometry.startsWith('xx')) continue;
      samples.push({ file: path.join(root, folder, file), syntax });
    }
  }
  return samples;
}

interface Wired {
  dir: string;
  blobs: BlobStore;
  catalog: Catalog;
  archive: Archive;
  housekeeping: Housekeeping;
  close(): Promise<void>;
}

async function wire(target: 'jpeg-ls' | 'htj2k'): Promise<Wired> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `pacs-recompress-${target}-`));
  const config = loadConfig({ PACS_DATA_DIR: dir, PACS_AI_ENABLED: 'false' });
  const blobs = await createBlobStore(config.blobStore);
  const catalog = await createCatalog(config.index);
  const log = pino({ level: 'silent' });
  const archive = new Archive(blobs, catalog, log, { maxHeaderBytes: config.stow.maxHeaderBytes });
  const lifecycle = readLifecycleConfig(new EnvReader({ PACS_LIFECYCLE_COMPRESS: target, PACS_LIFECYCLE_PAUSE_MS: '0', PACS_LIFECYCLE_INTERVAL_SECONDS: '0' }));
  const housekeeping = new Housekeeping(blobs, catalog, archive, new InProcessQueue<HousekeepingMessage>(), log, {
    config: lifecycle,
    maxBytes: config.limits.decodeMaxBytes,
    maxHeaderBytes: config.stow.maxHeaderBytes,
    deleteGraceMs: 0,
  });
  return {
    dir,
    blobs,
    catalog,
    archive,
    housekeeping,
    async close() {
      await housekeeping.close();
      await catalog.close();
      await blobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function store(archive: Archive, bytes: Buffer) {
  const scanned = await archive.scanAndStore(
    (async function* () {
      yield bytes;
    })(),
  );
  return scanned.completion;
}

async function readBlob(blobs: BlobStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** dciodvfy's error lines (warnings left out), without the values they quote. */
async function dciodvfyErrors(file: Buffer, dir: string, name: string): Promise<string[]> {
  const at = path.join(dir, name);
  await writeFile(at, file);
  const result = await runTool(DCIODVFY, [at]);
  return (result.stdout + result.stderr)
    .split('\n')
    .filter((line) => line.startsWith('Error'))
    .map((line) => line.replace(/<[^>]*>\s*=\s*.*$/, '').trim());
}

/**
 * The file with another Transfer Syntax UID in its File Meta (group length recomputed). dicom3tools of
 * 2022 predates HTJ2K (PS3.5 A.4.4, 2023) and cannot parse a data set in that syntax: its data set is
 * checked labelled JPEG 2000 Lossless, the same encapsulation (dciodvfy does not decode pixel data).
 */
function relabelled(file: Buffer, syntax: string): Buffer {
  const elements: Buffer[] = [];
  let pos = 132;
  while (file.readUInt16LE(pos) === 0x0002) {
    const vr = file.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'UN', 'UT', 'SQ', 'UC', 'UR'].includes(vr);
    const end = pos + (long ? 12 : 8) + (long ? file.readUInt32LE(pos + 8) : file.readUInt16LE(pos + 6));
    const element = file.readUInt16LE(pos + 2);
    if (element === 0x0010) {
      const value = syntax.length % 2 === 1 ? `${syntax}\0` : syntax;
      const out = Buffer.alloc(8 + value.length);
      file.copy(out, 0, pos, pos + 6);
      out.writeUInt16LE(value.length, 6);
      out.write(value, 8, 'latin1');
      elements.push(out);
    } else if (element !== 0x0000) {
      elements.push(file.subarray(pos, end));
    }
    pos = end;
  }
  const body = Buffer.concat(elements);
  const length = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00, 0, 0, 0, 0]);
  length.writeUInt32LE(body.length, 8);
  return Buffer.concat([file.subarray(0, 132), length, body, file.subarray(pos)]);
}

interface Row {
  sample: string;
  outcome: string;
  before?: number;
  after?: number;
}

describe.each([
  ['jpeg-ls', JPEG_LS_LOSSLESS],
  ['htj2k', HTJ2K_LOSSLESS],
] as const)('lossless recompression of every uncompressed shared sample to %s', (target, syntax) => {
  let w: Wired;
  let samples: Sample[];
  const rows: Row[] = [];
  const converted: Array<{ sample: string; original: Buffer; recompressed: Buffer }> = [];
  const kinds = new Set<string>();
  const fallbacks: string[] = [];

  beforeAll(async () => {
    w = await wire(target);
    samples = await uncompressedSamples();
  });
  afterAll(async () => {
    await w?.close();
  });

  it('decodes every recompressed sample to exactly the frames stored before, keeps its SOP Instance UID and records the original syntax', { timeout: 600_000 }, async () => {
    expect(samples.length).toBeGreaterThan(100);
    for (const sample of samples) {
      const name = path.relative(requireSharedData(), sample.file);
      const bytes = await readFile(sample.file);
      let result = await store(w.archive, bytes);
      // Several samples are variants of one instance (same SOP Instance UID in another syntax): each is
      // tested on its own, so an earlier variant goes first.
      if (result.ok) {
        const sop = result.item.sopInstanceUid;
        const earlier = (await w.catalog.listIndexedBlobs(undefined, 100_000)).find((b) => b.sopInstanceUid === sop);
        if (earlier !== undefined && (earlier.originalTransferSyntaxUid !== undefined || earlier.checksum !== createHash('sha256').update(bytes).digest('hex'))) {
          await w.archive.deleteInstances({ studyInstanceUid: earlier.studyInstanceUid, seriesInstanceUid: earlier.seriesInstanceUid, sopInstanceUid: earlier.sopInstanceUid });
          result = await store(w.archive, bytes);
        }
      }
      if (!result.ok) {
        rows.push({ sample: name, outcome: `refused at ingest: ${result.failure.message ?? ''}` });
        continue;
      }
      const item = result.item;
      const scope = { studyInstanceUid: item.studyInstanceUid, seriesInstanceUid: item.seriesInstanceUid, sopInstanceUid: item.sopInstanceUid };
      const [before] = await w.catalog.listInstancesWithAttributes(scope);
      if (before === undefined) {
        rows.push({ sample: name, outcome: 'duplicate of an earlier sample' });
        continue;
      }
      const eligibility = recompressionEligibility(before.instance, before.attributes, 512 * 1024 * 1024);
      const frames = Array.from({ length: before.instance.numberOfFrames }, (_, i) => i + 1);
      if (!eligibility.ok) {
        rows.push({ sample: name, outcome: `kept: ${eligibility.reason}` });
        continue;
      }
      const attributes = pixelAttributesFromJson(before.attributes);
      const original = await w.archive.readDecodedFrames(before.instance, attributes, frames);
      const expected = attributes.samplesPerPixel === 3 && attributes.planarConfiguration === 1 ? original.map((f) => interleave(f, attributes)) : original;
      const storedBefore = await readBlob(w.blobs, before.instance.blobKey);
      const outcome = await w.housekeeping.recompress({ cursor: 0, ...scope, sopClassUid: item.sopClassUid, modality: null, transferSyntaxUid: before.instance.transferSyntaxUid, blobKey: before.instance.blobKey, blobSize: before.instance.blobSize });
      if (outcome.status === 'skipped' && outcome.reason === 'no space saved') {
        // Not swapped (larger), but the conversion itself must still be exact: decode what it made.
        const file = await recompressInstance(w.blobs, before.instance, eligibility.attributes, syntax, { maxBytes: 512 * 1024 * 1024, maxHeaderBytes: 64 * 1024 * 1024 });
        expect(file.pixelData.frames.length, name).toBe(frames.length);
        rows.push({ sample: name, outcome: 'kept: no space saved (conversion exact)' });
        continue;
      }
      expect(outcome.status, `${name}: ${JSON.stringify(outcome)}`).toBe('recompressed');
      const [after] = await w.catalog.listInstancesWithAttributes(scope);
      // HTJ2K asked for: colour goes to JPEG-LS (recompress.ts losslessTargets), greyscale to HTJ2K.
      expect(after!.instance.transferSyntaxUid, name).toBe(attributes.samplesPerPixel > 1 ? JPEG_LS_LOSSLESS : syntax);
      if (after!.instance.transferSyntaxUid !== syntax) fallbacks.push(name);
      expect(after!.instance.sopInstanceUid).toBe(item.sopInstanceUid);
      expect(after!.instance.blobKey).not.toBe(before.instance.blobKey);
      const decoded = await w.archive.readDecodedFrames(after!.instance, pixelAttributesFromJson(after!.attributes), frames);
      decoded.forEach((frame, i) => expect(frame.equals(expected[i]!), `${name} frame ${i + 1}`).toBe(true));
      const [indexed] = (await w.catalog.listIndexedBlobs(undefined, 100_000)).filter((b) => b.sopInstanceUid === item.sopInstanceUid);
      expect(indexed?.originalTransferSyntaxUid, name).toBe(before.instance.transferSyntaxUid);
      if (outcome.status === 'recompressed') rows.push({ sample: name, outcome: 'recompressed', before: outcome.before, after: outcome.after });
      // One file of each kind (source syntax, photometric interpretation, bits) for dciodvfy.
      const kind = `${before.instance.transferSyntaxUid}|${attributes.photometricInterpretation}|${attributes.bitsAllocated}|${before.instance.numberOfFrames > 1}`;
      if (!kinds.has(kind)) {
        kinds.add(kind);
        converted.push({ sample: name, original: storedBefore, recompressed: await readBlob(w.blobs, after!.instance.blobKey) });
      }
    }
    await w.housekeeping.settle();
    const done = rows.filter((r) => r.outcome === 'recompressed');
    const before = done.reduce((n, r) => n + r.before!, 0);
    const after = done.reduce((n, r) => n + r.after!, 0);
    // The report a reader of the test log wants: what was converted, what was kept and why, the space saved.
    const kept = new Map<string, number>();
    for (const r of rows.filter((r) => r.outcome !== 'recompressed')) kept.set(r.outcome, (kept.get(r.outcome) ?? 0) + 1);
    console.log(
      `${target}: ${samples.length} uncompressed samples; ${done.length} recompressed, ${before} → ${after} bytes ` +
        `(saved ${before - after} bytes, ${((100 * (before - after)) / Math.max(1, before)).toFixed(1)} %); kept:\n` +
        [...kept].map(([reason, n]) => `  ${n} × ${reason}`).join('\n') +
        (fallbacks.length > 0 ? `\n  (${fallbacks.length} colour instances went to JPEG-LS)` : ''),
    );
    // Every sample a lossless codec carries: recompressed, or converted exactly but not kept (no smaller).
    expect(done.length + rows.filter((r) => r.outcome === 'kept: no space saved (conversion exact)').length).toBeGreaterThan(100);
    expect(done.length).toBeGreaterThan(90);
    if (target === 'jpeg-ls') expect(fallbacks).toEqual([]);
    expect(after).toBeLessThan(before);
    for (const r of rows) {
      if (r.outcome === 'recompressed' || r.outcome.startsWith('refused at ingest') || r.outcome === 'duplicate of an earlier sample') continue;
      const reason = r.outcome.replace(/^kept: /, '');
      expect(ACCEPTED_REASONS.some((re) => re.test(reason)), `${r.sample}: ${r.outcome}`).toBe(true);
    }
    // The replaced files are gone (queued deletions finished after the grace period, here 0).
    expect(await w.catalog.pendingBlobDeletes(10)).toEqual([]);
  });

  it('dciodvfy finds no error in a recompressed file that the file as received does not have', { timeout: 120_000 }, async () => {
    expect(converted.length).toBeGreaterThan(3);
    for (const [i, c] of converted.entries()) {
      const was = new Set(await dciodvfyErrors(c.original, w.dir, `orig-${i}.dcm`));
      const checked = c.recompressed.includes(Buffer.from(HTJ2K_LOSSLESS)) ? relabelled(c.recompressed, '1.2.840.10008.1.2.4.90') : c.recompressed;
      const now = await dciodvfyErrors(checked, w.dir, `new-${i}.dcm`);
      expect(now.filter((e) => !was.has(e)), c.sample).toEqual([]);
    }
  });
});
