/**
 * Starts the real server (`server/src/main.ts`) as a child process on a free loopback port, so tests can
 * measure its memory from /proc and kill it mid-request like a power cut would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { repoRoot } from './shared-data.js';
import { appendCapturedLog } from './log-capture.js';

export interface SpawnedServer {
  url: string;
  pid: number;
  output: () => string;
  /** Peak resident memory (VmHWM) in bytes. */
  peakRssBytes(): Promise<number>;
  currentRssBytes(): Promise<number>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function procStatusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  if (!match) throw new Error(`${field} not found for ${pid}`);
  return Number(match[1]) * 1024;
}

/** `env.PACS_PORT`, when given, is used (e.g. to restart a killed server where a load balancer expects it). */
export async function spawnServer(env: Record<string, string>, options: { readyTimeoutMs?: number } = {}): Promise<SpawnedServer> {
  const port = env['PACS_PORT'] ? Number(env['PACS_PORT']) : await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/main.ts')], {
    cwd: repoRoot,
    // One process unless the test asks for a cluster (PACS_WORKERS): the pid is then the server itself.
    env: { ...process.env, PACS_HOST: '127.0.0.1', PACS_LOG_LEVEL: 'info', PACS_WORKERS: '1', ...env, PACS_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      appendCapturedLog('server', output);
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, child, () => output, options.readyTimeoutMs ?? 30_000);
  const pid = child.pid!;
  return {
    url,
    pid,
    output: () => output,
    peakRssBytes: () => procStatusBytes(pid, 'VmHWM'),
    currentRssBytes: () => procStatusBytes(pid, 'VmRSS'),
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited early: ${output()}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not start within ${timeoutMs / 1000} s: ${output()}`);
}
