/**
 * Archive benchmark: our server vs Debian's Orthanc + DICOMweb plugin, same work, same run.
 *
 *   npm run bench:archive                 # full run (~3 min on 2 cores; +30 s the first time, to generate data)
 *   npm run bench:archive -- --quick      # smoke run (~30 s), smaller counts, < 1 GB upload
 *   npm run bench:archive -- --servers orthanc   # only one side (ours | orthanc | ours,orthanc)
 *   options: --rounds N  --keep (keep temp storage)  --orthanc-no-sync (Orthanc SyncStorageArea=false)
 *            --ours-path /dicomweb (where our DICOMweb root is mounted)  --concurrency 4 (parallel STOW clients in (a), (e))
 *            --workers N|auto (our PACS_WORKERS: server processes sharing the port; default: the server's, auto)
 *            --single N (instances per round in (e), default 200; 40 with --quick)
 *
 * Measures (a) STOW-RS of small instances in batches of one study (50 instances per request), sent
 * sequentially and by several parallel clients,
 * (b) STOW-RS of one large native multi-frame instance, (c) QIDO-RS latency on the resulting index,
 * (d) peak RSS of each server while a >= 1 GB multipart upload streams in. Every measurement is repeated
 * in rounds that alternate which server goes first; the table shows medians (and min-max).
 * (e) STOW-RS of one small instance per request (fresh UIDs): latency p50/p95 of one client sending them
 * one after the other, and instances/s of `--concurrency` clients.
 * Output: markdown on stdout and in .bench/archive-results.md; progress on stderr.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ensureSmallCorpus, largeMultiframeInstance, SERIES_PER_STUDY, INSTANCES_PER_SERIES, type StudyPlan } from './bench/generate.js';
import { findOrthanc, INSTALL_HINT, startOrthanc } from './bench/orthanc.js';
import { OUR_ENTRY, startOurServer } from './bench/our-server.js';
import { indexSummary, queryTypes, runQido, verifyStudy, type QidoQueryType } from './bench/qido.js';
import { latencyTable, machineInfo, medianTable, metric, ORTHANC, OURS, record, type LatencySeries, type Metric } from './bench/report.js';
import { buildMultipart, freshSingleInstances, memoryUpload, SINGLE_SIZE, stowBuffer, stowStreamed, studyBody, type MultipartBody } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { BenchRun, ordered, parseCommonOptions } from './bench/run.js';
import { cpuSeconds, directoryBytes, formatBytes, log, MB, MiB, percentile } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(repoRoot, '.bench');

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  quick: boolean;
  servers: string[];
  rounds: number;
  studies: number;
  qidoRepsPerRound: number;
  largeBytes: number;
  memoryBytes: number;
  memoryParts: number;
  memoryRounds: number;
  keep: boolean;
  orthancSync: boolean;
  oursPath: string;
  concurrency: number;
  /** Our PACS_WORKERS (`--workers`), or undefined: the server's default. */
  workers: string | undefined;
  /** Instances per round in (e). */
  single: number;
}

function parseOptions(argv: string[]): Options {
  const { quick, servers, rounds, keep, workers, flag, value } = parseCommonOptions(argv, import.meta.url, (quick) => (quick ? 3 : 5));
  const single = Number(value('single') ?? (quick ? 40 : 200));
  if (!Number.isInteger(single) || single < 2 || single > 100_000) throw new Error('--single must be 2..100000');
  const concurrency = Number(value('concurrency') ?? 4);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32) throw new Error('--concurrency must be 1..32');
  return {
    quick,
    servers,
    rounds,
    studies: quick ? 20 : 200, // x 5 series x 10 instances
    qidoRepsPerRound: quick ? 6 : 20,
    largeBytes: quick ? 64 * MB : 300 * MB,
    memoryBytes: quick ? 256 * MB : 1200 * MB,
    memoryParts: quick ? 2 : 4,
    memoryRounds: quick ? 1 : 3,
    keep,
    orthancSync: !flag('orthanc-no-sync'),
    concurrency,
    oursPath: (value('ours-path') ?? '/dicomweb').replace(/\/+$/, ''),
    workers,
    single,
  };
}

