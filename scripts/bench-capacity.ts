/**
 * Capacity benchmark (issue 22): what ONE server process spends per operation, turned into operations
 * per second per core, for capacity notes ("instances/s and frames/s per core, what to scale first").
 *
 *   npm run bench:capacity                    # full run (a few minutes on 2 cores)
 *   npm run bench:capacity -- --quick         # smoke run (< 30 s), small counts
 *   options: --concurrency N (requests or storescu associations in flight, default 4)
 *            --keep (keep the server's temp storage and log)  --out FILE (default .bench/capacity-results.md)
 *
 * Starts our server once (PACS_WORKERS=1: one process; defaults otherwise: fs blob store + SQLite index
 * in a temp dir; DIMSE on, AI inference off) and runs, each for a fixed count after a warm-up, with the
 * client keeping `--concurrency` requests in flight:
 *  (1) STOW-RS of new 256×256×16-bit CT instances, 50 per request and 1 per request;
 *  (2) DIMSE C-STORE of the same kind of instances with dcmtk storescu (one association per concurrent
 *      storescu; TCP_NODELAY=1 as in bench-dimse.ts); skipped with a line saying so without storescu;
 *  (3) WADO-RS single frames as stored, random frame numbers, of one native multi-frame instance
 *      (512×512×16-bit frames);
 *  (4) the same frames rendered (/frames/N/rendered, image/jpeg), and rendered single-frame CT instances
 *      (random instances of the series of (5));
 *  (5) QIDO-RS study search by PatientID (random stored patient) and the metadata of a 500-instance series.
 * Server CPU is the user + system time of the server process (bench/util.ts cpuSeconds, from /proc) read
 * just before and after the counted operations; ops per CPU-second = 1 / (server CPU s per op), i.e.
 * what one fully busy core would do. "ops/s seen" is count / wall time with this client on the same
 * machine (it competes for the cores). Every answer is checked (HTTP 200, stored counts, part counts,
 * sizes, JPEG markers, JSON item counts); any failure ends the run with exit code 1.
 * Output: markdown on stdout and in the --out file; progress on stderr.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ctSliceInstance, largeMultiframeInstance, pseudoRandomPixels, randomUid } from './bench/generate.js';
import { startOurServer } from './bench/our-server.js';
import { machineInfo } from './bench/report.js';
import { runPool, seededRandom, seriesCorpus, timedGet, type GetSample } from './bench/retrieve.js';
import { BenchRun, parseCommonOptions } from './bench/run.js';
import { buildMultipart, stowBuffer, stowStreamed } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { cpuSeconds, formatBytes, freePort, log, MB } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const FRAME_BYTES = 512 * 512 * 2;
const SIDE = 256;
const SERIES_INSTANCES = 500;

const argv = process.argv.slice(2);
const { quick, keep, value } = parseCommonOptions(argv, import.meta.url, () => 1);
const concurrency = Number(value('concurrency') ?? 4);
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new Error('--concurrency must be 1..64');
const outFile = path.resolve(value('out') ?? path.join(repoRoot, '.bench', 'capacity-results.md'));
/** Counted operations per measurement (the warm-up adds about a tenth). */
const COUNTS = quick
  ? { stow50: 100, stow1: 40, dimse: 40, frames: 100, rendered: 8, renderedCt: 20, qido: 40, metadata: 8 }
  : { stow50: 2000, stow1: 1000, dimse: 1000, frames: 2000, rendered: 200, renderedCt: 500, qido: 1000, metadata: 100 };
/** As bench-retrieve.ts: 50 frames. Rendering reads the whole file, so its cost grows with this size. */
const MULTIFRAME_BYTES = 26 * MB;

const run = new BenchRun();
run.keep = keep;

// ---------------------------------------------------------------------------------------------------
// Test data: new 256×256×16-bit CT instances, one new study (and patient) per 50.

const pixels = pseudoRandomPixels(SIDE * SIDE * 2, SIDE);
const patientIds: string[] = [];
let instanceBytes = 0;

function freshInstances(count: number): Buffer[] {
  let study = '';
  let series = '';
  let patientId = '';
  return Array.from({ length: count }, (_, k) => {
    if (k % 50 === 0) {
      [study, series, patientId] = [randomUid(), randomUid(), `CAPACITY-${patientIds.length + 1}`];
      patientIds.push(patientId);
    }
    const file = ctSliceInstance({ side: SIDE, pixels, studyUid: study, seriesUid: series, sopInstanceUid: randomUid(), instanceNumber: (k % 50) + 1, patientId });
    instanceBytes = file.length;
    return file;
  });
}

function split<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Measuring

