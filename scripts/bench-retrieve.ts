/**
 * Retrieve benchmark (WADO-RS): our server vs Debian's Orthanc + DICOMweb plugin, same data, same run.
 *
 *   npm run bench:retrieve                 # full run (~3 min)
 *   npm run bench:retrieve -- --quick      # smoke run (~1 min), fewer requests and rounds
 *   npm run bench:retrieve -- --servers orthanc   # only one side (ours | orthanc | ours,orthanc)
 *   options: --rounds N  --keep (keep temp storage)  --ours-path /dicomweb (where our DICOMweb root is mounted)
 *            --multiframe-mb 26 (size of the native multi-frame instance)  --series-instances 500
 *            --ours-store fs|s3 (our blob store: the folder, or S3 on the tests' s3rver in its own process)
 *            --wsi generated|cmu1 (WSI data: an 8192x6144 generated pyramid, or the shared CMU-1 region)
 *            --types frame16,series (only these request types, in this order of the list below; for diagnosis)
 *            --workers N|auto (our PACS_WORKERS: server processes sharing the port; default: the server's, auto;
 *            the one keep-alive client of (6) is served by one worker)
 *
 * Both servers are started fresh and get the same data by STOW-RS: one native multi-frame instance
 * (512x512x16 bit frames), a WSI pyramid (generated, 8192x6144 base level in 256-px JPEG tiles; or the
 * TILED_FULL one from /work/shared/data/wsi-cmu1-small-region), and one series of small CT instances. Then, in rounds that alternate which server goes first:
 * (1) a random single frame (transfer-syntax=*) at concurrency 1 and 16, (2) 8-frame lists,
 * (3) a random WSI tile of the largest level, (4) the same tile rendered as image/jpeg,
 * (5) series metadata, (6) whole-series retrieve (MB/s, server CPU per request and peak RSS of the server).
 * Every request type is checked: HTTP 200, part counts / payload sizes as expected and equal between the
 * two servers (multipart payloads are compared, not the framing). Output: markdown on stdout and in
 * .bench/retrieve-results.md; progress on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { largeMultiframeInstance } from './bench/generate.js';
import { findGdcmPlugin, findOrthanc, INSTALL_HINT, startOrthanc } from './bench/orthanc.js';
import { OUR_ENTRY, startOurServer } from './bench/our-server.js';
import { latencyTable, machineInfo, medianTable, metric, ORTHANC, OURS, record, type LatencySeries, type Metric } from './bench/report.js';
import { readUids, runPool, seededRandom, seriesCorpus, timedGet, type GetSample } from './bench/retrieve.js';
import { buildMultipart, stowBuffer, stowStreamed } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { BenchRun, ordered, parseCommonOptions } from './bench/run.js';
import { cpuSeconds, formatBytes, log, MB, MiB, readProcMemory, resetPeakRss, sampleRss } from './bench/util.js';
import { startS3Process } from './bench/s3-server.js';
import { writeLargeSlide } from '../server/src/test-support/large-slide.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(repoRoot, '.bench');
const WSI_DIR = '/work/shared/data/wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm';
const FRAME_BYTES = 512 * 512 * 2;
const ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const ACCEPT_INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*';

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  quick: boolean;
  servers: string[];
  rounds: number;
  keep: boolean;
  oursPath: string;
  workers: string | undefined;
  multiframeBytes: number;
  seriesInstances: number;
  seriesSide: number;
  oursStore: 'fs' | 's3';
  wsi: 'generated' | 'cmu1';
  /** Requests per round and server, by request type key. */
  reps: Record<RequestKey, number>;
  /** --types: only these request types (diagnosis: what one type does to the next); all by default. */
  types: RequestKey[] | undefined;
}

type RequestKey = 'frame1' | 'frame16' | 'list8' | 'wsi' | 'rendered' | 'metadata' | 'series';

