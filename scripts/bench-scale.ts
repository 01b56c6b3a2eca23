/**
 * Index growth benchmark (issue 22, "millions of instances"): loads synthetic CT-like instances into our
 * server through STOW-RS (the real ingest path) and, at each checkpoint, measures the STOW rate of the
 * stretch just loaded, QIDO-RS p50/p95 of the usual queries, series metadata p50/p95 and the server's
 * memory, so one run shows whether the index and its queries hold as it grows.
 *
 *   npm run bench:scale                                  # 10k, 100k, 1M instances, SQLite (~20–45 min on 2 cores)
 *   npm run bench:scale -- --index postgres              # same on PostgreSQL (schema of its own in db `test`)
 *   npm run bench:scale -- --index postgres --private-postgres   # on a cluster of its own with PostgreSQL's
 *                                                        # defaults (autovacuum on), in the work dir, port 5439
 *   npm run bench:scale -- --checkpoints 10000,20000     # a short run
 *   npm run bench:scale -- --resume /tmp/pacs-bench-scale-XXXX   # continue an interrupted run
 *   options: --patients 1000  --series-per-study 4  --instances-per-series 25  (study shape)
 *            --batch N (instances per STOW request, default one series)  --concurrency 4 (parallel clients)
 *            --samples 50 (per query and checkpoint)  --workers N|auto (our PACS_WORKERS)
 *            --postgres-url postgres://postgres@127.0.0.1:5432/test  --work-dir DIR  --keep
 *            --out .bench/scale-results.md  --json FILE (the figures as JSON)
 *
 * Each instance is ~1.3 KB (8×8×16-bit pixels; header ~1.1 KB), unique UIDs under a random 2.25 root;
 * study k is a pure function of k (scale-corpus.ts), so every query knows what it must answer and a run
 * interrupted by Ctrl-C or a crash keeps its data and state (`scale-state.json`) and resumes where the
 * acknowledged studies end. Exit status 1 when any request failed or any answer was wrong.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startOurServer } from './bench/our-server.js';
import { startPrivatePostgres } from './bench/private-postgres.js';
import { machineInfo } from './bench/report.js';
import { BenchRun, parseCommonOptions } from './bench/run.js';
import { encodeInstance, newUidRoot, studyPlan, type ScaleShape } from './bench/scale-corpus.js';
import { prng, scaleQueries, type ScaleCall } from './bench/scale-queries.js';
import { buildMultipart, stowBuffer } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { cpuSeconds, formatBytes, httpRequest, log, percentile, readProcMemory } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const STATE_FILE = 'scale-state.json';

interface Options {
  checkpoints: number[];
  index: 'sqlite' | 'postgres';
  postgresUrl: string;
  /** Port of a PostgreSQL cluster of the run's own (`--private-postgres`), in the work dir. */
  privatePostgresPort: number | undefined;
  shape: ScaleShape;
  batch: number;
  concurrency: number;
  samples: number;
  workers: string | undefined;
  workDir: string | undefined;
  resume: string | undefined;
  keep: boolean;
  out: string;
  json: string | undefined;
}

