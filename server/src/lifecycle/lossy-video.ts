/**
 * The video part of the optional lossy policy (docs/architecture.md "Storage lifecycle", "Lossy policy";
 * PACS_LIFECYCLE_LOSSY, off by default): a stored video is re-encoded to MPEG-4 AVC/H.264 High Profile /
 * Level 4.1 (1.2.840.10008.1.2.4.102, PS3.5 §8.2.7) by Debian's ffmpeg (libx264) at a configured CRF,
 * and stored as a new SOP Instance, exactly as lossy.ts does for images (new UID derived from the
 * original's, Lossy Image Compression 01, ratio and method ISO_14496_10, Source Image Sequence).
 *
 * What is a video here: an instance stored in an MPEG-2, MPEG-4 AVC/H.264 or HEVC/H.265 transfer
 * syntax (PS3.5 §8.2.5–8.2.8, Table A-4), whatever its SOP class; and a Video Endoscopic, Video
 * Microscopic or Video Photographic Image (PS3.3 A.32.5–A.32.7) stored as JPEG Baseline frames (what
 * live/recording.ts writes: one JPEG per frame, 1.2.840.10008.1.2.4.50 — lossy.ts does not take JPEG
 * sources, so these were not covered before) or as native 8-bit RGB / MONOCHROME2 frames in Explicit VR
 * Little Endian (lossy.ts would otherwise have coded them frame by frame as JPEG).
 *
 * Why .102 and not the BD-compatible .103: PS3.5 §8.2.7 asks of both a stream of ISO/IEC 14496-10 High
 * Profile at Level 4.1 or below, 8-bit YBR_PARTIAL_420 (Samples per Pixel 3, Planar Configuration 0,
 * Bits Allocated/Stored 8, High Bit 7, Pixel Representation 0), in an MP4 or MPEG-2 TS container, the
 * whole stream in one fragment with an empty Basic Offset Table for the non-fragmentable syntax
 * (PS3.5 A.4), and Frame Time / Number of Frames agreeing with the stream; .103 further restricts the
 * spatial and temporal resolution to the Blu-ray formats (1920x1080, 1280x720, 720x576, 720x480 at
 * their fixed rates), which endoscopy cameras do not keep to. .102 takes any size Level 4.1 allows, so
 * it is used; the level's limits are checked before encoding (at most 8192 macroblocks a frame, 245 760
 * a second, no side over 4096 pixels; even width and height for 4:2:0): what exceeds them is kept as
 * received (no rescaling, which would change Rows, Columns and every spatial calibration). The bit rate
 * stays under the level's maximum (-maxrate 50 Mbit/s, -bufsize 62.5 Mbit).
 *
 * Memory is bounded: the stored bitstream (or the frames) goes to a temporary file by ranged reads of
 * at most 8 MiB, ffmpeg reads and writes files, and the new Part-10 file is streamed from ffmpeg's
 * output into the archive's ingest. Temporary files live under `tmpDir` in a folder of their own,
 * removed when done; a kill leaves only such a folder, removed at the next start (Housekeeping).
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { access, constants as fsConstants, mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, isVideo, JPEG_BASELINE_8BIT, MPEG4_HP41 } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { appendText, appendValues, code, derivedUid, editTopLevel, element, formatDs, sequence, stringValue, usElement } from './lossy.js';
import { fileMeta, itemHeader, metaGroup } from './recompress.js';

/** Video Endoscopic, Video Microscopic and Video Photographic Image Storage (PS3.4 Table B.5-1). */
export const VIDEO_SOP_CLASSES: readonly string[] = ['1.2.840.10008.5.1.4.1.1.77.1.1.1', '1.2.840.10008.5.1.4.1.1.77.1.2.1', '1.2.840.10008.5.1.4.1.1.77.1.4.1'];

export const FFMPEG_UNAVAILABLE = 'ffmpeg not available';

export interface VideoOptions {
  /** libx264 constant rate factor (0–51; larger is smaller and worse). */
  crf: number;
  /** libx264 preset (ultrafast … veryslow). */
  preset: string;
  /** Bit-rate cap in kbit/s (0: only the level's 50 000). */
  maxKbps: number;
  /** Encoder threads (1 by default: housekeeping must never slow reading). */
  threads: number;
  /** Where temporary files go (a folder of their own is made in it per video). */
  tmpDir: string;
}

