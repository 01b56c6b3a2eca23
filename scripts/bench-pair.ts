/**
Paired before/after benchmark: two of our servers side by side, the same work sent to each in turn.

  npm run bench:pair -- --base HEAD~1                      # the working tree (B) against a commit (A)
  npm run bench:pair -- --base main --mode stow1 --clients 4
  npm run bench:pair -- --env-a PACS_X=1 --env-b PACS_X=2   # one checkout, two settings
  options: --mode stow50|stow1|series|mixed|frames|cstore (default stow50)  --clients N (default 1)  --rounds N (default 8)
           --per-round N (requests per round and server; default 4 for stow50, 150 for stow1, 3 for series and mixed, 40 for frames;
           for cstore instances per round and server, a multiple of 50, default 300)
           --keep (keep temp storage)

On this shared 2-core machine three runs of the same benchmark one after the other moved by ±25 %
(docs/benchmarks.md, "Group commit of ingests"): a change of a few per cent can only be seen when
both versions run in the same minutes. So A and B run at the same time, one process each
(PACS_WORKERS=1), and every round sends the same kind of work to each in alternating order.
Modes: stow50 = one 50-instance study per STOW-RS request (the archive corpus of bench:archive);
stow1 = one 256×256×16 bit CT instance per request, fresh UIDs; series = WADO-RS retrieve of one
500-instance series (66 MB), counted as it streams; mixed = the same series retrieves, each round's after 20
WADO-RS 8-frame lists of a 26 MB native multi-frame instance (bench:retrieve's (2); 80 MB of frame answers: what
other answers leave the heap in, docs/benchmarks.md "Frame answers reuse their buffers"), only the series timed
and its server CPU counted; frames = those 8-frame lists alone, timed; cstore = DIMSE C-STORE of bench:dimse's instances
(its corpus, fresh studies every round) by dcmtk storescu, one association per client (no request
latency: storescu reports none; TCP_NODELAY=1 as in bench:dimse). A round's work is made before its clock
starts (until 2026-12-07 generating stow1's instances was inside it, so stow1 rates of earlier docs read
low, for both sides alike). Reported per server: the median over rounds of
instances/s (or MB/s), server CPU per 1,000 instances (or per request), and request p50 and p95.
`--base REV` checks REV out in a git worktree beside this checkout (node_modules linked from here;
a REV with other dependencies is refused) and removes it afterwards.
Output: markdown on stdout and in .bench/pair-results.md; progress on stderr.
*/
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOurServer } from './bench/our-server.js';
import { ensureSmallCorpus, INSTANCES_PER_SERIES, largeMultiframeInstance, SERIES_PER_STUDY } from './bench/generate.js';
import { filesOf, storeRun, waitForPort, type DimseTarget } from './bench/storescu.js';
import { seriesCorpus, timedGet } from './bench/retrieve.js';
import { BenchRun, ordered, parseCommonOptions } from './bench/run.js';
import { buildMultipart, freshSingleInstances, stowBuffer, stowStreamed, studyBody, type MultipartBody } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { cpuSeconds, freePort, log, median, percentile } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(repoRoot, '.bench');
type Mode = 'stow50' | 'stow1' | 'series' | 'mixed' | 'frames' | 'cstore';
const INSTANCES_PER_STUDY = SERIES_PER_STUDY * INSTANCES_PER_SERIES;

export interface PairOptions {
  mode: Mode;
  clients: number;
  rounds: number;
  perRound: number;
  base: string | undefined;
  envA: Record<string, string>;
  envB: Record<string, string>;
  keep: boolean;
}

