/**
 * Live-stream benchmark: end-to-end latency (client send → detections received, loopback) at 25 and
 * 30 fps with 1 and 4 concurrent streams, and the share of frames the server dropped to keep latency
 * down. The server runs as its own process (as in production), the clients here; frames are the Kvasir
 * endoscopy video (720×576 JPEG, decoded once with ffmpeg).
 *
 *   npm run bench:live
 *   options: --models-dir DIR  --model polyp-detector  --seconds 8  --provider cpu|cuda|webgpu
 *            --cases 25x1,25x4,30x1,30x4 (fps×streams, the default: all four)
 *            --busy-cores N (N other processes, each keeping one core busy while the streams run: issue 23's
 *            "1 room p99 ≤ 40 ms with another process using one core"; default 0)
 * The server's environment is this process's (e.g. PACS_AI_THREAD_SPINNING=false to compare).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLED_MODELS_DIR } from '../server/src/config.js';
import { spawnServer } from '../server/src/test-support/spawn-server.js';
import { videoGroundTruth } from './live/ground-truth.js';
import { LiveClient } from './live/live-client.js';
import { videoToJpegFrames } from './live/video-frames.js';
import { option } from './bench/cli.js';
import { percentile } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (line: string) => process.stderr.write(`${line}\n`);

interface StreamResult {
  latencies: number[];
  /** The server's `timings` of every analysed frame (where its time went). */
  timings: Array<Record<string, number>>;
  received: number;
  dropped: number;
}

async function runStream(url: string, model: string, frames: Buffer[], fps: number, seconds: number): Promise<StreamResult> {
  const client = await LiveClient.connect(url);
  client.sendJson({ type: 'start', model, record: false, fps, study: { patientName: 'BENCH^LIVE', patientId: 'BENCH' } });
  await client.next((m) => m['type'] === 'started');
  const count = Math.round(fps * seconds);
  const sentAt = new Map<number, number>();
  const start = performance.now();
  for (let seq = 0; seq < count; seq += 1) {
    const wait = start + (seq * 1000) / fps - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt.set(seq, performance.now());
    client.sendJpeg(seq, frames[seq % frames.length]!, Date.now());
  }
  client.sendJson({ type: 'stop' });
  const stopped = await client.next((m) => m['type'] === 'stopped');
  client.close();
  return {
    latencies: client.detections.map((d) => d.arrivedAt - sentAt.get(d.message['seq'] as number)!),
    timings: client.detections.map((d) => d.message['timings'] as Record<string, number>),
    received: stopped['stats'].received as number,
    dropped: stopped['stats'].dropped as number,
  };
}


async function main(): Promise<void> {
  const model = option('model', 'polyp-detector');
  const seconds = Number(option('seconds', '8'));
  const provider = option('provider', 'cpu');
  const truth = await videoGroundTruth();
  const frames = await videoToJpegFrames(truth.mp4);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-bench-live-'));
  const server = await spawnServer({
    PACS_DATA_DIR: dataDir,
    PACS_MODELS_DIR: path.resolve(option('models-dir', BUNDLED_MODELS_DIR)),
    PACS_AI_EXECUTION_PROVIDER: provider,
    PACS_LOG_LEVEL: 'warn',
  });
  const url = `${server.url.replace('http', 'ws')}/live`;
  const rows: string[] = [];
  const cases = option('cases', '25x1,25x4,30x1,30x4').split(',').map((c) => {
    const [fps, streams] = c.split('x').map(Number);
    if (!(fps! > 0 && fps! <= 60 && Number.isInteger(streams) && streams! >= 1 && streams! <= 16)) throw new Error(`--cases: "${c}" is not fps×streams (e.g. 25x4)`);
    return { fps: fps!, streams: streams! };
  });
  const busyCores = Number(option('busy-cores', '0'));
  if (!Number.isInteger(busyCores) || busyCores < 0 || busyCores > 64) throw new Error('--busy-cores must be 0..64');
  // Other work on the machine: each a process spinning on one core for as long as the measurement runs.
  const burners: ChildProcess[] = Array.from({ length: busyCores }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  try {
    // Warm-up: the first frames pay for lazy initialisation.
    await runStream(url, model, frames, 25, 1);
    for (const { fps, streams } of cases) {
      {
        const results = await Promise.all(Array.from({ length: streams }, () => runStream(url, model, frames, fps, seconds)));
        const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
        const received = results.reduce((n, r) => n + r.received, 0);
        const dropped = results.reduce((n, r) => n + r.dropped, 0);
        const period = 1000 / fps;
        const timings = results.flatMap((r) => r.timings);
        const median = (key: string) => percentile(timings.map((t) => t[key] ?? 0).sort((a, b) => a - b), 50).toFixed(1);
        const row = `| ${fps} | ${streams} | ${received} | ${(100 * dropped / received).toFixed(1)} % | ${percentile(latencies, 50).toFixed(1)} | ${percentile(latencies, 95).toFixed(1)} | ${percentile(latencies, 99).toFixed(1)} | ${period.toFixed(1)} | ${median('waitMs')} / ${median('preprocessMs')} / ${median('queueMs')} / ${median('modelMs')} |`;
        log(row);
        rows.push(row);
      }
    }
  } finally {
    for (const b of burners) b.kill('SIGKILL');
    await server.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
  const text = [
    `### Live stream: ${model}, provider ${provider}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, loopback`,
    '',
    `Each stream sends the 720×576 Kvasir endoscopy video as JPEG at a fixed rate for ${seconds} s; latency is client send → detections received, for the frames the server analysed.` +
      (busyCores > 0 ? ` Meanwhile ${busyCores} other process(es) each kept one core busy.` : '') +
      (process.env['PACS_AI_THREAD_SPINNING'] ? ` PACS_AI_THREAD_SPINNING=${process.env['PACS_AI_THREAD_SPINNING']}.` : ''),
    '',
    '| fps | streams | frames sent | dropped | latency p50 ms | p95 ms | p99 ms | frame period ms | server medians: wait / decode + letterbox / model queue / model ms |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  process.stdout.write(text);
  fs.mkdirSync(path.join(repoRoot, '.bench'), { recursive: true });
  fs.writeFileSync(path.join(repoRoot, '.bench', 'live-results.md'), text);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
