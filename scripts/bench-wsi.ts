/**
 * Whole-slide analysis benchmark: slide jobs (POST /ai/studies/{s}/series/{se}/analyses) on the real
 * server (a child process: node --import tsx server/src/main.ts, embedded storage in a temp folder, CPU),
 * with the same model run bare through onnxruntime on as many windows in the same run, so the
 * pipeline's overhead (tile reads by frame index, JPEG decode, window assembly and resize, queue,
 * post-processing, job store, annotation instance) shows as a ratio.
 *
 *   npm run bench:wsi                       # nuclei-detector (models/), CMU-1 pyramids + 51,200² generated slide
 *   options: --model ID  --models-dir DIR  --region N (analyse only a centred N × N region of the
 *            generated slide, base pixels, and extrapolate the whole level; default 0 = the whole level)
 *            --size 51200 (generated slide side)  --skip-cmu  --skip-large  --keep
 *
 * Slides:
 *  - both pyramids of ../shared/data/wsi-cmu1-small-region (TILED_FULL from wsi2dcm, TILED_SPARSE
 *    from Orthanc WSI), the whole base level each;
 *  - a generated TILED_FULL pyramid of --size² px at 0.25 µm/px (server/src/test-support/large-slide.ts:
 *    written tile by tile, 512² JPEG tiles reused, an elliptical tissue section on glass, plus an
 *    ≈ 800 px level for the tissue mask), stored by one streamed STOW-RS request. The whole level
 *    takes ~7 minutes with the nuclei detector on 2 cores; with `--region N` only a centred region is
 *    analysed and the whole level's time is extrapolated from its planned window count (a whole-level
 *    job is planned and cancelled to get that count).
 *
 * Per job: windows run and skipped as glass, job time (started → finished: plan with tissue mask,
 * units, finalize), windows/s, the bare model time for the same number of windows at the server's
 * batch size, pipeline ÷ bare, the server's peak RSS during the job (VmHWM reset before, and sampled)
 * and its growth over the RSS before the job. Output: markdown on stdout and in .bench/wsi-results.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { BUNDLED_MODELS_DIR } from '../server/src/config.js';
import { loadModelRegistry } from '../server/src/inference/model-registry.js';
import { stowFiles, writeLargeSlide } from '../server/src/test-support/large-slide.js';
import { BenchRun } from './bench/run.js';
import { startOurServer } from './bench/our-server.js';
import { httpRequest, log, MiB, readProcMemory, resetPeakRss, sampleRss, sleep } from './bench/util.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TEST_MODELS_DIR = path.join(repoRoot, 'test-fixtures/models');
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
if (flag('help')) {
  process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*?|^ \* ?/gm, '') + '\n');
  process.exit(0);
}

interface JobFigures {
  slide: string;
  level: string;
  region: string;
  windowSize: number;
  windows: number;
  skipped: number;
  jobMs: number;
  annotations: number;
  rssBefore: number;
  rssPeak: number;
  bareMs?: number;
  wholeLevelWindows?: number;
}

async function api(url: string, method = 'GET', body?: unknown): Promise<any> {
  const res = await httpRequest(url, {
    method,
    headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    timeoutMs: 60_000,
  });
  const text = res.body.toString('utf8');
  if (res.status >= 300) throw new Error(`${method} ${url}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

async function waitJob(base: string, id: string, done: (job: any) => boolean): Promise<any> {
  let lastLog = Date.now();
  for (;;) {
    const job = await api(`${base}/ai/analyses/${id}`);
    if (done(job)) return job;
    if (Date.now() - lastLog > 30_000) {
      lastLog = Date.now();
      log(`  ${job.state}: ${job.progress.tilesDone}/${job.progress.tilesTotal} windows, ${job.estimatedRemainingMs === null ? '?' : Math.round(job.estimatedRemainingMs / 1000)} s left`);
    }
    await sleep(200);
  }
}
const ended = (job: any) => ['completed', 'failed', 'cancelled'].includes(job.state);

/** One job to completion, with the server's RSS before and at its peak during the job. */
async function runJob(base: string, pid: number, name: string, study: string, series: string, model: string, region?: { x: number; y: number; width: number; height: number }): Promise<JobFigures> {
  await sleep(500);
  const rssBefore = readProcMemory(pid)?.rssBytes ?? Number.NaN;
  const hwmReset = resetPeakRss(pid);
  const sampler = sampleRss(pid, 50);
  const created = await api(`${base}/ai/studies/${study}/series/${series}/analyses?recompute=true`, 'POST', { model, ...(region ? { region } : {}) });
  const job = await waitJob(base, created.id, ended);
  let rssPeak = sampler.stop();
  if (hwmReset) rssPeak = Math.max(rssPeak, readProcMemory(pid)?.hwmBytes ?? 0);
  if (job.state !== 'completed') throw new Error(`${name}: job ${job.state}: ${job.reason}`);
  log(`${name}: ${job.progress.tilesDone} windows in ${(job.elapsedMs / 1000).toFixed(1)} s, ${job.progress.annotations} annotations`);
  return {
    slide: name,
    level: `${job.level.index} (${(job.level.spacingMm * 1000).toFixed(3)} µm/px)`,
    region: region ? `${region.width}×${region.height} at ${region.x},${region.y}` : 'whole level',
    windowSize: job.level.windowSize,
    windows: job.progress.tilesDone,
    skipped: job.progress.tilesSkippedAsBackground,
    jobMs: job.elapsedMs,
    annotations: job.progress.annotations,
    rssBefore,
    rssPeak,
  };
}

