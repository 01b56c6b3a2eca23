/**
 * The AI API with the hand-wired bright-spot test model (scripts/make-test-model.py): it marks pixels
 * whose mean RGB is above 128, so the expected boxes are known exactly.
 */
import sharp from 'sharp';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archive } from '../archive/archive.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import type { BatchRunner } from '../inference/model-queue.js';
import type { MaskOutput } from '../inference/inference-engine.js';

dcmjs.log.setLevel('silent');

/** A black 200×100 image with a white rectangle at x 40..80, y 20..60 (exclusive ends). */
function brightRectPixels(channels: 1 | 3): Uint8Array {
  const pixels = new Uint8Array(200 * 100 * channels);
  for (let y = 20; y < 60; y += 1) for (let x = 40; x < 80; x += 1) for (let c = 0; c < channels; c += 1) pixels[(y * 200 + x) * channels + c] = 255;
  return pixels;
}
const brightRectPng = () => sharp(Buffer.from(brightRectPixels(3)), { raw: { width: 200, height: 100, channels: 3 } }).png().toBuffer();

/** Model input cells are 200/64 = 3.125 source pixels wide: boxes are exact to about one cell. */
function expectNear(box: { x: number; y: number; width: number; height: number }, expected: typeof box, tolerance = 4) {
  for (const key of ['x', 'y', 'width', 'height'] as const) expect(Math.abs(box[key] - expected[key]), `${key}: ${box[key]} vs ${expected[key]}`).toBeLessThanOrEqual(tolerance);
}

let t: TestApp;
let archive: Archive;
beforeAll(async () => {
  t = await buildTestApp({ PACS_AI_MAX_IMAGE_BYTES: '200000' });
  archive = t.services.archive;
});
afterAll(async () => t.close());

async function store(bytes: Buffer): Promise<void> {
  const scanned = await archive.scanAndStore((async function* () { yield bytes; })());
  const result = await scanned.completion;
  if (!result.ok) throw new Error(result.failure.message);
}

describe('the model registry over HTTP', () => {
  it('GET /ai/models lists each model with its contract, threshold and provenance', async () => {
    const res = await t.app.inject({ url: '/ai/models' });
    expect(res.statusCode).toBe(200);
    const [model] = res.json().models;
    expect(model).toMatchObject({ id: 'bright-spot', version: '1.0.0', task: 'detection', labels: ['polyp'], operatingThreshold: 0.5, input: { width: 64, height: 64, layout: 'NHWC' } });
    expect(model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await t.app.inject({ url: '/ai/models/bright-spot' })).json().id).toBe('bright-spot');
    expect((await t.app.inject({ url: '/ai/models/nope' })).statusCode).toBe(404);
  });
});

describe('a tile classifier on an uploaded image', () => {
  it('answers the class probabilities in label order, the positive score and the top label', async () => {
    const classify = async (grey: number) => {
      const png = await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: grey, g: grey, b: grey } } }).png().toBuffer();
      const res = await t.app.inject({ method: 'POST', url: '/ai/models/dark-tissue/classify', headers: { 'content-type': 'image/png' }, payload: png });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    const dark = await classify(60);
    expect(dark).toMatchObject({ model: { id: 'dark-tissue', version: '1.0.0' }, width: 48, height: 40, label: 'lesion' });
    expect(dark.probabilities).toHaveLength(2);
    expect(dark.probabilities[0] + dark.probabilities[1]).toBeCloseTo(1, 4);
    expect(dark.positiveScore).toBeCloseTo(dark.probabilities[1], 5);
    expect(dark.positiveScore).toBeGreaterThan(0.5);
    expect(Object.keys(dark.timings).sort()).toEqual(['modelMs', 'postprocessMs', 'preprocessMs', 'queueMs']);
    const light = await classify(240);
    expect(light.label).toBe('normal');
    expect(light.positiveScore).toBeLessThan(0.5);
  });

  it('refuses a detector (and detect refuses a classifier) with 400, an unknown model with 404', async () => {
    const png = await brightRectPng();
    const wrongTask = await t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/classify', headers: { 'content-type': 'image/png' }, payload: png });
    expect(wrongTask.statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: '/ai/models/dark-tissue/detect', headers: { 'content-type': 'image/png' }, payload: png })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: '/ai/models/nope/classify', headers: { 'content-type': 'image/png' }, payload: png })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'POST', url: '/ai/models/dark-tissue/classify', headers: { 'content-type': 'text/plain' }, payload: 'hello' })).statusCode).toBe(415);
  });
});

