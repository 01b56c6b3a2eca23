/**
 * DIMSE benchmark: C-STORE throughput of our DICOM network service vs Debian's Orthanc C-STORE SCP, same
 * files, same client (dcmtk storescu), same run.
 *
 *   npm run bench:dimse                  # full run (~3-4 min on 2 cores; +20 s the first time, to generate data)
 *   npm run bench:dimse -- --quick       # smoke run, fewer instances, one round
 *   npm run bench:dimse -- --servers ours       # only one side (ours | orthanc | ours,orthanc)
 *   options: --rounds N  --instances N (per measurement, multiple of 50)  --keep (keep temp storage)
 *            --workers N|auto (our PACS_WORKERS: server processes sharing the DIMSE port; one association
 *            stays in one worker, four spread over them; default: the server's, auto)
 *
 * Measures instances/s stored by one storescu association and by four concurrent storescu associations
 * (the files split four ways), wall clock from the first process start to the last exit, counting only
 * instances answered with Success. Every measurement stores instances the server has not seen (fresh
 * studies), and rounds alternate which server goes first, after one warm-up association per server (one
 * study, not counted: a server runs for days, and its first stores after start-up are not what a
 * modality sees). Servers run with default settings (ours: fs blob store + SQLite; Orthanc:
 * SyncStorageArea as shipped), on loopback. DCMTK (storescu, and the DCMTK inside Orthanc) leaves
 * Nagle's algorithm on unless the environment has TCP_NODELAY=1: with it on, every store waits ~40 ms
 * for a delayed ACK whatever the server (storescu → dcmtk storescp: 10 instances/s), so the benchmark
 * sets TCP_NODELAY=1 for every process it starts (our server sets no-delay on its sockets itself).
 * Output: markdown on stdout and in .bench/dimse-results.md; progress on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSmallCorpus, INSTANCES_PER_SERIES, SERIES_PER_STUDY } from './bench/generate.js';
import { filesOf, storeRun, waitForPort, type DimseTarget } from './bench/storescu.js';
import { findOrthanc, INSTALL_HINT, startOrthanc } from './bench/orthanc.js';
import { startOurServer } from './bench/our-server.js';
import { machineInfo, medianTable, metric, ORTHANC, OURS, record, type Metric } from './bench/report.js';
import { BenchRun, parseCommonOptions } from './bench/run.js';
import { formatBytes, freePort, log } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(repoRoot, '.bench');
const INSTANCES_PER_STUDY = SERIES_PER_STUDY * INSTANCES_PER_SERIES;
const CONCURRENCIES = [1, 4] as const;

interface Options {
  quick: boolean;
  servers: string[];
  rounds: number;
  instances: number;
  keep: boolean;
  workers: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { quick, servers, rounds, keep, workers, value } = parseCommonOptions(argv, import.meta.url, (quick) => (quick ? 1 : 3));
  const instances = Number(value('instances') ?? (quick ? 100 : 300));
  if (!Number.isInteger(instances) || instances < INSTANCES_PER_STUDY || instances % INSTANCES_PER_STUDY !== 0) {
    throw new Error(`--instances must be a positive multiple of ${INSTANCES_PER_STUDY}`);
  }
  return { quick, servers, rounds, instances, keep, workers };
}

const run = new BenchRun();

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  run.keep = options.keep;
  process.env['TCP_NODELAY'] ??= '1';
  for (const tool of ['storescu']) {
    try {
      fs.accessSync(`/usr/bin/${tool}`);
    } catch {
      throw new Error(`dcmtk's ${tool} is required: apt-get install -y --no-install-recommends dcmtk`);
    }
  }
  const install = options.servers.includes(ORTHANC) ? findOrthanc() : undefined;
  if (options.servers.includes(ORTHANC) && !install) throw new Error(INSTALL_HINT);

  fs.mkdirSync(benchDir, { recursive: true });
  const studiesPerMeasurement = options.instances / INSTANCES_PER_STUDY;
  const measurements = options.rounds * CONCURRENCIES.length;
  // One more study per server: its warm-up association, not measured.
  const plans = ensureSmallCorpus(benchDir, studiesPerMeasurement * measurements + 2);
  const warmUps = [filesOf(benchDir, plans.slice(-2, -1)), filesOf(benchDir, plans.slice(-1))];
  const batches: string[][] = [];
  for (let m = 0; m < measurements; m++) batches.push(filesOf(benchDir, plans.slice(m * studiesPerMeasurement, (m + 1) * studiesPerMeasurement)));
  const batchBytes = batches[0]!.reduce((n, f) => n + fs.statSync(f).size, 0);

  const workDir = run.makeWorkDir('bench-dimse-');
  const targets: DimseTarget[] = [];
  if (options.servers.includes(OURS)) {
    const port = await freePort();
    process.env['PACS_DIMSE_ENABLED'] = 'true';
    process.env['PACS_DIMSE_PORT'] = String(port);
    process.env['PACS_DIMSE_AE_TITLE'] = 'FILMLESS';
    process.env['PACS_AI_ENABLED'] ??= 'false';
    fs.mkdirSync(path.join(workDir, 'ours'), { recursive: true });
    const server = await startOurServer(repoRoot, path.join(workDir, 'ours'), '/dicomweb', { workers: options.workers });
    run.running.push(server);
    targets.push({ server, port, aeTitle: 'FILMLESS' });
  }
  if (install) {
    const port = await freePort();
    fs.mkdirSync(path.join(workDir, 'orthanc'), { recursive: true });
    const server = await startOrthanc(install, path.join(workDir, 'orthanc'), { syncStorageArea: true, dicomPort: port });
    run.running.push(server);
    targets.push({ server, port, aeTitle: 'ORTHANC' });
  }

  for (const target of targets) await waitForPort(target.port);
  // A server runs for days: the first stores after its start (JIT compilation, SQLite's page cache,
  // Orthanc's plugin set-up) are not what a modality sees. One association of one study each, not counted.
  for (const [i, target] of targets.entries()) {
    const rate = await storeRun(target, warmUps[i]!, 1);
    if (!Number.isFinite(rate)) throw new Error(`${target.server.name}: the warm-up C-STORE failed`);
  }
  const metrics = new Map<number, Metric>(
    CONCURRENCIES.map((c) => [c, metric(`C-STORE, ${c} concurrent storescu association${c > 1 ? 's' : ''}`, 'instances/s', true, 1)]),
  );
  let batch = 0;
  for (let round = 0; round < options.rounds; round++) {
    for (const concurrency of CONCURRENCIES) {
      const files = batches[batch++]!;
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const rate = await storeRun(target, files, concurrency);
        record(metrics.get(concurrency)!, target.server.name, rate);
        log(`round ${round + 1}/${options.rounds}, ${concurrency} association(s), ${target.server.name}: ${rate.toFixed(1)} instances/s`);
      }
    }
  }

  const servers = targets.map((t) => t.server.name);
  const report = [
    `## DIMSE C-STORE (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Each measurement stores ${options.instances} new instances (${studiesPerMeasurement} studies × ${SERIES_PER_STUDY} series × ${INSTANCES_PER_SERIES}, ` +
      `16-bit CT/MR, Explicit VR LE, ${formatBytes(batchBytes)} in all) with dcmtk storescu over loopback; ` +
      `${options.rounds} round(s) after one warm-up association of ${INSTANCES_PER_STUDY} instances per server (not counted), alternating which server goes first; instances/s = stored instances / wall time of all associations ` +
      `(storescu processes included: start-up, file checks, association set-up). TCP_NODELAY=${process.env['TCP_NODELAY']} for dcmtk (storescu and Orthanc).`,
    '',
    medianTable([...metrics.values()], servers),
    '',
    ...targets.flatMap((t) => t.server.describe.map((line) => `- ${t.server.name}: ${line}`)),
    ...machineInfo().map((line) => `- ${line}`),
    '',
  ].join('\n');
  process.stdout.write(`${report}\n`);
  fs.writeFileSync(path.join(benchDir, 'dimse-results.md'), report);
  await run.cleanup();
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench-dimse failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await run.cleanup();
  process.exit(1);
});