// ---------------------------------------------------------------------------------------------------
// Lifecycle: everything started is stopped, on success, error or Ctrl-C.

const run = new BenchRun();


function chunk<T>(items: T[], parts: number): T[][] {
  const out: T[][] = [];
  const size = Math.ceil(items.length / parts);
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
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

  // Preconditions, before any time is spent.
  const orthancInstall = opts.servers.includes(ORTHANC) ? findOrthanc() : undefined;
  if (opts.servers.includes(ORTHANC) && !orthancInstall) {
    process.stderr.write(`\nOrthanc or its DICOMweb plugin is not installed.\n${INSTALL_HINT}\n`);
    return 2;
  }
  if (opts.servers.includes(OURS) && !fs.existsSync(path.join(repoRoot, OUR_ENTRY))) {
    process.stderr.write(`\n${OUR_ENTRY} does not exist. To measure Orthanc alone: npm run bench:archive -- --servers orthanc\n`);
    return 2;
  }

  // (0) Test data.
  fs.mkdirSync(benchDir, { recursive: true });
  log(`preparing ${opts.studies} studies x ${SERIES_PER_STUDY} series x ${INSTANCES_PER_SERIES} instances in ${benchDir}`);
  const studies: StudyPlan[] = ensureSmallCorpus(benchDir, opts.studies);
  const allSizes = studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => i.bytes)));
  const corpusBytes = allSizes.reduce((a, b) => a + b, 0);

  // (1) Servers.
  const workDir = run.makeWorkDir('pacs-bench-');
  const servers: TargetServer[] = [];
  for (const name of opts.servers) {
    const dir = path.join(workDir, name);
    fs.mkdirSync(dir);
    log(`starting ${name}`);
    try {
      const server =
        name === ORTHANC
          ? await startOrthanc(orthancInstall!, dir, { syncStorageArea: opts.orthancSync })
          : await startOurServer(repoRoot, dir, opts.oursPath, { workers: opts.workers });
      run.running.push(server);
      servers.push(server);
      log(`${name} ready (pid ${server.pid}) at ${server.dicomwebRoot}`);
    } catch (err) {
      process.stderr.write(`\n${(err as Error).message}\n`);
      if (name === OURS) process.stderr.write(`To measure Orthanc alone: npm run bench:archive -- --servers orthanc\n`);
      return 1;
    }
  }
  const names = servers.map((s) => s.name);
  /** DICOM bytes each server acknowledged as stored, to compare with what it wrote to disk. */
  const storedBytes = new Map<string, number>(names.map((n) => [n, 0]));
  const addStored = (server: TargetServer, bytes: number): void => {
    storedBytes.set(server.name, (storedBytes.get(server.name) ?? 0) + bytes);
  };

  // (a) STOW-RS, small instances, one study (50 instances) per request. Each round's studies are split:
  // the first half is sent one request at a time, the second half by `concurrency` parallel clients.
  const perRequest = SERIES_PER_STUDY * INSTANCES_PER_SERIES;
  const seqLabel = `(a) STOW-RS small instances, ${perRequest}/request, sequential`;
  const parLabel = `(a) STOW-RS small instances, ${perRequest}/request, ${opts.concurrency} concurrent`;
  const stowModes = [
    { mode: 'sequential', concurrency: 1, inst: metric(seqLabel, 'instances/s', true), mbps: metric(seqLabel, 'MB/s', true), cpu: metric(`${seqLabel}: server CPU per 1000 instances`, 'CPU s', false, 2) },
    { mode: `${opts.concurrency} concurrent`, concurrency: opts.concurrency, inst: metric(parLabel, 'instances/s', true), mbps: metric(parLabel, 'MB/s', true), cpu: metric(`${parLabel}: server CPU per 1000 instances`, 'CPU s', false, 2) },
  ];
  const studyChunks = chunk(studies, opts.rounds);
  for (const [round, group] of studyChunks.entries()) {
    const bodies = group.map((s) => studyBody(benchDir, s)); // built before any timing
    const half = Math.ceil(bodies.length / 2);
    const parts = [bodies.slice(0, half), bodies.slice(half)];
    for (const server of ordered(servers, round)) {
      for (const [i, m] of stowModes.entries()) {
        const batch = parts[i]!;
        if (batch.length === 0) continue;
        const cpuBefore = cpuSeconds(server.pid);
        const started = performance.now();
        let next = 0;
        let failed = false;
        await Promise.all(
          Array.from({ length: Math.min(m.concurrency, batch.length) }, async () => {
            while (next < batch.length) {
              const body = batch[next++]!;
              const out = await stowBuffer(server, body);
              if (out.error) {
                failed = true;
                problem(server.name, `STOW small batch (${body.instances} instances, ${formatBytes(body.body.length)}, ${m.mode}): ${out.error}`);
              } else addStored(server, body.dicomBytes);
            }
          }),
        );
        const seconds = (performance.now() - started) / 1000;
        const cpu = cpuSeconds(server.pid) - cpuBefore;
        const instances = batch.reduce((n, b) => n + b.instances, 0);
        const bytes = batch.reduce((n, b) => n + b.dicomBytes, 0);
        record(m.cpu, server.name, failed ? Number.NaN : (cpu / instances) * 1000);
        record(m.inst, server.name, failed ? Number.NaN : instances / seconds);
        record(m.mbps, server.name, failed ? Number.NaN : bytes / MB / seconds);
        log(`(a) round ${round + 1}/${studyChunks.length} ${server.name} ${m.mode}: ${instances} instances, ${(bytes / MB).toFixed(1)} MB in ${seconds.toFixed(2)} s -> ${(instances / seconds).toFixed(0)} inst/s, server CPU ${cpu.toFixed(2)} s`);
      }
    }
  }

  // Did both really store the same thing?
  const verification: string[] = [];
  for (const server of servers) {
    try {
      const summary = await indexSummary(server, opts.studies + 100);
      const line = `${server.name}: ${summary.studies} studies, ${summary.instances ?? 'n/a'} instances (NumberOfStudyRelatedInstances) — expected ${opts.studies} / ${allSizes.length}`;
      verification.push(line);
      log(`verify ${line}`);
      if (summary.error) problem(server.name, `QIDO index summary: ${summary.error}`);
      else if (summary.studies !== opts.studies || (summary.instances !== undefined && summary.instances !== allSizes.length)) {
        problem(server.name, `index after STOW does not match: ${line}`);
      }
    } catch (err) {
      problem(server.name, `QIDO index summary failed: ${(err as Error).message}`);
    }
  }

  // (c) QIDO-RS latency on the index built by (a).
  const queries: QidoQueryType[] = queryTypes(studies);
  const latency: LatencySeries[] = queries.map((q) => ({ label: `\`${q.label}\``, rounds: new Map(), errors: new Map(), bytes: new Map() }));
  for (const server of servers) {
    for (const q of queries) for (let i = 0; i < 3; i++) await runQido(server, q.call(1000 + i)); // warm-up
  }
  for (let round = 0; round < opts.rounds; round++) {
    for (const server of ordered(servers, round)) {
      const samples: number[][] = queries.map(() => []);
      for (let rep = 0; rep < opts.qidoRepsPerRound; rep++) {
        for (const [qi, q] of queries.entries()) {
          const call = q.call(round * opts.qidoRepsPerRound + rep);
          const sample = await runQido(server, call);
          if (sample.ok) {
            samples[qi]!.push(sample.elapsedMs);
            const bytes = latency[qi]!.bytes;
            bytes.set(server.name, [...(bytes.get(server.name) ?? []), sample.bytes]);
          }
          else {
            const errors = latency[qi]!.errors;
            errors.set(server.name, (errors.get(server.name) ?? 0) + 1);
            if ((errors.get(server.name) ?? 0) <= 3) problem(server.name, `QIDO ${sample.error}`);
          }
        }
      }
      for (const [qi, s] of samples.entries()) {
        const rounds = latency[qi]!.rounds.get(server.name) ?? [];
        rounds.push(s);
        latency[qi]!.rounds.set(server.name, rounds);
      }
    }
    log(`(c) QIDO round ${round + 1}/${opts.rounds} done`);
  }

  // (e) STOW-RS, one small instance per request (fresh UIDs, after (c): the QIDO checks count the corpus only).
  const singleSeq: LatencySeries = { label: `one ${SINGLE_SIZE}×${SINGLE_SIZE}×16 bit instance per request, sequential`, rounds: new Map(), errors: new Map(), bytes: new Map() };
  const singleParLabel = `(e) STOW-RS 1 instance/request, ${opts.concurrency} concurrent`;
  const singlePar = metric(singleParLabel, 'instances/s', true);
  const singleParCpu = metric(`${singleParLabel}: server CPU per 1000 instances`, 'CPU s', false, 2);
  for (let round = 0; round < opts.rounds; round++) {
    for (const server of ordered(servers, round)) {
      const [sequential, parallel] = [freshSingleInstances(opts.single), freshSingleInstances(opts.single)]; // built before timing
      const samples: number[] = [];
      for (const body of sequential) {
        const out = await stowBuffer(server, body);
        if (out.error) {
          singleSeq.errors.set(server.name, (singleSeq.errors.get(server.name) ?? 0) + 1);
          if ((singleSeq.errors.get(server.name) ?? 0) <= 3) problem(server.name, `STOW one instance (sequential): ${out.error}`);
        } else {
          samples.push(out.elapsedMs);
          addStored(server, body.dicomBytes);
        }
      }
      singleSeq.rounds.set(server.name, [...(singleSeq.rounds.get(server.name) ?? []), samples]);
      const cpuBefore = cpuSeconds(server.pid);
      const started = performance.now();
      let next = 0;
      let failed = false;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          while (next < parallel.length) {
            const body = parallel[next++]!;
            const out = await stowBuffer(server, body);
            if (out.error) {
              failed = true;
              problem(server.name, `STOW one instance (${opts.concurrency} concurrent): ${out.error}`);
            } else addStored(server, body.dicomBytes);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      record(singlePar, server.name, failed ? Number.NaN : parallel.length / seconds);
      record(singleParCpu, server.name, failed ? Number.NaN : (cpu / parallel.length) * 1000);
      log(`(e) round ${round + 1}/${opts.rounds} ${server.name}: sequential p50 ${percentile(samples, 50).toFixed(1)} ms; ${opts.concurrency} concurrent ${(parallel.length / seconds).toFixed(0)} inst/s`);
    }
  }

  // (b) STOW-RS of one large native multi-frame instance per request.
  const largeMBps = metric(`(b) STOW-RS 1 multi-frame instance of ${(opts.largeBytes / MB).toFixed(0)} MB`, 'MB/s', true);
  const largeSeconds = metric(`(b) STOW-RS 1 multi-frame instance of ${(opts.largeBytes / MB).toFixed(0)} MB`, 's', false, 2);
  const largeCpu = metric(`(b) server CPU time per GB`, 'CPU s', false, 2);
  for (let round = 0; round < opts.rounds; round++) {
    for (const server of ordered(servers, round)) {
      const instance = largeMultiframeInstance(opts.largeBytes, `b-${round}-${server.name}`);
      const cpuBefore = cpuSeconds(server.pid);
      const out = await stowStreamed(server, [instance]);
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      record(largeCpu, server.name, out.error ? Number.NaN : (cpu / instance.bytes) * 1e9);
      if (out.error) problem(server.name, `STOW large (${formatBytes(instance.bytes)}, ${instance.frames} frames): ${out.error}`);
      else {
        addStored(server, instance.bytes);
        const wrong = await verifyStudy(server, instance.studyInstanceUid, 1);
        if (wrong) problem(server.name, wrong);
      }
      const seconds = out.elapsedMs / 1000;
      record(largeMBps, server.name, out.error ? Number.NaN : instance.bytes / MB / seconds);
      record(largeSeconds, server.name, out.error ? Number.NaN : seconds);
      log(`(b) round ${round + 1}/${opts.rounds} ${server.name}: ${formatBytes(instance.bytes)} in ${seconds.toFixed(2)} s -> ${(instance.bytes / MB / seconds).toFixed(0)} MB/s${out.error ? ' (FAILED)' : ''}`);
    }
  }

  // (d) Peak RSS while a >= 1 GB multipart upload streams in.
  const memLabel = `(d) ${(opts.memoryBytes / MB).toFixed(0)} MB upload (${opts.memoryParts} instances, 1 request)`;
  const memPeak = metric(`${memLabel}: peak RSS`, 'MiB', false, 0);
  const memGrowth = metric(`${memLabel}: peak RSS − RSS before`, 'MiB', false, 0, false);
  const memMBps = metric(`${memLabel}: throughput`, 'MB/s', true);
  const memMethod = new Set<string>();
  for (let round = 0; round < opts.memoryRounds; round++) {
    for (const server of ordered(servers, round)) {
      const m = await memoryUpload(server, opts.memoryBytes, opts.memoryParts);
      memMethod.add(m.method);
      if (m.outcome.error) problem(server.name, `STOW ${formatBytes(m.outcome.bodyBytes)} upload: ${m.outcome.error}`);
      else {
        for (const inst of m.instances) {
          addStored(server, inst.bytes);
          const wrong = await verifyStudy(server, inst.studyInstanceUid, 1);
          if (wrong) problem(server.name, wrong);
        }
      }
      record(memPeak, server.name, m.peakRssBytes / MiB);
      record(memGrowth, server.name, (m.peakRssBytes - m.baselineRssBytes) / MiB);
      record(memMBps, server.name, m.outcome.error ? Number.NaN : m.outcome.bodyBytes / MB / (m.outcome.elapsedMs / 1000));
      log(`(d) round ${round + 1}/${opts.memoryRounds} ${server.name}: before ${formatBytes(m.baselineRssBytes)}, peak ${formatBytes(m.peakRssBytes)} (${m.method}; sampled ${formatBytes(m.sampledPeakRssBytes)}), ${(m.outcome.elapsedMs / 1000).toFixed(1)} s${m.outcome.error ? ' (FAILED)' : ''}`);
    }
  }

  // Servers still alive at the end? (a crash mid-run shows up as failures above; say why)
  for (const server of servers) {
    if (!server.alive()) problem(server.name, `process died during the run; last output:\n${server.logTail()}`);
  }
  const describe = servers.flatMap((s) => s.describe);
  await run.cleanup(false); // stop the servers, keep their storage a moment longer
  for (const server of servers) {
    // Keep each server's own output next to the report (useful when something failed).
    for (const logName of ['ours.log', 'orthanc.log']) {
      const file = path.join(run.workDir!, server.name, logName);
      if (fs.existsSync(file)) fs.copyFileSync(file, path.join(benchDir, `archive-${logName}`));
    }
    const onDisk = directoryBytes(path.join(run.workDir!, server.name));
    const acked = storedBytes.get(server.name) ?? 0;
    verification.push(
      `${server.name}: acknowledged ${(acked / MB).toFixed(0)} MB of DICOM, ${(onDisk / MB).toFixed(0)} MB on disk (files + index) at the end`,
    );
    if (onDisk < acked * 0.98) problem(server.name, `wrote less to disk (${onDisk} bytes) than it acknowledged storing (${acked} bytes)`);
  }
  await run.cleanup();

  // Report.
  const minKB = Math.min(...allSizes) / 1000;
  const maxKB = Math.max(...allSizes) / 1000;
  const stowMetrics: Metric[] = [...stowModes.flatMap((m) => [m.inst, m.mbps, m.cpu]), largeMBps, largeSeconds, largeCpu];
  const memMetrics: Metric[] = [memPeak, memGrowth, memMBps];
  const singleMetrics: Metric[] = [singlePar, singleParCpu];
  const md = [
    `# Archive benchmark: ${names.join(' vs ')}${opts.quick ? ' (--quick smoke run)' : ''}`,
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
    `- One client (this script, on the same machine); requests are sequential except in the concurrent half of (a). ${names.length > 1 ? `Both servers are started fresh, run side by side and are measured alternately: even rounds run ${names.join(' then ')}, odd rounds the reverse.` : 'The server is started fresh.'} Values are medians over rounds, (min–max) in parentheses.`,
    `- (a) ${opts.studies} studies × ${SERIES_PER_STUDY} series × ${INSTANCES_PER_SERIES} instances = ${allSizes.length} instances, ${(corpusBytes / MB).toFixed(0)} MB (instances ${minKB.toFixed(0)}–${maxKB.toFixed(0)} KB, explicit VR LE, generated from pydicom CT_small.dcm), one study per STOW-RS request (50 instances, built in memory before timing), split over ${studyChunks.length} rounds; in each round half the studies go one request at a time, the other half over ${opts.concurrency} parallel connections. Rate = instances / wall time. MB = 10^6 bytes of DICOM payload.`,
    `- Server CPU time = user + system time of the server process (all threads; with PACS_WORKERS > 1 the primary and every worker) from /proc/<pid>/stat over the requests; the client runs on the same ${os.cpus().length} cores.`,
    `- Our server: PACS_WORKERS=${opts.workers ?? process.env['PACS_WORKERS'] ?? 'auto (default)'}. A keep-alive connection stays with one worker: the sequential client of (a) and (e) uses one worker, the concurrent clients spread over all.`,
    `- (b) one native multi-frame instance (512×512×16 bit frames) per request, streamed from a generator with Content-Length, fresh UIDs each time, ${opts.rounds} rounds.`,
    `- (c) QIDO-RS on the index built by (a) (${allSizes.length} instances); ${opts.qidoRepsPerRound} requests per query and round with varied parameters, each answer's result count checked against the corpus; p50/p95 per round, median over ${opts.rounds} rounds; 3 warm-up requests per query first. Latency = request start to last response byte.`,
    `- (e) ${opts.single} fresh instances per round and mode (${SINGLE_SIZE}×${SINGLE_SIZE}×16 bit CT, ${(2 * SINGLE_SIZE * SINGLE_SIZE / 1000).toFixed(0)} KB of pixels, built before timing), one per STOW-RS request: sent one after the other (latency p50/p95 per round, median over rounds), then by ${opts.concurrency} parallel clients (instances / wall time), ${opts.rounds} rounds, after (c).`,
    `- (d) ${opts.memoryParts} multi-frame instances totalling ${(opts.memoryBytes / MB).toFixed(0)} MB in one multipart request, streamed (the client never holds it); peak RSS from ${[...memMethod].join(', ')} of the server process (kernel peak counter reset via /proc/<pid>/clear_refs before the upload, plus 25 ms VmRSS sampling), ${opts.memoryRounds} round(s).${opts.quick ? ' **--quick uses less than 1 GB; run without --quick for the real figure.**' : ''}`,
    '',
    '## Results',
    '',
    '### STOW-RS throughput',
    '',
    medianTable(stowMetrics, names),
    '',
    '### QIDO-RS latency',
    '',
    latencyTable(latency, names),
    '',
    '### One instance per request (e)',
    '',
    latencyTable([singleSeq], names, 'STOW-RS'),
    '',
    medianTable(singleMetrics, names),
    '',
    '### Memory during a large upload',
    '',
    medianTable(memMetrics, names),
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
  const reportFile = path.join(benchDir, 'archive-results.md');
  fs.writeFileSync(reportFile, md);
  log(`report written to ${path.relative(repoRoot, reportFile)}; server output in .bench/archive-<server>.log`);
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