function parseOptions(argv: string[]): Options {
  const { quick, servers, rounds, keep, workers, flag, value } = parseCommonOptions(argv, import.meta.url, (quick) => (quick ? 3 : 5));
  const multiframeMb = Number(value('multiframe-mb') ?? 26);
  if (!(multiframeMb > 0)) throw new Error('--multiframe-mb must be positive');
  const seriesInstances = Number(value('series-instances') ?? 500);
  if (!Number.isInteger(seriesInstances) || seriesInstances < 1) throw new Error('--series-instances must be a positive integer');
  const oursStore = value('ours-store') ?? 'fs';
  if (oursStore !== 'fs' && oursStore !== 's3') throw new Error('--ours-store must be fs or s3');
  const types = value('types')?.split(',').map((t) => t.trim()) as RequestKey[] | undefined;
  const known: RequestKey[] = ['frame1', 'frame16', 'list8', 'wsi', 'rendered', 'metadata', 'series'];
  if (types !== undefined && (types.length === 0 || types.some((t) => !known.includes(t)))) throw new Error(`--types takes a comma-separated list of ${known.join(', ')}`);
  const wsi = value('wsi') ?? 'generated';
  if (wsi !== 'generated' && wsi !== 'cmu1') throw new Error('--wsi must be generated or cmu1');
  return {
    quick,
    servers,
    oursStore,
    wsi,
    rounds,
    keep,
    oursPath: (value('ours-path') ?? '/dicomweb').replace(/\/+$/, ''),
    workers,
    multiframeBytes: multiframeMb * MB,
    seriesInstances,
    seriesSide: 256,
    types,
    reps: quick
      ? { frame1: 20, frame16: 64, list8: 10, wsi: 20, rendered: 10, metadata: 3, series: 1 }
      : { frame1: 60, frame16: 320, list8: 40, wsi: 60, rendered: 40, metadata: 8, series: 2 },
  };
}

// ---------------------------------------------------------------------------------------------------
// Lifecycle: everything started is stopped, on success, error or Ctrl-C.

const run = new BenchRun();


// ---------------------------------------------------------------------------------------------------
// Request types

interface RequestType {
  key: RequestKey;
  label: string;
  accept: string;
  concurrency: number;
  /** The i-th request path of a round (same sequence for every server). */
  paths(round: number, count: number): string[];
  /** Compare payload sizes of the same request between servers (false where encoders legitimately differ). */
  compareSizes: boolean;
  keepBody: boolean;
  /** Extra check of one answer; returns an error text or undefined. */
  check(sample: GetSample, path: string): string | undefined;
  /** Throughput metric: requests/s or MB/s over each round's requests. */
  throughput: Metric;
}

