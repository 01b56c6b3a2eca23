/**
 * WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.3-4, §9.5, §8.3.5): frames come back as
 * JPEG or PNG that sharp can decode, at the expected size, in grayscale or colour.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { sharedDataDir, sharedFiles } from '../test-support/shared-data.js';
import { instanceUrl, stow } from '../test-support/shared-instance.js';
import { IMMUTABLE_CACHE_CONTROL, REVALIDATE_CACHE_CONTROL } from './http-cache.js';
import { negotiateRendered, parseRenderingParams } from './rendered.routes.js';

interface Uids {
  study: string;
  series: string;
  sop: string;
}

/** UIDs of a stored file, read from its JSON metadata after storing it (QIDO would do as well). */
async function uidsOf(app: FastifyInstance, bytes: Buffer): Promise<Uids> {
  const response = await stow(app, [bytes]);
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  const body = JSON.parse(response.body) as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>;
  const ref = body['00081199']!.Value![0]!;
  const match = /\/studies\/([0-9.]+)\/series\/([0-9.]+)\/instances\/([0-9.]+)$/.exec(String(ref['00081190']!.Value![0]));
  expect(match).not.toBeNull();
  const [, study, series, sop] = match!;
  return { study: study!, series: series!, sop: sop! };
}

const shared = (relative: string) => readFile(path.join(sharedDataDir, relative));

let t: TestApp;
const study = newUid();
const series = newUid();
const gen = { study, series, sop: newUid() };
const genMulti = { study, series, sop: newUid() };
let ct: Uids;
let endo: Uids;
let wsi: Uids;
let sr: Uids;
let video: Uids;

beforeAll(async () => {
  t = await buildTestApp();
  const response = await stow(t.app, [
    makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: gen.sop, rows: 64, columns: 96 }),
    makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: genMulti.sop, rows: 32, columns: 32, numberOfFrames: 3 }),
  ]);
  expect(response.statusCode, response.body).toBe(200);
  [ct, endo, wsi, sr, video] = await Promise.all(
    [
      'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm',
      'endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-jpeg-baseline.dcm',
      'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm',
      'dicom-dcmjs-tests/sample-sr.dcm',
      'endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm',
    ].map(async (file) => uidsOf(t.app, await shared(file))),
  ) as [Uids, Uids, Uids, Uids, Uids];
});
afterAll(async () => t.close());

const get = (url: string, accept?: string) => t.app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } });

async function image(url: string, accept?: string, expectedType = 'image/jpeg') {
  const response = await get(url, accept);
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  expect(response.headers['content-type']).toBe(expectedType);
  // Study and series thumbnails may show another instance later: revalidated; an instance's never changes.
  const instanceLevel = url.includes('/instances/');
  expect(response.headers['cache-control']).toBe(instanceLevel ? IMMUTABLE_CACHE_CONTROL : REVALIDATE_CACHE_CONTROL);
  expect(response.headers['etag']).toMatch(/^"[A-Za-z0-9_-]+"$/);
  expect(response.headers['vary']).toBe('Accept');
  const meta = await sharp(response.rawPayload).metadata();
  const stats = await sharp(response.rawPayload).stats();
  return { response, meta, stats };
}

/** Mean absolute difference between channels: 0 for gray, clearly above for a colour photograph. */
const colourfulness = (stats: { channels: Array<{ mean: number }> }) =>
  stats.channels.length < 3 ? 0 : Math.abs(stats.channels[0]!.mean - stats.channels[1]!.mean) + Math.abs(stats.channels[1]!.mean - stats.channels[2]!.mean);

