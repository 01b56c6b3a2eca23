/**
 * Whole-slide analysis jobs over HTTP with the hand-wired dark-spot model (scripts/make-test-model.py:
 * marks pixels darker than mean RGB 128, trained "at" 0.5 µm/px) on both shared CMU-1 pyramids:
 * TILED_FULL (wsi2dcm) and TILED_SPARSE (Orthanc WSI). Jobs run through the in-process queue.
 */
import { mkdtemp, readdir, readFile, rm, cp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { createServices } from '../services.js';
import { loadConfig } from '../config.js';
import type { BatchRunner } from '../inference/model-queue.js';
import type { InferenceEngine, MaskOutput } from '../inference/inference-engine.js';
import { readAnnotationInstance } from '../pathology/annotations/ann-reader.js';
import { MICROSCOPY_BULK_SIMPLE_ANNOTATIONS } from '../pathology/annotations/codes.js';
import { JobStore } from '../pathology/job-store.js';
import { RegionReader } from '../pathology/region-reader.js';
import { loadSlide } from '../pathology/slide.js';
import { buildTestApp, TEST_MODELS_DIR, type TestApp } from '../test-support/build-test-app.js';
import { newUid } from '../test-support/make-dicom.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance, stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { testLogger } from '../test-support/log-capture.js';

dcmjs.log.setLevel('silent');

const PYRAMIDS = ['tiled-full-gcp-wsi2dcm', 'tiled-sparse-orthanc-wsi'] as const;

interface SlideFiles {
  files: Buffer[];
  study: string;
  series: string;
  baseSop: string;
  frameOfReference: string | undefined;
  width: number;
  height: number;
  sops: string[];
}

async function loadPyramid(name: string): Promise<SlideFiles> {
  const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', name);
  const files: Buffer[] = [];
  let slide: SlideFiles | undefined;
  const sops: string[] = [];
  for (const file of (await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort()) {
    const bytes = await readFile(path.join(folder, file));
    files.push(bytes);
    const d = describeInstance(bytes);
    sops.push(d.sop);
    const width = Number(d.dict['00480006']?.Value?.[0]);
    if (slide === undefined || width > slide.width) {
      slide = {
        files,
        study: d.study,
        series: d.series,
        baseSop: d.sop,
        frameOfReference: d.dict['00200052']?.Value?.[0] as string | undefined,
        width,
        height: Number(d.dict['00480007']?.Value?.[0]),
        sops,
      };
    }
  }
  return slide!;
}

interface SseEvent {
  event: string;
  data: any;
}
function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]!);
      return { event, data };
    });
}

