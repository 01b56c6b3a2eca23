/**
 * Video instances (MPEG-2 / MPEG-4 AVC / HEVC): the rendered resource of the instance is its stored
 * bitstream (the pixel data fragments, concatenated) as video/mp4 or video/mpeg, with HTTP Range
 * support for browsers' <video> seeking; bulk data of the pixel data is the same bytes.
 * The shared Video Endoscopic instance wraps an MP4 file unchanged in a single fragment.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredInstance } from '../catalog/catalog.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { IMMUTABLE_CACHE_CONTROL } from './http-cache.js';
import { negotiateRenderedVideo, videoMediaType } from './rendered.routes.js';

const FOLDER = path.join(sharedDataDir, 'endoscopy-dicom-kvasir');
const VIDEO_DCM = path.join(FOLDER, 'video-endoscopic-h264-high41-720x576-200frames.dcm');
const VIDEO_MP4 = path.join(FOLDER, 'colonoscopy-kvasir-slideshow-720x576-25fps-h264.mp4');

let t: TestApp;
let instance: StoredInstance;
let mp4: Buffer;
/** The stored fragments, concatenated (the MP4 padded to an even length). */
let bitstream: Buffer;
let url: string;

beforeAll(async () => {
  t = await buildTestApp({ PACS_LOG_LEVEL: 'silent' });
  const file = await readFile(VIDEO_DCM);
  mp4 = await readFile(VIDEO_MP4);
  const stored = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody([{ body: file }]),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });
  expect(stored.statusCode, stored.body).toBe(200);
  const retrieveUrl = String(stored.json()['00081199'].Value[0]['00081190'].Value[0]);
  const [, study, series, sop] = /studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)/.exec(retrieveUrl)!;
  [instance] = (await t.services.catalog.listInstances({ studyInstanceUid: study!, seriesInstanceUid: series!, sopInstanceUid: sop! })) as [StoredInstance];
  expect(instance.transferSyntaxUid).toBe('1.2.840.10008.1.2.4.102');
  expect(instance.pixelData!.isVideo).toBe(true);
  bitstream = Buffer.concat(instance.pixelData!.frames.flat().map(([offset, length]) => file.subarray(offset, offset + length)));
  url = `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
});
afterAll(async () => t?.close());

const get = (path: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url: path, headers });

describe('video instances', () => {
  it('the stored fragments are the MP4 of the shared folder, padded to an even length', () => {
    expect(bitstream.length - mp4.length).toBeGreaterThanOrEqual(0);
    expect(bitstream.length - mp4.length).toBeLessThanOrEqual(1);
    expect(bitstream.subarray(0, mp4.length).equals(mp4)).toBe(true);
    expect(bitstream.subarray(4, 8).toString('latin1')).toBe('ftyp');
  });

  it('rendered with Accept video/mp4 (or */*, or none) is the stored bitstream as video/mp4', async () => {
    for (const accept of ['video/mp4', '*/*', 'video/*', undefined, 'image/jpeg;q=0.5, video/mp4']) {
      const response = await get(`${url}/rendered`, accept === undefined ? {} : { accept });
      expect(response.statusCode, `${accept}: ${response.body.slice(0, 200)}`).toBe(200);
      expect(response.headers['content-type']).toBe('video/mp4');
      expect(response.headers['accept-ranges']).toBe('bytes');
      expect(Number(response.headers['content-length'])).toBe(bitstream.length);
      expect(response.headers['cache-control']).toBe(IMMUTABLE_CACHE_CONTROL);
      expect(response.rawPayload.equals(bitstream)).toBe(true);
    }
  });

  it('honours one HTTP byte range (206), a suffix range, and refuses a range past the end (416)', async () => {
    const part = await get(`${url}/rendered`, { accept: 'video/mp4', range: 'bytes=1000-4999' });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 1000-4999/${bitstream.length}`);
    expect(part.headers['content-type']).toBe('video/mp4');
    expect(part.rawPayload.equals(bitstream.subarray(1000, 5000))).toBe(true);

    const tail = await get(`${url}/rendered`, { range: 'bytes=-100' });
    expect(tail.statusCode).toBe(206);
    expect(tail.rawPayload.equals(bitstream.subarray(bitstream.length - 100))).toBe(true);

    const open = await get(`${url}/rendered`, { range: `bytes=${bitstream.length - 10}-` });
    expect(open.statusCode).toBe(206);
    expect(open.rawPayload.equals(bitstream.subarray(bitstream.length - 10))).toBe(true);

    const past = await get(`${url}/rendered`, { range: `bytes=${bitstream.length}-` });
    expect(past.statusCode).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${bitstream.length}`);
    expect(past.headers['cache-control']).toBeUndefined();
  });

  it('answers 304 to If-None-Match, and the same ETag for a range', async () => {
    const whole = await get(`${url}/rendered`, { accept: 'video/mp4' });
    const etag = String(whole.headers['etag']);
    const ranged = await get(`${url}/rendered`, { accept: 'video/mp4', range: 'bytes=0-9' });
    expect(ranged.headers['etag']).toBe(etag);
    const cached = await get(`${url}/rendered`, { accept: 'video/mp4', 'if-none-match': etag });
    expect(cached.statusCode).toBe(304);
    expect(cached.rawPayload.length).toBe(0);
  });

  it('refuses images of a video (406), and single frames', async () => {
    const jpeg = await get(`${url}/rendered`, { accept: 'image/jpeg' });
    expect(jpeg.statusCode).toBe(406);
    expect(jpeg.json().error.message).toContain('video/mp4');
    expect((await get(`${url}/rendered`, { accept: 'video/mpeg' })).statusCode).toBe(406);
    expect((await get(`${url}/frames/1/rendered`)).statusCode).toBe(406);
  });

  it('bulk data of the pixel data is the same bitstream (multipart and single part, with ranges)', async () => {
    const bare = await get(`${url}/bulkdata/7FE00010`, { accept: 'application/octet-stream; transfer-syntax=*' });
    expect(bare.statusCode, bare.body.slice(0, 200)).toBe(200);
    expect(bare.headers['content-type']).toBe('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.102');
    expect(bare.rawPayload.equals(bitstream)).toBe(true);

    const multipart = await get(`${url}/bulkdata/7FE00010`, { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' });
    expect(multipart.statusCode).toBe(200);
    const parts = splitMultipart(multipart.rawPayload, multipart.headers['content-type']);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.body.equals(bitstream)).toBe(true);

    const ranged = await get(`${url}/bulkdata/7FE00010`, { accept: 'application/octet-stream; transfer-syntax=*', range: 'bytes=10-19' });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.rawPayload.equals(bitstream.subarray(10, 20))).toBe(true);
  });
});

describe('video media types', () => {
  it('maps MPEG-2 to video/mpeg, MPEG-4 AVC and HEVC to video/mp4, others to none', () => {
    expect(videoMediaType('1.2.840.10008.1.2.4.100')).toBe('video/mpeg');
    expect(videoMediaType('1.2.840.10008.1.2.4.101.1')).toBe('video/mpeg');
    for (const uid of ['1.2.840.10008.1.2.4.102', '1.2.840.10008.1.2.4.103', '1.2.840.10008.1.2.4.104', '1.2.840.10008.1.2.4.105', '1.2.840.10008.1.2.4.106', '1.2.840.10008.1.2.4.107', '1.2.840.10008.1.2.4.108']) {
      expect(videoMediaType(uid), uid).toBe('video/mp4');
    }
    expect(videoMediaType('1.2.840.10008.1.2.4.50')).toBeUndefined();
  });

  it('accepts the type itself, video/* and */* only', () => {
    expect(() => negotiateRenderedVideo('video/mpeg', 'video/mpeg')).not.toThrow();
    expect(() => negotiateRenderedVideo('video/*', 'video/mpeg')).not.toThrow();
    expect(() => negotiateRenderedVideo(undefined, 'video/mp4')).not.toThrow();
    expect(() => negotiateRenderedVideo('video/mp4', 'video/mpeg')).toThrow(/video\/mpeg/);
    expect(() => negotiateRenderedVideo('video/mp4;q=0', 'video/mp4')).toThrow();
  });
});