describe('rendered instances and frames', () => {
  it('renders a generated 8-bit instance as a grayscale JPEG of its own size by default (no Accept, */*, image/*)', async () => {
    for (const accept of [undefined, '*/*', 'image/*', 'image/jpeg']) {
      const { meta } = await image(`${instanceUrl(gen)}/rendered`, accept);
      expect(meta.format).toBe('jpeg');
      expect([meta.width, meta.height]).toEqual([96, 64]);
      expect(meta.channels).toBe(1);
    }
  });

  it('renders PNG when asked, and prefers the higher q-value', async () => {
    const { meta } = await image(`${instanceUrl(gen)}/rendered`, 'image/png', 'image/png');
    expect(meta.format).toBe('png');
    expect([meta.width, meta.height]).toEqual([96, 64]);
    const preferred = await image(`${instanceUrl(gen)}/rendered`, 'image/jpeg;q=0.5, image/png', 'image/png');
    expect(preferred.meta.format).toBe('png');
  });

  it('scales to the viewport keeping the aspect ratio, never enlarging', async () => {
    expect((await image(`${instanceUrl(gen)}/rendered?viewport=48,48`)).meta).toMatchObject({ width: 48, height: 32 });
    expect((await image(`${instanceUrl(gen)}/rendered?viewport=1000,1000`)).meta).toMatchObject({ width: 96, height: 64 });
  });

  it('applies quality: a lower quality gives a smaller JPEG', async () => {
    const low = await image(`${instanceUrl(endo)}/rendered?quality=10`);
    const high = await image(`${instanceUrl(endo)}/rendered?quality=95`);
    expect(low.response.rawPayload.length).toBeLessThan(high.response.rawPayload.length);
  });

  it('renders a chosen frame of a multi-frame instance; a frame past the end is 404, a frame list is 400', async () => {
    const { meta } = await image(`${instanceUrl(genMulti)}/frames/3/rendered`);
    expect([meta.width, meta.height]).toEqual([32, 32]);
    expect((await get(`${instanceUrl(genMulti)}/frames/4/rendered`)).statusCode).toBe(404);
    expect((await get(`${instanceUrl(genMulti)}/frames/0/rendered`)).statusCode).toBe(400);
    expect((await get(`${instanceUrl(genMulti)}/frames/1,2/rendered`)).statusCode).toBe(400);
  });

  it('renders a 16-bit CT with an explicit window, and the window changes the image', async () => {
    const soft = await image(`${instanceUrl(ct)}/rendered?window=40,400`);
    expect([soft.meta.width, soft.meta.height]).toEqual([128, 128]);
    expect(soft.meta.channels).toBe(1);
    const bone = await image(`${instanceUrl(ct)}/rendered?window=300,1500,sigmoid`);
    const dflt = await image(`${instanceUrl(ct)}/rendered`);
    expect(Math.abs(soft.stats.channels[0]!.mean - bone.stats.channels[0]!.mean)).toBeGreaterThan(5);
    expect(dflt.stats.channels[0]!.stdev).toBeGreaterThan(5);
  });

  it('renders a colour JPEG-compressed endoscopy still in colour', async () => {
    const { meta, stats } = await image(`${instanceUrl(endo)}/rendered`);
    expect([meta.width, meta.height]).toEqual([621, 530]);
    expect(meta.channels).toBe(3);
    expect(colourfulness(stats)).toBeGreaterThan(20);
  });

  it('renders a frame of a TILED_FULL whole-slide image', async () => {
    const { meta, stats } = await image(`${instanceUrl(wsi)}/frames/7/rendered`, 'image/png', 'image/png');
    expect([meta.width, meta.height]).toEqual([500, 500]);
    expect(meta.channels).toBe(3);
    expect(stats.channels[0]!.stdev).toBeGreaterThan(0);
  });

  it('answers 400 naming the parameter for bad window, viewport or quality', async () => {
    for (const [query, name] of [
      ['window=abc', 'window'],
      ['window=40', 'window'],
      ['window=40,0', 'window'],
      ['window=40,400,cubic', 'window'],
      ['viewport=0,10', 'viewport'],
      ['viewport=10', 'viewport'],
      ['viewport=10,10,0,0,5,5', 'viewport'],
      ['quality=0', 'quality'],
      ['quality=101', 'quality'],
      ['quality=high', 'quality'],
    ] as const) {
      const response = await get(`${instanceUrl(gen)}/rendered?${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.message, query).toContain(`"${name}"`);
    }
  });

  it('answers 406 for media types other than JPEG and PNG', async () => {
    for (const accept of ['application/dicom', 'multipart/related; type="application/dicom"', 'image/gif', 'video/mp4']) {
      expect((await get(`${instanceUrl(gen)}/rendered`, accept)).statusCode, accept).toBe(406);
      expect((await get(`${instanceUrl(gen)}/thumbnail`, accept)).statusCode, accept).toBe(406);
    }
  });

  it('answers 400 for an instance without pixel data (SR), 406 for images of a video, 404 for unknown UIDs, 400 for non-UIDs', async () => {
    const srResponse = await get(`${instanceUrl(sr)}/rendered`);
    expect(srResponse.statusCode).toBe(400);
    expect(srResponse.json().error.message).toContain('no pixel data');
    expect((await get(`${instanceUrl(sr)}/thumbnail`)).statusCode).toBe(400);
    expect((await get(`/dicomweb/studies/${sr.study}/thumbnail`)).statusCode).toBe(400);
    expect((await get(`${instanceUrl(video)}/rendered`, 'image/jpeg')).statusCode).toBe(406);
    expect((await get(`${instanceUrl(video)}/frames/1/rendered`)).statusCode).toBe(406);
    expect((await get(`${instanceUrl({ ...gen, sop: newUid() })}/rendered`)).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/${newUid()}/thumbnail`)).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/${study}/series/${newUid()}/thumbnail`)).statusCode).toBe(404);
    expect((await get(`/dicomweb/studies/not-a-uid/thumbnail`)).statusCode).toBe(400);
    expect((await get(`/dicomweb/studies/${study}/series/${series}/instances/x.y/rendered`)).statusCode).toBe(400);
  });
});

describe('thumbnails', () => {
  it('fits an instance thumbnail into 128×128 by default, and into the viewport when given', async () => {
    const { meta } = await image(`${instanceUrl(endo)}/thumbnail`);
    expect(Math.max(meta.width!, meta.height!)).toBe(128);
    expect(meta.channels).toBe(3);
    const small = await image(`${instanceUrl(endo)}/thumbnail?viewport=64,64`, 'image/png', 'image/png');
    expect(Math.max(small.meta.width!, small.meta.height!)).toBe(64);
  });

  it('does not enlarge small images', async () => {
    const { meta } = await image(`${instanceUrl(gen)}/thumbnail`);
    expect([meta.width, meta.height]).toEqual([96, 64]);
  });

  it('renders study and series thumbnails from a representative instance', async () => {
    for (const url of [`/dicomweb/studies/${study}/thumbnail`, `/dicomweb/studies/${study}/series/${series}/thumbnail`]) {
      const { meta } = await image(url);
      expect(meta.width!).toBeLessThanOrEqual(128);
      expect(meta.height!).toBeLessThanOrEqual(128);
    }
    const wsiThumb = await image(`/dicomweb/studies/${wsi.study}/series/${wsi.series}/thumbnail`);
    expect(wsiThumb.meta.width!).toBeLessThanOrEqual(128);
    const endoStudy = await image(`/dicomweb/studies/${endo.study}/thumbnail`);
    expect(colourfulness(endoStudy.stats)).toBeGreaterThan(20);
  });
});

describe('parsing', () => {
  it('parses window, viewport and quality', () => {
    expect(parseRenderingParams({ window: '40,400', viewport: '10,20', quality: '75' })).toEqual({
      window: { center: 40, width: 400 },
      viewport: { width: 10, height: 20 },
      quality: 75,
    });
    expect(parseRenderingParams({ window: '-600.5,1500,LINEAR-EXACT' }).window).toEqual({ center: -600.5, width: 1500, function: 'LINEAR_EXACT' });
    expect(() => parseRenderingParams({ window: ['1,2', '3,4'] })).toThrow(/"window"/);
  });

  it('negotiates JPEG by default and PNG on request', () => {
    expect(negotiateRendered(undefined)).toBe('jpeg');
    expect(negotiateRendered('image/png')).toBe('png');
    expect(negotiateRendered('image/png, image/jpeg')).toBe('jpeg');
    expect(() => negotiateRendered('image/jpeg;q=0')).toThrow();
  });
});

describe('shared corpus', () => {
  it('never answers 500 when rendering or thumbnailing any stored shared file', { timeout: 240_000 }, async () => {
    const files = await sharedFiles(['dicom-pydicom', 'dicom-dcmjs-tests', 'dicom-orthanc-tests', 'dicom-highdicom', 'endoscopy-dicom-kvasir', 'wsi-cmu1-small-region']);
    const app = await buildTestApp();
    try {
      const statuses = new Map<number, number>();
      for (const file of files.filter((f) => f.endsWith('.dcm'))) {
        const response = await stow(app.app, [await readFile(file)]);
        if (response.statusCode !== 200) continue;
        const ref = (JSON.parse(response.body) as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>)['00081199']?.Value?.[0];
        const retrieveUrl = ref?.['00081190']?.Value?.[0];
        if (retrieveUrl === undefined) continue;
        const url = `/dicomweb/studies/${new URL(retrieveUrl).pathname.split('/studies/')[1]}`;
        for (const suffix of ['/rendered', '/thumbnail']) {
          const rendered = await app.app.inject({ method: 'GET', url: url + suffix });
          expect(rendered.statusCode, `${path.relative(sharedDataDir, file)}${suffix}: ${rendered.body.slice(0, 200)}`).toBeLessThan(500);
          statuses.set(rendered.statusCode, (statuses.get(rendered.statusCode) ?? 0) + 1);
        }
      }
      expect(statuses.get(200) ?? 0).toBeGreaterThan(50);
    } finally {
      await app.close();
    }
  });
});
