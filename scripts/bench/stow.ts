/**
 * STOW-RS clients: multipart/related bodies built in memory (small batches) or streamed from
 * generators with an exact Content-Length (large instances, the >= 1 GB memory upload).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { TargetServer } from './target.js';
import { corpusFile, ctSliceInstance, largeMultiframeInstance, pseudoRandomPixels, randomUid, type StreamedInstance, type StudyPlan } from './generate.js';
import { httpRequest, readProcMemory, resetPeakRss, sampleRss } from './util.js';

const CRLF = '\r\n';

function newBoundary(): string {
  return `bench-${crypto.randomBytes(12).toString('hex')}`;
}

function contentType(boundary: string): string {
  return `multipart/related; type="application/dicom"; boundary=${boundary}`;
}

function partHeader(boundary: string, first: boolean): Buffer {
  return Buffer.from(`${first ? '' : CRLF}--${boundary}${CRLF}Content-Type: application/dicom${CRLF}${CRLF}`, 'latin1');
}

function closing(boundary: string): Buffer {
  return Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1');
}

export interface MultipartBody {
  boundary: string;
  body: Buffer;
  instances: number;
  /** Bytes of DICOM payload (sum of the parts, without multipart framing). */
  dicomBytes: number;
}

export function buildMultipart(parts: Buffer[]): MultipartBody {
  const boundary = newBoundary();
  const pieces: Buffer[] = [];
  parts.forEach((part, i) => pieces.push(partHeader(boundary, i === 0), part));
  pieces.push(closing(boundary));
  return {
    boundary,
    body: Buffer.concat(pieces),
    instances: parts.length,
    dicomBytes: parts.reduce((n, p) => n + p.length, 0),
  };
}

/** One study's 50 instances as one STOW request body (read from the corpus cache). */
export function studyBody(cacheDir: string, study: StudyPlan): MultipartBody {
  const parts = study.series.flatMap((s) => s.instances.map((i) => fs.readFileSync(corpusFile(cacheDir, i.file))));
  return buildMultipart(parts);
}

/** Side of the small CT instances sent one per request (bench:archive (e), bench:pair stow1). */
export const SINGLE_SIZE = 256;
const singlePixels = pseudoRandomPixels(SINGLE_SIZE * SINGLE_SIZE * 2, SINGLE_SIZE);

/** `count` one-instance STOW bodies of one new series (UIDs never sent before). */
export function freshSingleInstances(count: number): MultipartBody[] {
  const study = randomUid();
  const series = randomUid();
  return Array.from({ length: count }, (_, k) =>
    buildMultipart([ctSliceInstance({ side: SINGLE_SIZE, pixels: singlePixels, studyUid: study, seriesUid: series, sopInstanceUid: randomUid(), instanceNumber: k + 1 })]),
  );
}

export function streamMultipart(instances: StreamedInstance[]): { boundary: string; contentLength: number; stream: Readable } {
  const boundary = newBoundary();
  let contentLength = closing(boundary).length;
  instances.forEach((inst, i) => (contentLength += partHeader(boundary, i === 0).length + inst.bytes));
  async function* generate(): AsyncGenerator<Buffer> {
    for (let i = 0; i < instances.length; i++) {
      yield partHeader(boundary, i === 0);
      yield* instances[i]!.chunks();
    }
    yield closing(boundary);
  }
  return { boundary, contentLength, stream: Readable.from(generate(), { objectMode: false, highWaterMark: 1 }) };
}

export interface StowOutcome {
  status: number;
  elapsedMs: number;
  /** Items in ReferencedSOPSequence (0008,1199) of the response. */
  stored: number;
  /** Items in FailedSOPSequence (0008,1198). */
  failed: number;
  /** Set when the request did not fully succeed: status, failure reasons, response excerpt. */
  error?: string;
}

