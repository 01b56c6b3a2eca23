/**
 * Helpers for the retrieve benchmark (WADO-RS): a one-series corpus of many small instances, reading
 * the UIDs of existing files, a minimal multipart/related response parser (to compare payloads, not
 * framing, between servers) and a timed GET runner.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import type { TargetServer } from './target.js';
import {
  el,
  loadTemplateDict,
  pixelDataElementHeader,
  pseudoRandomPixels,
  uidFrom,
  writeHeader,
  type DicomElement,
} from './generate.js';
import http from 'node:http';
import { parseContentType, readMultipart } from '../../server/src/dicom/multipart-related.js';
import { httpAgent, httpRequest } from './util.js';

const dcmjsData = (
  createRequire(import.meta.url)('dcmjs') as {
    data: { DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): { dict: Record<string, DicomElement> } } };
  }
).data;

export interface FileUids {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  frames: number;
  rows: number;
  columns: number;
}

/** Study/Series/SOP Instance UID and frame geometry of a Part-10 file (header only, pixel data skipped). */
export function readUids(file: string): FileUids {
  const buf = fs.readFileSync(file);
  const parsed = dcmjsData.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), {
    untilTag: '7FE00010',
    includeUntilTagValue: false,
  });
  const v = (tag: string): unknown => parsed.dict[tag]?.Value?.[0];
  return {
    studyInstanceUid: String(v('0020000D')),
    seriesInstanceUid: String(v('0020000E')),
    sopInstanceUid: String(v('00080018')),
    frames: Number(v('00280008') ?? 1),
    rows: Number(v('00280010')),
    columns: Number(v('00280011')),
  };
}

export interface SeriesCorpus {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** Part-10 files, in instance-number order. */
  files: Buffer[];
  bytes: number;
}

/**
 * One study with one CT series of `count` single-frame instances (side x side x 16 bit, explicit VR LE),
 * deterministic UIDs and bytes (so both servers store identical files), held in memory.
 */
export function seriesCorpus(count: number, side: number): SeriesCorpus {
  const template = loadTemplateDict();
  const studyInstanceUid = uidFrom(`bench-retrieve-v1/study/${count}/${side}`);
  const seriesInstanceUid = uidFrom(`bench-retrieve-v1/series/${count}/${side}`);
  const sopClassUid = '1.2.840.10008.5.1.4.1.1.2';
  const pixels = pseudoRandomPixels(side * side * 2, side);
  const files: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const sopInstanceUid = uidFrom(`bench-retrieve-v1/series/${count}/${side}/instance/${k}`);
    const dict: Record<string, DicomElement> = {
      ...template,
      '00080016': el('UI', sopClassUid),
      '00080018': el('UI', sopInstanceUid),
      '00080020': el('DA', '20240301'),
      '00080030': el('TM', '101500'),
      '00080050': el('SH', 'RETRIEVE500'),
      '00080060': el('CS', 'CT'),
      '00081030': el('LO', `BENCH RETRIEVE SERIES OF ${count}`),
      '0008103E': el('LO', `BENCH ${count} INSTANCES`),
      '00100010': el('PN', { Alphabetic: 'RETRIEVE^SERIES' }),
      '00100020': el('LO', 'BENCH-RETRIEVE'),
      '0020000D': el('UI', studyInstanceUid),
      '0020000E': el('UI', seriesInstanceUid),
      '00200011': el('IS', 1),
      '00200013': el('IS', k + 1),
      '00201041': el('DS', k * 1.25),
      '00280010': el('US', side),
      '00280011': el('US', side),
      '00280100': el('US', 16),
      '00280101': el('US', 12),
      '00280102': el('US', 11),
      '00280103': el('US', 0),
    };
    const header = writeHeader(dict, sopClassUid, sopInstanceUid);
    files.push(Buffer.concat([header, pixelDataElementHeader(pixels.length), pixels]));
  }
  return { studyInstanceUid, seriesInstanceUid, files, bytes: files.reduce((n, f) => n + f.length, 0) };
}

export interface MultipartSummary {
  parts: number;
  /** Sum of the part bodies (without boundaries and part headers). */
  payloadBytes: number;
  partSizes: number[];
  partTypes: string[];
}