function randomFrames(seed: number, count: number, frames: number, perRequest: number): number[][] {
  const rnd = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const picked = new Set<number>();
    while (picked.size < Math.min(perRequest, frames)) picked.add(1 + Math.floor(rnd() * frames));
    return [...picked];
  });
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  run.keep = opts.keep;
  const started = Date.now();
  const problems: string[] = [];
  const problem = (server: string, text: string): void => {
    if (run.interrupted) return;
    if (problems.filter((p) => p.startsWith(`[${server}]`)).length < 25) problems.push(`[${server}] ${text}`);
    log(`PROBLEM [${server}] ${text}`);
  };

  const orthancInstall = opts.servers.includes(ORTHANC) ? findOrthanc() : undefined;
  if (opts.servers.includes(ORTHANC) && !orthancInstall) {
    process.stderr.write(`\nOrthanc or its DICOMweb plugin is not installed.\n${INSTALL_HINT.replace('bench:archive', 'bench:retrieve')}\n`);
    return 2;
  }
  const gdcm = opts.servers.includes(ORTHANC) ? findGdcmPlugin() : undefined;
  if (opts.servers.includes(ORTHANC) && !gdcm) log('orthanc-gdcm plugin not found (apt-get install orthanc-gdcm); Orthanc runs with its built-in decoders only');
  if (opts.servers.includes(OURS) && !fs.existsSync(path.join(repoRoot, OUR_ENTRY))) {
    process.stderr.write(`\n${OUR_ENTRY} does not exist. To measure Orthanc alone: npm run bench:retrieve -- --servers orthanc\n`);
    return 2;
  }
  if (opts.wsi === 'cmu1' && !fs.existsSync(WSI_DIR)) {
    process.stderr.write(`\n${WSI_DIR} does not exist (the WSI pyramid used by (3) and (4)).\n`);
    return 2;
  }

  // (0) Test data, all before any timing.
  fs.mkdirSync(benchDir, { recursive: true });
  const multiframe = largeMultiframeInstance(opts.multiframeBytes, 'retrieve');
  const mfUids = { study: multiframe.studyInstanceUid, sop: multiframe.sopInstanceUid };
  log(`multi-frame instance: ${multiframe.frames} frames of 512x512x16 bit, ${formatBytes(multiframe.bytes)}`);
  log(`generating one series of ${opts.seriesInstances} instances (${opts.seriesSide}x${opts.seriesSide}x16 bit)`);
  const series = seriesCorpus(opts.seriesInstances, opts.seriesSide);
  const seriesBatches = [];
  for (let i = 0; i < series.files.length; i += 50) seriesBatches.push(buildMultipart(series.files.slice(i, i + 50)));
  const workDir = run.makeWorkDir('pacs-bench-retrieve-');
  let wsiFiles: string[];
  let wsiDescription: string;
  if (opts.wsi === 'generated') {
    const dir = path.join(workDir, 'wsi');
    fs.mkdirSync(dir);
    log('generating an 8192x6144 WSI pyramid (256-px JPEG tiles)');
    const slide = await writeLargeSlide({ dir, width: 8192, height: 6144, tileSize: 256, variants: 16 });
    wsiFiles = slide.files;
    wsiDescription = `a generated pyramid (server/src/test-support/large-slide.ts): base level ${slide.width}×${slide.height} px in ${slide.tilesAcross * slide.tilesDown} JPEG baseline tiles of ${slide.tileSize}×${slide.tileSize} (16 distinct tissue tiles and white glass, TILED_FULL, Basic Offset Table) plus one low-resolution level, ${formatBytes(slide.bytes)}`;
  } else {
    wsiFiles = fs.readdirSync(WSI_DIR).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(WSI_DIR, f));
    wsiDescription = `the TILED_FULL pyramid of CMU-1-Small-Region (${WSI_DIR}, ${wsiFiles.length} levels, JPEG baseline RGB tiles; its largest level is 2220×2967 px)`;
  }
  const wsiInfo = wsiFiles.map((file) => ({ file, ...readUids(file) }));
  // Largest level = most tiles (level 0 of a TILED_FULL pyramid).
  const wsi = wsiInfo.reduce((a, b) => (b.frames * b.rows * b.columns > a.frames * a.rows * a.columns ? b : a));
  const wsiBody = buildMultipart(wsiFiles.map((f) => fs.readFileSync(f)));
  log(`WSI: ${wsiFiles.length} levels, largest ${path.basename(wsi.file)} (${wsi.frames} tiles of ${wsi.columns}x${wsi.rows})`);

  // (1) Servers.
  const servers: TargetServer[] = [];
  const storeDescription: string[] = [];
  if (opts.oursStore === 's3' && opts.servers.includes(OURS)) {
    const s3 = await startS3Process(repoRoot, workDir);
    run.running.push({ name: 's3', stop: s3.stop });
    // startOurServer passes PACS_* of this process on to our server.
    Object.assign(process.env, s3.env);
    storeDescription.push(s3.describe);
  }
  for (const name of opts.servers) {
    const dir = path.join(workDir, name);
    fs.mkdirSync(dir);
    log(`starting ${name}`);
    try {
      const server =
        name === ORTHANC
          ? await startOrthanc(orthancInstall!, dir, { syncStorageArea: true, extraPlugins: gdcm ? [gdcm] : [] })
          : await startOurServer(repoRoot, dir, opts.oursPath, { workers: opts.workers });
      run.running.push(server);
      servers.push(server);
      log(`${name} ready (pid ${server.pid}) at ${server.dicomwebRoot}`);
    } catch (err) {
      process.stderr.write(`\n${(err as Error).message}\n`);
      return 1;
    }
  }
  const names = servers.map((s) => s.name);

  // (2) Same data into every server.
  let mfSeries = '';
  for (const server of servers) {
    const mf = await stowStreamed(server, [multiframe]);
    if (mf.error) problem(server.name, `STOW multi-frame: ${mf.error}`);
    for (const [i, body] of seriesBatches.entries()) {
      const out = await stowBuffer(server, body);
      if (out.error) problem(server.name, `STOW series batch ${i + 1}: ${out.error}`);
    }
    const w = await stowBuffer(server, wsiBody);
    if (w.error) problem(server.name, `STOW WSI pyramid: ${w.error}`);
    log(`${server.name}: data stored`);
  }
  // The multi-frame instance's series UID is only in its header; ask the first server.
  {
    const res = await timedGet(servers[0]!, `/studies/${mfUids.study}/series`, 'application/dicom+json', true);
    try {
      mfSeries = String((JSON.parse(res.body!.toString('utf8')) as { '0020000E': { Value: string[] } }[])[0]!['0020000E'].Value[0]);
    } catch {
      throw new Error(`could not find the multi-frame instance's series: ${res.error ?? res.body?.toString('utf8').slice(0, 200)}`);
    }
  }
  const mfBase = `/studies/${mfUids.study}/series/${mfSeries}/instances/${mfUids.sop}`;
  const wsiBase = `/studies/${wsi.studyInstanceUid}/series/${wsi.seriesInstanceUid}/instances/${wsi.sopInstanceUid}`;
  const seriesBase = `/studies/${series.studyInstanceUid}/series/${series.seriesInstanceUid}`;

  const expectParts = (parts: number, payload?: number) => (s: GetSample): string | undefined => {
    if (s.parts !== parts) return `expected ${parts} part(s), got ${s.parts} (${s.contentType})`;
    if (payload !== undefined && s.payloadBytes !== payload) return `expected ${payload} payload bytes, got ${s.payloadBytes}`;
    return undefined;
  };
  const types: RequestType[] = [
    {
      key: 'frame1',
      label: `(1) 1 random frame of ${formatBytes(multiframe.bytes)} native multi-frame, concurrency 1`,
      accept: ACCEPT_FRAMES,
      concurrency: 1,
      paths: (round, n) => randomFrames(100 + round, n, multiframe.frames, 1).map((f) => `${mfBase}/frames/${f.join(',')}`),
      compareSizes: true,
      keepBody: false,
      check: expectParts(1, FRAME_BYTES),
      throughput: metric('(1) single frame, concurrency 1', 'requests/s', true),
    },
    {
      key: 'frame16',
      label: `(1) 1 random frame of ${formatBytes(multiframe.bytes)} native multi-frame, concurrency 16`,
      accept: ACCEPT_FRAMES,
      concurrency: 16,
      paths: (round, n) => randomFrames(200 + round, n, multiframe.frames, 1).map((f) => `${mfBase}/frames/${f.join(',')}`),
      compareSizes: true,
      keepBody: false,
      check: expectParts(1, FRAME_BYTES),
      throughput: metric('(1) single frame, concurrency 16', 'requests/s', true),
    },
    {
      key: 'list8',
      label: '(2) list of 8 random frames, concurrency 1',
      accept: ACCEPT_FRAMES,
      concurrency: 1,
      paths: (round, n) => randomFrames(300 + round, n, multiframe.frames, 8).map((f) => `${mfBase}/frames/${f.join(',')}`),
      compareSizes: true,
      keepBody: false,
      check: expectParts(Math.min(8, multiframe.frames), Math.min(8, multiframe.frames) * FRAME_BYTES),
      throughput: metric('(2) 8-frame list, concurrency 1', 'requests/s', true),
    },
    {
      key: 'wsi',
      label: `(3) 1 random WSI tile (${wsi.columns}x${wsi.rows} JPEG, level of ${wsi.frames} tiles), concurrency 1`,
      accept: ACCEPT_FRAMES,
      concurrency: 1,
      paths: (round, n) => randomFrames(400 + round, n, wsi.frames, 1).map((f) => `${wsiBase}/frames/${f.join(',')}`),
      compareSizes: true,
      keepBody: false,
      check: expectParts(1),
      throughput: metric('(3) WSI tile, concurrency 1', 'requests/s', true),
    },
    {
      key: 'rendered',
      label: '(4) same WSI tile rendered (image/jpeg), concurrency 1',
      accept: 'image/jpeg',
      concurrency: 1,
      paths: (round, n) => randomFrames(500 + round, n, wsi.frames, 1).map((f) => `${wsiBase}/frames/${f.join(',')}/rendered`),
      compareSizes: false, // two JPEG encoders: sizes legitimately differ
      keepBody: true,
      check: (s) =>
        !/image\/jpeg/i.test(s.contentType)
          ? `Content-Type ${s.contentType}`
          : s.body && s.body[0] === 0xff && s.body[1] === 0xd8
            ? undefined
            : 'body is not a JPEG (no SOI marker)',
      throughput: metric('(4) rendered WSI tile, concurrency 1', 'requests/s', true),
    },
    {
      key: 'metadata',
      label: `(5) series metadata, ${opts.seriesInstances} instances`,
      accept: 'application/dicom+json',
      concurrency: 1,
      paths: (_round, n) => Array.from({ length: n }, () => `${seriesBase}/metadata`),
      compareSizes: false, // JSON serialisations differ (BulkDataURIs, optional attributes); item count is checked
      keepBody: true,
      check: (s) => {
        try {
          const items = JSON.parse(s.body!.toString('utf8')) as unknown[];
          return items.length === opts.seriesInstances ? undefined : `expected ${opts.seriesInstances} items, got ${items.length}`;
        } catch (err) {
          return `not JSON: ${(err as Error).message}`;
        }
      },
      throughput: metric('(5) series metadata', 'requests/s', true),
    },
    {
      key: 'series',
      label: `(6) whole series, ${opts.seriesInstances} instances (${(series.bytes / MB).toFixed(0)} MB), transfer-syntax=*`,
      accept: ACCEPT_INSTANCES,
      concurrency: 1,
      paths: (_round, n) => Array.from({ length: n }, () => seriesBase),
      compareSizes: true,
      keepBody: false,
      check: expectParts(opts.seriesInstances, series.bytes),
      throughput: metric(`(6) whole-series retrieve (${(series.bytes / MB).toFixed(0)} MB)`, 'MB/s', true),
    },
  ];
  const latency = new Map<RequestKey, LatencySeries>(
    types.map((t) => [t.key, { label: t.label, rounds: new Map(), errors: new Map(), bytes: new Map() }]),
  );
  const seriesPeak = metric(`(6) whole-series retrieve: server peak RSS`, 'MiB', false, 0);
  const seriesGrowth = metric(`(6) whole-series retrieve: peak RSS − RSS before`, 'MiB', false, 0, false);
  // Server CPU is what the server spends, whatever the client on the same cores does meanwhile (1 request
  // per round: /proc's 10 ms ticks make single readings coarse; the median over rounds is what to read).
  const seriesCpu = metric(`(6) whole-series retrieve: server CPU per request`, 'ms', false, 0);
  /** Payload size per request type and path, by server (to compare the two servers). */
  const sizes = new Map<string, Map<string, string>>();
  const checkFailures = new Map<string, number>();

  const judge = (server: TargetServer, t: RequestType, p: string, s: GetSample, recordSize: boolean): boolean => {
    const failure = s.error ?? t.check(s, p);
    if (failure) {
      const k = `${server.name}/${t.key}`;
      checkFailures.set(k, (checkFailures.get(k) ?? 0) + 1);
      if ((checkFailures.get(k) ?? 0) <= 3) problem(server.name, `${t.label}: ${failure}`);
      return false;
    }
    if (recordSize && t.compareSizes) {
      const key = `${t.key} ${p}`;
      const bySrv = sizes.get(key) ?? new Map<string, string>();
      bySrv.set(server.name, `${s.parts} part(s), ${s.payloadBytes} bytes`);
      sizes.set(key, bySrv);
    }
    return true;
  };

  if (opts.types !== undefined) types.splice(0, types.length, ...types.filter((t) => opts.types!.includes(t.key)));
  // Warm-up: each type twice per server (one for whole-series), not recorded.
  for (const server of servers) {
    for (const t of types) {
      for (const p of t.paths(999, t.key === 'series' ? 1 : 2)) judge(server, t, p, await timedGet(server, p, t.accept, t.keepBody), false);
    }
  }
  log('warm-up done');

  for (let round = 0; round < opts.rounds; round++) {
    for (const t of types) {
      const count = opts.reps[t.key];
      const paths = t.paths(round, count);
      for (const server of ordered(servers, round)) {
        const watch = t.key === 'series';
        const hwmReset = watch ? resetPeakRss(server.pid) : false;
        const before = watch ? (readProcMemory(server.pid)?.rssBytes ?? Number.NaN) : 0;
        const sampler = watch ? sampleRss(server.pid) : undefined;
        const cpuBefore = watch ? cpuSeconds(server.pid) : 0;
        const { results, wallMs } = await runPool(
          paths.map((p) => () => timedGet(server, p, t.accept, t.keepBody)),
          t.concurrency,
        );
        if (sampler) {
          record(seriesCpu, server.name, ((cpuSeconds(server.pid) - cpuBefore) * 1000) / paths.length);
          const sampled = sampler.stop();
          const hwm = readProcMemory(server.pid)?.hwmBytes ?? Number.NaN;
          const peak = hwmReset && Number.isFinite(hwm) ? Math.max(hwm, sampled) : sampled;
          record(seriesPeak, server.name, peak / MiB);
          record(seriesGrowth, server.name, (peak - before) / MiB);
        }
        const series = latency.get(t.key)!;
        const okMs: number[] = [];
        let allOk = true;
        let payload = 0;
        for (const [i, s] of results.entries()) {
          const ok = judge(server, t, paths[i]!, s, true);
          if (ok) {
            okMs.push(s.elapsedMs);
            payload += s.payloadBytes;
            series.bytes.set(server.name, [...(series.bytes.get(server.name) ?? []), s.bytes]);
          } else {
            allOk = false;
            series.errors.set(server.name, (series.errors.get(server.name) ?? 0) + 1);
          }
        }
        series.rounds.set(server.name, [...(series.rounds.get(server.name) ?? []), okMs]);
        const seconds = wallMs / 1000;
        record(t.throughput, server.name, !allOk ? Number.NaN : t.throughput.unit === 'MB/s' ? payload / MB / seconds : results.length / seconds);
      }
    }
    log(`round ${round + 1}/${opts.rounds} done (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }

  // Same answers from both servers?
  const verification: string[] = [];
  if (names.length > 1) {
    let compared = 0;
    const mismatches: string[] = [];
    for (const [key, bySrv] of sizes) {
      if (bySrv.size < names.length) continue;
      compared++;
      const values = [...bySrv.values()];
      if (values.some((v) => v !== values[0])) mismatches.push(`${key}: ${[...bySrv].map(([s, v]) => `${s} ${v}`).join(' vs ')}`);
    }
    verification.push(`${compared} distinct frame / tile / series requests compared between servers by part count and payload bytes: ${mismatches.length} mismatch(es)`);
    for (const m of mismatches.slice(0, 10)) problem('both', `size mismatch ${m}`);
  }
  for (const t of types) {
    const s = latency.get(t.key)!;
    const bytes = names.map((n) => {
      const b = s.bytes.get(n) ?? [];
      return `${n} ${b.length ? `${formatBytes(Math.min(...b))}–${formatBytes(Math.max(...b))}` : 'n/a'}`;
    });
    const failed = names.map((n) => `${n} ${checkFailures.get(`${n}/${t.key}`) ?? 0}`);
    verification.push(`${t.label}: response bodies ${bytes.join(', ')}; failed checks (status 200 + content): ${failed.join(', ')}`);
  }

  for (const server of servers) {
    if (!server.alive()) problem(server.name, `process died during the run; last output:\n${server.logTail()}`);
  }
  const describe = [...servers.flatMap((s) => s.describe), ...storeDescription];
  await run.cleanup(false);
  for (const server of servers) {
    for (const logName of ['ours.log', 'orthanc.log']) {
      const file = path.join(run.workDir!, server.name, logName);
      if (fs.existsSync(file)) fs.copyFileSync(file, path.join(benchDir, `retrieve-${logName}`));
    }
  }
  await run.cleanup();

  const md = [
    `# Retrieve benchmark (WADO-RS): ${names.join(' vs ')}${opts.quick ? ' (--quick smoke run)' : ''}`,
    '',
    `Run ${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s total.`,
    '',
    '## Machine and servers',
    '',
    ...machineInfo().map((l) => `- ${l}`),
    ...describe.map((l) => `- ${l}`),
    '',
    '## Method',
    '',
    `- One client (this script, same machine, keep-alive HTTP/1.1). ${names.length > 1 ? `Both servers are started fresh and get the same data by STOW-RS; each round runs every request type on ${names.join(' then ')} (even rounds) or the reverse (odd rounds), with the same request sequence for both.` : 'The server is started fresh.'} ${opts.rounds} rounds; latency p50/p95 per round, median over rounds; throughput per round, median (min–max) over rounds. Latency = request start to last response byte. Warm-up: 2 requests per type and server first (1 for the whole series).`,
    `- (1)/(2) one native multi-frame instance, ${multiframe.frames} frames of 512×512×16 bit (${formatBytes(multiframe.bytes)}, explicit VR LE, Multi-frame Grayscale Word SC); random frame numbers; Accept \`${ACCEPT_FRAMES}\`. Requests per round and server: ${opts.reps.frame1} at concurrency 1, ${opts.reps.frame16} at concurrency 16, ${opts.reps.list8} lists of 8 distinct frames.`,
    `- (3)/(4) WSI: ${wsiDescription}. The level with the most tiles is used: ${wsi.frames} tiles of ${wsi.columns}×${wsi.rows}. (3) raw tile with the Accept above (${opts.reps.wsi}/round); (4) \`/frames/N/rendered\` with Accept \`image/jpeg\` (${opts.reps.rendered}/round; sizes not compared, the JPEG encoders differ).`,
    `- (5)/(6) one series of ${opts.seriesInstances} CT instances, ${opts.seriesSide}×${opts.seriesSide}×16 bit (${(series.bytes / MB).toFixed(1)} MB in all): \`/studies/{s}/series/{se}/metadata\` (Accept application/dicom+json, ${opts.reps.metadata}/round, item count checked) and \`/studies/{s}/series/{se}\` with Accept \`${ACCEPT_INSTANCES}\` (${opts.reps.series}/round; MB/s = DICOM payload 10^6 bytes / wall time; peak RSS of the server process from VmHWM after a reset via /proc/<pid>/clear_refs, plus 25 ms VmRSS sampling).`,
    `- Checks: every answer must be HTTP 200 with the expected part count and payload (frames: 524,288 bytes each; series: the stored files byte-for-byte in size), metadata must list ${opts.seriesInstances} items, rendered answers must be image/jpeg starting with FFD8; frame/tile/series payload sizes of the same request are compared between the servers.`,
    '',
    '## Results',
    '',
    '### Latency',
    '',
    latencyTable(types.map((t) => latency.get(t.key)!), names, 'WADO-RS request'),
    '',
    '### Throughput and memory',
    '',
    medianTable([...types.map((t) => t.throughput), seriesCpu, seriesPeak, seriesGrowth], names),
    '',
    '## Verification',
    '',
    ...verification.map((l) => `- ${l}`),
    '',
    '## Problems seen',
    '',
    ...(problems.length ? problems.map((p) => `- ${p.replace(/\n/g, '\n  ')}`) : ['- none']),
    '',
  ].join('\n');

  if (run.interrupted) return 130;
  process.stdout.write(`${md}\n`);
  const reportFile = path.join(benchDir, 'retrieve-results.md');
  fs.writeFileSync(reportFile, md);
  log(`report written to ${path.relative(repoRoot, reportFile)}; server output in .bench/retrieve-<server>.log`);
  return problems.length ? 1 : 0;
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch((err: unknown) => {
    process.stderr.write(`\nbenchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => run.cleanup());
