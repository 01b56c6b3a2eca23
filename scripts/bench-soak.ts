/**
 * Soak benchmark: mixed STOW-RS, QIDO-RS, WADO-RS frames and AI detection against one server for a long
 * time at fixed concurrency, on loopback. Reports errors, latency (p50/p99) per operation and per
 * minute, and the server's resident memory over time, with a verdict on growth.
 *
 *   npm run bench:soak                          # 600 s at concurrency 16
 *   npm run bench:soak -- --duration 60         # short run (--quick: the same)
 *   options: --duration S (600)  --concurrency N (16)  --sample S (RSS sampling period, 5)
 *            --bucket S (period of the over-time table, 60)  --json FILE (results as JSON)
 *            --keep (keep the server's temp storage and log)
 *            --mix stow=20,qido=30,frames=30,detect=12,frame-ai=8 (relative weights of the operations)
 *
 * The server is the real one (server/src/main.ts via tsx) in its own process: embedded storage (fs
 * blobs + SQLite) in a temp dir, AI on with the bundled models/ (CPU). Its RSS is read from
 * /proc/<pid>/status every --sample seconds. Data: real files from ../shared/data (PACS_SHARED_DATA):
 * CT (pydicom CT_small), 8 Kvasir VL Endoscopic JPEG images, a native 8-frame Enhanced MR (dcmjs
 * cine-test), a 10-frame Enhanced MR, the CMU-1 WSI levels 0 (30 JPEG tiles) and 1 (9 tiles); each is
 * stored once as is (the seed), then --concurrency workers run until --duration is over, each picking a
 * weighted random operation:
 *   stow      STOW-RS of one of those files with new Study/Series/SOP UIDs (and patient ID / name where
 *             the file's own are long enough), so the index grows; a new series every 4 and a new study
 *             every 8 uploads of a file kind per worker
 *   qido      QIDO-RS at study (patient ID, name prefix, date range, modality, offset pages, UID),
 *             series and instance level, over the seeded and the stored studies
 *   frames    WADO-RS one random frame, or a list of 2–4 (multi-frame instances), transfer-syntax=*
 *   detect    POST /ai/models/polyp-detector/detect with a Kvasir-SEG test JPEG
 *   frame-ai  POST /ai/.../frames/1/detections?model=polyp-detector on a stored endoscopy image, mostly
 *             on images not analysed yet (the model runs and an SR is stored), else an existing report
 * An operation is an error when the answer is not the expected 2xx (STOW: 200 with the instance stored;
 * frames: the number of parts asked for) or the request fails. At the end the instance count of the
 * index (QIDO) is compared with what was stored. Output: markdown on stdout and in
 * .bench/soak-results.md; progress on stderr.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { kvasirSplit } from './eval/kvasir.js';
import { machineInfo } from './bench/report.js';
import { parseMultipart } from './bench/retrieve.js';
import { startOurServer } from './bench/our-server.js';
import { BenchRun, parseCommonOptions } from './bench/run.js';
import { loadTemplate, type StowTemplate } from './bench/soak-templates.js';
import { buildMultipart } from './bench/stow.js';
import type { TargetServer } from './bench/target.js';
import { cpuSeconds, directoryBytes, formatBytes, httpRequest, log, MiB, percentile, sleep } from './bench/util.js';
import { rng } from '../server/src/test-support/chunking.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(repoRoot, '.bench');
const sharedData = process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data');
const ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const MODEL = 'polyp-detector';
const REQUEST_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------------
// Options

const CATEGORIES = ['stow', 'qido', 'frames', 'detect', 'frame-ai'] as const;
type Category = (typeof CATEGORIES)[number];

interface Options {
  durationS: number;
  concurrency: number;
  sampleS: number;
  bucketS: number;
  json?: string;
  keep: boolean;
  mix: Record<Category, number>;
}

function parseOptions(argv: string[]): Options {
  const { quick, keep, value } = parseCommonOptions(argv, import.meta.url, () => 1);
  const num = (name: string, fallback: number, min: number): number => {
    const v = Number(value(name) ?? fallback);
    if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number ≥ ${min}`);
    return v;
  };
  const mix: Record<Category, number> = { stow: 20, qido: 30, frames: 30, detect: 12, 'frame-ai': 8 };
  for (const part of (value('mix') ?? '').split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    if (!CATEGORIES.includes(k as Category) || !(Number(v) >= 0)) throw new Error(`--mix: "${part}" (keys: ${CATEGORIES.join(', ')})`);
    mix[k as Category] = Number(v);
  }
  if (Object.values(mix).every((w) => w === 0)) throw new Error('--mix: every weight is 0');
  return {
    durationS: num('duration', quick ? 60 : 600, 1),
    concurrency: Math.round(num('concurrency', 16, 1)),
    sampleS: num('sample', 5, 0.1),
    bucketS: num('bucket', 60, 1),
    json: value('json'),
    keep,
    mix,
  };
}

// ---------------------------------------------------------------------------------------------------
// Data: what the workers pick from (grows as instances are stored)

interface InstanceRef {
  study: string;
  series: string;
  sop: string;
  frames: number;
}

interface StudyRef {
  study: string;
  series: string;
  patientId?: string;
  patientNo?: number;
}

/** Keeps the most recent `cap` items plus the first `pinned` (the seed) so memory stays flat here. */
class Pool<T> {
  private readonly items: T[] = [];
  private next = 0;
  constructor(private readonly cap: number) {}
  add(item: T): void {
    if (this.items.length < this.cap) this.items.push(item);
    else {
      this.items[this.next] = item;
      this.next = (this.next + 1) % this.cap;
    }
  }
  pick(rnd: () => number): T | undefined {
    return this.items.length === 0 ? undefined : this.items[Math.floor(rnd() * this.items.length)];
  }
  get size(): number {
    return this.items.length;
  }
}

