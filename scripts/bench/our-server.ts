/**
 * Starts our PACS server from source (node --import tsx server/src/main.ts) as a child process with a
 * private data dir on loopback, and waits until QIDO answers. Default embedded setup: filesystem blob
 * store + SQLite index.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { autoWorkers } from '../../server/src/config/cluster.js';
import { spawnLogged, type TargetServer } from './target.js';
import { freePort, waitForHttp200 } from './util.js';

export const OUR_ENTRY = 'server/src/main.ts';

/**
 * `dicomwebPath` is where our DICOMweb root is mounted (default /dicomweb; override with --ours-path);
 * `options.workers` our PACS_WORKERS (`--workers`): with more than one, `pid` is the cluster's primary and
 * the CPU and memory readings of bench/util.ts add its workers in.
 */
export async function startOurServer(repoRoot: string, workDir: string, dicomwebPath = '/dicomweb', options: { workers?: string | undefined } = {}): Promise<TargetServer> {
  const entry = path.join(repoRoot, OUR_ENTRY);
  if (!fs.existsSync(entry)) throw new Error(`${OUR_ENTRY} does not exist (yet)`);
  const port = await freePort();
  const dataDir = path.join(workDir, 'ours-data');
  fs.mkdirSync(dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PACS_HOST: '127.0.0.1',
    PACS_PORT: String(port),
    PACS_DATA_DIR: dataDir,
    PACS_LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    ...(options.workers === undefined ? {} : { PACS_WORKERS: options.workers }),
  };
  // Whatever PACS_* the caller has set (e.g. PACS_INDEX=postgres) is kept, except the ones above.
  // BENCH_OURS_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": extra node flags for profiling our side.
  // BENCH_OURS_BUILT=1: run the compiled server (server/dist/main.js, `npm run build` first) as `npm start`
  // does, instead of the sources through tsx (whose loader keeps ~20 MB more on the JS heap).
  const nodeArgs = (process.env['BENCH_OURS_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const built = process.env['BENCH_OURS_BUILT'] ? path.join(repoRoot, 'server/dist/main.js') : undefined;
  if (built !== undefined && !fs.existsSync(built)) throw new Error('BENCH_OURS_BUILT is set but server/dist/main.js does not exist: run `npm run build` first');
  const proc = spawnLogged(process.execPath, built !== undefined ? [...nodeArgs, built] : [...nodeArgs, '--import', 'tsx', entry], {
    cwd: repoRoot,
    env,
    logFile: path.join(workDir, 'ours.log'),
  });
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error(`could not spawn our server: ${proc.logTail()}`);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp200(`${base}${dicomwebPath}/studies?limit=1`, 90_000, proc.alive);
    // A cluster answers once worker 0 listens; the measurements start when every worker does.
    const setting = (env['PACS_WORKERS'] ?? 'auto').trim().toLowerCase();
    const workers = setting === 'auto' ? autoWorkers(os.availableParallelism()) : Number(setting);
    if (workers > 1) await waitForClusterReady(path.join(workDir, 'ours.log'), 90_000, proc.alive);
  } catch (err) {
    await proc.stop();
    throw new Error(`our server did not start: ${(err as Error).message}\n${proc.logTail()}`);
  }

  let revision = 'working tree';
  try {
    revision = execFileSync('git', ['describe', '--always', '--dirty'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    /* no commits yet */
  }
  const pacsEnv = Object.entries(env)
    .filter(([k]) => k.startsWith('PACS_') && !['PACS_PORT', 'PACS_DATA_DIR'].includes(k))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return {
    name: 'ours',
    dicomwebRoot: `${base}${dicomwebPath}`,
    pid,
    describe: [
      `our server (${built !== undefined ? `server/dist/main.js (compiled) on node ${process.version}` : `${OUR_ENTRY} via node ${process.version} --import tsx`}, git ${revision}); ${pacsEnv}; ` +
        `other settings: defaults (fs blob store + SQLite index in a temp dir unless PACS_* says otherwise)`,
    ],
    alive: proc.alive,
    logTail: proc.logTail,
    stop: proc.stop,
  };
}

/** Waits for the primary's "cluster ready" line (logged whatever PACS_LOG_LEVEL short of silent). */
async function waitForClusterReady(logFile: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('our server exited while its workers started');
    if (fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes('cluster ready: every worker listens')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`our server's workers did not all listen within ${timeoutMs / 1000} s`);
}