function envPairs(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0) throw new Error(`--env-a / --env-b take NAME=value, got "${v}"`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

export function parsePairOptions(argv: string[]): PairOptions {
  const common = parseCommonOptions(argv, import.meta.url, () => 8);
  const mode = (common.value('mode') ?? 'stow50') as Mode;
  if (!['stow50', 'stow1', 'series', 'mixed', 'frames', 'cstore'].includes(mode)) throw new Error('--mode must be stow50, stow1, series, mixed, frames or cstore');
  const clients = Number(common.value('clients') ?? 1);
  if (!Number.isInteger(clients) || clients < 1 || clients > 64) throw new Error('--clients must be 1..64');
  const perRound = Number(common.value('per-round') ?? { stow50: 4, stow1: 150, series: 3, mixed: 3, frames: 40, cstore: 300 }[mode]);
  if (!Number.isInteger(perRound) || perRound < 1) throw new Error('--per-round must be a positive integer');
  if (mode === 'cstore' && perRound % INSTANCES_PER_STUDY !== 0) throw new Error(`--per-round must be a multiple of ${INSTANCES_PER_STUDY} for cstore (whole studies)`);
  const all = (name: string) => argv.flatMap((a, i) => (a === `--${name}` ? [argv[i + 1] ?? ''] : a.startsWith(`--${name}=`) ? [a.slice(name.length + 3)] : []));
  const envA = envPairs(all('env-a'));
  const envB = envPairs(all('env-b'));
  const base = common.value('base');
  if (base === undefined && Object.keys(envA).length === 0 && Object.keys(envB).length === 0) {
    throw new Error('nothing to compare: give --base REV, or --env-a / --env-b settings');
  }
  return { mode, clients, rounds: common.rounds, perRound, base, envA, envB, keep: common.keep };
}

/** A worktree of `rev` beside this checkout (tests there read ../shared), node_modules linked from here. */
function baseWorktree(rev: string): { dir: string; remove(): void } {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: repoRoot, encoding: 'utf8' }).trim();
  const lockHere = fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8');
  const lockThere = execFileSync('git', ['show', `${commit}:package-lock.json`], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (lockHere !== lockThere) throw new Error(`${rev} has other dependencies (package-lock.json differs): its server cannot run on this checkout's node_modules`);
  const dir = path.join(path.dirname(repoRoot), `.bench-pair-${commit.slice(0, 12)}-${process.pid}`);
  execFileSync('git', ['worktree', 'add', '--detach', dir, commit], { cwd: repoRoot, stdio: 'ignore' });
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return {
    dir,
    remove: () => {
      fs.rmSync(path.join(dir, 'node_modules'), { force: true });
      execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: repoRoot, stdio: 'ignore' });
    },
  };
}

/** A server of the pair; `dimse` when the mode stores by C-STORE. */
interface PairServer extends TargetServer {
  dimse?: DimseTarget;
}