async function waitForState(app: FastifyInstance, id: string, states: string[], timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await app.inject({ url: `/ai/analyses/${id}` })).json();
    if (states.includes(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.state}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Makes every model batch take `ms` longer, so a test can act while a job is mid-way. */
function slowDown(engine: InferenceEngine, ms: number, ids = ['dark-spot']): void {
  for (const id of ids) {
    engine.wrapRunner(
      id,
      (runner): BatchRunner<Buffer, MaskOutput> => ({
        async run(inputs) {
          await new Promise((resolve) => setTimeout(resolve, ms));
          return runner.run(inputs);
        },
      }),
      { maxBatch: 4, queueDepth: 64 },
    );
  }
}

let t: TestApp;
const slides: Record<string, SlideFiles> = {};

beforeAll(async () => {
  t = await buildTestApp({ PACS_JOBS_WINDOWS_PER_UNIT: '8' });
  for (const name of PYRAMIDS) {
    slides[name] = await loadPyramid(name);
    const response = await stow(t.app, slides[name]!.files);
    expect(response.statusCode, name).toBe(200);
  }
}, 120_000);
afterAll(async () => t?.close());

describe.each(PYRAMIDS)('a dark-spot job on the %s pyramid', (name) => {
  let job: any;
  let events: SseEvent[];

  it('answers 202 with a job resource, streams progress events and completes', async () => {
    const slide = slides[name]!;
    const created = await t.app.inject({ method: 'POST', url: `/ai/studies/${slide.study}/series/${slide.series}/analyses`, payload: { model: 'dark-spot' } });
    expect(created.statusCode, created.body).toBe(202);
    const body = created.json();
    expect(created.headers['location']).toMatch(new RegExp(`/ai/analyses/${body.id}$`));
    expect(body).toMatchObject({ created: true, model: { id: 'dark-spot', version: '1.0.0' }, seriesInstanceUid: slide.series });
    expect(['queued', 'running']).toContain(body.state);

    // The event stream ends once the job has ended.
    const stream = await t.app.inject({ url: `/ai/analyses/${body.id}/events` });
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    events = parseSse(stream.body);
    const progress = events.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(events[events.length - 1]!.event).toBe('completed');
    const done = progress.map((e) => e.data.progress.tilesDone as number);
    expect([...done].sort((a, b) => a - b)).toEqual(done); // never goes back

    job = (await t.app.inject({ url: `/ai/analyses/${body.id}` })).json();
    expect(job.state).toBe('completed');
    expect(job.progress.unitsDone).toBe(job.progress.unitsTotal);
    expect(job.progress.tilesDone).toBe(job.progress.tilesTotal);
    expect(job.progress.tilesTotal).toBeGreaterThan(10);
    expect(job.progress.annotations).toBeGreaterThan(0);
    expect(job.progress.fraction).toBe(1);
    expect(job.elapsedMs).toBeGreaterThan(0);
    expect(job.estimatedRemainingMs).toBe(0);
    // The slide is 0.499 µm/px at its base; the model wants 0.5 µm/px: the base level, 256-pixel windows.
    expect(job.level).toMatchObject({ index: 0, windowSize: 256 });
    expect(job.level.spacingMm).toBeCloseTo(0.000499, 5);
    expect(job.result.sopInstanceUid).toMatch(/^2\.25\./);
  });

  it('stores one Microscopy Bulk Simple Annotations instance, found by QIDO-RS, served by WADO-RS, parsed back by dcmjs', async () => {
    const slide = slides[name]!;
    const qido = await t.app.inject({ url: `/dicomweb/studies/${slide.study}/series?Modality=ANN` });
    expect(qido.statusCode).toBe(200);
    const series = (qido.json() as Array<Record<string, { Value?: unknown[] }>>).map((s) => s['0020000E']?.Value?.[0]);
    expect(series).toContain(job.result.seriesInstanceUid);

    const wado = await t.app.inject({
      url: job.links.annotations.replace(/^https?:\/\/[^/]+/, ''),
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(wado.statusCode).toBe(200);
    const [part] = splitMultipart(wado.rawPayload, wado.headers['content-type']);
    const ann = readAnnotationInstance(part!.body);
    expect(ann.sopClassUid).toBe(MICROSCOPY_BULK_SIMPLE_ANNOTATIONS);
    expect(ann.studyInstanceUid).toBe(slide.study);
    expect(ann.seriesInstanceUid).toBe(job.result.seriesInstanceUid);
    expect(ann.seriesInstanceUid).not.toBe(slide.series);
    expect(ann.coordinateType).toBe('2D');
    expect(ann.referencedImage?.sopInstanceUid).toBe(slide.baseSop);
    expect(ann.referencedSeries).toHaveLength(1);
    expect(ann.referencedSeries[0]!.seriesInstanceUid).toBe(slide.series);
    expect([...ann.referencedSeries[0]!.instances].sort()).toEqual([...slide.sops].sort());
    if (slide.frameOfReference !== undefined) expect(ann.frameOfReferenceUid).toBe(slide.frameOfReference);
    else expect(ann.frameOfReferenceUid).toMatch(/^2\.25\./); // the Orthanc pyramid has none: a derived one

    expect(ann.groups).toHaveLength(1);
    const group = ann.groups[0]!;
    expect(group).toMatchObject({ number: 1, label: 'nucleus', graphicType: 'POINT', generationType: 'AUTOMATIC', algorithmName: 'dark-spot', algorithmVersion: '1.0.0' });
    expect(group.count).toBe(job.progress.annotations);
    expect(group.points.length).toBe(2 * group.count);
    expect(group.scores.length).toBe(group.count);
    for (let i = 0; i < group.count; i += 1) {
      const x = group.points[2 * i]!;
      const y = group.points[2 * i + 1]!;
      expect(x >= 0 && x < slide.width && y >= 0 && y < slide.height, `point ${i}: ${x},${y}`).toBe(true);
      expect(group.scores[i]!).toBeGreaterThanOrEqual(0.5);
    }
    // De-duplication across window borders: no two annotations at the same centre.
    const keys = new Set<string>();
    for (let i = 0; i < group.count; i += 1) keys.add(`${group.points[2 * i]!.toFixed(1)},${group.points[2 * i + 1]!.toFixed(1)}`);
    expect(keys.size).toBe(group.count);
  });

  it('serves the result as GeoJSON in slide pixel coordinates', async () => {
    const res = await t.app.inject({ url: `/ai/analyses/${job.id}/result` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/geo\+json/);
    const geo = res.json();
    expect(geo.type).toBe('FeatureCollection');
    expect(geo.features).toHaveLength(job.progress.annotations);
    const feature = geo.features[0];
    expect(feature.geometry.type).toBe('Point');
    expect(feature.properties.label).toBe('nucleus');
    const [x0, y0, x1, y1] = feature.properties.box;
    const [x, y] = feature.geometry.coordinates;
    expect(x).toBeGreaterThanOrEqual(x0 - 0.01);
    expect(x).toBeLessThanOrEqual(x1 + 0.01);
    expect(y).toBeGreaterThanOrEqual(y0 - 0.01);
    expect(y).toBeLessThanOrEqual(y1 + 0.01);
  });

  it('returns the existing result for the same model and version, and recomputes when asked', async () => {
    const slide = slides[name]!;
    const url = `/ai/studies/${slide.study}/series/${slide.series}/analyses`;
    const again = await t.app.inject({ method: 'POST', url, payload: { model: 'dark-spot' } });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ created: false, id: job.id, state: 'completed' });
    const fresh = await t.app.inject({ method: 'POST', url: `${url}?recompute=true`, payload: { model: 'dark-spot' } });
    expect(fresh.statusCode).toBe(202);
    expect(fresh.json().id).not.toBe(job.id);
    const recomputed = await waitForState(t.app, fresh.json().id, ['completed', 'failed']);
    expect(recomputed.state).toBe('completed');
    // The model is deterministic: the same annotations, in a new instance of a new series.
    expect(recomputed.progress.annotations).toBe(job.progress.annotations);
    expect(recomputed.result.seriesInstanceUid).not.toBe(job.result.seriesInstanceUid);
    const list = (await t.app.inject({ url })).json().analyses;
    expect(list.map((a: any) => a.id)).toEqual(expect.arrayContaining([job.id, fresh.json().id]));
  });
});

/** Ray casting: is (x, y) inside the ring (flat x, y pairs, not closed)? */
function inRing(ring: ArrayLike<number>, x: number, y: number): boolean {
  let inside = false;
  const n = ring.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i, i += 1) {
    const [xi, yi, xj, yj] = [ring[2 * i]!, ring[2 * i + 1]!, ring[2 * j]!, ring[2 * j + 1]!];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

describe.each(PYRAMIDS)('a tile-classifier (dark-tissue) job on the %s pyramid', (name) => {
  let job: any;

  it('completes: windows without overlap at the model\'s 2 µm/px, positive tiles counted', async () => {
    const slide = slides[name]!;
    const created = await t.app.inject({ method: 'POST', url: `/ai/studies/${slide.study}/series/${slide.series}/analyses`, payload: { model: 'dark-tissue' } });
    expect(created.statusCode, created.body).toBe(202);
    job = await waitForState(t.app, created.json().id, ['completed', 'failed']);
    expect(job.state, job.reason).toBe('completed');
    // Level 2 (about 2 µm/px) of the pyramid, 32-pixel windows side by side.
    expect(job.level).toMatchObject({ index: 2, windowSize: 32, overlap: 0 });
    expect(job.progress.tilesTotal + job.progress.tilesSkippedAsBackground).toBe(Math.ceil(555 / 32) * Math.ceil((name === PYRAMIDS[0] ? 741 : 742) / 32));
    expect(job.progress.annotations).toBeGreaterThan(20); // positive tiles
  });

  it('stores POLYGON annotations, found by QIDO-RS, that lie inside the slide and cover exactly the dark tiles', async () => {
    const slide = slides[name]!;
    const qido = await t.app.inject({ url: `/dicomweb/studies/${slide.study}/series?Modality=ANN` });
    expect((qido.json() as Array<Record<string, { Value?: unknown[] }>>).map((s) => s['0020000E']?.Value?.[0])).toContain(job.result.seriesInstanceUid);
    const wado = await t.app.inject({
      url: job.links.annotations.replace(/^https?:\/\/[^/]+/, ''),
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(wado.statusCode).toBe(200);
    const [part] = splitMultipart(wado.rawPayload, wado.headers['content-type']);
    const ann = readAnnotationInstance(part!.body);
    expect(ann.sopClassUid).toBe(MICROSCOPY_BULK_SIMPLE_ANNOTATIONS);
    expect(ann.referencedImage?.sopInstanceUid).toBe(slide.baseSop);
    expect(ann.groups).toHaveLength(1);
    const group = ann.groups[0]!;
    expect(group).toMatchObject({ number: 1, label: 'lesion', graphicType: 'POLYGON', generationType: 'AUTOMATIC', algorithmName: 'dark-tissue', algorithmVersion: '1.0.0' });
    expect(group.count).toBeGreaterThan(0);
    expect(group.pointIndex).toHaveLength(group.count);
    expect(group.pointIndex![0]).toBe(1);
    const polygons: Float32Array[] = [];
    for (let i = 0; i < group.count; i += 1) {
      const end = i + 1 < group.count ? group.pointIndex![i + 1]! - 1 : group.points.length;
      const ring = group.points.subarray(group.pointIndex![i]! - 1, end);
      expect(ring.length % 2).toBe(0);
      expect(ring.length).toBeGreaterThanOrEqual(8); // at least a rectangle
      expect([ring[0], ring[1]]).not.toEqual([ring[ring.length - 2], ring[ring.length - 1]]); // first point not repeated
      for (let k = 0; k < ring.length; k += 2) expect(ring[k]! >= 0 && ring[k]! <= slide.width && ring[k + 1]! >= 0 && ring[k + 1]! <= slide.height, `${ring[k]},${ring[k + 1]}`).toBe(true);
      polygons.push(ring);
    }
    expect(group.scores).toHaveLength(group.count);
    for (const score of group.scores) expect(score).toBeGreaterThanOrEqual(0.5);
    const tiles = group.measurements['Number of tiles']!;
    expect([...tiles].reduce((a, b) => a + b, 0)).toBe(job.progress.annotations);

    // Independently of the model: a window is "lesion" when its mean RGB is below 170. Every such
    // window's centre lies inside a polygon; every other window's centre lies in none, unless it is
    // enclosed (a hole: the DICOM POLYGON is the outline; GeoJSON below has the holes).
    const { archive } = t.services;
    const level = (await loadSlide(archive, slide.study, slide.series)).levels[job.level.index]!;
    const reader = new RegionReader(archive, level, 64);
    const size = job.level.windowSize as number;
    let dark = 0;
    const light: Array<[number, number]> = [];
    for (let y = 0; y < level.height; y += size) {
      for (let x = 0; x < level.width; x += size) {
        const rgb = await reader.read(x, y, size, size);
        const mean = rgb.reduce((a, b) => a + b, 0) / rgb.length;
        if (Math.abs(mean - 170) < 0.5) continue; // too close to call in float32
        const cx = (x + Math.min(size, level.width - x) / 2) * level.scaleX;
        const cy = (y + Math.min(size, level.height - y) / 2) * level.scaleY;
        const hits = polygons.filter((p) => inRing(p, cx, cy)).length;
        if (mean < 170) {
          dark += 1;
          expect(hits, `dark window ${x},${y} (mean ${mean.toFixed(1)})`).toBe(1);
        } else if (hits > 0) light.push([cx, cy]);
      }
    }
    expect(dark).toBeGreaterThan(20);
    (globalThis as any)[`enclosed-${name}`] = light;

    const metadata = await t.app.inject({ url: `/dicomweb/studies/${slide.study}/series/${job.result.seriesInstanceUid}/metadata` });
    expect(metadata.statusCode).toBe(200);
    expect(metadata.json()[0]['006A0002'].Value[0]['00700023'].Value).toEqual(['POLYGON']);
    // Long Primitive Point Index List keeps its VR OL in the metadata (dcmjs alone would say UN).
    expect(metadata.json()[0]['006A0002'].Value[0]['00660040'].vr).toBe('OL');
  });

  it('serves GeoJSON Polygon features whose holes leave out every light window', async () => {
    const res = await t.app.inject({ url: `/ai/analyses/${job.id}/result` });
    expect(res.statusCode).toBe(200);
    const geo = res.json();
    expect(geo.features.length).toBeGreaterThan(0);
    let tiles = 0;
    for (const f of geo.features) {
      expect(f.geometry.type).toBe('Polygon');
      expect(f.properties).toMatchObject({ label: 'lesion' });
      expect(f.properties.score).toBeGreaterThanOrEqual(0.5);
      const outer = f.geometry.coordinates[0] as number[][];
      expect(outer[0]).toEqual(outer[outer.length - 1]); // GeoJSON rings are closed
      tiles += f.properties.tiles;
    }
    expect(tiles).toBe(job.progress.annotations);
    const inside = (x: number, y: number) =>
      geo.features.some((f: any) => {
        const [outer, ...holes] = (f.geometry.coordinates as number[][][]).map((ring) => ring.slice(0, -1).flat());
        return inRing(outer!, x, y) && !holes.some((h) => inRing(h, x, y));
      });
    for (const [x, y] of (globalThis as any)[`enclosed-${name}`] as Array<[number, number]>) expect(inside(x, y), `light window at ${x},${y}`).toBe(false);
  });
});

describe('a job on a region of the slide', () => {
  it('analyses only the region: every annotation lies inside it, and the same region asked again is the same job', async () => {
    const slide = slides[PYRAMIDS[0]]!;
    const url = `/ai/studies/${slide.study}/series/${slide.series}/analyses`;
    const region = { x: 800, y: 1200, width: 600, height: 500 };
    const created = await t.app.inject({ method: 'POST', url, payload: { model: 'dark-spot', region } });
    expect(created.statusCode).toBe(202);
    const job = await waitForState(t.app, created.json().id, ['completed', 'failed']);
    expect(job.state).toBe('completed');
    expect(job.region).toEqual(region);
    expect(job.progress.annotations).toBeGreaterThan(0);
    const geo = (await t.app.inject({ url: `/ai/analyses/${job.id}/result` })).json();
    expect(geo.features).toHaveLength(job.progress.annotations);
    for (const f of geo.features) {
      const [x, y] = f.geometry.coordinates;
      expect(x >= region.x && x < region.x + region.width && y >= region.y && y < region.y + region.height, `${x},${y}`).toBe(true);
    }
    // Another region is another job; the same region is the same job.
    const same = await t.app.inject({ method: 'POST', url, payload: { model: 'dark-spot', region } });
    expect(same.json()).toMatchObject({ created: false, id: job.id });
  });
});

describe('jobs that cannot run are refused with the reason', () => {
  it('an unknown model: 404; a model without a training resolution: 400', async () => {
    const slide = slides[PYRAMIDS[0]]!;
    const url = `/ai/studies/${slide.study}/series/${slide.series}/analyses`;
    const unknown = await t.app.inject({ method: 'POST', url, payload: { model: 'nope' } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toMatch(/Unknown model "nope"/);
    const noSpacing = await t.app.inject({ method: 'POST', url, payload: { model: 'bright-spot' } });
    expect(noSpacing.statusCode).toBe(400);
    expect(noSpacing.json().error.message).toMatch(/pixelSpacingMm/);
    const missing = await t.app.inject({ method: 'POST', url, payload: {} });
    expect(missing.statusCode).toBe(400);
    const badRegion = await t.app.inject({ method: 'POST', url, payload: { model: 'dark-spot', region: { x: 0, y: 0, width: 99_999, height: 10 } } });
    expect(badRegion.statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: `/ai/studies/${slide.study}/series/1.2.3.4/analyses`, payload: { model: 'dark-spot' } })).statusCode).toBe(404);
  });

  it('a slide without pixel spacing: 400 saying so', async () => {
    // One level of the TILED_FULL pyramid, re-identified, with its spacing and imaged volume removed.
    const source = await readFile(path.join(sharedDataDir, 'wsi-cmu1-small-region', PYRAMIDS[0], 'level-3-frames-0-1.dcm'));
    const parsed = dcmjs.data.DicomMessage.readFile(source.buffer.slice(source.byteOffset, source.byteOffset + source.length) as ArrayBuffer);
    const study = newUid();
    const series = newUid();
    const sop = newUid();
    parsed.dict['0020000D'] = { vr: 'UI', Value: [study] };
    parsed.dict['0020000E'] = { vr: 'UI', Value: [series] };
    parsed.dict['00080018'] = { vr: 'UI', Value: [sop] };
    parsed.meta['00020003'] = { vr: 'UI', Value: [sop] };
    delete parsed.dict['52009229'];
    delete parsed.dict['00480001'];
    delete parsed.dict['00480002'];
    const out = new dcmjs.data.DicomDict(parsed.meta);
    out.dict = parsed.dict;
    const bytes = Buffer.from(out.write());
    expect((await stow(t.app, [bytes])).statusCode).toBe(200);
    const res = await t.app.inject({ method: 'POST', url: `/ai/studies/${study}/series/${series}/analyses`, payload: { model: 'dark-spot' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/no pixel spacing/);
  });
});

describe('cancelling and restarting', () => {
  it('DELETE cancels a running job: its event stream ends with "cancelled"', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-cancel-'));
    const app = await appOn(dataDir, TEST_MODELS_DIR);
    try {
      slowDown(app.engine, 150);
      const slide = slides[PYRAMIDS[1]]!;
      expect((await stow(app.app, slide.files)).statusCode).toBe(200);
      const { id } = (await app.app.inject({ method: 'POST', url: `/ai/studies/${slide.study}/series/${slide.series}/analyses`, payload: { model: 'dark-spot' } })).json();
      const eventsPromise = app.app.inject({ url: `/ai/analyses/${id}/events` });
      await waitForState(app.app, id, ['running']);
      const deleted = await app.app.inject({ method: 'DELETE', url: `/ai/analyses/${id}` });
      expect(deleted.statusCode).toBe(200);
      expect(deleted.json()).toMatchObject({ state: 'cancelled', reason: expect.stringMatching(/DELETE/) });
      const events = parseSse((await eventsPromise).body);
      expect(events[events.length - 1]!.event).toBe('cancelled');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = (await app.app.inject({ url: `/ai/analyses/${id}` })).json();
      expect(after.state).toBe('cancelled');
      expect(after.progress.unitsDone).toBeLessThan(after.progress.unitsTotal);
      expect((await app.app.inject({ method: 'DELETE', url: `/ai/analyses/${id}` })).statusCode).toBe(409);
      expect((await app.app.inject({ url: `/ai/analyses/${id}/result` })).statusCode).toBe(404);
    } finally {
      await app.app.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('a job interrupted by a server restart resumes where it was; one whose model is gone is failed with the reason', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-restart-'));
    // A second model (same weights) that the restarted server will not have.
    const models = await mkdtemp(path.join(os.tmpdir(), 'models-'));
    await cp(TEST_MODELS_DIR, models, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(models, 'manifest.json'), 'utf8'));
    manifest.models.push({ ...manifest.models.find((m: any) => m.id === 'dark-spot'), id: 'dark-spot-b' });
    await writeFile(path.join(models, 'manifest.json'), JSON.stringify(manifest));
    const slide = slides[PYRAMIDS[0]]!;
    const url = `/ai/studies/${slide.study}/series/${slide.series}/analyses`;
    let resumedId = '';
    let failedId = '';
    try {
      const first = await appOn(dataDir, models);
      try {
        slowDown(first.engine, 120, ['dark-spot', 'dark-spot-b']);
        expect((await stow(first.app, slide.files)).statusCode).toBe(200);
        resumedId = (await first.app.inject({ method: 'POST', url, payload: { model: 'dark-spot' } })).json().id;
        failedId = (await first.app.inject({ method: 'POST', url, payload: { model: 'dark-spot-b' } })).json().id;
        const deadline = Date.now() + 30_000;
        for (;;) {
          const job = (await first.app.inject({ url: `/ai/analyses/${resumedId}` })).json();
          if (job.progress.unitsDone >= 2) break;
          if (Date.now() > deadline) throw new Error('no progress');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await first.app.close(); // mid-job
      }
      const store = await JobStore.open({ kind: 'sqlite', file: path.join(dataDir, 'index.sqlite') });
      const restartedAt = Date.now();
      try {
        const interrupted = await store.get(resumedId);
        expect(interrupted!.state).toBe('running');
        const doneBefore = (await store.progress(resumedId)).unitsDone;
        expect(doneBefore).toBeGreaterThanOrEqual(2);
        expect(doneBefore).toBeLessThan(interrupted!.unitsTotal);

        const second = await appOn(dataDir, TEST_MODELS_DIR);
        try {
          const resumed = await waitForState(second.app, resumedId, ['completed', 'failed', 'cancelled']);
          expect(resumed.state, resumed.reason).toBe('completed');
          expect(resumed.progress.unitsDone).toBe(resumed.progress.unitsTotal);
          expect(resumed.duplicateCompletions).toBe(0);
          const failed = (await second.app.inject({ url: `/ai/analyses/${failedId}` })).json();
          expect(failed.state).toBe('failed');
          expect(failed.reason).toMatch(/model "dark-spot-b" is no longer registered \(found when the server restarted\)/);
        } finally {
          await second.app.close();
        }
        // Units done before the restart were kept, not run again.
        let kept = 0;
        for await (const unit of store.units(resumedId)) {
          expect(unit.state).toBe('done');
          if (unit.completedAt! < restartedAt) kept += 1;
        }
        expect(kept).toBe(doneBefore);
      } finally {
        await store.close();
      }
    } finally {
      await rm(models, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/** An app on a given data folder (kept when the app closes), so a test can restart it. */
async function appOn(dataDir: string, modelsDir: string, env: Record<string, string> = {}) {
  const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_LOG_LEVEL: 'silent', PACS_MODELS_DIR: modelsDir, PACS_JOBS_WINDOWS_PER_UNIT: '4', ...env });
  const services = await createServices(config, { logger: testLogger() });
  const app = await buildApp(config, services);
  await app.ready();
  return { app, engine: services.inference!, config };
}