function positive(value: string | undefined, fallback: number, name: string, max = 10_000_000): number {
  const n = Number(value ?? fallback);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer 1..${max}`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { keep, workers, value } = parseCommonOptions(argv, import.meta.url, () => 1);
  const checkpoints = (value('checkpoints') ?? '10000,100000,1000000').split(',').map((c) => positive(c.trim(), 0, 'checkpoints', 100_000_000));
  if (checkpoints.some((c, i) => i > 0 && c <= checkpoints[i - 1]!)) throw new Error('--checkpoints must increase');
  const index = value('index') ?? 'sqlite';
  if (index !== 'sqlite' && index !== 'postgres') throw new Error('--index must be sqlite or postgres');
  const shape = {
    patients: positive(value('patients'), 1000, 'patients'),
    seriesPerStudy: positive(value('series-per-study'), 4, 'series-per-study', 99),
    instancesPerSeries: positive(value('instances-per-series'), 25, 'instances-per-series', 999),
  };
  const batch = positive(value('batch'), shape.instancesPerSeries, 'batch', 1000);
  return {
    checkpoints,
    index,
    postgresUrl: value('postgres-url') ?? DEFAULT_POSTGRES_URL,
    privatePostgresPort: argv.includes('--private-postgres') ? positive(value('private-postgres-port'), 5439, 'private-postgres-port', 65535) : undefined,
    shape,
    batch,
    concurrency: positive(value('concurrency'), 4, 'concurrency', 64),
    samples: positive(value('samples'), 50, 'samples', 10_000),
    workers,
    workDir: value('work-dir'),
    resume: value('resume'),
    keep,
    out: path.resolve(value('out') ?? path.join(repoRoot, '.bench', 'scale-results.md')),
    json: value('json'),
  };
}

// ---------------------------------------------------------------------------------------------------
// Run state, saved in the work dir so that an interrupted run resumes.

interface Latency {
  p50: number;
  p95: number;
  samples: number;
  errors: number;
}

interface CheckpointResult {
  target: number;
  instances: number;
  studies: number;
  stretchInstances: number;
  stretchSeconds: number;
  stowPerSecond: number;
  /** Server CPU seconds per 1000 instances of the stretch. */
  cpuPer1000: number;
  stowErrors: number;
  /** Requests of the stretch sent again after a restart (their rate is not comparable). */
  resumed: boolean;
  rssAfterLoad: number;
  peakRssDuringLoad: number;
  rssAfterQueries: number;
  indexBytes: number;
  queries: Record<string, Latency>;
}

interface RunState {
  version: 1;
  root: string;
  index: 'sqlite' | 'postgres';
  postgresSchema: string | undefined;
  /** The run's own PostgreSQL cluster (in the work dir), when it has one. */
  privatePostgresPort?: number | undefined;
  /** PostgreSQL's autovacuum setting during the run (read at start). */
  autovacuum?: string | undefined;
  shape: ScaleShape;
  /** Studies 0..loadedStudies-1 are acknowledged in full. */
  loadedStudies: number;
  results: CheckpointResult[];
}

function saveState(workDir: string, state: RunState): void {
  const file = path.join(workDir, STATE_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 1));
  fs.renameSync(`${file}.tmp`, file);
}

// ---------------------------------------------------------------------------------------------------
// Loading

interface Problems {
  list: string[];
  add(text: string): void;
}

/** STOW-RS of studies [from, to) by `concurrency` clients, each sending one study's requests in order. */
async function load(server: TargetServer, opts: Options, state: RunState, to: number, problems: Problems, onProgress: () => void): Promise<{ errors: number }> {
  const from = state.loadedStudies;
  const done = new Set<number>();
  let next = from;
  let errors = 0;
  let lastSave = Date.now();
  const perStudy = opts.shape.seriesPerStudy * opts.shape.instancesPerSeries;
  const client = async (): Promise<void> => {
    while (next < to && errors < 20) {
      const k = next++;
      const study = studyPlan(state.root, opts.shape, k);
      const parts = study.series.flatMap((se) => Array.from({ length: opts.shape.instancesPerSeries }, (_, i) => encodeInstance(study, se, i)));
      for (let start = 0; start < perStudy; start += opts.batch) {
        const outcome = await stowBuffer(server, buildMultipart(parts.slice(start, start + opts.batch)));
        if (outcome.error) {
          errors++;
          problems.add(`STOW of study ${k} (instances ${start}..${Math.min(perStudy, start + opts.batch) - 1}): ${outcome.error}`);
        }
      }
      done.add(k);
      while (done.has(state.loadedStudies)) done.delete(state.loadedStudies++);
      if (Date.now() - lastSave > 10_000) {
        lastSave = Date.now();
        onProgress();
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, client));
  return { errors };
}

// ---------------------------------------------------------------------------------------------------
// Measuring

async function measureCall(server: TargetServer, call: ScaleCall): Promise<{ ms: number; error?: string }> {
  try {
    const res = await httpRequest(`${server.dicomwebRoot}${call.path}`, { headers: { Accept: 'application/dicom+json' }, timeoutMs: 120_000 });
    const json = res.status === 200 ? (JSON.parse(res.body.toString('utf8')) as Parameters<NonNullable<ScaleCall['check']>>[0]) : res.status === 204 ? [] : undefined;
    const wrong =
      json === undefined
        ? `HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`
        : json.length !== call.expectedCount
          ? `${json.length} results, expected ${call.expectedCount}`
          : call.check?.(json);
    return wrong === undefined ? { ms: res.elapsedMs } : { ms: res.elapsedMs, error: `GET ${call.path}: ${wrong}` };
  } catch (err) {
    return { ms: Number.NaN, error: `GET ${call.path}: ${(err as Error).message}` };
  }
}

async function measureQueries(server: TargetServer, opts: Options, state: RunState, problems: Problems): Promise<Record<string, Latency>> {
  const loaded = state.loadedStudies;
  const random = prng(loaded);
  const pick = (): number => Math.floor(random() * loaded);
  const out: Record<string, Latency> = {};
  for (const query of scaleQueries(state.root, opts.shape)) {
    for (let i = 0; i < 3; i++) await measureCall(server, query.call(loaded, pick)); // warm-up
    const times: number[] = [];
    let errors = 0;
    for (let i = 0; i < opts.samples; i++) {
      const result = await measureCall(server, query.call(loaded, pick));
      if (result.error === undefined) times.push(result.ms);
      else if (++errors <= 3) problems.add(result.error);
    }
    out[query.id] = { p50: percentile(times, 50), p95: percentile(times, 95), samples: times.length, errors };
    log(`  ${query.label}: p50 ${out[query.id]!.p50.toFixed(1)} ms, p95 ${out[query.id]!.p95.toFixed(1)} ms${errors ? `, ${errors} wrong` : ''}`);
  }
  return out;
}

/** Bytes of the index: the SQLite files, or the PostgreSQL schema's tables with their indexes. */
async function indexBytes(opts: Options, state: RunState, dataDir: string): Promise<number> {
  if (state.index === 'sqlite') {
    return fs.readdirSync(dataDir).filter((f) => f.startsWith('index.sqlite')).reduce((sum, f) => sum + fs.statSync(path.join(dataDir, f)).size, 0);
  }
  const client = new pg.Client({ connectionString: opts.postgresUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: string }>(
      `select coalesce(sum(pg_total_relation_size(c.oid)), 0)::text as bytes from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'`,
      [state.postgresSchema],
    );
    return Number(rows[0]?.bytes ?? Number.NaN);
  } finally {
    await client.end();
  }
}