async function main(): Promise<void> {
  const modelId = option('model', 'nuclei-detector');
  const regionSide = Number(option('region', '0'));
  const size = Number(option('size', '51200'));
  let modelsDir = path.resolve(option('models-dir', BUNDLED_MODELS_DIR));
  if (!(await loadModelRegistry(modelsDir)).some((m) => m.spec.id === modelId) && (await loadModelRegistry(TEST_MODELS_DIR)).some((m) => m.spec.id === modelId)) modelsDir = TEST_MODELS_DIR;
  const registered = (await loadModelRegistry(modelsDir)).find((m) => m.spec.id === modelId);
  if (registered === undefined) throw new Error(`model ${modelId} not in ${modelsDir}`);
  const { spec } = registered;
  const maxBatch = Number(process.env['PACS_AI_MAX_BATCH'] ?? '4');

  // The bare model in this process, run right after each job (the server idle then, the machine in the
  // same state): as many windows as the job ran (400 at most, then scaled), at the server's batch size.
  const session = await ort.InferenceSession.create(registered.path, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const side = spec.input.width;
  const batchData = Buffer.alloc(maxBatch * side * side * 3);
  for (let i = 0; i < batchData.length; i += 3) {
    const dark = ((i / 3) % side) % 37 < 9 && Math.floor(i / 3 / side) % 41 < 9;
    batchData[i] = dark ? 90 : 230;
    batchData[i + 1] = dark ? 50 : 180;
    batchData[i + 2] = dark ? 130 : 212;
  }
  const tensor = new ort.Tensor('uint8', new Uint8Array(batchData.buffer, batchData.byteOffset, batchData.length), [maxBatch, side, side, 3]);
  await session.run({ [spec.input.name]: tensor });
  const bareMsPerWindow = async (windows: number): Promise<number> => {
    const batches = Math.max(3, Math.min(Math.ceil(windows / maxBatch), Math.ceil(400 / maxBatch)));
    const started = performance.now();
    for (let b = 0; b < batches; b += 1) await session.run({ [spec.input.name]: tensor });
    return (performance.now() - started) / (batches * maxBatch);
  };
  const run = new BenchRun();
  run.keep = flag('keep');
  const work = run.makeWorkDir('bench-wsi-');
  const results: JobFigures[] = [];
  let serverDescription = '';
  let largeInfo = '';
  try {
    process.env['PACS_MODELS_DIR'] = modelsDir;
    process.env['PACS_AI_EXECUTION_PROVIDER'] ??= 'cpu';
    const server = await startOurServer(repoRoot, work);
    run.running.push(server);
    serverDescription = server.describe.join(' ');
    const base = server.dicomwebRoot.replace(/\/dicomweb$/, '');
    log(`server pid ${server.pid}, RSS ${((readProcMemory(server.pid)?.rssBytes ?? 0) / MiB).toFixed(0)} MiB; model ${spec.id} ${spec.version} (${spec.input.width}², ${(spec.input.pixelSpacingMm ?? 0) * 1000} µm/px)`);

    if (!flag('skip-cmu')) {
      const cmu = path.resolve(repoRoot, '../shared/data/wsi-cmu1-small-region');
      for (const [name, folder] of [['CMU-1 TILED_FULL (wsi2dcm)', 'tiled-full-gcp-wsi2dcm'], ['CMU-1 TILED_SPARSE (Orthanc WSI)', 'tiled-sparse-orthanc-wsi']] as const) {
        const files = fs.readdirSync(path.join(cmu, folder)).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(cmu, folder, f));
        const stored = await stowFiles(base, files);
        if (stored.status !== 200) throw new Error(`STOW ${folder}: ${stored.status} ${stored.body.slice(0, 300)}`);
        const uids = await seriesOf(base, stored.body);
        if (results.length === 0) {
          // Warm-up (not counted): the server's first model runs and reads.
          await runJob(base, server.pid, 'warm-up', uids.study, uids.series, modelId, { x: 800, y: 1200, width: 600, height: 500 });
        }
        const figures = { ...(await runJob(base, server.pid, name, uids.study, uids.series, modelId)), slide: `${name}, 2220×2967` };
        figures.bareMs = (await bareMsPerWindow(figures.windows)) * figures.windows;
        results.push(figures);
      }
    }

    if (!flag('skip-large')) {
      const dir = path.join(work, 'large-slide');
      fs.mkdirSync(dir);
      let started = performance.now();
      const slide = await writeLargeSlide({ dir, width: size, height: size });
      const genS = (performance.now() - started) / 1000;
      started = performance.now();
      const stored = await stowFiles(base, slide.files);
      if (stored.status !== 200) throw new Error(`STOW large slide: ${stored.status} ${stored.body.slice(0, 300)}`);
      const stowS = (performance.now() - started) / 1000;
      largeInfo =
        `generated ${slide.width}×${slide.height} px at ${slide.spacingMm * 1000} µm/px, ${slide.tilesAcross * slide.tilesDown} tiles of ${slide.tileSize}² (${slide.tissueTiles} tissue), ` +
        `${(slide.bytes / 1e6).toFixed(0)} MB, written in ${genS.toFixed(1)} s, stored by STOW-RS in ${stowS.toFixed(1)} s (${(slide.bytes / 1e6 / stowS).toFixed(0)} MB/s); server RSS after the STOW ${((readProcMemory(server.pid)?.rssBytes ?? 0) / MiB).toFixed(0)} MiB`;
      log(largeInfo);
      const name = `generated ${slide.width}×${slide.height}`;
      const region =
        regionSide > 0 && regionSide < Math.min(slide.width, slide.height)
          ? { x: Math.floor((slide.width - regionSide) / 2), y: Math.floor((slide.height - regionSide) / 2), width: regionSide, height: regionSide }
          : undefined;
      const figures = await runJob(base, server.pid, name, slide.studyInstanceUid, slide.seriesInstanceUid, modelId, region);
      figures.bareMs = (await bareMsPerWindow(figures.windows)) * figures.windows;
      if (region !== undefined) {
        // The whole level's planned window count: plan a whole-level job and cancel it.
        const whole = await api(`${base}/ai/studies/${slide.studyInstanceUid}/series/${slide.seriesInstanceUid}/analyses?recompute=true`, 'POST', { model: modelId });
        const planned = await waitJob(base, whole.id, (j) => j.state !== 'queued');
        if (!ended(planned)) await api(`${base}/ai/analyses/${whole.id}`, 'DELETE');
        figures.wholeLevelWindows = planned.progress.tilesTotal;
        figures.skipped = planned.progress.tilesSkippedAsBackground;
        log(`whole level: ${planned.progress.tilesTotal} windows planned, ${planned.progress.tilesSkippedAsBackground} skipped as glass`);
      }
      results.push(figures);
    }
    await run.cleanup();
  } catch (err) {
    await run.cleanup();
    throw err;
  }

  await session.release();

  const s = (ms: number) => (ms / 1000).toFixed(1);
  const mib = (b: number) => (b / MiB).toFixed(0);
  const lines = [
    `### Whole-slide analysis: ${spec.id} ${spec.version} (${spec.input.width}² input, trained at ${(spec.input.pixelSpacingMm ?? 0) * 1000} µm/px), CPU`,
    '',
    `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 16)} UTC; model batch ${maxBatch} (PACS_AI_MAX_BATCH). ${serverDescription}`,
    '',
    '| slide | analysed | windows run (window px) | skipped as glass | job time [s] | windows/s | bare model, same windows [s] | pipeline ÷ bare | server peak RSS [MiB] (growth) | annotations |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.slide} | level ${r.level}, ${r.region} | ${r.windows} (${r.windowSize}) | ${r.skipped}${r.wholeLevelWindows === undefined ? '' : ' (whole level)'} | ${s(r.jobMs)} | ${(r.windows / (r.jobMs / 1000)).toFixed(1)} | ${s(r.bareMs!)} | **${(r.jobMs / r.bareMs!).toFixed(2)}×** | ${mib(r.rssPeak)} (+${mib(r.rssPeak - r.rssBefore)}) | ${r.annotations} |`,
    ),
    '',
    ...results
      .filter((r) => r.wholeLevelWindows !== undefined)
      .map((r) => {
        const rate = r.windows / (r.jobMs / 1000);
        return `Whole level of the ${r.slide} slide: ${r.wholeLevelWindows} windows after the tissue mask (${r.skipped} skipped as glass); at the measured ${rate.toFixed(1)} windows/s ≈ **${((r.wholeLevelWindows! / rate) / 60).toFixed(0)} min** (extrapolated, not run).`;
      }),
    ...(largeInfo ? ['', `Large slide: ${largeInfo}.`] : []),
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(text);
  fs.mkdirSync(path.join(repoRoot, '.bench'), { recursive: true });
  fs.writeFileSync(path.join(repoRoot, '.bench', 'wsi-results.md'), text);
}

/** Study and series of the first stored instance, from a STOW-RS response (DICOM JSON). */
async function seriesOf(base: string, stowBody: string): Promise<{ study: string; series: string }> {
  const response = JSON.parse(stowBody) as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>;
  const url = response['00081199']?.Value?.[0]?.['00081190']?.Value?.[0];
  const m = url === undefined ? null : /studies\/([^/]+)\/series\/([^/]+)\//.exec(url);
  if (m === null) throw new Error(`no RetrieveURL in the STOW response from ${base}`);
  return { study: m[1]!, series: m[2]! };
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
