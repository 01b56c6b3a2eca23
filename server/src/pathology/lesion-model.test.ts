/**
 * The shipped colon-lesion tile classifier (models/manifest.json "lesion-classifier") in real slide
 * jobs on both CMU-1 pyramids (TILED_FULL from wsi2dcm, TILED_SPARSE from Orthanc WSI), through the
 * HTTP API: the job picks the level nearest the model's 1 µm/px (level 1 of both, about 0.998 µm/px) and
 * classifies 224-pixel windows side by side, then stores the neoplastic regions as POLYGON annotations
 * in a Microscopy Bulk Simple Annotations instance that dciodvfy finds no error in, and serves them as
 * GeoJSON. CMU-1 is skin, not colon: there is no ground truth here, and the test does not judge the
 * regions' correctness (models/lesion-classifier.md has the model's accuracy, reproduced over HTTP by
 * `npm run eval:lesion`). A second job per slide, with the operating threshold at 0 (a copy of the
 * manifest), makes every tissue window positive, so the POLYGON encoding of many regions is checked
 * whatever the model says of skin.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR } from '../config.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance, stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { binaryReport, confusionMatrix, rocAuc } from '../../../scripts/eval/classification-metrics.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { readAnnotationInstance } from './annotations/ann-reader.js';
import { MICROSCOPY_BULK_SIMPLE_ANNOTATIONS } from './annotations/codes.js';

dcmjs.log.setLevel('silent');
requireDciodvfy();

const PYRAMIDS = ['tiled-full-gcp-wsi2dcm', 'tiled-sparse-orthanc-wsi'] as const;
const MODEL = 'lesion-classifier';

interface Slide {
  study: string;
  series: string;
  baseSop: string;
  width: number;
  height: number;
}

async function loadPyramid(name: string): Promise<{ files: Buffer[]; slide: Slide }> {
  const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', name);
  const files = await Promise.all((await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort().map((n) => readFile(path.join(folder, n))));
  let slide: Slide | undefined;
  for (const bytes of files) {
    const d = describeInstance(bytes);
    const width = Number(d.dict['00480006']?.Value?.[0]);
    if (slide === undefined || width > slide.width) slide = { study: d.study, series: d.series, baseSop: d.sop, width, height: Number(d.dict['00480007']?.Value?.[0]) };
  }
  return { files, slide: slide! };
}

/** Runs a job to its end; the job as GET /ai/analyses/{id} answers. */
async function analyse(t: TestApp, slide: Slide): Promise<any> {
  const created = await t.app.inject({ method: 'POST', url: `/ai/studies/${slide.study}/series/${slide.series}/analyses`, payload: { model: MODEL } });
  expect(created.statusCode, created.body).toBe(202);
  const id = created.json().id as string;
  for (let i = 0; i < 1200; i += 1) {
    const job = (await t.app.inject({ url: `/ai/analyses/${id}` })).json();
    if (['completed', 'failed', 'cancelled'].includes(job.state)) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not end`);
}

/** The job's Bulk Annotations instance (WADO-RS, Part 10 bytes). */
async function annotationsOf(t: TestApp, job: any): Promise<Buffer> {
  const wado = await t.app.inject({
    url: job.links.annotations.replace(/^https?:\/\/[^/]+/, ''),
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  expect(wado.statusCode).toBe(200);
  return splitMultipart(wado.rawPayload, wado.headers['content-type'])[0]!.body;
}

let work: string;

/** Checks one POLYGON group of the lesion classifier and returns its rings. */
function checkPolygons(part10: Buffer, slide: Slide): Float32Array[] {
  const ann = readAnnotationInstance(part10);
  expect(ann.sopClassUid).toBe(MICROSCOPY_BULK_SIMPLE_ANNOTATIONS);
  expect(ann.referencedImage?.sopInstanceUid).toBe(slide.baseSop);
  expect(ann.groups).toHaveLength(1);
  const group = ann.groups[0]!;
  expect(group).toMatchObject({ number: 1, label: 'neoplastic', graphicType: 'POLYGON', generationType: 'AUTOMATIC', algorithmName: MODEL, algorithmVersion: shippedVersion });
  expect(group.pointIndex).toHaveLength(group.count);
  const rings: Float32Array[] = [];
  for (let i = 0; i < group.count; i += 1) {
    const end = i + 1 < group.count ? group.pointIndex![i + 1]! - 1 : group.points.length;
    const ring = group.points.subarray(group.pointIndex![i]! - 1, end);
    expect(ring.length).toBeGreaterThanOrEqual(8); // at least one window's four corners
    for (let k = 0; k < ring.length; k += 2) expect(ring[k]! >= 0 && ring[k]! <= slide.width && ring[k + 1]! >= 0 && ring[k + 1]! <= slide.height, `${ring[k]},${ring[k + 1]}`).toBe(true);
    rings.push(ring);
  }
  expect(group.scores).toHaveLength(group.count);
  return rings;
}

const loaded: Record<string, { files: Buffer[]; slide: Slide }> = {};
let shipped: TestApp;
let allPositive: TestApp;
let thresholdZeroDir: string;
/** The shipped version (models/manifest.json): a retrained model changes it, not these tests. */
let shippedVersion: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lesion-model-'));
  // The shipped manifest with the lesion classifier's operating threshold at 0 (every window positive).
  thresholdZeroDir = path.join(work, 'models');
  await cp(BUNDLED_MODELS_DIR, thresholdZeroDir, { recursive: true, filter: (src) => !src.endsWith('.md') });
  const manifest = JSON.parse(await readFile(path.join(BUNDLED_MODELS_DIR, 'manifest.json'), 'utf8'));
  shippedVersion = manifest.models.find((m: { id: string }) => m.id === MODEL).version;
  manifest.models = manifest.models.filter((m: { id: string }) => m.id === MODEL).map((m: object) => ({ ...m, operatingThreshold: 0 }));
  await writeFile(path.join(thresholdZeroDir, 'manifest.json'), JSON.stringify(manifest));
  shipped = await buildTestApp({ PACS_MODELS_DIR: BUNDLED_MODELS_DIR });
  allPositive = await buildTestApp({ PACS_MODELS_DIR: thresholdZeroDir });
  for (const name of PYRAMIDS) {
    loaded[name] = await loadPyramid(name);
    for (const t of [shipped, allPositive]) expect((await stow(t.app, loaded[name]!.files)).statusCode, name).toBe(200);
  }
}, 120_000);

afterAll(async () => {
  await shipped?.close();
  await allPositive?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the lesion classifier is offered for slides', () => {
  it('GET /ai/models lists it as a tile classifier with its training resolution, labels and licence', async () => {
    const res = await shipped.app.inject({ url: `/ai/models/${MODEL}` });
    expect(res.statusCode).toBe(200);
    const model = res.json();
    expect(model).toMatchObject({
      task: 'classification',
      version: shippedVersion,
      labels: ['normal', 'polyp', 'low_grade_in', 'high_grade_in', 'serrated_adenoma', 'adenocarcinoma'],
      input: { width: 224, height: 224, pixelSpacingMm: 0.001 },
      output: { format: 'class-probabilities', positiveLabels: ['low_grade_in', 'high_grade_in', 'serrated_adenoma', 'adenocarcinoma'], regionLabel: 'neoplastic' },
    });
    expect(model.licence).toMatch(/CC BY 4\.0/);
    expect(model.licence).toMatch(/EBHI-Seg/);
  });
});

describe('the model card, reproduced through the HTTP API from the committed .onnx', () => {
  it('classifies the 94 EBHI-Seg test images (POST /ai/models/lesion-classifier/classify) to the manifest\'s AUCs and confusion matrix', async () => {
    const ebhi = path.join(sharedDataDir, 'histo-ebhi-seg-colon');
    const [header, ...rows] = (await readFile(path.join(ebhi, 'index.csv'), 'utf8')).trim().split('\n').map((l) => l.split(','));
    const col = (n: string) => header!.indexOf(n);
    const test = rows.filter((r) => r[col('split')] === 'test');
    expect(test).toHaveLength(94);
    const manifest = JSON.parse(await readFile(path.join(BUNDLED_MODELS_DIR, 'manifest.json'), 'utf8'));
    const entry = manifest.models.find((m: { id: string }) => m.id === MODEL);
    const labels: string[] = entry.labels;
    const neoplastic = new Set((entry.output.positiveLabels as string[]).map((l) => labels.indexOf(l)));
    const truth: number[] = [];
    const probabilities: number[][] = [];
    const scores: number[] = [];
    for (const r of test) {
      const res = await shipped.app.inject({ method: 'POST', url: `/ai/models/${MODEL}/classify`, headers: { 'content-type': 'image/png' }, payload: await readFile(path.join(ebhi, r[col('image')]!)) });
      expect(res.statusCode).toBe(200);
      truth.push(labels.indexOf(r[col('class')]!));
      probabilities.push(res.json().probabilities);
      scores.push(res.json().positiveScore);
    }
    const isNeoplastic = truth.map((k) => neoplastic.has(k));
    const both = binaryReport(scores, isNeoplastic, entry.operatingThreshold);
    expect(both.auc).toBeCloseTo(entry.metrics.nonNeoplasticVsNeoplastic.auc, 3);
    expect([both.tp, both.fn, both.tn, both.fp]).toEqual(['tp', 'fn', 'tn', 'fp'].map((k) => entry.metrics.nonNeoplasticVsNeoplastic[k]));
    const strict = truth.map((k, i) => (k === 0 || neoplastic.has(k) ? i : -1)).filter((i) => i >= 0);
    expect(rocAuc(strict.map((i) => scores[i]!), strict.map((i) => isNeoplastic[i]!))).toBeCloseTo(entry.metrics.normalVsNeoplastic.auc, 3);
    expect(confusionMatrix(probabilities, truth, labels.length)).toEqual(entry.metrics.confusionRowsTrueColsPred);
  }, 120_000);
});

describe.each(PYRAMIDS)('the lesion classifier on the CMU-1 %s pyramid', (name) => {
  it('completes at level 1 (about 1 µm/px) with 224-pixel windows side by side and stores POLYGON regions that dciodvfy accepts', async () => {
    const { slide } = loaded[name]!;
    const job = await analyse(shipped, slide);
    expect(job.state, job.reason).toBe('completed');
    expect(job.model).toEqual({ id: MODEL, version: shippedVersion });
    expect(job.level).toMatchObject({ index: 1, windowSize: 224, overlap: 0 });
    expect(job.level.spacingMm).toBeCloseTo(0.001, 4);
    // Level 1 is 1110 × 1483 (1484 for Orthanc's rounding): 5 × 7 windows, glass ones skipped.
    expect(job.progress.tilesTotal + job.progress.tilesSkippedAsBackground).toBe(35);
    expect(job.progress.tilesTotal).toBeGreaterThan(10);
    const part10 = await annotationsOf(shipped, job);
    const rings = checkPolygons(part10, slide);
    const ann = readAnnotationInstance(part10);
    expect([...ann.groups[0]!.measurements['Number of tiles']!].reduce((a, b) => a + b, 0)).toBe(job.progress.annotations);
    for (const score of ann.groups[0]!.scores) expect(score).toBeGreaterThanOrEqual(0.5);
    expect(rings.length).toBe(ann.groups[0]!.count);
    if (rings.length > 0) expect(await dciodvfyErrors(part10, `${name}-shipped.dcm`)).toEqual([]);

    const geo = (await shipped.app.inject({ url: `/ai/analyses/${job.id}/result` })).json();
    expect(geo.features.length).toBe(rings.length);
    for (const f of geo.features) {
      expect(f.geometry.type).toBe('Polygon');
      expect(f.properties.label).toBe('neoplastic');
    }
  }, 180_000);

  it('with the operating threshold at 0, every tissue window is in a region: POLYGONs cover them all, dciodvfy finds no error', async () => {
    const { slide } = loaded[name]!;
    const job = await analyse(allPositive, slide);
    expect(job.state, job.reason).toBe('completed');
    expect(job.progress.annotations).toBe(job.progress.tilesTotal);
    const part10 = await annotationsOf(allPositive, job);
    const rings = checkPolygons(part10, slide);
    expect(rings.length).toBeGreaterThan(0);
    const ann = readAnnotationInstance(part10);
    expect([...ann.groups[0]!.measurements['Number of tiles']!].reduce((a, b) => a + b, 0)).toBe(job.progress.tilesTotal);
    expect(await dciodvfyErrors(part10, `${name}-all.dcm`)).toEqual([]);
    const metadata = await allPositive.app.inject({ url: `/dicomweb/studies/${slide.study}/series/${job.result.seriesInstanceUid}/metadata` });
    expect(metadata.json()[0]['006A0002'].Value[0]['00700023'].Value).toEqual(['POLYGON']);
  }, 180_000);
});
