/**
 * Evaluates the live polyp detection through the WebSocket endpoint of a real server (its own process,
 * temp storage, the models/ registry):
 *
 * 1. The generated endoscopy video (../shared/data/endoscopy-dicom-kvasir: 200 frames at 25 fps, 8 polyp
 *    appearances, boxes per frame), twice: every frame (each sent after the previous answer) and in real
 *    time at 25 fps (the delay from a polyp's first frame to its first correct box, latency included).
 * 2. Video figures before and after tracking (issue 23; metrics: live/tracking-metrics.ts), on stills
 *    held as video at 25 fps, each for `--hold` frames (25 = 1 s, as a slow withdrawal shows a scene):
 *    - polyp-free video: the TEST split of ../shared/data/endoscopy-normal-hyperkvasir (175 frames),
 *      one after another → false-alarm tracks per minute, frames with nothing shown;
 *    - polyp appearances: each Kvasir-SEG test still (120) held after a hold of a polyp-free test frame
 *      → per-frame sensitivity (per analysed and per sent frame), first-detection delay per appearance
 *      in ms, flicker (tracks per polyp).
 *    "Before tracking" scores the answers' raw `detections`, "after" their shown `tracks`, of the same
 *    answers. Repeats drift (a slow zoom/slide of a few pixels, re-encoded each frame) unless
 *    `--repeat identical` (one JPEG sent `--hold` times). Modes: `paced` (the next frame is sent once the
 *    previous one is answered: every frame analysed, figures of the model + tracker without CPU
 *    contention) and `realtime` (sent at 25 fps like a camera; the server drops what it cannot analyse;
 *    figures per analysed frame and per sent frame = wall time).
 *
 *   npm run eval:live                    # everything (~10375 frames per mode: > 10 min on 2 cores)
 *   npm run eval:live -- --smoke         # 3 polyp-free stills + 3 polyps, both modes, < 1 min
 *   npm run eval:live -- --split val     # the validation split instead (tune the tracker here, not on test)
 *   options: --mode paced|realtime|both (both)  --repeat drift|identical (drift)  --hold 25
 *            --normals N  --polyps N  --no-video  --out-dir .bench  --model polyp-detector
 *            --models-dir DIR  --iou 0.5  --split test|val (test); PACS_LIVE_TRACK_* from the environment
 *            tune the tracker
 * `--split val` streams the 60 polyp-free TRAIN frames and 80 Kvasir-SEG train images held out from the
 * detector's training (scripts/polyp/validation-split.json) instead of the test splits.
 * Writes .bench/eval-live.md and .bench/eval-live.json (…-smoke.*, …-val.* for --smoke, --split val).
 * Needs Debian's ffmpeg to decode the H.264 video (part 1).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BUNDLED_MODELS_DIR, loadConfig } from '../server/src/config.js';
import { LiveClient } from './live/live-client.js';
import { videoMetrics, type FrameResult, type VideoMetrics } from './live/video-metrics.js';
import { videoToJpegFrames } from './live/video-frames.js';
import { option } from './bench/cli.js';
import { kvasirSplit, polypFreeSplit, validationSplit, type KvasirImage } from './eval/kvasir.js';
import { videoGroundTruth } from './live/ground-truth.js';
import { renderHolds, type RenderedHold, type Still } from './live/held-frames.js';
import { spawnServer } from '../server/src/test-support/spawn-server.js';
import { streamMetrics, type Answer, type SentFrame, type SideMetrics, type StreamMetrics } from './live/tracking-metrics.js';


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

// ---------------------------------------------------------------------------------------------------
// Part 2: stills held as video, before and after tracking.

type Mode = 'paced' | 'realtime';

interface StreamRun {
  mode: Mode;
  metrics: StreamMetrics;
  /** stats of the `stopped` message. */
  stats: { received: number; processed: number; dropped: number; stale: number };
  errors: Array<{ code: string; seq?: number }>;
  /** Real time: frames sent more than one frame period after their due time (the sender fell behind). */
  lateSends: number;
  wallS: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
}

/** The polyp-free stills and the polyp images of a split: the test splits, or the detector's validation split. */
async function stillsOf(split: 'test' | 'val'): Promise<{ normals: Still[]; kvasir: KvasirImage[] }> {
  const { polypFree, kvasir } = split === 'val' ? await validationSplit() : { polypFree: await polypFreeSplit('test'), kvasir: await kvasirSplit('test') };
  return { normals: polypFree.map((frame) => ({ file: frame.file, truth: [] })), kvasir };
}