interface Corpus {
  /** STOW templates with their weights. */
  templates: Array<{ template: StowTemplate; weight: number }>;
  /** Extra seed files (stored once, not used as STOW templates). */
  seedOnly: StowTemplate[];
  jpegs: Buffer[];
}

function loadCorpus(): Corpus {
  const f = (...p: string[]) => path.join(sharedData, ...p);
  if (!fs.existsSync(sharedData)) throw new Error(`shared data not found at ${sharedData} (set PACS_SHARED_DATA)`);
  const endoscopy = fs
    .readdirSync(f('endoscopy-dicom-kvasir'))
    .filter((n) => /^vl-endoscopic-\d+-.*-jpeg-baseline\.dcm$/.test(n))
    .sort()
    .map((n) => loadTemplate(`VL endoscopic ${n.slice(14, 16)} (JPEG)`, f('endoscopy-dicom-kvasir', n), true));
  if (endoscopy.length === 0) throw new Error('no VL Endoscopic JPEG files in endoscopy-dicom-kvasir');
  const templates: Corpus['templates'] = [
    { template: loadTemplate('CT 128×128 (pydicom CT_small)', f('dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm')), weight: 30 },
    ...endoscopy.map((template) => ({ template, weight: 45 / endoscopy.length })),
    { template: loadTemplate('Enhanced MR 256×256×8 native (dcmjs cine-test)', f('dicom-dcmjs-tests/cine-test.dcm')), weight: 5 },
    { template: loadTemplate('Enhanced MR 64×64×10 (pydicom emri_small)', f('dicom-pydicom/pydicom-data/emri_small.dcm')), weight: 10 },
    { template: loadTemplate('WSI level 1, 9 JPEG tiles (CMU-1)', f('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-1-frames-0-9.dcm')), weight: 10 },
  ];
  const seedOnly = [
    loadTemplate('WSI level 0, 30 JPEG tiles (CMU-1)', f('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm')),
    loadTemplate('VL endoscopic 01 (explicit VR LE RGB)', f('endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-explicit-le-rgb.dcm'), true),
  ];
  return { templates, seedOnly, jpegs: [] };
}

// ---------------------------------------------------------------------------------------------------
// Measurements

interface OpStats {
  label: string;
  latencies: number[];
  count: number;
  errors: number;
  statuses: Map<string, number>;
  examples: string[];
  bytes: number;
}

interface Bucket {
  latencies: number[];
  errors: number;
}

interface RssSample {
  /** Seconds since the load started (negative: before). */
  t: number;
  rss: number;
  anon: number;
  file: number;
  hwm: number;
  cpuS: number;
  /** Machine 1-minute load average (other work on the machine shows here). */
  load1: number;
}

function readStatus(pid: number): { rss: number; anon: number; file: number; hwm: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), hwm: kb('VmHWM') };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