describe('detection on an uploaded image', () => {
  it('answers boxes in the source image pixels, with label, score and per-stage timings', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/detect', headers: { 'content-type': 'image/png' }, payload: await brightRectPng() });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ model: { id: 'bright-spot', version: '1.0.0' }, width: 200, height: 100 });
    expect(body.detections).toHaveLength(1);
    expect(body.detections[0].label).toBe('polyp');
    expect(body.detections[0].score).toBeGreaterThan(0.9);
    expectNear(body.detections[0].box, { x: 40, y: 20, width: 40, height: 40 });
    expect(Object.keys(body.timings).sort()).toEqual(['modelMs', 'postprocessMs', 'preprocessMs', 'queueMs']);
  });

  it('takes JPEG and greyscale images as well', async () => {
    const jpeg = await sharp(Buffer.from(brightRectPixels(1)), { raw: { width: 200, height: 100, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
    const res = await t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/detect', headers: { 'content-type': 'image/jpeg' }, payload: jpeg });
    expect(res.statusCode).toBe(200);
    expectNear(res.json().detections[0].box, { x: 40, y: 20, width: 40, height: 40 });
  });

  it('minScore filters by score, so a caller can sweep thresholds for a precision/recall curve', async () => {
    const payload = await brightRectPng();
    const all = await t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/detect?minScore=0', headers: { 'content-type': 'image/png' }, payload });
    const score = all.json().detections[0].score as number;
    const above = await t.app.inject({ method: 'POST', url: `/ai/models/bright-spot/detect?minScore=${Math.min(1, score + 0.0001)}`, headers: { 'content-type': 'image/png' }, payload });
    expect(above.json().detections).toEqual([]);
  });

  it('refuses what is not a usable request with the right 4xx and a reason, never a 500', async () => {
    const png = await brightRectPng();
    const cases: Array<[string, Record<string, string>, Buffer | string, number, RegExp]> = [
      ['/ai/models/unknown/detect', { 'content-type': 'image/png' }, png, 404, /Unknown model "unknown"/],
      ['/ai/models/bright-spot/detect', { 'content-type': 'text/plain' }, 'hello', 415, /Content-Type/],
      ['/ai/models/bright-spot/detect', { 'content-type': 'image/jpeg' }, Buffer.from('definitely not a jpeg'), 400, /not a decodable JPEG or PNG/],
      ['/ai/models/bright-spot/detect', { 'content-type': 'image/png' }, png.subarray(0, 60), 400, /decod/],
      ['/ai/models/bright-spot/detect?minScore=high', { 'content-type': 'image/png' }, png, 400, /minScore/],
      ['/ai/models/bright-spot/detect', { 'content-type': 'image/png' }, Buffer.alloc(300_000), 413, /larger than allowed/],
    ];
    for (const [url, headers, payload, status, message] of cases) {
      const res = await t.app.inject({ method: 'POST', url, headers, payload });
      expect(res.statusCode, `${url} ${headers['content-type']}`).toBe(status);
      expect(res.json().error.message).toMatch(message);
    }
  });

  it('answers 503 with Retry-After when the model queue is full, and serves again once it drains', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    t.services.inference!.wrapRunner('bright-spot', (runner): BatchRunner<Buffer, MaskOutput> => ({ run: async (inputs) => { await gate; return runner.run(inputs); } }), { maxBatch: 1, queueDepth: 1 });
    try {
      const payload = await brightRectPng();
      const send = () => t.app.inject({ method: 'POST', url: '/ai/models/bright-spot/detect', headers: { 'content-type': 'image/png' }, payload });
      const running = send();
      while (t.services.inference!.queueStats('bright-spot').running === 0) await new Promise((r) => setTimeout(r, 5));
      const waiting = send();
      while (t.services.inference!.queueStats('bright-spot').waiting === 0) await new Promise((r) => setTimeout(r, 5));
      const refused = await send();
      expect(refused.statusCode).toBe(503);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused.json().error).toMatchObject({ code: 'SERVICE_BUSY' });
      release();
      expect((await running).statusCode).toBe(200);
      expect((await waiting).statusCode).toBe(200);
      expect((await send()).statusCode).toBe(200);
    } finally {
      release();
      t.services.inference!.wrapRunner('bright-spot', (runner) => runner, { maxBatch: 4, queueDepth: 16 });
    }
  });
});