/**
 * Streams the rendered holds over one live session: `paced` sends a frame once the previous one is
 * answered; `realtime` sends at `fps` whatever the server answers.
 */
async function streamHolds(url: string, model: string, holds: RenderedHold[], mode: Mode, fps: number): Promise<StreamRun> {
  const client = await LiveClient.connect(url);
  client.sendJson({ type: 'start', model, record: false, fps, study: { patientName: 'EVAL^VIDEO', patientId: 'EVAL' } });
  await client.next((m) => m['type'] === 'started');
  const sent: SentFrame[] = [];
  const sentAt = new Map<number, number>();
  const period = 1000 / fps;
  let lateSends = 0;
  let seq = 0;
  const start = performance.now();
  for (const hold of holds) {
    for (const [r, file] of hold.files.entries()) {
      const jpeg = await readFile(file);
      if (mode === 'realtime') {
        const wait = start + seq * period - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        else if (-wait > period) lateSends += 1;
      }
      sentAt.set(seq, performance.now());
      sent.push({ seq, truth: hold.truth[r]!, ...(hold.appearance === undefined ? {} : { appearance: hold.appearance }) });
      client.sendJpeg(seq, jpeg, Date.now());
      if (mode === 'paced') {
        const s = seq;
        await client.next((m) => (m['type'] === 'detections' || m['type'] === 'error') && m['seq'] === s);
      }
      seq += 1;
    }
  }
  client.sendJson({ type: 'stop' });
  const stopped = await client.next((m) => m['type'] === 'stopped', 120_000);
  const wallS = (performance.now() - start) / 1000;
  client.close();
  const answers: Answer[] = client.detections.map(({ message, arrivedAt }) => ({
    seq: message['seq'] as number,
    detections: (message['detections'] as Array<{ box: Answer['detections'][number] }>).map((d) => d.box),
    tracks: (message['tracks'] as Array<{ id: number; box: Answer['detections'][number] }>).map((t) => ({ id: t.id, box: t.box })),
    latencyMs: arrivedAt - sentAt.get(message['seq'] as number)!,
  }));
  const errors = [...client.messages, ...client.detections.map((d) => d.message)]
    .filter((m) => m['type'] === 'error')
    .map((m) => ({ code: m['code'] as string, ...(m['seq'] === undefined ? {} : { seq: m['seq'] as number }) }));
  const latencies = answers.map((a) => a.latencyMs!).sort((a, b) => a - b);
  const p = (q: number) => (latencies.length === 0 ? null : Math.round(latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]! * 10) / 10);
  return { mode, metrics: streamMetrics(sent, answers, { fps }), stats: stopped['stats'], errors, lateSends, wallS, latencyP50Ms: p(0.5), latencyP99Ms: p(0.99) };
}

const f3 = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
const f1 = (v: number | null) => (v === null ? 'n/a' : v.toFixed(1));
const ms = (v: number | null) => (v === null ? 'n/a' : `${Math.round(v)}`);

function runLine(run: StreamRun): string {
  const m = run.metrics;
  return `${run.mode}: ${m.analysedFrames} of ${m.sentFrames} frames analysed (${run.stats.dropped} dropped, ${run.errors.length} errors${run.mode === 'realtime' ? `, ${run.lateSends} sent late` : ''}), ${m.durationS.toFixed(1)} s of video in ${run.wallS.toFixed(1)} s; answer latency p50 ${f1(run.latencyP50Ms)} ms, p99 ${f1(run.latencyP99Ms)} ms`;
}