async function postgresSetting(url: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ setting: string }>('select current_setting($1) as setting', [name]);
    return rows[0]!.setting;
  } finally {
    await client.end();
  }
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------------
// Report

const ms = (v: number): string => (Number.isFinite(v) ? (v < 10 ? v.toFixed(1) : v.toFixed(0)) : 'n/a');
const count = (n: number): string => (n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

function report(opts: Options, state: RunState, describe: string[], bytesPerInstance: number): string {
  const perStudy = state.shape.seriesPerStudy * state.shape.instancesPerSeries;
  const lines = [
    `# Index growth: ${state.index === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`,
    '',
    `Run ${new Date().toISOString()}; ${machineInfo().join('; ')}.`,
    `Server: ${describe.join(' ')}`,
    ...(state.index === 'postgres'
      ? [`PostgreSQL: ${state.privatePostgresPort !== undefined ? `a cluster of the run's own (initdb defaults) on port ${state.privatePostgresPort}` : 'the shared server'}, autovacuum ${state.autovacuum ?? 'not read'}.`]
      : []),
    `Corpus: ${state.shape.patients} patients; studies of ${state.shape.seriesPerStudy} series × ${state.shape.instancesPerSeries} instances (${perStudy}); ` +
      `${bytesPerInstance} bytes per instance (8×8×16-bit CT-like, Explicit VR LE); STOW-RS ${opts.batch} instances per request, ${opts.concurrency} concurrent clients; ` +
      `${opts.samples} samples per query and checkpoint (p50/p95 in ms, client-side, one request at a time).`,
    '',
    '| checkpoint | instances | studies | STOW inst/s (stretch) | server CPU s / 1000 inst | RSS after load | peak RSS while loading | RSS after queries | index size | wrong/failed |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of state.results) {
    const wrong = r.stowErrors + Object.values(r.queries).reduce((n, q) => n + q.errors, 0);
    lines.push(
      `| ${count(r.target)} | ${r.instances} | ${r.studies} | ${r.stowPerSecond.toFixed(0)}${r.resumed ? ' (resumed)' : ''} | ${r.cpuPer1000.toFixed(2)} | ` +
        `${formatBytes(r.rssAfterLoad)} | ${formatBytes(r.peakRssDuringLoad)} | ${formatBytes(r.rssAfterQueries)} | ${formatBytes(r.indexBytes)} | ${wrong} |`,
    );
  }
  lines.push('', `| query (p50 / p95 ms) | ${state.results.map((r) => count(r.target)).join(' | ')} |`, `|---|${state.results.map(() => '---').join('|')}|`);
  for (const query of scaleQueries(state.root, state.shape)) {
    const cells = state.results.map((r) => {
      const q = r.queries[query.id];
      return q ? `${ms(q.p50)} / ${ms(q.p95)}${q.errors ? ` (${q.errors} wrong)` : ''}` : '–';
    });
    lines.push(`| \`${query.label}\` | ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------

const run = new BenchRun();

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const problems: Problems = {
    list: [],
    add(text) {
      if (this.list.length < 50) this.list.push(text);
      log(`PROBLEM ${text}`);
    },
  };

  // (0) Work dir and state: new, or the one of an interrupted run.
  let workDir: string;
  let state: RunState;
  if (opts.resume) {
    workDir = path.resolve(opts.resume);
    state = JSON.parse(fs.readFileSync(path.join(workDir, STATE_FILE), 'utf8')) as RunState;
    opts.shape = state.shape;
    opts.index = state.index;
    log(`resuming ${workDir}: ${state.loadedStudies} studies loaded, ${state.results.length} checkpoints measured`);
  } else {
    workDir = opts.workDir ? path.resolve(opts.workDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'pacs-bench-scale-'));
    fs.mkdirSync(workDir, { recursive: true });
    const schema = opts.index === 'postgres' ? `bench_scale_${process.pid}_${Date.now().toString(36)}` : undefined;
    state = {
      version: 1,
      root: newUidRoot(),
      index: opts.index,
      postgresSchema: schema,
      privatePostgresPort: opts.index === 'postgres' ? opts.privatePostgresPort : undefined,
      shape: opts.shape,
      loadedStudies: 0,
      results: [],
    };
    saveState(workDir, state);
  }
  // Until the run ends well, an interruption keeps the data so that --resume can continue it.
  run.workDir = workDir;
  run.keep = true;
  const cluster = state.privatePostgresPort === undefined ? undefined : startPrivatePostgres(path.join(workDir, 'postgres'), state.privatePostgresPort);
  if (cluster !== undefined) {
    run.running.push({ name: 'private PostgreSQL', stop: async () => cluster.stop() });
    opts.postgresUrl = cluster.url;
    log(`private PostgreSQL in ${cluster.dataDir} on port ${state.privatePostgresPort}`);
  }
  if (state.index === 'postgres') {
    state.autovacuum = await postgresSetting(opts.postgresUrl, 'autovacuum');
    log(`PostgreSQL autovacuum: ${state.autovacuum}`);
    process.env['PACS_INDEX'] = 'postgres';
    process.env['PACS_POSTGRES_URL'] = opts.postgresUrl;
    process.env['PACS_POSTGRES_SCHEMA'] = state.postgresSchema;
  } else {
    delete process.env['PACS_INDEX'];
  }

  // (1) The server.
  log(`starting our server (${state.index}) in ${workDir}`);
  const server = await startOurServer(repoRoot, workDir, '/dicomweb', { workers: opts.workers });
  run.running.unshift(server); // stopped before the private PostgreSQL (run.running stops in order)
  const dataDir = path.join(workDir, 'ours-data');
  const perStudy = state.shape.seriesPerStudy * state.shape.instancesPerSeries;
  const sample = studyPlan(state.root, state.shape, 0);
  const bytesPerInstance = encodeInstance(sample, sample.series[0]!, 0).length;
  log(`${bytesPerInstance} bytes per instance, ${perStudy} instances per study; disk free ${formatBytes(fs.statfsSync(workDir).bavail * fs.statfsSync(workDir).bsize)}`);

  // (2) Load up to each checkpoint, then measure.
  for (const target of opts.checkpoints) {
    if (state.results.some((r) => r.target === target)) continue;
    const studies = Math.ceil(target / perStudy);
    const resumed = state.results.length > 0 ? state.results.at(-1)!.studies !== state.loadedStudies : state.loadedStudies > 0;
    const stretchStart = state.loadedStudies;
    log(`loading studies ${stretchStart}..${studies - 1} (${(studies - stretchStart) * perStudy} instances) for checkpoint ${count(target)}`);
    const cpuBefore = cpuSeconds(server.pid);
    const started = performance.now();
    let peak = readProcMemory(server.pid)?.rssBytes ?? 0;
    const sampler = setInterval(() => (peak = Math.max(peak, readProcMemory(server.pid)?.rssBytes ?? 0)), 1000);
    const { errors } = await load(server, opts, state, studies, problems, () => {
      saveState(workDir, state);
      log(`  ${state.loadedStudies * perStudy} instances acknowledged`);
    });
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuSeconds(server.pid) - cpuBefore;
    saveState(workDir, state);
    if (errors >= 20) {
      problems.add('too many STOW failures: stopped');
      break;
    }
    const stretchInstances = (state.loadedStudies - stretchStart) * perStudy;
    const rssAfterLoad = readProcMemory(server.pid)?.rssBytes ?? Number.NaN;
    log(`checkpoint ${count(target)}: ${state.loadedStudies * perStudy} instances; stretch ${(stretchInstances / seconds).toFixed(0)} inst/s; RSS ${formatBytes(rssAfterLoad)}`);
    const queries = await measureQueries(server, opts, state, problems);
    state.results.push({
      target,
      instances: state.loadedStudies * perStudy,
      studies: state.loadedStudies,
      stretchInstances,
      stretchSeconds: seconds,
      stowPerSecond: stretchInstances / seconds,
      cpuPer1000: (cpu / Math.max(1, stretchInstances)) * 1000,
      stowErrors: errors,
      resumed,
      rssAfterLoad,
      peakRssDuringLoad: Math.max(peak, rssAfterLoad),
      rssAfterQueries: readProcMemory(server.pid)?.rssBytes ?? Number.NaN,
      indexBytes: await indexBytes(opts, state, dataDir),
      queries,
    });
    saveState(workDir, state);
    const markdown = report(opts, state, server.describe, bytesPerInstance);
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    fs.writeFileSync(opts.out, markdown);
  }

  // (3) Output.
  const markdown = report(opts, state, server.describe, bytesPerInstance) + (problems.list.length ? `\nProblems:\n${problems.list.map((p) => `- ${p}`).join('\n')}\n` : '');
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, markdown);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ ...state, bytesPerInstance, problems: problems.list }, null, 1));
  process.stdout.write(markdown);
  log(`wrote ${opts.out}`);
  await run.cleanup(false);
  if (problems.list.length > 0) {
    log(`kept ${workDir} (resume with --resume ${workDir}; remove it when done)`);
    return 1;
  }
  if (!opts.keep) {
    // A private cluster goes with the work dir.
    if (state.index === 'postgres' && state.postgresSchema && state.privatePostgresPort === undefined) await dropSchema(opts.postgresUrl, state.postgresSchema);
    fs.rmSync(workDir, { recursive: true, force: true });
  } else log(`kept ${workDir}${state.postgresSchema ? ` and schema ${state.postgresSchema}` : ''}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`\n${(err as Error).stack ?? String(err)}\n`);
    await run.cleanup(false);
    process.exit(1);
  },
);