/** Whether the lossy policy handles the instance as a video (by its stored syntax or SOP class). */
export function isVideoCandidate(sopClassUid: string, transferSyntaxUid: string): boolean {
  return isVideo(transferSyntaxUid) || VIDEO_SOP_CLASSES.includes(sopClassUid);
}

export interface FfmpegTools {
  ffmpeg: string;
  ffprobe: string;
}

/**
 * ffmpeg and ffprobe as `configured` names them (a path, or a name looked up on PATH), or undefined
 * when either is missing or does not run.
 */
export async function findFfmpeg(configured: string, env: NodeJS.ProcessEnv = process.env): Promise<FfmpegTools | undefined> {
  const ffmpeg = await resolveExecutable(configured, env);
  if (ffmpeg === undefined) return undefined;
  const sibling = path.join(path.dirname(ffmpeg), 'ffprobe');
  const ffprobe = (await executable(sibling)) ? sibling : await resolveExecutable('ffprobe', env);
  if (ffprobe === undefined) return undefined;
  try {
    await runProcess(ffmpeg, ['-hide_banner', '-version'], 10_000);
    return { ffmpeg, ffprobe };
  } catch {
    return undefined;
  }
}

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

async function resolveExecutable(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (name.includes('/')) return (await executable(name)) ? name : undefined;
  for (const dir of (env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  return undefined;
}

/** Runs a tool; resolves with stdout; rejects (message: exit code only, never its output) on failure. */
function runProcess(file: string, args: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(signal === undefined ? {} : { signal }) });
    try {
      if (child.pid !== undefined) os.setPriority(child.pid, 10);
    } catch {
      // a lower priority is a courtesy; not every system grants it
    }
    const out: Buffer[] = [];
    let outBytes = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outBytes < 1 << 20) out.push(b);
      outBytes += b.length;
    });
    child.stderr.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new AppError('NOT_ACCEPTABLE', `${path.basename(file)} could not run (${(err as NodeJS.ErrnoException).code ?? err.name}): kept as received`));
    });
    child.on('close', (status, sig) => {
      clearTimeout(timer);
      if (status === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new AppError('NOT_ACCEPTABLE', `${path.basename(file)} failed (${sig ?? `exit ${status}`}): kept as received`));
    });
  });
}

export type VideoEligibility = { ok: true; input: 'bitstream' | 'jpeg' | 'raw'; fps: number } | { ok: false; reason: string };