function weighted<T>(items: Array<{ weight: number; value: T }>, rnd: () => number): T {
  const total = items.reduce((n, i) => n + i.weight, 0);
  let r = rnd() * total;
  for (const i of items) {
    r -= i.weight;
    if (r < 0) return i.value;
  }
  return items[items.length - 1]!.value;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');
const mib = (v: number) => (Number.isFinite(v) ? (v / MiB).toFixed(0) : 'n/a');

// ---------------------------------------------------------------------------------------------------

const run = new BenchRun();

interface Outcome {
  ok: boolean;
  status: number;
  bytes?: number;
  error?: string;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  run.keep = opts.keep;
  const corpus = loadCorpus();
  corpus.jpegs = await Promise.all(
    (await kvasirSplit('test'))
      .filter((i) => i.width * i.height <= 720 * 576)
      .slice(0, 20)
      .map((i) => fs.promises.readFile(i.file)),
  );
  if (corpus.jpegs.length === 0) throw new Error('no Kvasir-SEG test JPEGs found');
  log(`corpus: ${corpus.templates.length} STOW templates, ${corpus.seedOnly.length} seed-only files, ${corpus.jpegs.length} JPEGs for /detect`);

  const workDir = run.makeWorkDir('pacs-bench-soak-');
  log('starting the server (tsx, AI on)');
  const server: TargetServer = await startOurServer(repoRoot, workDir);
  run.running.push(server);
  const pid = server.pid;
  const root = server.dicomwebRoot;
  const base = root.replace(/\/dicomweb$/, '');
  log(`server ready (pid ${pid}) at ${base}`);
  const models = await httpRequest(`${base}/ai/models`, { timeoutMs: 30_000 });
  if (models.status !== 200 || !models.body.toString('utf8').includes(MODEL)) {
    throw new Error(`/ai/models did not list ${MODEL} (HTTP ${models.status}): is AI enabled? ${models.body.toString('utf8').slice(0, 200)}`);
  }

  // Pools of what the workers read.
  const instances = new Pool<InstanceRef>(20_000);
  const multiFrame = new Pool<InstanceRef>(5_000);
  const endoscopyAll = new Pool<InstanceRef>(5_000);
  const studies = new Pool<StudyRef>(20_000);
  const patients: string[] = [];
  const studyUids = new Set<string>();
  /** Endoscopy images not analysed yet (newest first is popped). */
  const pendingAi: InstanceRef[] = [];
  let storedCount = 0;
  let reportsCreated = 0;

  const remember = (ref: InstanceRef, endoscopy: boolean, patientId?: string, patientNo?: number): void => {
    instances.add(ref);
    if (ref.frames > 1) multiFrame.add(ref);
    if (endoscopy) {
      endoscopyAll.add(ref);
      pendingAi.push(ref);
      if (pendingAi.length > 2_000) pendingAi.shift();
    }
    studies.add({ study: ref.study, series: ref.series, patientId, patientNo });
    studyUids.add(ref.study);
    if (patientId && patients.length < 5_000 && !patients.includes(patientId)) patients.push(patientId);
  };

  const stow = async (bytes: Buffer): Promise<Outcome> => {
    const body = buildMultipart([bytes]);
    const res = await httpRequest(`${root}/studies`, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${body.boundary}`, 'Content-Length': body.body.length, Accept: 'application/dicom+json' },
      body: body.body,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    const text = res.body.toString('utf8');
    let stored = 0;
    try {
      const json = JSON.parse(text) as Record<string, { Value?: unknown[] }>;
      stored = json['00081199']?.Value?.length ?? 0;
    } catch {
      /* reported below */
    }
    const ok = res.status === 200 && stored === 1;
    return { ok, status: res.status, error: ok ? undefined : `STOW HTTP ${res.status}, stored ${stored}: ${text.slice(0, 200).replace(/\s+/g, ' ')}` };
  };

  // (1) Seed: every file once, as is.
  const seedStarted = performance.now();
  for (const t of [...corpus.templates.map((t) => t.template), ...corpus.seedOnly]) {
    const out = await stow(t.bytes);
    if (!out.ok) throw new Error(`seeding ${t.label} (${t.file}) failed: ${out.error}`);
    storedCount++;
    remember({ study: t.info.studyInstanceUid, series: t.info.seriesInstanceUid, sop: t.info.sopInstanceUid, frames: t.info.frames }, t.endoscopy, t.info.patientId || undefined);
  }
  log(`seeded ${storedCount} instances in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

  // (2) Measurement state.
  const stats = new Map<string, OpStats>();
  const opStats = (key: string, label: string): OpStats => {
    let s = stats.get(key);
    if (!s) {
      s = { label, latencies: [], count: 0, errors: 0, statuses: new Map(), examples: [], bytes: 0 };
      stats.set(key, s);
    }
    return s;
  };
  // Fixed row order in the table.
  for (const [key, label] of [
    ['stow', 'STOW-RS, 1 instance (new UIDs)'],
    ['qido-study', 'QIDO-RS studies (filters)'],
    ['qido-series', 'QIDO-RS series'],
    ['qido-instance', 'QIDO-RS instances'],
    ['frame-1', 'WADO-RS 1 frame'],
    ['frame-list', 'WADO-RS frame list (2–4)'],
    ['detect', `AI detect, JPEG upload (${MODEL})`],
    ['frame-ai', 'AI detections on a stored frame (SR)'],
  ] as const) {
    opStats(key, label);
  }
  const buckets: Bucket[] = [];
  const samples: RssSample[] = [];
  let loadStart = 0;
  const sample = (): void => {
    const m = readStatus(pid);
    if (m) samples.push({ t: (performance.now() - loadStart) / 1000, ...m, cpuS: cpuSeconds(pid), load1: os.loadavg()[0]! });
  };

  // (3) Operations.
  let patientCounter = 0;
  interface WorkerState {
    rnd: () => number;
    /** Current study/series per template (UID lengths differ per file). */
    ctx: Map<StowTemplate, { study: string; series: string; patientNo: number; n: number }>;
  }
  const templateChoices = corpus.templates.map((t) => ({ weight: t.weight, value: t.template }));

  const ops: Record<Category, (w: WorkerState) => Promise<{ key: string; outcome: Outcome; after?: () => void }>> = {
    stow: async (w) => {
      const t = weighted(templateChoices, w.rnd);
      let c = w.ctx.get(t);
      if (!c || c.n % 8 === 0) c = { study: t.newStudy(), series: t.newSeries(), patientNo: patientCounter++ % 500, n: 0 };
      else if (c.n % 4 === 0) c.series = t.newSeries();
      c.n++;
      w.ctx.set(t, c);
      const inst = t.instance(c.study, c.series, c.patientNo);
      const outcome = await stow(inst.bytes);
      const ref = { study: c.study, series: c.series, sop: inst.sopInstanceUid, frames: t.info.frames };
      return {
        key: 'stow',
        outcome: { ...outcome, bytes: inst.bytes.length },
        after: () => {
          if (outcome.ok) {
            storedCount++;
            remember(ref, t.endoscopy, inst.patientId, c.patientNo);
          }
        },
      };
    },
    qido: async (w) => {
      const s = studies.pick(w.rnd)!;
      const r = w.rnd();
      let key: string;
      let url: string;
      if (r < 0.5) {
        key = 'qido-study';
        const variants = [
          () => (patients.length ? `studies?PatientID=${encodeURIComponent(patients[Math.floor(w.rnd() * patients.length)]!)}` : 'studies?limit=10'),
          () => `studies?PatientName=SOAK${String(Math.floor(w.rnd() * 50)).padStart(5, '0')}*&limit=100`,
          () => 'studies?StudyDate=19900101-20241231&limit=100&includefield=NumberOfStudyRelatedInstances',
          () => `studies?ModalitiesInStudy=${['ES', 'CT', 'MR', 'SM'][Math.floor(w.rnd() * 4)]}&limit=25`,
          () => `studies?limit=25&offset=${Math.floor(w.rnd() * studyUids.size)}`,
          () => `studies?StudyInstanceUID=${s.study}`,
        ];
        url = variants[Math.floor(w.rnd() * variants.length)]!();
      } else if (r < 0.75) {
        key = 'qido-series';
        url = w.rnd() < 0.6 ? `studies/${s.study}/series` : `series?Modality=${['ES', 'CT', 'MR', 'SM'][Math.floor(w.rnd() * 4)]}&limit=50`;
      } else {
        key = 'qido-instance';
        url = w.rnd() < 0.6 ? `studies/${s.study}/series/${s.series}/instances` : `studies/${s.study}/instances?limit=100`;
      }
      const res = await httpRequest(`${root}/${url}`, { headers: { Accept: 'application/dicom+json' }, timeoutMs: REQUEST_TIMEOUT_MS });
      let ok = res.status === 204 || res.status === 200;
      let error = ok ? undefined : `HTTP ${res.status} for ${url.split('?')[0]}: ${res.body.toString('utf8').slice(0, 200)}`;
      if (res.status === 200) {
        try {
          if (!Array.isArray(JSON.parse(res.body.toString('utf8')))) throw new Error('not an array');
        } catch (err) {
          ok = false;
          error = `QIDO answer not a JSON array (${(err as Error).message})`;
        }
      }
      return { key, outcome: { ok, status: res.status, bytes: res.body.length, error } };
    },
    frames: async (w) => {
      const list = w.rnd() < 0.35 && multiFrame.size > 0;
      const ref = (list ? multiFrame : instances).pick(w.rnd)!;
      const wanted = new Set<number>();
      const n = list ? Math.min(ref.frames, 2 + Math.floor(w.rnd() * 3)) : 1;
      while (wanted.size < n) wanted.add(1 + Math.floor(w.rnd() * ref.frames));
      const url = `${root}/studies/${ref.study}/series/${ref.series}/instances/${ref.sop}/frames/${[...wanted].join(',')}`;
      const res = await httpRequest(url, { headers: { Accept: ACCEPT_FRAMES }, timeoutMs: REQUEST_TIMEOUT_MS });
      const parts = res.status === 200 ? (parseMultipart(String(res.headers['content-type'] ?? ''), res.body)?.parts ?? 0) : 0;
      const ok = res.status === 200 && parts === n;
      return {
        key: list ? 'frame-list' : 'frame-1',
        outcome: { ok, status: res.status, bytes: res.body.length, error: ok ? undefined : `frames HTTP ${res.status}, ${parts}/${n} parts: ${res.status === 200 ? '' : res.body.toString('utf8').slice(0, 200)}` },
      };
    },
    detect: async (w) => {
      const jpeg = corpus.jpegs[Math.floor(w.rnd() * corpus.jpegs.length)]!;
      const res = await httpRequest(`${base}/ai/models/${MODEL}/detect`, {
        method: 'POST',
        headers: { 'Content-Type': 'image/jpeg', 'Content-Length': jpeg.length, Accept: 'application/json' },
        body: jpeg,
        timeoutMs: REQUEST_TIMEOUT_MS,
      });
      let ok = res.status === 200;
      let error = ok ? undefined : `detect HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`;
      if (ok) {
        try {
          if (!Array.isArray((JSON.parse(res.body.toString('utf8')) as { detections?: unknown }).detections)) throw new Error('no detections array');
        } catch (err) {
          ok = false;
          error = `detect answer: ${(err as Error).message}`;
        }
      }
      return { key: 'detect', outcome: { ok, status: res.status, bytes: res.body.length, error } };
    },
    'frame-ai': async (w) => {
      const ref = pendingAi.pop() ?? endoscopyAll.pick(w.rnd)!;
      const url = `${base}/ai/studies/${ref.study}/series/${ref.series}/instances/${ref.sop}/frames/1/detections?model=${MODEL}`;
      const res = await httpRequest(url, { method: 'POST', headers: { Accept: 'application/json' }, timeoutMs: REQUEST_TIMEOUT_MS });
      const ok = res.status === 201 || res.status === 200;
      return {
        key: 'frame-ai',
        outcome: { ok, status: res.status, bytes: res.body.length, error: ok ? undefined : `frame detections HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}` },
        after: () => {
          if (res.status === 201) reportsCreated++;
        },
      };
    },
  };
  const categoryChoices = CATEGORIES.filter((c) => opts.mix[c] > 0).map((c) => ({ weight: opts.mix[c], value: c }));

  // (4) Load.
  const durationMs = opts.durationS * 1000;
  const cpuBefore = cpuSeconds(pid);
  const clientCpuBefore = process.cpuUsage();
  const loadAvgBefore = os.loadavg();
  const startedAt = new Date();
  loadStart = performance.now();
  sample();
  const sampler = setInterval(sample, opts.sampleS * 1000);
  let lastProgress = 0;
  let stop = false;
  const worker = async (id: number): Promise<void> => {
    const w: WorkerState = { rnd: rng(0x5eed + id * 7919), ctx: new Map() };
    while (!stop && !run.interrupted) {
      const elapsed = performance.now() - loadStart;
      if (elapsed >= durationMs) break;
      const category = weighted(categoryChoices, w.rnd);
      const started = performance.now();
      let key = category as string;
      let outcome: Outcome;
      let after: (() => void) | undefined;
      try {
        const r = await ops[category](w);
        key = r.key;
        outcome = r.outcome;
        after = r.after;
      } catch (err) {
        // Network errors (reset, refused, timeout) and client-side failures.
        if (category === 'frames') key = 'frame-1';
        if (category === 'qido') key = 'qido-study';
        outcome = { ok: false, status: 0, error: `${category}: ${(err as Error).message}` };
      }
      const latency = performance.now() - started;
      const s = opStats(key, key);
      s.count++;
      s.latencies.push(latency);
      s.bytes += outcome.bytes ?? 0;
      const statusKey = outcome.status === 0 ? 'network' : String(outcome.status);
      s.statuses.set(statusKey, (s.statuses.get(statusKey) ?? 0) + 1);
      const b = Math.floor((started - loadStart) / (opts.bucketS * 1000));
      const bucket = (buckets[b] ??= { latencies: [], errors: 0 });
      bucket.latencies.push(latency);
      if (!outcome.ok) {
        s.errors++;
        bucket.errors++;
        if (s.examples.length < 5) {
          s.examples.push(outcome.error ?? `HTTP ${outcome.status}`);
          log(`ERROR ${key}: ${outcome.error ?? outcome.status}`);
        }
      }
      after?.();
      if (!server.alive()) {
        stop = true;
        log(`the server died:\n${server.logTail()}`);
      }
      const now = performance.now() - loadStart;
      if (id === 0 && now - lastProgress >= 30_000) {
        lastProgress = now;
        const total = [...stats.values()].reduce((n, x) => n + x.count, 0);
        const errors = [...stats.values()].reduce((n, x) => n + x.errors, 0);
        const last = samples[samples.length - 1];
        log(`${(now / 1000).toFixed(0)} s: ${total} requests, ${errors} errors, ${storedCount} instances stored, RSS ${last ? mib(last.rss) : '?'} MiB`);
      }
    }
  };
  log(`load: ${opts.concurrency} workers for ${opts.durationS} s, mix ${CATEGORIES.map((c) => `${c}=${opts.mix[c]}`).join(',')}`);
  await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => worker(i)));
  const loadMs = performance.now() - loadStart;
  clearInterval(sampler);
  sample();
  const cpuDuring = cpuSeconds(pid) - cpuBefore;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const clientCpuS = (clientCpu.user + clientCpu.system) / 1e6;
  const loadAvgAfter = os.loadavg();
  if (run.interrupted) return 130;

  // (5) Consistency: does the index hold every instance stored?
  let indexed = 0;
  let verifyError: string | undefined;
  const died = !server.alive();
  if (!died) {
    try {
      for (let offset = 0; ; offset += 1000) {
        const res = await httpRequest(`${root}/studies?limit=1000&offset=${offset}&includefield=NumberOfStudyRelatedInstances`, { headers: { Accept: 'application/dicom+json' }, timeoutMs: 120_000 });
        if (res.status === 204) break;
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const page = JSON.parse(res.body.toString('utf8')) as Array<Record<string, { Value?: unknown[] }>>;
        for (const study of page) indexed += Number(study['00201208']?.Value?.[0] ?? 0);
        if (page.length < 1000) break;
      }
    } catch (err) {
      verifyError = (err as Error).message;
    }
  }
  const expected = storedCount + reportsCreated;
  const dataBytes = directoryBytes(workDir);
  const logTail = server.logTail();
  await run.cleanup(false);
  const logCopy = path.join(benchDir, 'soak-ours.log');
  fs.mkdirSync(benchDir, { recursive: true });
  if (fs.existsSync(path.join(workDir, 'ours.log'))) fs.copyFileSync(path.join(workDir, 'ours.log'), logCopy);
  await run.cleanup();

  // (6) Report.
  const all = [...stats.values()];
  const totalCount = all.reduce((n, s) => n + s.count, 0);
  const totalErrors = all.reduce((n, s) => n + s.errors, 0);
  const allLatencies = all.flatMap((s) => s.latencies);
  const loadS = loadMs / 1000;
  const opRows = all.map((s) => {
    const statuses = [...s.statuses].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(', ');
    return `| ${s.label} | ${s.count} | ${(s.count / loadS).toFixed(1)} | ${s.errors} | ${ms(percentile(s.latencies, 50))} | ${ms(percentile(s.latencies, 99))} | ${ms(s.latencies.reduce((m, v) => Math.max(m, v), Number.NEGATIVE_INFINITY))} | ${statuses || '–'} |`;
  });

  const bucketRows = buckets.map((b, i) => {
    const from = i * opts.bucketS;
    const to = from + opts.bucketS;
    const inBucket = samples.filter((x) => x.t >= from && x.t < to);
    const rss = inBucket.map((x) => x.rss);
    const cpu = inBucket.length >= 2 ? (100 * (inBucket[inBucket.length - 1]!.cpuS - inBucket[0]!.cpuS)) / (inBucket[inBucket.length - 1]!.t - inBucket[0]!.t) : Number.NaN;
    return `| ${from}–${Math.min(to, Math.round(loadS))} s | ${b.latencies.length} | ${b.errors} | ${ms(percentile(b.latencies, 50))} | ${ms(percentile(b.latencies, 99))} | ${rss.length ? `${mib(Math.min(...rss))} / ${mib(Math.max(...rss))} / ${mib(rss[rss.length - 1]!)}` : 'n/a'} | ${inBucket.length ? mib(inBucket[inBucket.length - 1]!.anon) : 'n/a'} | ${Number.isFinite(cpu) ? cpu.toFixed(0) : 'n/a'} | ${inBucket.length ? inBucket[inBucket.length - 1]!.load1.toFixed(1) : 'n/a'} |`;
  });

  // RSS growth: the first bucket is warm-up (JIT, caches, onnxruntime arenas); the slope is fitted on
  // the samples after it, and the last bucket is compared with the second.
  const first = samples[0];
  const peak = samples.reduce((m, x) => Math.max(m, x.rss), 0);
  const lastSample = samples[samples.length - 1];
  const steady = samples.filter((x) => x.t >= opts.bucketS);
  const slopeMiBPerMin = slope(steady.map((x) => x.t / 60), steady.map((x) => x.rss / MiB));
  const anonSlope = slope(steady.map((x) => x.t / 60), steady.map((x) => x.anon / MiB));
  const medianOf = (xs: RssSample[]) => percentile(xs.map((x) => x.rss), 50);
  const nBuckets = Math.ceil(loadS / opts.bucketS - 1e-9);
  // The floor (lowest sample of each period after the first) ignores the garbage-collection saw-tooth
  // and the buffers of the requests in flight: what stays resident.
  const floors: Array<{ tMin: number; rss: number }> = [];
  for (let i = 1; i < nBuckets; i++) {
    const inBucket = samples.filter((x) => x.t >= i * opts.bucketS && x.t < (i + 1) * opts.bucketS);
    if (inBucket.length) floors.push({ tMin: ((i + 0.5) * opts.bucketS) / 60, rss: Math.min(...inBucket.map((x) => x.rss)) / MiB });
  }
  const floorSlope = slope(floors.map((f) => f.tMin), floors.map((f) => f.rss));
  const second = samples.filter((x) => x.t >= opts.bucketS && x.t < 2 * opts.bucketS);
  const lastB = samples.filter((x) => x.t >= (nBuckets - 1) * opts.bucketS);
  const secondMedian = medianOf(second);
  const lastMedian = medianOf(lastB);
  const change = (lastMedian - secondMedian) / secondMedian;
  let verdict: string;
  if (nBuckets < 3 || steady.length < 6) {
    verdict = `too short to judge growth (${nBuckets} period(s) of ${opts.bucketS} s; needs ≥ 3)`;
  } else if (floorSlope > 1 && change > 0.05) {
    verdict = `**GROWING**: the per-period floor rises ${floorSlope.toFixed(2)} MiB/min after warm-up (all samples: ${slopeMiBPerMin.toFixed(2)} MiB/min), last period's median ${(100 * change).toFixed(1)} % above the second's`;
  } else {
    verdict = `no sustained growth: per-period floor ${floorSlope.toFixed(2)} MiB/min after warm-up (all samples: ${slopeMiBPerMin.toFixed(2)} MiB/min; threshold 1 MiB/min with > 5 % rise), last period's median ${change >= 0 ? '+' : ''}${(100 * change).toFixed(1)} % vs the second's`;
  }

  let revision = 'working tree';
  try {
    revision = (await import('node:child_process')).execFileSync('git', ['describe', '--always', '--dirty'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  const problems: string[] = [];
  if (died) problems.push(`the server process died during the run; last output:\n${logTail}`);
  if (verifyError) problems.push(`index count check failed: ${verifyError}`);
  else if (!died && indexed !== expected) {
    // A request the client gave up on (timeout, reset) may still have been stored by the server.
    const unknown = (stats.get('stow')?.statuses.get('network') ?? 0) + (stats.get('frame-ai')?.statuses.get('network') ?? 0);
    problems.push(`index holds ${indexed} instances, expected ${expected} (${storedCount} stored + ${reportsCreated} SR reports)${unknown ? `; ${unknown} STOW / frame-AI request(s) ended without an answer and may or may not have been stored` : ''}`);
  }
  for (const s of all) for (const e of s.examples) problems.push(`${s.label}: ${e}`);

  const md = [
    `# Soak benchmark: ${opts.durationS} s at concurrency ${opts.concurrency}`,
    '',
    `Run ${startedAt.toISOString()}, load ${loadS.toFixed(0)} s; our server at git ${revision} (tsx, fs blob store + SQLite in a temp dir, AI on: bundled models, CPU).`,
    '',
    ...machineInfo().map((l) => `- ${l}`),
    `- load average (1/5/15 min) before ${loadAvgBefore.map((v) => v.toFixed(2)).join(' / ')}, after ${loadAvgAfter.map((v) => v.toFixed(2)).join(' / ')}; client and server share the machine`,
    `- mix (relative weights): ${CATEGORIES.map((c) => `${c} ${opts.mix[c]}`).join(', ')}; seed ${corpus.templates.length + corpus.seedOnly.length} instances`,
    '',
    '## Operations',
    '',
    `${totalCount} requests (${(totalCount / loadS).toFixed(1)}/s), **${totalErrors} errors**; all operations: p50 ${ms(percentile(allLatencies, 50))} ms, p99 ${ms(percentile(allLatencies, 99))} ms. Latency: request start to last response byte, client-side, with ${opts.concurrency} requests in flight.`,
    '',
    '| operation | count | per s | errors | p50 ms | p99 ms | max ms | statuses |',
    '|---|---|---|---|---|---|---|---|',
    ...opRows,
    '',
    `Stored during the load: ${storedCount - (corpus.templates.length + corpus.seedOnly.length)} instances by STOW-RS and ${reportsCreated} detection SRs; data dir ${formatBytes(dataBytes)} at the end. Index check (QIDO, sum of NumberOfStudyRelatedInstances): ${verifyError ? `failed (${verifyError})` : died ? 'not run (server died)' : `${indexed} instances, expected ${expected}: ${indexed === expected ? 'match' : '**MISMATCH**'}`}.`,
    '',
    '## Over time',
    '',
    `RSS of the server process (VmRSS from /proc every ${opts.sampleS} s), MiB; server CPU in % of one core; load avg: the machine's 1-minute load average at the end of the period (2 cores; other work on the machine shows here).`,
    '',
    '| period | requests | errors | p50 ms | p99 ms | RSS min / max / last | RssAnon last | server CPU % | load avg |',
    '|---|---|---|---|---|---|---|---|---|',
    ...bucketRows,
    '',
    `RSS: first ${first ? mib(first.rss) : 'n/a'} MiB (after seeding, before load), peak ${mib(peak)} MiB, last ${lastSample ? mib(lastSample.rss) : 'n/a'} MiB; VmHWM ${lastSample ? mib(lastSample.hwm) : 'n/a'} MiB. Linear slope after the first ${opts.bucketS} s: ${slopeMiBPerMin.toFixed(2)} MiB/min over all samples (RssAnon ${anonSlope.toFixed(2)} MiB/min), ${floorSlope.toFixed(2)} MiB/min over the per-period minima. Server CPU ${cpuDuring.toFixed(0)} s and load client (this script) CPU ${clientCpuS.toFixed(0)} s over ${loadS.toFixed(0)} s.`,
    '',
    `Verdict: ${verdict}.`,
    '',
    '## Problems seen',
    '',
    ...(problems.length ? problems.map((p) => `- ${p.replace(/\n/g, '\n  ')}`) : ['- none']),
    '',
  ].join('\n');
  process.stdout.write(`${md}\n`);
  fs.writeFileSync(path.join(benchDir, 'soak-results.md'), md);
  log(`report written to .bench/soak-results.md; server log in ${path.relative(repoRoot, logCopy)}`);

  if (opts.json) {
    const json = {
      startedAt: startedAt.toISOString(),
      revision,
      machine: machineInfo(),
      options: opts,
      loadSeconds: loadS,
      totals: { requests: totalCount, errors: totalErrors, p50Ms: percentile(allLatencies, 50), p99Ms: percentile(allLatencies, 99) },
      operations: Object.fromEntries(
        [...stats].map(([k, s]) => [
          k,
          { label: s.label, count: s.count, errors: s.errors, p50Ms: percentile(s.latencies, 50), p99Ms: percentile(s.latencies, 99), maxMs: s.latencies.reduce((m, v) => Math.max(m, v), 0), statuses: Object.fromEntries(s.statuses), examples: s.examples },
        ]),
      ),
      buckets: buckets.map((b, i) => ({ fromS: i * opts.bucketS, requests: b.latencies.length, errors: b.errors, p50Ms: percentile(b.latencies, 50), p99Ms: percentile(b.latencies, 99) })),
      rss: {
        samples: samples.map((x) => ({ t: Number(x.t.toFixed(1)), rssMiB: x.rss / MiB, anonMiB: x.anon / MiB, fileMiB: x.file / MiB, cpuS: x.cpuS, load1: x.load1 })),
        firstMiB: first ? first.rss / MiB : null,
        peakMiB: peak / MiB,
        lastMiB: lastSample ? lastSample.rss / MiB : null,
        slopeMiBPerMin: slopeMiBPerMin,
        floorSlopeMiBPerMin: floorSlope,
        floors,
        anonSlopeMiBPerMin: anonSlope,
        secondPeriodMedianMiB: secondMedian / MiB,
        lastPeriodMedianMiB: lastMedian / MiB,
        verdict,
      },
      stored: { instances: storedCount, reportsCreated, indexed, verifyError, dataBytes },
      serverDied: died,
      cpuSeconds: { server: cpuDuring, client: clientCpuS },
    };
    fs.writeFileSync(opts.json, `${JSON.stringify(json, null, 2)}\n`);
    log(`JSON written to ${opts.json}`);
  }
  return totalErrors > 0 || problems.length > 0 ? 1 : 0;
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch((err: unknown) => {
    process.stderr.write(`\nsoak benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => run.cleanup());