/** Splits a multipart/related body by the boundary in `contentType`; undefined when it is not multipart. */
export function parseMultipart(contentType: string | undefined, body: Buffer): MultipartSummary | undefined {
  const m = /boundary="?([^";]+)"?/i.exec(contentType ?? '');
  if (!m || !/^multipart\//i.test(contentType ?? '')) return undefined;
  const delimiter = Buffer.from(`--${m[1]}`, 'latin1');
  const partSizes: number[] = [];
  const partTypes: string[] = [];
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const afterDelimiter = pos + delimiter.length;
    if (body.subarray(afterDelimiter, afterDelimiter + 2).toString('latin1') === '--') break; // close delimiter
    const headersEnd = body.indexOf('\r\n\r\n', afterDelimiter, 'latin1');
    if (headersEnd < 0) break;
    const headers = body.subarray(afterDelimiter, headersEnd).toString('latin1');
    const start = headersEnd + 4;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n', 'latin1'), delimiter]), start);
    if (next < 0) break;
    partSizes.push(next - start);
    partTypes.push(/content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim() ?? '');
    pos = next + 2;
  }
  return { parts: partSizes.length, payloadBytes: partSizes.reduce((a, b) => a + b, 0), partSizes, partTypes };
}

export interface GetSample {
  ok: boolean;
  status: number;
  elapsedMs: number;
  /** Whole response body. */
  bytes: number;
  /** Payload: multipart part bodies summed, else the whole body. */
  payloadBytes: number;
  parts: number;
  contentType: string;
  body?: Buffer;
  error?: string;
}

/**
 * GET `${root}${path}` with `accept`; ok means HTTP 200 (further checks are the caller's). A multipart
 * answer whose body is not kept is parsed as it streams in (parts counted, part bodies summed) and never
 * held: holding a 66 MB series cost this client ~350 ms of CPU per request (fresh pages for every
 * chunk kept, then the concatenation), on the same 2 cores as the server it measures, against 50–100 ms
 * streamed (2026-12-06, 20:05).
 */
export async function timedGet(server: TargetServer, path: string, accept: string, keepBody = false): Promise<GetSample> {
  const started = performance.now();
  try {
    if (!keepBody) {
      const streamed = await streamedMultipartGet(`${server.dicomwebRoot}${path}`, accept);
      if (streamed !== undefined) return { ...streamed, elapsedMs: performance.now() - started };
    }
    const res = await httpRequest(`${server.dicomwebRoot}${path}`, { headers: { Accept: accept }, timeoutMs: 120_000 });
    const contentType = String(res.headers['content-type'] ?? '');
    const mp = parseMultipart(contentType, res.body);
    return {
      ok: res.status === 200,
      status: res.status,
      elapsedMs: res.elapsedMs,
      bytes: res.body.length,
      payloadBytes: mp ? mp.payloadBytes : res.body.length,
      parts: mp ? mp.parts : 1,
      contentType,
      body: keepBody || res.status !== 200 ? res.body : undefined,
      error: res.status === 200 ? undefined : `HTTP ${res.status} for ${path}: ${res.body.toString('utf8').slice(0, 200).replace(/\s+/g, ' ')}`,
    };
  } catch (err) {
    return {
      ok: false,
      status: 0,
      elapsedMs: performance.now() - started,
      bytes: 0,
      payloadBytes: 0,
      parts: 0,
      contentType: '',
      error: `${(err as Error).message} for ${path}`,
    };
  }
}

/**
 * A 200 multipart answer counted as it streams (multipart-related.ts, the server's own streaming parser);
 * undefined for any other answer, which the caller then requests again the buffered way (it keeps the
 * body for the error message). Bytes = the whole body as received.
 */
async function streamedMultipartGet(url: string, accept: string): Promise<Omit<GetSample, 'elapsedMs'> | undefined> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(url, { headers: { Accept: accept }, agent: httpAgent }, resolve);
    req.on('error', reject);
    req.setTimeout(120_000, () => req.destroy(new Error(`timeout after 120 s: ${url}`)));
  });
  const contentType = String(res.headers['content-type'] ?? '');
  const boundary = /^multipart\//i.test(contentType) ? parseContentType(contentType).params['boundary'] : undefined;
  if (res.statusCode !== 200 || boundary === undefined) {
    res.resume();
    await new Promise((resolve) => res.on('end', resolve));
    return undefined;
  }
  let bytes = 0;
  const counted = (async function* () {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      yield chunk;
    }
  })();
  let parts = 0;
  let payloadBytes = 0;
  for await (const part of readMultipart(counted, boundary)) {
    parts += 1;
    for await (const chunk of part.body) payloadBytes += chunk.length;
  }
  for await (const _ of counted) void _; // the epilogue, if any
  return { ok: true, status: 200, bytes, payloadBytes, parts, contentType };
}

/** Runs `tasks` with at most `concurrency` in flight; returns results in task order and the wall time. */
export async function runPool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<{ results: T[]; wallMs: number }> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return { results, wallMs: performance.now() - started };
}

/** Deterministic PRNG (mulberry32) so both servers get the same "random" frame sequence. */
export { rng as seededRandom } from '../../server/src/test-support/chunking.js';
