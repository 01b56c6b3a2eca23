/**
 * dcmtk storescu as a benchmark client (bench:dimse, bench:pair's cstore mode): one process per
 * association, counting the stores answered Success. DCMTK leaves Nagle's algorithm on unless the
 * environment has TCP_NODELAY=1 (each store then waits ~40 ms for a delayed ACK whatever the server):
 * callers set it for every process they start.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { corpusFile, type StudyPlan } from './generate.js';
import type { TargetServer } from './target.js';
import { log } from './util.js';

export interface DimseTarget {
  server: TargetServer;
  port: number;
  aeTitle: string;
}

/** One storescu process; resolves with how many stores were answered Success. */
export function storescu(target: DimseTarget, files: string[]): Promise<{ ok: number; failed: number; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn('storescu', ['-v', '--no-halt', '-aet', 'BENCHSCU', '-aec', target.aeTitle, '127.0.0.1', String(target.port), ...files], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('close', () => {
      const ok = output.match(/Received Store Response \(Success\)/g)?.length ?? 0;
      resolve({ ok, failed: files.length - ok, tail: output.slice(-1500) });
    });
  });
}

export async function storeRun(target: DimseTarget, files: string[], associations: number): Promise<number> {
  const chunks: string[][] = Array.from({ length: associations }, () => []);
  files.forEach((f, i) => chunks[i % associations]!.push(f));
  const started = performance.now();
  const results = await Promise.all(chunks.map((chunk) => storescu(target, chunk)));
  const seconds = (performance.now() - started) / 1000;
  const ok = results.reduce((n, r) => n + r.ok, 0);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  if (failed > 0) {
    log(`${target.server.name}: ${failed} of ${files.length} stores failed; last output:\n${results.find((r) => r.failed > 0)?.tail}`);
    return Number.NaN;
  }
  return ok / seconds;
}

export async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no DICOM server on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function filesOf(cacheDir: string, studies: StudyPlan[]): string[] {
  return studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => corpusFile(cacheDir, i.file))));
}
