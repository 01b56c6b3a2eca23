/**
 * Housekeeping benchmark (storage lifecycle): how fast the server recompresses uncompressed instances
 * losslessly (JPEG-LS or HTJ2K) in a housekeeping run, and what that adds to the latency of reads
 * running meanwhile.
 *
 *   npm run bench:housekeeping                    # 400 instances of 512×512 (~5 min)
 *   npm run bench:housekeeping -- --quick         # smoke run: 12 instances of 128×128
 *   options: --instances N  --side PX (square frames, 8-bit greyscale)  --target jpeg-ls|htj2k
 *            --pause-ms MS (PACS_LIFECYCLE_PAUSE_MS, default 200)  --readers N (concurrent readers, 4)
 *            --keep (keep the data folder)
 *
 * A fresh server (child process, embedded storage) gets N instances by STOW-RS (one series, textured
 * pixels so the codec has work to do), then: (1) readers fetch random frames as stored
 * (transfer-syntax=*) for a fixed time with housekeeping idle: the baseline; (2) a housekeeping run is
 * started and the same readers run until it finishes. Reported: instances/s of the run (recompressed ÷
 * run time from the server's own status), bytes saved, and read latency p50 / p95 / p99 idle and during
 * the run. Markdown on stdout and in .bench/housekeeping-results.md; progress on stderr.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../server/src/test-support/make-dicom.js';
import { spawnServer } from '../server/src/test-support/spawn-server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Options {
  quick: boolean;
  instances: number;
  side: number;
  target: 'jpeg-ls' | 'htj2k';
  pauseMs: number;
  readers: number;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string): string | undefined => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const int = (name: string, fallback: number, min: number) => {
    const n = Number(value(name) ?? fallback);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
    return n;
  };
  const target = value('target') ?? 'jpeg-ls';
  if (target !== 'jpeg-ls' && target !== 'htj2k') throw new Error('--target must be jpeg-ls or htj2k');
  return {
    quick,
    instances: int('instances', quick ? 12 : 400, 1),
    side: int('side', quick ? 128 : 512, 8),
    target,
    pauseMs: int('pause-ms', 200, 0),
    readers: int('readers', 4, 1),
    keep: argv.includes('--keep'),
  };
}

const log = (message: string) => process.stderr.write(`[bench:housekeeping] ${message}\n`);

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Readers fetching random frames until `stop()` says so; latencies in ms. */
async function readLoad(url: string, study: string, series: string, sops: string[], readers: number, stop: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  const reader = async () => {
    while (!stop()) {
      const sop = sops[Math.floor(Math.random() * sops.length)]!;
      const started = performance.now();
      const response = await fetch(`${url}/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/1`, {
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`frame read answered ${response.status}`);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: readers }, reader));
  return latencies.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-bench-housekeeping-'));
  const server = await spawnServer({
    PACS_DATA_DIR: dataDir,
    PACS_AI_ENABLED: 'false',
    PACS_LOG_LEVEL: 'warn',
    PACS_LIFECYCLE_COMPRESS: options.target,
    PACS_LIFECYCLE_COMPRESS_AFTER_DAYS: '1',
    PACS_LIFECYCLE_INTERVAL_SECONDS: '0',
    PACS_LIFECYCLE_PAUSE_MS: String(options.pauseMs),
    PACS_LIFECYCLE_DELETE_GRACE_SECONDS: '0',
  });
  try {
    const study = newUid();
    const series = newUid();
    const sops: string[] = [];
    log(`storing ${options.instances} instances of ${options.side}×${options.side}`);
    for (let start = 0; start < options.instances; start += 20) {
      const files: Buffer[] = [];
      for (let i = start; i < Math.min(options.instances, start + 20); i += 1) {
        const sop = newUid();
        sops.push(sop);
        const pixels = new Uint8Array(options.side * options.side);
        // Texture: a ramp with noise, compressible but not trivially.
        for (let p = 0; p < pixels.length; p += 1) pixels[p] = ((p % options.side) + Math.floor(p / options.side) + ((p * 2654435761 + i) >>> 28)) & 0xff;
        files.push(makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: options.side, columns: options.side, modality: 'CT', studyDate: '20100101', pixels }));
      }
      const stored = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(multipartBody(files.map((body) => ({ body })))) });
      if (stored.status !== 200) throw new Error(`STOW-RS answered ${stored.status}`);
    }

    const idleMs = options.quick ? 2000 : 15_000;
    log(`baseline reads for ${idleMs} ms`);
    const idleEnd = Date.now() + idleMs;
    const idle = await readLoad(server.url, study, series, sops, options.readers, () => Date.now() > idleEnd);

    log('housekeeping run with reads');
    const started = await fetch(`${server.url}/api/storage/housekeeping`, { method: 'POST' });
    if (started.status !== 202) throw new Error(`starting housekeeping answered ${started.status}`);
    let run: { state: string; startedAt: string; finishedAt: string | null; recompressed: number; failed: number; bytesBefore: number; bytesAfter: number } | undefined;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        run = ((await (await fetch(`${server.url}/api/storage/housekeeping`)).json()) as { run: typeof run }).run ?? undefined;
        if (run?.state === 'finished') done = true;
      }
    })();
    const busy = await readLoad(server.url, study, series, sops, options.readers, () => done);
    await watcher;
    if (run === undefined || run.finishedAt === null) throw new Error('the run did not finish');
    const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
    const rate = run.recompressed / seconds;
    const row = (label: string, l: number[]) => `| ${label} | ${l.length} | ${quantile(l, 0.5).toFixed(1)} | ${quantile(l, 0.95).toFixed(1)} | ${quantile(l, 0.99).toFixed(1)} |`;
    const report = [
      `## Housekeeping (storage lifecycle): ${options.instances} instances ${options.side}×${options.side} 8-bit → ${options.target}, pause ${options.pauseMs} ms, ${options.readers} readers`,
      '',
      '| run | instances recompressed | failed | seconds | instances/s | bytes before | bytes after | saved |',
      '|---|---|---|---|---|---|---|---|',
      `| housekeeping | ${run.recompressed} | ${run.failed} | ${seconds.toFixed(1)} | ${rate.toFixed(2)} | ${run.bytesBefore} | ${run.bytesAfter} | ${(100 * (1 - run.bytesAfter / Math.max(1, run.bytesBefore))).toFixed(1)} % |`,
      '',
      '| frame reads (transfer-syntax=*) | requests | p50 ms | p95 ms | p99 ms |',
      '|---|---|---|---|---|',
      row('idle', idle),
      row('during the run', busy),
      '',
      `Added read latency (p50 / p95): ${(quantile(busy, 0.5) - quantile(idle, 0.5)).toFixed(1)} / ${(quantile(busy, 0.95) - quantile(idle, 0.95)).toFixed(1)} ms.`,
      '',
    ].join('\n');
    process.stdout.write(report);
    await mkdir(path.join(repoRoot, '.bench'), { recursive: true });
    await writeFile(path.join(repoRoot, '.bench', 'housekeeping-results.md'), report);
  } finally {
    await server.kill('SIGTERM');
    if (!options.keep) await rm(dataDir, { recursive: true, force: true });
    else log(`data kept in ${dataDir}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