function num(dataset: DicomJsonDataset, tag: string): number | undefined {
  const v = (dataset[tag] as { Value?: unknown[] } | undefined)?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The frame rate the stored frames were taken at (Cine Rate, Frame Time, Frame Time Vector, Recommended Display Frame Rate). */
function sourceFps(dataset: DicomJsonDataset, frames: number): number | undefined {
  const frameTime = num(dataset, '00181063');
  if (frameTime !== undefined && frameTime > 0) return 1000 / frameTime;
  const vector = ((dataset['00181065'] as { Value?: unknown[] } | undefined)?.Value ?? []).map(Number).filter((n) => Number.isFinite(n));
  const total = vector.slice(1).reduce((a, b) => a + b, 0);
  if (vector.length > 1 && total > 0) return ((Math.min(vector.length, frames) - 1) * 1000) / total;
  for (const tag of ['00180040', '00082144']) {
    const rate = num(dataset, tag);
    if (rate !== undefined && rate > 0) return rate;
  }
  return undefined;
}

/** Whether (and how) the video can be re-encoded, from its row and indexed header alone. */
export function videoEligibility(instance: StoredInstance, dataset: DicomJsonDataset): VideoEligibility {
  const px = instance.pixelData;
  if (px === undefined || px.frames.length === 0 || px.valueOffset < 12) return { ok: false, reason: 'frames not located' };
  if (isVideo(instance.transferSyntaxUid)) return { ok: true, input: 'bitstream', fps: 0 };
  const frames = instance.numberOfFrames;
  const fps = sourceFps(dataset, frames);
  if (fps === undefined || fps > 240 || fps < 0.1) return { ok: false, reason: 'video without a usable frame rate (Frame Time, Frame Time Vector or Cine Rate) kept as received' };
  const samples = num(dataset, '00280002') ?? 1;
  const photometric = String((dataset['00280004'] as { Value?: unknown[] } | undefined)?.Value?.[0] ?? '').toUpperCase();
  const bits = num(dataset, '00280100');
  if (instance.transferSyntaxUid === JPEG_BASELINE_8BIT) return { ok: true, input: 'jpeg', fps };
  if (instance.transferSyntaxUid !== EXPLICIT_VR_LITTLE_ENDIAN || px.encapsulated) return { ok: false, reason: `video frames in ${instance.transferSyntaxUid} kept as received` };
  if (bits !== 8 || (num(dataset, '00280103') ?? 0) !== 0) return { ok: false, reason: 'native video frames other than 8-bit unsigned kept as received' };
  if (!((samples === 3 && photometric === 'RGB' && (num(dataset, '00280006') ?? 0) === 0) || (samples === 1 && photometric === 'MONOCHROME2'))) {
    return { ok: false, reason: `native video frames in ${photometric || 'an unknown photometric interpretation'} kept as received` };
  }
  return { ok: true, input: 'raw', fps };
}

export interface VideoFile {
  sopInstanceUid: string;
  /** Everything before the bitstream, the bitstream file, everything after it. */
  head: Buffer;
  bitstreamFile: string;
  tail: Buffer;
  size: number;
  ratio: number;
  frames: number;
  fps: number;
  /** Removes the temporary files (always call it). */
  dispose(): Promise<void>;
}

interface Probe {
  width: number;
  height: number;
  frames: number;
  fps: number;
  profile: string;
  level: number;
  pixFmt: string;
}

async function probe(tools: FfmpegTools, file: string, signal?: AbortSignal): Promise<Probe> {
  const out = await runProcess(
    tools.ffprobe,
    ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=width,height,nb_read_packets,avg_frame_rate,r_frame_rate,profile,level,pix_fmt', '-of', 'json', file],
    5 * 60_000,
    signal,
  );
  const stream = (JSON.parse(out) as { streams?: Array<Record<string, unknown>> }).streams?.[0];
  if (stream === undefined) throw new AppError('NOT_ACCEPTABLE', 'ffprobe found no video stream: kept as received');
  const rate = (value: unknown): number => {
    const [a, b] = String(value ?? '0/1').split('/').map(Number);
    return b ? a! / b : 0;
  };
  return {
    width: Number(stream['width']),
    height: Number(stream['height']),
    frames: Number(stream['nb_read_packets']),
    fps: rate(stream['avg_frame_rate']) || rate(stream['r_frame_rate']),
    profile: String(stream['profile'] ?? ''),
    level: Number(stream['level'] ?? 0),
    pixFmt: String(stream['pix_fmt'] ?? ''),
  };
}

/** Level 4.1 limits (ISO/IEC 14496-10 Table A-1): frame size, macroblock rate, side length; 4:2:0 needs even sides. */
export function level41Problem(width: number, height: number, fps: number): string | undefined {
  if (width % 2 === 1 || height % 2 === 1) return `odd frame size ${width}x${height} (4:2:0 needs even sides)`;
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  if (mbs > 8192 || width > 4096 || height > 4096) return `frame size ${width}x${height} over H.264 Level 4.1`;
  if (mbs * fps > 245_760) return `${width}x${height} at ${fps.toFixed(2)} frames/s over H.264 Level 4.1`;
  return undefined;
}

/** Copies the byte spans of the stored Pixel Data to `file` by ranged reads of at most 8 MiB. */
async function copySpans(blobs: BlobStore, blobKey: string, spans: ReadonlyArray<readonly [number, number]>, file: string): Promise<number> {
  const handle = await open(file, 'w');
  let written = 0;
  try {
    for (const [offset, length] of spans) {
      for (let at = 0; at < length; at += 8 << 20) {
        const chunk = await blobs.getRange(blobKey, { start: offset + at, end: offset + Math.min(length, at + (8 << 20)) - 1 });
        await handle.write(chunk, 0, chunk.length, written);
        written += chunk.length;
      }
    }
  } finally {
    await handle.close();
  }
  return written;
}

/**
 * The H.264 copy of `instance` (eligible by videoEligibility), checked by ffprobe; nothing is stored
 * here. Throws an AppError (NOT_ACCEPTABLE) naming what kept it from being converted.
 */
export async function reencodeVideo(
  blobs: BlobStore,
  tools: FfmpegTools,
  instance: StoredInstance,
  dataset: DicomJsonDataset,
  eligible: Extract<VideoEligibility, { ok: true }>,
  options: VideoOptions,
  signal?: AbortSignal,
): Promise<VideoFile> {
  await mkdir(options.tmpDir, { recursive: true });
  const dir = await mkdtemp(path.join(options.tmpDir, 'video-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const px = instance.pixelData!;
    const input = path.join(dir, 'input');
    const output = path.join(dir, 'output.mp4');
    const spans = px.frames.flat() as Array<readonly [number, number]>;
    await copySpans(blobs, instance.blobKey, spans, input);
    const rows = num(dataset, '00280010') ?? 0;
    const columns = num(dataset, '00280011') ?? 0;
    const inputArgs =
      eligible.input === 'bitstream'
        ? ['-i', input]
        : eligible.input === 'jpeg'
          ? ['-f', 'mjpeg', '-framerate', eligible.fps.toFixed(4), '-i', input]
          : ['-f', 'rawvideo', '-pix_fmt', (num(dataset, '00280002') ?? 1) === 3 ? 'rgb24' : 'gray', '-s', `${columns}x${rows}`, '-framerate', eligible.fps.toFixed(4), '-i', input];
    if (eligible.input !== 'bitstream') {
      const problem = level41Problem(columns, rows, eligible.fps);
      if (problem !== undefined) throw new AppError('NOT_ACCEPTABLE', `${problem}: kept as received`);
    } else {
      const source = await probe(tools, input, signal);
      const problem = level41Problem(source.width, source.height, source.fps);
      if (problem !== undefined) throw new AppError('NOT_ACCEPTABLE', `${problem}: kept as received`);
    }
    const maxKbps = options.maxKbps > 0 ? Math.min(options.maxKbps, 50_000) : 50_000;
    await runProcess(
      tools.ffmpeg,
      [
        '-hide_banner', '-nostdin', '-loglevel', 'error', '-threads', String(options.threads),
        ...inputArgs,
        '-map', '0:v:0', '-an', '-sn', '-dn', '-map_metadata', '-1', '-map_chapters', '-1',
        '-c:v', 'libx264', '-threads', String(options.threads), '-preset', options.preset, '-crf', String(options.crf),
        '-profile:v', 'high', '-level:v', '4.1', '-pix_fmt', 'yuv420p', '-color_range', 'tv',
        '-maxrate', `${maxKbps}k`, '-bufsize', `${Math.round(maxKbps * 1.25)}k`,
        '-movflags', '+faststart', '-f', 'mp4', '-y', output,
      ],
      6 * 3600_000,
      signal,
    );
    // What was written is checked before anything is stored: High profile, Level ≤ 4.1, 4:2:0 8-bit, the frame size kept.
    const made = await probe(tools, output, signal);
    if (made.profile !== 'High' || made.level > 41 || made.pixFmt !== 'yuv420p') throw new AppError('NOT_ACCEPTABLE', `ffmpeg wrote ${made.profile} level ${made.level} ${made.pixFmt}, not High Profile / Level 4.1 4:2:0: kept as received`);
    if ((rows > 0 && made.height !== rows) || (columns > 0 && made.width !== columns)) throw new AppError('NOT_ACCEPTABLE', `ffmpeg wrote ${made.width}x${made.height}, not the stored ${columns}x${rows}: kept as received`);
    if (!(made.frames > 0) || !(made.fps > 0)) throw new AppError('NOT_ACCEPTABLE', 'ffmpeg wrote no frames: kept as received');
    const bitstreamBytes = (await stat(output)).size;
    if (bitstreamBytes > 0xfffffffe - 1) throw new AppError('NOT_ACCEPTABLE', 'the H.264 stream is over 4 GiB (one fragment of .102): kept as received');

    // The data set before Pixel Data, edited (top level), then the bitstream in one fragment (PS3.5 A.4).
    const prefix = await blobs.getRange(instance.blobKey, { start: 0, end: px.valueOffset - 13 });
    const { preamble, meta, datasetStart } = fileMeta(prefix);
    const sopInstanceUid = derivedUid(instance.sopInstanceUid);
    const frameTime = 1000 / made.fps;
    const rawBytes = made.width * made.height * 3 * made.frames;
    const ratio = rawBytes / bitstreamBytes;
    const lossySource = instance.transferSyntaxUid === JPEG_BASELINE_8BIT || isVideo(instance.transferSyntaxUid);
    const description = `Lossy MPEG-4 AVC/H.264 High Profile / Level 4.1 (libx264 CRF ${options.crf}) of SOP Instance ${instance.sopInstanceUid} by storage lifecycle`;
    const edits = new Map<number, Buffer>([
      [0x00080018, element(0x00080018, 'UI', sopInstanceUid)],
      [0x00082111, element(0x00082111, 'ST', appendText(stringValue(dataset, '00082111'), description, 1024))],
      [
        0x00082112,
        sequence(0x00082112, [
          [
            element(0x00081150, 'UI', instance.sopClassUid),
            element(0x00081155, 'UI', instance.sopInstanceUid),
            sequence(0x0040a170, [lossySource ? code('121330', 'DCM', 'Lossy compressed predecessor') : code('121320', 'DCM', 'Uncompressed predecessor')]),
          ],
        ]),
      ],
      [0x00089215, sequence(0x00089215, [code('113040', 'DCM', 'Lossy Compression')])],
      [0x00180040, element(0x00180040, 'IS', String(Math.max(1, Math.round(made.fps))))],
      [0x00181063, element(0x00181063, 'DS', formatDs(frameTime).replace(/\.?0+$/, '') || '0')],
      [0x00181065, Buffer.alloc(0)],
      [0x00280002, usElement(0x00280002, 3)],
      [0x00280004, element(0x00280004, 'CS', 'YBR_PARTIAL_420')],
      [0x00280006, usElement(0x00280006, 0)],
      [0x00280008, element(0x00280008, 'IS', String(made.frames))],
      [0x00280009, atElement(0x00280009, 0x00181063)],
      [0x00280100, usElement(0x00280100, 8)],
      [0x00280101, usElement(0x00280101, 8)],
      [0x00280102, usElement(0x00280102, 7)],
      [0x00280103, usElement(0x00280103, 0)],
      [0x00282110, element(0x00282110, 'CS', '01')],
      [0x00282112, element(0x00282112, 'DS', appendValues(dataset, '00282112', formatDs(ratio)))],
      [0x00282114, element(0x00282114, 'CS', appendValues(dataset, '00282114', 'ISO_14496_10'))],
    ]);
    // Cine attributes that name frames or rates follow the new stream (PS3.3 C.7.6.5).
    if (dataset['00082144'] !== undefined) edits.set(0x00082144, element(0x00082144, 'IS', String(Math.max(1, Math.round(made.fps)))));
    for (const tag of ['00082142', '00082143']) {
      const value = num(dataset, tag);
      if (value !== undefined) edits.set(parseInt(tag, 16), element(parseInt(tag, 16), 'IS', String(Math.min(Math.max(1, Math.round(value)), made.frames))));
    }
    const newDataset = editTopLevel(prefix.subarray(datasetStart), edits);
    const pad = bitstreamBytes % 2;
    const head = Buffer.concat([
      preamble,
      metaGroup(meta, MPEG4_HP41, sopInstanceUid),
      newDataset,
      Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]),
      itemHeader(0),
      itemHeader(bitstreamBytes + pad),
    ]);
    const tail = Buffer.concat([Buffer.alloc(pad), Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])]);
    return { sopInstanceUid, head, bitstreamFile: output, tail, size: head.length + bitstreamBytes + tail.length, ratio, frames: made.frames, fps: made.fps, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** The new file as a stream of chunks (head, the bitstream read from its file, tail): bounded memory. */
export async function* videoFileChunks(file: VideoFile): AsyncGenerator<Buffer> {
  yield file.head;
  for await (const chunk of createReadStream(file.bitstreamFile, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
  yield file.tail;
}

function atElement(tag: number, value: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16LE(tag >>> 16, 0);
  out.writeUInt16LE(tag & 0xffff, 2);
  out.write('AT', 4, 'latin1');
  out.writeUInt16LE(4, 6);
  out.writeUInt16LE(value >>> 16, 8);
  out.writeUInt16LE(value & 0xffff, 10);
  return out;
}

/** Temporary folders older than `olderThanMs` (left by a kill) are removed. */
export async function removeStaleTemp(tmpDir: string, olderThanMs: number): Promise<number> {
  let removed = 0;
  let entries: string[];
  try {
    entries = await readdir(tmpDir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    if (!name.startsWith('video-')) continue;
    const at = path.join(tmpDir, name);
    try {
      if (Date.now() - (await stat(at)).mtimeMs >= olderThanMs) {
        await rm(at, { recursive: true, force: true });
        removed += 1;
      }
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}