describe('detection on a stored frame, kept as a DICOM SR in the study', () => {
  const study = newUid();
  const series = newUid();
  const sop = newUid();
  const framesUrl = (frame: number | string, s = sop) => `/ai/studies/${study}/series/${series}/instances/${s}/frames/${frame}/detections`;

  beforeAll(async () => {
    await store(makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 100, columns: 200, samplesPerPixel: 3, pixels: brightRectPixels(3), modality: 'ES', patientName: 'DOE^JANE', patientId: 'PID-77' }));
  });

  it('runs the model, stores a TID 1500 SR referencing the image and frame, and answers 201 with its location', async () => {
    const res = await t.app.inject({ method: 'POST', url: `${framesUrl(1)}?model=bright-spot` });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.created).toBe(true);
    expect(res.headers.location).toBe(body.report.url);
    expect(body.report.url).toMatch(new RegExp(`/dicomweb/studies/${study}/series/[0-9.]+/instances/[0-9.]+$`));
    expect(body.source).toMatchObject({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, frame: 1 });
    expect(body.detections).toHaveLength(1);
    expectNear(body.detections[0].box, { x: 40, y: 20, width: 40, height: 40 });

    // The SR is an ordinary instance of the study: found by QIDO-RS, retrievable by WADO-RS.
    const qido = await t.app.inject({ url: `/dicomweb/studies/${study}/series?Modality=SR` });
    expect(qido.statusCode).toBe(200);
    expect(qido.json().map((s: any) => s['0020000E'].Value[0])).toEqual([body.report.seriesInstanceUid]);
    const [stored] = await t.services.catalog.listInstances({ studyInstanceUid: study, seriesInstanceUid: body.report.seriesInstanceUid });
    const chunks: Buffer[] = [];
    for await (const c of await t.services.blobStore.get(stored!.blobKey)) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    const sr = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer).dict);
    expect(sr.SOPClassUID).toBe('1.2.840.10008.5.1.4.1.1.88.34');
    expect(sr.ContentTemplateSequence[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '1500' });
    expect(sr.PatientName).toEqual([{ Alphabetic: 'DOE^JANE' }]);
    expect(sr.PatientID).toBe('PID-77');
    const measurements = sr.ContentSequence.find((i: any) => i.ConceptNameCodeSequence[0].CodeValue === '126010');
    const group = measurements.ContentSequence[0];
    expect(group.ContentTemplateSequence[0].TemplateIdentifier).toBe('1410');
    const region = group.ContentSequence.find((i: any) => i.ValueType === 'SCOORD');
    expect(region.GraphicType).toBe('POLYLINE');
    const points = region.GraphicData as number[];
    expect(points).toHaveLength(10);
    expect(points.slice(0, 2)).toEqual(points.slice(8, 10));
    const reference = region.ContentSequence[0];
    expect(reference).toMatchObject({ RelationshipType: 'SELECTED FROM', ValueType: 'IMAGE' });
    expect(reference.ReferencedSOPSequence[0]).toMatchObject({ ReferencedSOPInstanceUID: sop, ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.7' });
    // A single-frame image is referenced without a frame number (PS3.3 Table 10-3: Type 1C, multi-frame only).
    expect(reference.ReferencedSOPSequence[0].ReferencedFrameNumber).toBeUndefined();
    const algorithm = group.ContentSequence.filter((i: any) => ['111001', '111003'].includes(i.ConceptNameCodeSequence[0].CodeValue)).map((i: any) => i.TextValue);
    expect(algorithm).toEqual(['bright-spot', '1.0.0']);
    // No patient data in the log.
    expect(t.logLines.join('')).not.toMatch(/DOE|PID-77/);
  });

  it('returns the stored report instead of a duplicate when asked again, and lists it with GET', async () => {
    const first = await t.app.inject({ method: 'POST', url: `${framesUrl(1)}?model=bright-spot` });
    expect(first.statusCode).toBe(200);
    expect(first.json().created).toBe(false);
    const again = await t.app.inject({ method: 'POST', url: `${framesUrl(1)}?model=bright-spot` });
    expect(again.json().report.sopInstanceUid).toBe(first.json().report.sopInstanceUid);
    const srs = await t.services.catalog.listInstances({ studyInstanceUid: study, seriesInstanceUid: first.json().report.seriesInstanceUid });
    expect(srs).toHaveLength(1);
    const listed = await t.app.inject({ url: framesUrl(1) });
    expect(listed.statusCode).toBe(200);
    expect(listed.json().results).toHaveLength(1);
    expect(listed.json().results[0]).toMatchObject({ model: { id: 'bright-spot', version: '1.0.0' }, report: { sopInstanceUid: first.json().report.sopInstanceUid } });
    expectNear(listed.json().results[0].detections[0].box, { x: 40, y: 20, width: 40, height: 40 });
  });

  it('refuses bad frame requests with 4xx and a reason: unknown UIDs, frame 0, frame past the end, no pixel data, no model', async () => {
    const reportSop = (await t.app.inject({ url: framesUrl(1) })).json().results[0].report;
    const cases: Array<[string, string, number, RegExp]> = [
      ['POST', `${framesUrl(1, newUid())}?model=bright-spot`, 404, /Instance not found/],
      ['POST', `${framesUrl(1)}?model=nope`, 404, /Unknown model/],
      ['POST', framesUrl(1), 400, /"model"/],
      ['POST', `${framesUrl(0)}?model=bright-spot`, 400, /frame 0/],
      ['POST', `${framesUrl('x')}?model=bright-spot`, 400, /not a positive whole number/],
      ['POST', `${framesUrl(2)}?model=bright-spot`, 404, /Frame 2 does not exist/],
      ['GET', framesUrl(2), 404, /Frame 2 does not exist/],
      ['POST', `/ai/studies/${study}/series/${series}/instances/1.2.x/frames/1/detections?model=bright-spot`, 400, /not a valid UID/],
      ['POST', `/ai/studies/${study}/series/${reportSop.seriesInstanceUid}/instances/${reportSop.sopInstanceUid}/frames/1/detections?model=bright-spot`, 400, /no pixel data/],
    ];
    for (const [method, url, status, message] of cases) {
      const res = await t.app.inject({ method: method as 'GET' | 'POST', url });
      expect(res.statusCode, url).toBe(status);
      expect(res.json().error.message, url).toMatch(message);
    }
  });
});
