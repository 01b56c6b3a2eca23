/**
 * The trained polyp detector (models/manifest.json) through the AI API, on real data: Kvasir-SEG test
 * images (ground-truth boxes) and the generated VL Endoscopic DICOM stills (../shared/data/
 * endoscopy-dicom-kvasir). Also checks that the model card's AP50 is what the HTTP API reproduces.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR } from '../config.js';
import { iou } from '../../../scripts/eval/average-precision.js';
import { evaluateOverHttp } from '../../../scripts/eval/evaluate-over-http.js';
import { kvasirSplit, polypFreeSplit } from '../../../scripts/eval/kvasir.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { describeInstance, instanceUrl, stow } from '../test-support/shared-instance.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { readDetectionReport } from '../inference/detection-report.js';
import { dciodvfyErrors } from '../test-support/dciodvfy.js';

const MODEL = 'polyp-detector';
let t: TestApp;
let baseUrl: string;
let manifestAp50: number;
let manifestVersion: string;
let manifestPolypFree: string;

beforeAll(async () => {
  const manifest = JSON.parse(await readFile(path.join(BUNDLED_MODELS_DIR, 'manifest.json'), 'utf8'));
  const entry = manifest.models.find((m: { id: string }) => m.id === MODEL);
  manifestAp50 = entry.metrics.ap50;
  manifestVersion = entry.version;
  manifestPolypFree = entry.metrics.polypFreeTestFramesWithBoxAtThreshold;
  t = await buildTestApp({ PACS_MODELS_DIR: BUNDLED_MODELS_DIR });
  baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => t.close());

describe('the polyp detector on real colonoscopy images', () => {
  it('finds the polyps of Kvasir-SEG test images where the ground truth has them', async () => {
    const images = (await kvasirSplit('test')).slice(0, 12);
    let matched = 0;
    for (const image of images) {
      const res = await t.app.inject({ method: 'POST', url: `/ai/models/${MODEL}/detect`, headers: { 'content-type': 'image/jpeg' }, payload: await readFile(image.file) });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect([body.width, body.height]).toEqual([image.width, image.height]);
      for (const d of body.detections) {
        expect(d.box.x).toBeGreaterThanOrEqual(0);
        expect(d.box.x + d.box.width).toBeLessThanOrEqual(image.width + 0.01);
      }
      if (body.detections.some((d: any) => image.truth.some((g) => iou(d.box, g) >= 0.5))) matched += 1;
    }
    // The card's recall at the operating threshold is well above this floor on the whole split.
    expect(matched).toBeGreaterThanOrEqual(8);
  });

  it("reproduces the model card's AP50 through the HTTP API (npm run eval:polyp)", async () => {
    const evaluation = await evaluateOverHttp(baseUrl, MODEL, 'test');
    expect(evaluation.images).toBe(120);
    expect(evaluation.boxes).toBe(130);
    expect(Math.abs(evaluation.ap50 - manifestAp50)).toBeLessThanOrEqual(0.005);
  }, 300_000);

  it("raises a box on as few polyp-free test frames as its card says, the box verifier dropping most false candidates", async () => {
    const frames = await polypFreeSplit('test');
    expect(frames).toHaveLength(175);
    const evaluation = await evaluateOverHttp(baseUrl, MODEL, frames);
    const withBox = evaluation.perImage.filter((r) => r.detections.some((d) => d.score >= evaluation.operatingThreshold)).length;
    // The card's figure, e.g. "9 of 175 (...)": the same count through the API, give or take one frame.
    const carded = Number(/^(\d+) of 175/.exec(manifestPolypFree)![1]);
    expect(Math.abs(withBox - carded)).toBeLessThanOrEqual(1);
  }, 300_000);

  it('writes an SR for each stored VL Endoscopic still whose boxes reference the image and overlap the polyps, and dciodvfy finds no error in it', async () => {
    const dir = path.join(requireSharedData(), 'endoscopy-dicom-kvasir');
    const truth = JSON.parse(await readFile(path.join(dir, 'ground-truth.json'), 'utf8'));
    const stills = truth.images.filter((i: any) => i.file.endsWith('jpeg-baseline.dcm'));
    expect(stills).toHaveLength(8);
    let found = 0;
    for (const still of stills) {
      const instance = describeInstance(await readFile(path.join(dir, still.file)));
      expect((await stow(t.app, [instance.bytes])).statusCode).toBe(200);
      const res = await t.app.inject({ method: 'POST', url: `/ai${instanceUrl(instance, '')}/frames/1/detections?model=${MODEL}` });
      expect(res.statusCode).toBe(201);
      const body = res.json();
      const truthBoxes = still.bboxes.map((b: any) => ({ x: b.xmin, y: b.ymin, width: b.xmax - b.xmin + 1, height: b.ymax - b.ymin + 1 }));
      if (body.detections.some((d: any) => truthBoxes.some((g: any) => iou(d.box, g) >= 0.5))) found += 1;

      // Read the stored SR back through WADO-RS (transfer-syntax=* returns it as stored).
      const sr = await t.app.inject({
        url: new URL(body.report.url).pathname,
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      });
      expect(sr.statusCode).toBe(200);
      const part = sr.rawPayload.subarray(sr.rawPayload.indexOf(Buffer.from('DICM')) - 128);
      const report = readDetectionReport(part.subarray(0, part.lastIndexOf(Buffer.from('\r\n--'))));
      expect(report.source).toMatchObject({ sopInstanceUid: instance.sop, seriesInstanceUid: instance.series, studyInstanceUid: instance.study });
      expect(report.frames).toHaveLength(1);
      expect(report.frames[0]!.frame).toBe(1);
      expect(report.frames[0]!.detections).toEqual(body.detections);
      expect(report.model).toEqual({ id: MODEL, version: manifestVersion });
      // Debian's dicom3tools validator: no error in the Comprehensive 3D SR (PS3.3 A.35.13, PS3.16 TID 1500).
      expect(await dciodvfyErrors(part.subarray(0, part.lastIndexOf(Buffer.from('\r\n--'))), 'polyp-sr.dcm')).toEqual([]);
    }
    // The model card's recall at the operating threshold is 0.74: most stills have their polyp found.
    expect(found).toBeGreaterThanOrEqual(5);
  }, 120_000);
});