/** One request (or storescu process); resolves to an error text, or undefined when its answer checked out. */
type Task = () => Promise<string | undefined>;

interface Row {
  label: string;
  ops: number;
  wallS: number;
  serverCpuS: number;
  clientCpuS: number;
  concurrency: number;
}

/** Runs `warmup`, then `tasks` (`ops` operations in all) with `inFlight` at a time, reading server CPU around the latter. */
async function measure(server: TargetServer, label: string, ops: number, inFlight: number, warmup: Task[], tasks: Task[]): Promise<Row> {
  const check = (errors: (string | undefined)[], phase: string): void => {
    const failed = errors.filter((e): e is string => e !== undefined);
    if (failed.length > 0) throw new Error(`${label} (${phase}): ${failed.length} of ${errors.length} failed; first: ${failed[0]}`);
  };
  check((await runPool(warmup, inFlight)).results, 'warm-up');
  const cpu0 = cpuSeconds(server.pid);
  const client0 = process.cpuUsage();
  const started = performance.now();
  const { results } = await runPool(tasks, inFlight);
  const wallS = (performance.now() - started) / 1000;
  const serverCpuS = cpuSeconds(server.pid) - cpu0;
  const client = process.cpuUsage(client0);
  check(results, 'measured');
  const row = { label, ops, wallS, serverCpuS, clientCpuS: (client.user + client.system) / 1e6, concurrency: inFlight };
  log(`${label}: ${ops} in ${wallS.toFixed(2)} s, server CPU ${serverCpuS.toFixed(2)} s (${((100 * serverCpuS) / wallS).toFixed(0)} % of a core), client CPU ${row.clientCpuS.toFixed(2)} s`);
  return row;
}

const stowTask = (server: TargetServer, files: Buffer[]): Task => {
  const body = buildMultipart(files);
  return async () => (await stowBuffer(server, body)).error;
};

/** One GET per path; `verify` checks a 200 answer (its body kept) and returns an error text or undefined. */
function getTasks(server: TargetServer, paths: string[], accept: string, verify: (s: GetSample, path: string) => string | undefined): Task[] {
  return paths.map((p) => async () => {
    const s = await timedGet(server, p, accept, true);
    return s.ok ? verify(s, p) : (s.error ?? `HTTP ${s.status}`);
  });
}