async function startWith(root: string, workDir: string, settings: Record<string, string>, mode: Mode): Promise<PairServer> {
  const dimsePort = mode === 'cstore' ? await freePort() : undefined;
  const env = dimsePort === undefined ? settings : { PACS_DIMSE_ENABLED: 'true', PACS_DIMSE_PORT: String(dimsePort), PACS_DIMSE_AE_TITLE: 'FILMLESS', PACS_AI_ENABLED: 'false', ...settings };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const server: PairServer = await startOurServer(root, workDir, '/dicomweb', { workers: '1' });
    if (dimsePort !== undefined) {
      await waitForPort(dimsePort);
      server.dimse = { server, port: dimsePort, aeTitle: 'FILMLESS' };
    }
    return server;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

interface RoundResult {
  /** instances/s (stow) or MB/s (series). */
  rate: number;
  /** server CPU s per 1,000 instances (stow) or CPU ms per request (series). */
  cpu: number;
  /** NaN for cstore (storescu reports no per-request time). */
  p50: number;
  /** Per round; with the default 150 one-instance requests a round's p95 is its 8th-slowest request. */
  p95: number;
}

/** The work of one round, `count` requests (stow) or instances (cstore), never the same UIDs twice. */
interface RoundWork {
  stow(count: number): MultipartBody[];
  cstore(count: number): string[];
  seriesPath: string;
  /** mixed: the path of a new 8-frame list of the multi-frame instance. */
  framePath(): string;
}

const SERIES_SIZE = 500;
/** mixed: 8-frame lists before each round's series retrieves. */
const FRAME_LISTS_PER_ROUND = 20;

/** One round of `mode` against `server`: `work` is the same kind of work for both servers, never the same UIDs. */
async function runRound(server: PairServer, options: PairOptions, work: RoundWork): Promise<RoundResult> {
  // The round's work is made before the clock starts: making it is the client's cost, not the server's.
  const files = options.mode === 'cstore' ? work.cstore(options.perRound) : [];
  const bodies = options.mode === 'stow50' || options.mode === 'stow1' ? work.stow(options.perRound) : [];
  const cpu0 = cpuSeconds(server.pid);
  const latencies: number[] = [];
  const started = performance.now();
  let units = 0;
  if (options.mode === 'cstore') {
    const rate = await storeRun(server.dimse!, files, options.clients);
    if (!Number.isFinite(rate)) throw new Error(`${server.name}: C-STORE failed`);
    return { rate, cpu: ((cpuSeconds(server.pid) - cpu0) / files.length) * 1000, p50: Number.NaN, p95: Number.NaN };
  }
  const seriesPath = work.seriesPath;
  if (options.mode === 'frames') {
    for (let i = 0; i < options.perRound; i++) {
      const sample = await timedGet(server, work.framePath(), 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
      if (!sample.ok || sample.parts !== 8) throw new Error(`${server.name}: frame list failed: ${sample.error ?? `${sample.parts} parts`}`);
      latencies.push(sample.elapsedMs);
      units += sample.payloadBytes;
    }
    const seconds = (performance.now() - started) / 1000;
    return { rate: units / 1e6 / seconds, cpu: ((cpuSeconds(server.pid) - cpu0) * 1000) / options.perRound, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
  }
  if (options.mode === 'series' || options.mode === 'mixed') {
    const framesBefore = options.mode === 'mixed' ? FRAME_LISTS_PER_ROUND : 0;
    for (let i = 0; i < framesBefore; i++) {
      const sample = await timedGet(server, work.framePath(), 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
      if (!sample.ok || sample.parts !== 8) throw new Error(`${server.name}: frame list failed: ${sample.error ?? `${sample.parts} parts`}`);
    }
    const cpuSeries = cpuSeconds(server.pid);
    const seriesStarted = performance.now();
    for (let i = 0; i < options.perRound; i++) {
      const sample = await timedGet(server, seriesPath, 'multipart/related; type="application/dicom"; transfer-syntax=*');
      if (!sample.ok || sample.parts !== SERIES_SIZE) throw new Error(`${server.name}: series retrieve failed: ${sample.error ?? `${sample.parts} parts`}`);
      latencies.push(sample.elapsedMs);
      units += sample.payloadBytes;
    }
    const seconds = (performance.now() - seriesStarted) / 1000;
    return { rate: units / 1e6 / seconds, cpu: ((cpuSeconds(server.pid) - cpuSeries) * 1000) / options.perRound, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      while (next < bodies.length) {
        const outcome = await stowBuffer(server, bodies[next++]!);
        if (outcome.error) throw new Error(`${server.name}: ${outcome.error}`);
        latencies.push(outcome.elapsedMs);
        units += outcome.stored;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { rate: units / seconds, cpu: ((cpuSeconds(server.pid) - cpu0) / units) * 1000, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
}

/** mixed: bench:retrieve's 26 MB native multi-frame instance stored in each server; its frames' path. */
async function storeMultiframe(servers: TargetServer[]): Promise<{ path: string; frames: number }> {
  const instance = largeMultiframeInstance(26 * 1024 * 1024, 'pair');
  for (const server of servers) {
    const outcome = await stowStreamed(server, [instance]);
    if (outcome.error) throw new Error(`${server.name}: storing the multi-frame instance: ${outcome.error}`);
  }
  const found = await timedGet(servers[0]!, `/studies/${instance.studyInstanceUid}/series`, 'application/dicom+json', true);
  const seriesUid = (JSON.parse(found.body?.toString('utf8') ?? '[]') as Array<Record<string, { Value?: string[] }>>)[0]?.['0020000E']?.Value?.[0];
  if (seriesUid === undefined) throw new Error(`could not find the multi-frame instance's series: ${found.error ?? 'no series'}`);
  return { path: `/studies/${instance.studyInstanceUid}/series/${seriesUid}/instances/${instance.sopInstanceUid}`, frames: instance.frames };
}

/** The series of bench:retrieve (500 CT instances, 66 MB, the same bytes for both servers), 50 per request. */
async function storeSeries(server: TargetServer, files: Buffer[]): Promise<void> {
  for (let at = 0; at < files.length; at += 50) {
    const outcome = await stowBuffer(server, buildMultipart(files.slice(at, at + 50)));
    if (outcome.error) throw new Error(`${server.name}: storing the series: ${outcome.error}`);
  }
}

function table(options: PairOptions, results: Record<'A' | 'B', RoundResult[]>): string {
  const unit = ['series', 'mixed', 'frames'].includes(options.mode) ? 'MB/s' : 'instances/s';
  const cpuUnit = ['series', 'mixed', 'frames'].includes(options.mode) ? 'server CPU per request [ms]' : 'server CPU per 1,000 instances [s]';
  const cell = (values: number[], digits: number) => `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
  const row = (label: string, pick: (r: RoundResult) => number, digits: number) => {
    const [a, b] = [median(results.A.map(pick)), median(results.B.map(pick))];
    return `| ${label} | ${cell(results.A.map(pick), digits)} | ${cell(results.B.map(pick), digits)} | ${(((b - a) / a) * 100).toFixed(1)} % |`;
  };
  return [
    `| ${options.mode}, ${options.clients} ${options.mode === 'cstore' ? 'association' : 'client'}(s), ${options.rounds} rounds | A median (min–max) | B median (min–max) | B vs A (medians) |`,
    '|---|---|---|---|',
    row(`rate [${unit}]`, (r) => r.rate, 1),
    row(cpuUnit, (r) => r.cpu, 2),
    ...(options.mode === 'cstore' ? [] : [row('request p50 [ms]', (r) => r.p50, 2), row('request p95 [ms]', (r) => r.p95, 2)]),
    '',
    `Per round, A: ${results.A.map((r) => r.rate.toFixed(0)).join(' ')}; B: ${results.B.map((r) => r.rate.toFixed(0)).join(' ')} (${unit}). A difference inside both ranges is noise.`,
    pairedLine(results, unit),
  ].join('\n');
}

/**
 * The rounds as pairs: A and B of one round ran back to back, so the machine's drift over the run
 * (warm-up, other load) cancels in their ratio, which the medians over rounds do not remove.
 */
function pairedLine(results: Record<'A' | 'B', RoundResult[]>, unit: string): string {
  const ratios = results.A.map((a, i) => results.B[i]!.rate / a.rate);
  const ahead = ratios.filter((r) => r > 1).length;
  return `Round by round (A and B back to back): B/A rate median ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}), B ahead in ${ahead} of ${ratios.length} rounds (${unit}).`;
}

/** Runs the pair and returns the markdown report (also written to .bench/pair-results.md). */
export async function runPair(options: PairOptions): Promise<string> {
  const run = new BenchRun();
  run.keep = options.keep;
  if (options.mode === 'cstore') {
    if (!fs.existsSync('/usr/bin/storescu')) throw new Error("cstore needs dcmtk's storescu: apt-get install -y --no-install-recommends dcmtk");
    process.env['TCP_NODELAY'] ??= '1';
  }
  const workDir = run.makeWorkDir('bench-pair-');
  const worktree = options.base === undefined ? undefined : baseWorktree(options.base);
  try {
    const rootA = worktree?.dir ?? repoRoot;
    const describeA = options.base === undefined ? 'this checkout' : `${options.base} (${execFileSync('git', ['rev-parse', '--short', options.base], { cwd: repoRoot, encoding: 'utf8' }).trim()})`;
    const servers = {
      A: await startWith(rootA, path.join(workDir, 'a'), options.envA, options.mode),
      B: await startWith(repoRoot, path.join(workDir, 'b'), options.envB, options.mode),
    };
    run.running.push(servers.A, servers.B);
    const studiesPerRound = options.mode === 'stow50' ? options.perRound : options.mode === 'cstore' ? options.perRound / INSTANCES_PER_STUDY : 0;
    // Rounds + a warm-up, for two servers; the warm-up takes at most one round's share.
    const corpus = studiesPerRound > 0 ? ensureSmallCorpus(benchDir, (options.rounds + 1) * 2 * studiesPerRound) : [];
    let corpusAt = 0;
    const nextStudies = (count: number) => {
      const studies = corpus.slice(corpusAt, corpusAt + count);
      corpusAt += count;
      return studies;
    };
    const series = options.mode === 'series' || options.mode === 'mixed' ? seriesCorpus(SERIES_SIZE, 256) : undefined;
    if (series !== undefined) {
      for (const s of [servers.A, servers.B]) await storeSeries(s, series.files);
    }
    const seriesPath = series === undefined ? '' : `/studies/${series.studyInstanceUid}/series/${series.seriesInstanceUid}`;
    const frameBase = options.mode === 'mixed' || options.mode === 'frames' ? await storeMultiframe([servers.A, servers.B]) : undefined;
    let frameSeed = 1;
    const framePath = () => {
      const picked = new Set<number>();
      // A small LCG: the same frame lists for both servers' rounds in turn is not needed, only the same kind.
      while (picked.size < 8) picked.add(1 + ((frameSeed = (frameSeed * 1103515245 + 12345) % 2147483648) % frameBase!.frames));
      return `${frameBase!.path}/frames/${[...picked].join(',')}`;
    };
    const work: RoundWork = {
      stow: (count) => (options.mode === 'stow50' ? nextStudies(count).map((plan) => studyBody(benchDir, plan)) : freshSingleInstances(count)),
      cstore: (count) => filesOf(benchDir, nextStudies(count / INSTANCES_PER_STUDY)),
      seriesPath,
      framePath,
    };
    // One warm-up round each, not counted.
    const warmUp = Math.min(options.perRound, { stow1: 20, cstore: INSTANCES_PER_STUDY, stow50: 1, series: 1, mixed: 1, frames: 10 }[options.mode]);
    for (const s of [servers.A, servers.B]) await runRound(s, { ...options, perRound: warmUp }, work);
    const results: Record<'A' | 'B', RoundResult[]> = { A: [], B: [] };
    for (let round = 0; round < options.rounds; round++) {
      for (const name of ordered(['A', 'B'] as const, round)) results[name].push(await runRound(servers[name], options, work));
      log(`round ${round + 1}/${options.rounds}: A ${results.A.at(-1)!.rate.toFixed(0)}, B ${results.B.at(-1)!.rate.toFixed(0)}`);
    }
    const env = (e: Record<string, string>) => (Object.keys(e).length === 0 ? 'defaults' : Object.entries(e).map(([k, v]) => `${k}=${v}`).join(' '));
    const report = [
      `# Paired benchmark (${new Date().toISOString()})`,
      '',
      `- A: ${describeA}, ${env(options.envA)}; B: the working tree${options.base === undefined ? '' : ` (${execFileSync('git', ['describe', '--always', '--dirty'], { cwd: repoRoot, encoding: 'utf8' }).trim()})`}, ${env(options.envB)}. One process each (PACS_WORKERS=1), side by side; rounds alternate which goes first; medians over rounds.`,
      '',
      table(options, results),
      '',
    ].join('\n');
    fs.mkdirSync(benchDir, { recursive: true });
    fs.writeFileSync(path.join(benchDir, 'pair-results.md'), report);
    return report;
  } finally {
    await run.cleanup();
    worktree?.remove();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  runPair(parsePairOptions(process.argv.slice(2)))
    .then((report) => process.stdout.write(report))
    .catch((err: unknown) => {
      console.error((err as Error).message);
      process.exit(1);
    });
}

