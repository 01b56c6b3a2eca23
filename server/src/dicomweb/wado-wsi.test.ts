/**
 * Whole-slide imaging (PS3.3 A.32.8) through WADO-RS: every tile of both shared CMU-1 pyramids
 * (TILED_FULL from wsi2dcm, TILED_SPARSE from the Orthanc WSI dicomizer) comes back as a frame with
 * its stored JPEG bytes untouched, and metadata carries what a slide viewer such as Slim needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance, instanceUrl, stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import sharp from 'sharp';
import { renderFramePixels } from '../archive/render.js';
import { buildCountingApp, CountingStore } from '../test-support/counting-store.js';

const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const PYRAMIDS = ['tiled-full-gcp-wsi2dcm', 'tiled-sparse-orthanc-wsi'];

interface Level {
  file: string;
  study: string;
  series: string;
  sop: string;
  frames: Buffer[];
  pyramid: string;
  dimensionOrganization: string | undefined;
}

let t: TestApp;
const levels: Level[] = [];

beforeAll(async () => {
  t = await buildTestApp();
  for (const pyramid of PYRAMIDS) {
    const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', pyramid);
    for (const name of (await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort()) {
      const bytes = await readFile(path.join(folder, name));
      const { study, series, sop, frames, dict } = describeInstance(bytes);
      levels.push({
        file: `${pyramid}/${name}`,
        pyramid,
        study,
        series,
        sop,
        frames,
        dimensionOrganization: dict['00209311']?.Value?.[0] as string | undefined,
      });
      const response = await stow(t.app, [bytes]);
      expect(response.statusCode, name).toBe(200);
    }
  }
}, 120_000);
afterAll(async () => t?.close());


describe('whole-slide pyramids over WADO-RS', () => {
  it('stores both pyramids: TILED_FULL, and sparse tiles placed per frame', () => {
    // The dicomizer writes no DimensionOrganizationType: without TILED_FULL, tiles are placed by
    // their per-frame positions (PS3.3 C.7.6.17.3), i.e. sparse.
    expect(levels.filter((l) => l.pyramid === PYRAMIDS[0]).every((l) => l.dimensionOrganization === 'TILED_FULL')).toBe(true);
    expect(levels.filter((l) => l.pyramid === PYRAMIDS[1]).every((l) => l.dimensionOrganization !== 'TILED_FULL')).toBe(true);
    expect(levels.length).toBe(17);
  });

  it('serves every tile of every level as a frame with its stored JPEG bytes', async () => {
    let tiles = 0;
    for (const level of levels) {
      expect(level.frames.length, level.file).toBeGreaterThan(0);
      const list = level.frames.map((_, index) => index + 1).join(',');
      const response = await t.app.inject({ method: 'GET', url: `${instanceUrl(level)}/frames/${list}`, headers: { accept: FRAMES_ANY_TS } });
      expect(response.statusCode, level.file).toBe(200);
      const parts = splitMultipart(response.rawPayload, response.headers['content-type']);
      expect(parts.length, level.file).toBe(level.frames.length);
      parts.forEach((part, index) => {
        // dcmjs may keep an item's trailing pad byte; compare on the JPEG stream up to its end marker.
        const expected = level.frames[index]!;
        expect(part.body.subarray(0, 2).toString('hex'), `${level.file} frame ${index + 1}`).toBe('ffd8');
        expect(part.body.equals(expected), `${level.file} frame ${index + 1}`).toBe(true);
      });
      tiles += parts.length;
    }
    expect(tiles).toBeGreaterThan(150);
  });

  it('renders a tile from its own bytes, with the pixels the full DICOM decoder gives', async () => {
    for (const pyramid of PYRAMIDS) {
      const level = levels.filter((l) => l.pyramid === pyramid).reduce((a, b) => (b.frames.length > a.frames.length ? b : a));
      const frame = Math.ceil(level.frames.length / 2);
      const counting = new CountingStore(t.services.blobStore);
      const [instance] = await t.services.catalog.listInstances({ studyInstanceUid: level.study, seriesInstanceUid: level.series, sopInstanceUid: level.sop });
      const response = await t.app.inject({ method: 'GET', url: `${instanceUrl(level)}/frames/${frame}/rendered`, headers: { accept: 'image/png' } });
      expect(response.statusCode, level.file).toBe(200);
      expect(response.headers['content-type']).toBe('image/png');
      const served = await sharp(response.rawPayload).removeAlpha().raw().toBuffer({ resolveWithObject: true });

      // Reference: dcmjs-imaging decoding the whole stored file through the display pipeline.
      const reference = await renderFramePixels(counting, instance!, frame);
      expect(counting.gets, 'the reference reads the whole file').toBe(1);
      expect([served.info.width, served.info.height]).toEqual([reference.width, reference.height]);
      let diff = 0;
      for (let p = 0; p < reference.width * reference.height; p++) {
        for (let c = 0; c < 3; c++) diff += Math.abs(served.data[p * 3 + c]! - reference.pixels[p * 4 + c]!);
      }
      // Two libjpeg builds may round the colour conversion differently by a level or so, never more.
      expect(diff / (reference.width * reference.height * 3), level.file).toBeLessThan(1.5);
    }
  });

  it('renders a tile reading only that tile, never the whole level', async () => {
    const level = levels.reduce((a, b) => (b.frames.length > a.frames.length ? b : a));
    const { app, store, close } = await buildCountingApp('pacs-wsi-render-');
    try {
      expect((await stow(app, [await readFile(path.join(sharedDataDir, 'wsi-cmu1-small-region', level.file))])).statusCode).toBe(200);
      store.reset();
      const response = await app.inject({ method: 'GET', url: `${instanceUrl(level)}/frames/2/rendered?viewport=128,128&quality=80`, headers: { accept: 'image/jpeg' } });
      expect(response.statusCode).toBe(200);
      const info = await sharp(response.rawPayload).metadata();
      expect([info.format, Math.max(info.width!, info.height!)]).toEqual(['jpeg', 128]);
      expect(store.gets).toBe(0);
      expect(store.rangeBytes).toBe(level.frames[1]!.length);
    } finally {
      await close();
    }
  });

  it('answers a tile past the last one with 404', async () => {
    const level = levels[0]!;
    const response = await t.app.inject({ method: 'GET', url: `${instanceUrl(level)}/frames/${level.frames.length + 1}`, headers: { accept: FRAMES_ANY_TS } });
    expect(response.statusCode).toBe(404);
  });

  it('exposes in metadata what a slide viewer needs to place tiles', async () => {
    for (const level of levels) {
      const response = await t.app.inject({ method: 'GET', url: `${instanceUrl(level)}/metadata` });
      expect(response.statusCode, level.file).toBe(200);
      const [dataset] = response.json() as Array<Record<string, { Value?: unknown[] }>>;
      const tags = ['00480006', '00480007', '00080008', '00280010', '00280011', '00280008'];
      if (level.pyramid === PYRAMIDS[0]) tags.push('00209311');
      for (const tag of tags) {
        expect(dataset![tag]?.Value?.length, `${level.file} ${tag}`).toBeGreaterThan(0);
      }
      if (level.pyramid === PYRAMIDS[1]) {
        // Sparse tiles are placed by their per-frame Plane Position (Slide) (PS3.3 C.8.12.6.1).
        const perFrame = dataset!['52009230']?.Value as Array<Record<string, { Value?: unknown[] }>> | undefined;
        expect(perFrame?.length, level.file).toBe(level.frames.length);
        expect(perFrame![0]!['0048021A']?.Value?.length, level.file).toBe(1);
      }
    }
  });

  it('finds the slide levels through QIDO-RS with the attributes a viewer filters on', async () => {
    const level = levels.find((l) => l.pyramid === PYRAMIDS[1])!;
    const response = await t.app.inject({
      method: 'GET',
      url: `/dicomweb/studies/${level.study}/series/${level.series}/instances?includefield=00480006,00480007,00080008`,
    });
    const matches = response.json() as Array<Record<string, { Value?: unknown[] }>>;
    expect(matches.length).toBeGreaterThan(1);
    for (const match of matches) expect(match['00480006']?.Value?.length).toBe(1);
  });
});
