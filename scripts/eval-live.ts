/**
 * Evaluates the live polyp detection on the generated endoscopy video (../shared/data/
 * endoscopy-dicom-kvasir: 200 frames at 25 fps, 8 polyp appearances, boxes per frame) through the
 * WebSocket endpoint, twice:
 *  - every frame: each frame sent after the previous answer (no drops) → per-frame sensitivity etc.;
 *  - real time: frames sent at 25 fps like a camera; slow answers make the server drop frames → the
 *    delay from a polyp's first frame to its first correct box, including latency.
 *
 *   npm run eval:live                    # server in-process on temp storage, models/ registry
 *   options: --model polyp-detector  --models-dir DIR  --iou 0.5
 * Needs Debian's ffmpeg to decode the H.264 video.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApp } from '../server/src/app.js';
import { createServices } from '../server/src/services.js';
import { BUNDLED_MODELS_DIR, loadConfig } from '../server/src/config.js';
import { videoGroundTruth } from './live/ground-truth.js';
import { LiveClient } from './live/live-client.js';
import { videoMetrics, type FrameResult, type VideoMetrics } from './live/video-metrics.js';
import { videoToJpegFrames } from './live/video-frames.js';
import { option } from './bench/cli.js';


const boxesOf = (message: Record<string, any>) => (message['detections'] as Array<{ box: FrameResult['boxes'][number] }>).map((d) => d.box);

async function everyFrame(url: string, model: string, frames: Buffer[]): Promise<FrameResult[]> {
  const client = await LiveClient.connect(url);
  client.sendJson({ type: 'start', model, record: false, fps: 25, study: { patientName: 'EVAL^VIDEO', patientId: 'EVAL' } });
  await client.next((m) => m['type'] === 'started');
  const results: FrameResult[] = [];
  for (let seq = 0; seq < frames.length; seq += 1) {
    client.sendJpeg(seq, frames[seq]!, seq * 40);
    await client.drained(seq);
    results.push({ frame: seq, boxes: boxesOf(client.detections.at(-1)!.message) });
  }
  client.close();
  return results;
}

async function realTime(url: string, model: string, frames: Buffer[], fps: number): Promise<{ results: FrameResult[]; dropped: number }> {
  const client = await LiveClient.connect(url);
  client.sendJson({ type: 'start', model, record: false, fps, study: { patientName: 'EVAL^VIDEO', patientId: 'EVAL' } });
  await client.next((m) => m['type'] === 'started');
  const sentAt = new Map<number, number>();
  const start = performance.now();
  for (let seq = 0; seq < frames.length; seq += 1) {
    const wait = start + (seq * 1000) / fps - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt.set(seq, performance.now());
    client.sendJpeg(seq, frames[seq]!, Date.now());
  }
  client.sendJson({ type: 'stop' });
  const stopped = await client.next((m) => m['type'] === 'stopped');
  client.close();
  const results = client.detections.map(({ message, arrivedAt }) => ({
    frame: message['seq'] as number,
    boxes: boxesOf(message),
    latencyMs: arrivedAt - sentAt.get(message['seq'] as number)!,
  }));
  return { results, dropped: stopped['stats'].dropped as number };
}

function table(title: string, m: VideoMetrics): string {
  const f = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(3));
  const delays = m.delays.map((d) => (d.frames === undefined ? 'missed' : `${d.frames} (${Math.round(d.ms!)} ms)`)).join(', ');
  return [
    `**${title}**: ${m.analysedFrames} frames analysed, ${m.polypFrames} with a polyp, ${m.negativeFrames} without.`,
    '',
    '| per-frame sensitivity | specificity | false-positive boxes per frame | first correct detection after a polyp appears: frames (ms) per appearance |',
    '|---|---|---|---|',
    `| ${f(m.sensitivity)} | ${f(m.specificity)} | ${f(m.falsePositivesPerFrame)} | ${delays} |`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const model = option('model', 'polyp-detector');
  const iouThreshold = Number(option('iou', '0.5'));
  const truth = await videoGroundTruth();
  const frames = await videoToJpegFrames(truth.mp4);
  if (frames.length !== truth.frames) throw new Error(`decoded ${frames.length} frames, ground truth has ${truth.frames}`);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-eval-live-'));
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'warn', PACS_MODELS_DIR: option('models-dir', BUNDLED_MODELS_DIR) });
  const app = await buildApp(config, await createServices(config, { logger: pino({ level: 'warn' }) }));
  const url = `${(await app.listen({ host: '127.0.0.1', port: 0 })).replace('http', 'ws')}/live`;
  try {
    const offline = videoMetrics(await everyFrame(url, model, frames), truth, iouThreshold);
    const live = await realTime(url, model, frames, truth.fps);
    const online = videoMetrics(live.results, truth, iouThreshold);
    const latencies = live.results.map((r) => r.latencyMs!).sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!.toFixed(0);
    process.stdout.write(
      [
        `### Live detection on the Kvasir endoscopy video (${truth.frames} frames, ${truth.fps} fps, 720×576, ${truth.segments.length} polyp appearances; IoU ≥ ${iouThreshold})`,
        '',
        table('Every frame analysed', offline),
        table(`Real time at ${truth.fps} fps (${live.dropped} of ${frames.length} frames dropped; latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms)`, online),
        'Specificity needs frames without a polyp: every frame of this video shows one, so it is not measurable here (false-positive boxes per frame stand in).',
        '',
      ].join('\n'),
    );
  } finally {
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