function parseStowResponse(status: number, body: Buffer, expected: number, elapsedMs: number): StowOutcome {
  let stored = 0;
  let failed = 0;
  let reasons: string[] = [];
  const text = body.toString('utf8');
  try {
    const json = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>;
    const dataset = Array.isArray(json) ? (json[0] as typeof json) : json;
    stored = dataset?.['00081199']?.Value?.length ?? 0;
    const failedItems = dataset?.['00081198']?.Value ?? [];
    failed = failedItems.length;
    reasons = failedItems.map((item) => String(item['00081197']?.Value?.[0] ?? '?'));
  } catch {
    /* not JSON: reported below */
  }
  const ok = status === 200 && stored === expected && failed === 0;
  return {
    status,
    elapsedMs,
    stored,
    failed,
    error: ok
      ? undefined
      : `HTTP ${status}, stored ${stored}/${expected}, failed ${failed}` +
        (reasons.length ? ` (FailureReason ${[...new Set(reasons)].join(',')})` : '') +
        `; response: ${text.slice(0, 300).replace(/\s+/g, ' ')}`,
  };
}

export async function stowBuffer(server: TargetServer, body: MultipartBody): Promise<StowOutcome> {
  const started = performance.now();
  try {
    const res = await httpRequest(`${server.dicomwebRoot}/studies`, {
      method: 'POST',
      headers: {
        'Content-Type': contentType(body.boundary),
        'Content-Length': body.body.length,
        Accept: 'application/dicom+json',
      },
      body: body.body,
      timeoutMs: 600_000,
    });
    return parseStowResponse(res.status, res.body, body.instances, res.elapsedMs);
  } catch (err) {
    return { status: 0, elapsedMs: performance.now() - started, stored: 0, failed: 0, error: (err as Error).message };
  }
}

export async function stowStreamed(server: TargetServer, instances: StreamedInstance[]): Promise<StowOutcome & { bodyBytes: number }> {
  const { boundary, contentLength, stream } = streamMultipart(instances);
  const started = performance.now();
  try {
    const res = await httpRequest(`${server.dicomwebRoot}/studies`, {
      method: 'POST',
      headers: {
        'Content-Type': contentType(boundary),
        'Content-Length': contentLength,
        Accept: 'application/dicom+json',
      },
      body: stream,
      timeoutMs: 600_000,
    });
    return { ...parseStowResponse(res.status, res.body, instances.length, res.elapsedMs), bodyBytes: contentLength };
  } catch (err) {
    stream.destroy();
    return {
      status: 0,
      elapsedMs: performance.now() - started,
      stored: 0,
      failed: 0,
      error: (err as Error).message,
      bodyBytes: contentLength,
    };
  }
}

export interface MemoryOutcome {
  outcome: StowOutcome & { bodyBytes: number };
  instances: StreamedInstance[];
  baselineRssBytes: number;
  /** Peak RSS during the upload: kernel VmHWM after a reset when possible, else the sampled maximum. */
  peakRssBytes: number;
  sampledPeakRssBytes: number;
  method: 'VmHWM' | 'sampled VmRSS';
}

/** Streams `parts` large instances totalling ~`totalBytes` in ONE request and records the peak RSS. */
export async function memoryUpload(server: TargetServer, totalBytes: number, parts: number): Promise<MemoryOutcome> {
  const instances = Array.from({ length: parts }, (_, i) => largeMultiframeInstance(totalBytes / parts, `mem-${i}`));
  const hwmReset = resetPeakRss(server.pid);
  const baselineRssBytes = readProcMemory(server.pid)?.rssBytes ?? Number.NaN;
  const sampler = sampleRss(server.pid);
  const outcome = await stowStreamed(server, instances);
  const sampledPeakRssBytes = sampler.stop();
  const hwm = readProcMemory(server.pid)?.hwmBytes ?? Number.NaN;
  const useHwm = hwmReset && Number.isFinite(hwm);
  return {
    outcome,
    instances,
    baselineRssBytes,
    peakRssBytes: useHwm ? Math.max(hwm, sampledPeakRssBytes) : sampledPeakRssBytes,
    sampledPeakRssBytes,
    method: useHwm ? 'VmHWM' : 'sampled VmRSS',
  };
}