function storescuTask(port: number, files: string[]): Task {
  return () =>
    new Promise((resolve) => {
      const child = spawn('storescu', ['-v', '--no-halt', '-aet', 'BENCHSCU', '-aec', 'FILMLESS', '127.0.0.1', String(port), ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      child.on('error', (err) => resolve(`storescu: ${err.message}`));
      child.on('close', () => {
        const ok = output.match(/Received Store Response \(Success\)/g)?.length ?? 0;
        resolve(ok === files.length ? undefined : `storescu stored ${ok} of ${files.length}: ${output.slice(-500)}`);
      });
    });
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(Boolean(socket.destroy())));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on DIMSE port ${port}`);
}

const jsonItems = (body: Buffer): unknown[] => JSON.parse(body.toString('utf8')) as unknown[];
const warmCount = (n: number): number => Math.max(1, Math.ceil(n / 10));

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  const workDir = run.makeWorkDir('bench-capacity-');
  const hasStorescu = fs.existsSync('/usr/bin/storescu');
  const dimsePort = await freePort();
  Object.assign(process.env, { PACS_DIMSE_ENABLED: 'true', PACS_DIMSE_PORT: String(dimsePort), PACS_DIMSE_AE_TITLE: 'FILMLESS' });
  process.env['PACS_AI_ENABLED'] ??= 'false';
  process.env['TCP_NODELAY'] ??= '1';
  log('starting our server (one process)');
  const server = await startOurServer(repoRoot, workDir, '/dicomweb', { workers: '1' });
  run.running.push(server);

  // Data read back by (3)-(5), stored before any measurement.
  const multiframe = largeMultiframeInstance(MULTIFRAME_BYTES, 'capacity');
  const mf = await stowStreamed(server, [multiframe]);
  if (mf.error) throw new Error(`STOW of the multi-frame instance: ${mf.error}`);
  const series = seriesCorpus(SERIES_INSTANCES, SIDE);
  for (const files of split(series.files, 50)) {
    const out = await stowBuffer(server, buildMultipart(files));
    if (out.error) throw new Error(`STOW of the ${SERIES_INSTANCES}-instance series: ${out.error}`);
  }
  const mfSeries = await timedGet(server, `/studies/${multiframe.studyInstanceUid}/series`, 'application/dicom+json', true);
  const mfSeriesUid = String((jsonItems(mfSeries.body ?? Buffer.alloc(0)) as { '0020000E': { Value: string[] } }[])[0]?.['0020000E'].Value[0]);
  const mfBase = `/studies/${multiframe.studyInstanceUid}/series/${mfSeriesUid}/instances/${multiframe.sopInstanceUid}`;
  const seriesBase = `/studies/${series.studyInstanceUid}/series/${series.seriesInstanceUid}`;
  const listed = await timedGet(server, `${seriesBase}/instances?limit=${SERIES_INSTANCES}`, 'application/dicom+json', true);
  const ctSops = (jsonItems(listed.body ?? Buffer.alloc(0)) as { '00080018': { Value: string[] } }[]).map((i) => i['00080018'].Value[0]!);
  if (ctSops.length !== SERIES_INSTANCES) throw new Error(`the series lists ${ctSops.length} instances, not ${SERIES_INSTANCES}`);
  log(`stored a ${multiframe.frames}-frame instance (${formatBytes(multiframe.bytes)}) and a ${SERIES_INSTANCES}-instance series`);

  const rows: Row[] = [];
  const skipped: string[] = [];
  const c = concurrency;
  // (1) STOW-RS
  const stow50 = (n: number): Task[] => split(freshInstances(n), 50).map((files) => stowTask(server, files));
  rows.push(await measure(server, 'STOW-RS instance, 50 per request', COUNTS.stow50, c, stow50(warmCount(COUNTS.stow50 / 50) * 50), stow50(COUNTS.stow50)));
  const stow1 = (n: number): Task[] => freshInstances(n).map((file) => stowTask(server, [file]));
  rows.push(await measure(server, 'STOW-RS instance, 1 per request', COUNTS.stow1, c, stow1(warmCount(COUNTS.stow1)), stow1(COUNTS.stow1)));
  // (2) DIMSE C-STORE: `c` storescu processes, one association each.
  if (hasStorescu) {
    await waitForPort(dimsePort);
    const dir = path.join(workDir, 'dimse');
    fs.mkdirSync(dir);
    const write = (files: Buffer[], prefix: string): string[] =>
      files.map((f, i) => {
        const file = path.join(dir, `${prefix}-${i}.dcm`);
        fs.writeFileSync(file, f);
        return file;
      });
    const files = write(freshInstances(COUNTS.dimse), 'm');
    const associations = split(files, Math.ceil(files.length / c)).map((part) => storescuTask(dimsePort, part));
    const warm = [storescuTask(dimsePort, write(freshInstances(warmCount(COUNTS.dimse)), 'w'))];
    rows.push(await measure(server, 'DIMSE C-STORE instance (storescu)', COUNTS.dimse, associations.length, warm, associations));
  } else {
    skipped.push('DIMSE C-STORE: skipped, dcmtk storescu is not installed (apt-get install -y --no-install-recommends dcmtk)');
    log(skipped.at(-1)!);
  }
  // (3), (4) frames of the multi-frame instance, random frame numbers.
  const rnd = seededRandom(22);
  const framePaths = (n: number, suffix = ''): string[] => Array.from({ length: n }, () => `${mfBase}/frames/${1 + Math.floor(rnd() * multiframe.frames)}${suffix}`);
  const frameTasks = (n: number): Task[] =>
    getTasks(server, framePaths(n), ACCEPT_FRAMES, (s) => (s.parts === 1 && s.payloadBytes === FRAME_BYTES ? undefined : `expected 1 part of ${FRAME_BYTES} bytes, got ${s.parts} part(s), ${s.payloadBytes} bytes`));
  rows.push(await measure(server, `WADO-RS frame as stored (${FRAME_BYTES / 1024} KiB)`, COUNTS.frames, c, frameTasks(warmCount(COUNTS.frames)), frameTasks(COUNTS.frames)));
  const isJpeg = (s: GetSample): string | undefined =>
    /image\/jpeg/i.test(s.contentType) && s.body![0] === 0xff && s.body![1] === 0xd8 ? undefined : `not a JPEG (${s.contentType}, ${s.bytes} bytes)`;
  const renderedTasks = (n: number): Task[] => getTasks(server, framePaths(n, '/rendered'), 'image/jpeg', isJpeg);
  rows.push(await measure(server, `WADO-RS frame rendered (image/jpeg, 512×512 of ${formatBytes(multiframe.bytes)})`, COUNTS.rendered, c, renderedTasks(warmCount(COUNTS.rendered)), renderedTasks(COUNTS.rendered)));
  const ctPaths = (n: number): string[] => Array.from({ length: n }, () => `${seriesBase}/instances/${ctSops[Math.floor(rnd() * ctSops.length)]}/frames/1/rendered`);
  const renderedCtTasks = (n: number): Task[] => getTasks(server, ctPaths(n), 'image/jpeg', isJpeg);
  rows.push(await measure(server, `WADO-RS CT instance rendered (image/jpeg, ${SIDE}×${SIDE})`, COUNTS.renderedCt, c, renderedCtTasks(warmCount(COUNTS.renderedCt)), renderedCtTasks(COUNTS.renderedCt)));
  // (5) QIDO-RS and series metadata.
  const qidoTasks = (n: number): Task[] =>
    getTasks(server, Array.from({ length: n }, () => `/studies?PatientID=${patientIds[Math.floor(rnd() * patientIds.length)]}`), 'application/dicom+json', (s, p) => {
      const items = jsonItems(s.body!) as { '00100020'?: { Value?: string[] } }[];
      const id = p.slice(p.indexOf('=') + 1);
      return items.length === 1 && items[0]?.['00100020']?.Value?.[0] === id ? undefined : `PatientID=${id}: expected 1 study, got ${items.length}`;
    });
  rows.push(await measure(server, `QIDO-RS /studies?PatientID= (${patientIds.length} patients stored)`, COUNTS.qido, c, qidoTasks(warmCount(COUNTS.qido)), qidoTasks(COUNTS.qido)));
  const metadataTasks = (n: number): Task[] =>
    getTasks(server, Array(n).fill(`${seriesBase}/metadata`), 'application/dicom+json', (s) => {
      const items = jsonItems(s.body!).length;
      return items === SERIES_INSTANCES ? undefined : `expected ${SERIES_INSTANCES} items, got ${items}`;
    });
  rows.push(await measure(server, `series metadata (${SERIES_INSTANCES} instances)`, COUNTS.metadata, c, metadataTasks(warmCount(COUNTS.metadata)), metadataTasks(COUNTS.metadata)));

  const n = (v: number, digits: number): string => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
  const table = [
    '| operation | count | wall time | ops/s seen | server CPU s per 1,000 ops | ops per CPU-second (= per core) | client concurrency |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.label} | ${r.ops} | ${n(r.wallS, 2)} s | ${n(r.ops / r.wallS, 1)} | ${n((1000 * r.serverCpuS) / r.ops, 2)} | ${r.serverCpuS > 0 ? n(r.ops / r.serverCpuS, 0) : 'n/a'} | ${r.concurrency} |`),
  ];
  const report = [
    `# Capacity: server CPU per operation, one process (${new Date().toISOString().slice(0, 10)}${quick ? ', --quick smoke run' : ''})`,
    '',
    ...table,
    '',
    ...skipped.map((s) => `- ${s}`),
    `- Server busy during each measurement (server CPU s / wall s): ${rows.map((r) => `${r.label.split(' (')[0]} ${n((100 * r.serverCpuS) / r.wallS, 0)} %`).join('; ')}. Client CPU s (this process, same machine): ${rows.map((r) => n(r.clientCpuS, 2)).join(' / ')}.`,
    `- Instances: 256×256×16-bit CT, Explicit VR LE (${formatBytes(instanceBytes)} each), new UIDs, one study per 50; each count follows a warm-up of about a tenth as many. DIMSE: one storescu association per concurrent process (process start-up in the wall time, not in server CPU).`,
    `- Frames: one native multi-frame instance, ${multiframe.frames} frames of 512×512×16 bit (${formatBytes(multiframe.bytes)}), random frame numbers; Accept \`${ACCEPT_FRAMES}\` and \`image/jpeg\` for /rendered. Rendering reads and parses the whole stored file (archive/render.ts), so a rendered frame of a multi-frame instance costs in proportion to the instance's size, not the frame's.`,
    `- QIDO: a random stored PatientID, exactly one study expected. Metadata: one series of ${SERIES_INSTANCES} instances, ${SERIES_INSTANCES} items expected; after the warm-up it is answered from the server's metadata cache (a viewer re-opening the series).`,
    `- Server CPU: utime + stime of the server process from /proc, 10 ms resolution; ops per CPU-second = ops / server CPU s.`,
    ...server.describe.map((line) => `- ${line}`),
    ...machineInfo().map((line) => `- ${line}`),
    `- Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  process.stdout.write(`${report}\n`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, report);
  await run.cleanup();
}

// Exit at once: a stopped server's SIGKILL timer (bench/target.ts) would otherwise hold the process for 15 s.
main().then(() => process.exit(0), async (err: unknown) => {
  process.stderr.write(`bench-capacity failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await run.cleanup();
  process.exit(1);
});