function polypFreeTable(runs: StreamRun[]): string {
  const rows = runs.flatMap((run) =>
    (['before', 'after'] as const).map((side) => {
      const s: SideMetrics = run.metrics[side];
      return `| ${run.mode} | ${side} tracking | ${run.metrics.analysedFrames} / ${run.metrics.sentFrames} | ${f3(s.clearPolypFreeFrames)} | ${s.falseAlarmTracks} | **${f1(s.falseAlarmTracksPerMinute)}** |`;
    }),
  );
  return ['| mode | | analysed / sent frames | polyp-free frames with nothing shown | false-alarm tracks | per minute |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

function polypTable(runs: StreamRun[]): string {
  const rows = runs.flatMap((run) =>
    (['before', 'after'] as const).map((side) => {
      const s: SideMetrics = run.metrics[side];
      return `| ${run.mode} | ${side} tracking | ${run.metrics.analysedFrames} / ${run.metrics.sentFrames} | ${f3(s.sensitivityPerAnalysedFrame)} | ${f3(s.sensitivityPerSentFrame)} | ${s.appearancesDetected} / ${run.metrics.appearances} | **${ms(s.delayMedianMs)}** (max ${ms(s.delayMaxMs)}) | ${f1(s.fragmentsPerAppearance === null ? null : s.fragmentsPerAppearance)} | ${s.falseAlarmTracks} (${f1(s.falseAlarmTracksPerMinute)}/min) |`;
    }),
  );
  return [
    '| mode | | analysed / sent frames | per-frame sensitivity (analysed frames) | (sent frames, wall time) | appearances detected | first-detection delay median ms (max) | tracks per polyp (flicker; 1 = steady) | false-alarm tracks |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function goals(runs: StreamRun[], polypRuns: StreamRun[]): string {
  const lines = runs.map((r) => `- ${r.mode}: false-alarm tracks after tracking ${f1(r.metrics.after.falseAlarmTracksPerMinute)}/min (goal ≤ 1): ${r.metrics.after.falseAlarmTracksPerMinute <= 1 ? 'met' : 'NOT met'}`);
  lines.push(
    ...polypRuns.map((r) => {
      const d = r.metrics.after.delayMedianMs;
      return `- ${r.mode}: first-detection delay median after tracking ${ms(d)} ms over ${r.metrics.after.appearancesDetected} of ${r.metrics.appearances} appearances detected (goal ≤ 200): ${d !== null && d <= 200 ? 'met' : 'NOT met'}`;
    }),
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const smoke = argv.includes('--smoke');
  const model = option('model', 'polyp-detector');
  const iouThreshold = Number(option('iou', '0.5'));
  const modeOption = option('mode', 'both');
  const modes: Mode[] = modeOption === 'both' ? ['paced', 'realtime'] : [modeOption as Mode];
  if (!modes.every((m) => m === 'paced' || m === 'realtime')) throw new Error(`--mode paced|realtime|both, not ${modeOption}`);
  const repeat = option('repeat', 'drift');
  if (repeat !== 'drift' && repeat !== 'identical') throw new Error(`--repeat drift|identical, not ${repeat}`);
  const hold = Number(option('hold', '25'));
  const fps = 25;
  const normalCount = Number(option('normals', smoke ? '3' : '1000000'));
  const polypCount = Number(option('polyps', smoke ? '3' : '1000000'));
  const withVideo = !smoke && !argv.includes('--no-video');
  const outDir = path.resolve(option('out-dir', '.bench'));

  const split = option('split', 'test');
  if (split !== 'test' && split !== 'val') throw new Error(`--split test|val, not ${split}`);
  const stills = await stillsOf(split);
  const normals = stills.normals.slice(0, normalCount);
  const kvasir = stills.kvasir.slice(0, polypCount);
  // Polyp-free stream: the polyp-free frames one after another. Polyp stream: a polyp-free frame, then a polyp.
  const polypFreeStills = normals;
  const polypStills: Still[] = kvasir.flatMap((k, i) => [normals[i % normals.length]!, { file: k.file, truth: k.truth, appearance: i }]);

  const trackEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('PACS_LIVE_TRACK_')));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-eval-live-'));
  const frameDir = path.join(dataDir, 'frames');
  await mkdir(frameDir);
  const env = { PACS_DATA_DIR: path.join(dataDir, 'server'), PACS_LOG_LEVEL: 'warn', PACS_MODELS_DIR: path.resolve(option('models-dir', BUNDLED_MODELS_DIR)), ...trackEnv } as Record<string, string>;
  const config = loadConfig(env);
  // Rendered before the server starts: no rendering competes with it while frames stream.
  const renderStart = performance.now();
  const cache = new Map<string, RenderedHold>();
  const polypFreeHolds = await renderHolds(polypFreeStills, hold, repeat === 'drift', frameDir, cache);
  const polypHolds = await renderHolds(polypStills, hold, repeat === 'drift', frameDir, cache);
  process.stderr.write(`rendered ${cache.size} holds in ${((performance.now() - renderStart) / 1000).toFixed(1)} s\n`);
  const server = await spawnServer(env);
  const url = `${server.url.replace('http', 'ws')}/live`;
  const out: string[] = [];
  const json: Record<string, unknown> = {
    generatedAt: new Date().toISOString(),
    split,
    smoke,
    model,
    iouThreshold,
    fps,
    hold,
    repeat,
    tracking: config.live.tracking,
    cpu: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}`,
  };
  try {
    if (withVideo) {
      const truth = await videoGroundTruth();
      const frames = await videoToJpegFrames(truth.mp4);
      if (frames.length !== truth.frames) throw new Error(`decoded ${frames.length} frames, ground truth has ${truth.frames}`);
      const offline = videoMetrics(await everyFrame(url, model, frames), truth, iouThreshold);
      const live = await realTime(url, model, frames, truth.fps);
      const online = videoMetrics(live.results, truth, iouThreshold);
      const latencies = live.results.map((r) => r.latencyMs!).sort((a, b) => a - b);
      const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!.toFixed(0);
      out.push(
        `### Live detection on the Kvasir endoscopy video (${truth.frames} frames, ${truth.fps} fps, 720×576, ${truth.segments.length} polyp appearances; IoU ≥ ${iouThreshold})`,
        '',
        table('Every frame analysed', offline),
        table(`Real time at ${truth.fps} fps (${live.dropped} of ${frames.length} frames dropped; latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms)`, online),
        'Specificity needs frames without a polyp: every frame of this video shows one, so it is not measurable here (false-positive boxes per frame stand in).',
        '',
      );
      json['video'] = { everyFrame: offline, realTime: { ...online, dropped: live.dropped } };
    }

    // Warm-up (not counted): the first frames pay for lazy initialisation.
    await streamHolds(url, model, polypFreeHolds.slice(0, 1), 'paced', fps);
    const polypFree: StreamRun[] = [];
    const polyp: StreamRun[] = [];
    for (const mode of modes) {
      polypFree.push(await streamHolds(url, model, polypFreeHolds, mode, fps));
      polyp.push(await streamHolds(url, model, polypHolds, mode, fps));
    }
    const holdText = `each held ${hold} frames (${((hold * 1000) / fps).toFixed(0)} ms) at ${fps} fps, ${repeat === 'drift' ? 'drifting (slow zoom 1.02→1.00 and slide of ±4 px over the hold, every frame re-encoded)' : 'identical repeats (one JPEG sent again)'}, letterboxed into 720×576, JPEG q90, rendered before streaming`;
    out.push(
      `### Video before and after tracking${smoke ? ' (SMOKE size: not a result)' : ''}`,
      '',
      `Model ${model}; IoU ≥ ${iouThreshold}; tracker ${JSON.stringify(config.live.tracking)}; ${json['cpu']}; server as its own process (node --import tsx), client in this one.`,
      '',
      `**Polyp-free video**: ${polypFreeStills.length} HyperKvasir polyp-free ${split === 'val' ? 'TRAIN frames held out for validation' : 'TEST frames'}, ${holdText}.`,
      '',
      ...polypFree.map((r) => `- ${runLine(r)}`),
      '',
      polypFreeTable(polypFree),
      '',
      `**Polyp appearances**: ${kvasir.length} Kvasir-SEG ${split === 'val' ? 'train stills held out for validation' : 'test stills'}, each held ${hold} frames after ${hold} frames of a polyp-free ${split === 'val' ? 'validation' : 'test'} frame (same rendering).`,
      '',
      ...polyp.map((r) => `- ${runLine(r)}`),
      '',
      polypTable(polyp),
      '',
      'Goals (issue 23):',
      goals(polypFree, polyp),
      '',
    );
    const runJson = (r: StreamRun) => ({ ...r, appearances: r.metrics.after.delays.map((d) => ({ appearance: d.appearance, kvasirId: kvasir[d.appearance]?.id })) });
    json['polypFree'] = { stills: polypFreeStills.length, runs: polypFree.map(runJson) };
    json['polyp'] = { stills: kvasir.length, runs: polyp.map(runJson) };
  } finally {
    await server.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
  const markdown = out.join('\n');
  process.stdout.write(markdown);
  await mkdir(outDir, { recursive: true });
  const base = path.join(outDir, `eval-live${smoke ? '-smoke' : ''}${split === 'val' ? '-val' : ''}`);
  await writeFile(`${base}.md`, markdown);
  await writeFile(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  process.stderr.write(`wrote ${base}.md and ${base}.json\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
