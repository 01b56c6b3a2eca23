/**
 * WADO-RS (PS3.18 §10.4): instances and frames come back exactly as stored when the client accepts
 * the stored syntax, in multipart/related bodies; decoding per syntax is in wado-transcode.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { instanceUrl, loadShared, stow, type SharedInstance } from '../test-support/shared-instance.js';
import { splitMultipart, type ResponsePart } from '../test-support/split-multipart.js';
import { buildCountingApp } from '../test-support/counting-store.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

let t: TestApp;
const study = newUid();
const seriesA = newUid();
const seriesB = newUid();
const a1 = { study, series: seriesA, sop: newUid() };
const a2 = { study, series: seriesA, sop: newUid() };
const multi = { study, series: seriesB, sop: newUid() };
const ROWS = 3;
const COLUMNS = 4;
const stored = new Map<string, Buffer>();
let jpeg: SharedInstance;
let wsi: SharedInstance;
let rle: SharedInstance;
let sr: SharedInstance;
let video: SharedInstance;
let deflated: SharedInstance;
let bitPacked: SharedInstance;
let bigEndian: SharedInstance;

beforeAll(async () => {
  t = await buildTestApp();
  stored.set(a1.sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesA, sopInstanceUid: a1.sop, rows: 16, columns: 16 }));
  stored.set(a2.sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesA, sopInstanceUid: a2.sop }));
  stored.set(
    multi.sop,
    makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesB, sopInstanceUid: multi.sop, numberOfFrames: 5, rows: ROWS, columns: COLUMNS }),
  );
  [jpeg, wsi, rle, sr, video, deflated, bitPacked, bigEndian] = await Promise.all([
    loadShared('dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm'),
    loadShared('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm'),
    loadShared('dicom-pydicom/pydicom-data/emri_small_RLE.dcm'),
    loadShared('dicom-dcmjs-tests/sample-sr.dcm'),
    loadShared('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm'),
    loadShared('dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm'),
    loadShared('dicom-highdicom/seg_image_sm_dots_tiled_full.dcm'),
    loadShared('dicom-pydicom/pydicom-data/SC_rgb_expb_16bit_2frame.dcm'),
  ]);
  const shared = [jpeg, wsi, rle, sr, video, deflated, bitPacked, bigEndian].map((i) => i.bytes);
  const response = await stow(t.app, [...stored.values(), ...shared]);
  expect(response.statusCode, response.body).toBe(200);
});
afterAll(async () => t.close());

const get = (url: string, accept?: string) => t.app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } });

async function retrieve(url: string, accept?: string): Promise<ResponsePart[]> {
  const response = await get(url, accept);
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  return splitMultipart(response.rawPayload, response.headers['content-type']);
}

/** Every part is byte-identical to the stored file its Content-Location names. */
function expectStoredBytes(parts: ResponsePart[], expected: Map<string, Buffer>): void {
  const seen = parts.map((part) => {
    const sop = part.headers['content-location']!.split('/').pop()!;
    expect(expected.get(sop), sop).toBeDefined();
    expect(part.body.equals(expected.get(sop)!), `bytes of ${sop}`).toBe(true);
    return sop;
  });
  expect(seen.sort()).toEqual([...expected.keys()].sort());
}

const nativeFrame = (n: number): Buffer => {
  const size = ROWS * COLUMNS;
  return Buffer.from(Array.from({ length: size }, (_, i) => ((n - 1) * size + i) % 251));
};

describe('WADO-RS: retrieve instances as stored', () => {
  it('returns one instance byte for byte as multipart/related application/dicom', async () => {
    const response = await get(instanceUrl(a1), ANY_TS);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^multipart\/related; type="application\/dicom"; boundary=/);
    const parts = splitMultipart(response.rawPayload, response.headers['content-type']);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.headers['content-type']).toBe(`application/dicom; transfer-syntax=${EXPLICIT_LE}`);
    expect(parts[0]!.headers['content-location']).toMatch(new RegExp(`/dicomweb/studies/${study}/series/${seriesA}/instances/${a1.sop}$`));
    expect(parts[0]!.body.equals(stored.get(a1.sop)!)).toBe(true);
  });

  it('returns every instance of a series and of a study, each byte for byte', async () => {
    expectStoredBytes(await retrieve(`/dicomweb/studies/${study}/series/${seriesA}`, ANY_TS), new Map([a1.sop, a2.sop].map((s) => [s, stored.get(s)!])));
    expectStoredBytes(await retrieve(`/dicomweb/studies/${study}`, ANY_TS), stored);
  });

  it('announces the length of a series sent as stored, so a client can show progress', async () => {
    const response = await get(`/dicomweb/studies/${study}`, ANY_TS);
    expect(response.headers['content-length']).toBe(String(response.rawPayload.length));
    expect(response.headers['transfer-encoding']).toBeUndefined();
    // Transcoded parts have no size until decoded: then the body is chunked.
    const transcoded = await get(`/dicomweb/studies/${jpeg.study}`);
    expect(transcoded.statusCode).toBe(200);
    expect(transcoded.headers['content-length']).toBeUndefined();
  });

  it('serves Explicit VR Little Endian instances to clients that name no transfer syntax', async () => {
    for (const accept of [undefined, '*/*', 'multipart/related', 'multipart/related; type="application/dicom"', `multipart/related; type=application/dicom; transfer-syntax=${EXPLICIT_LE}`]) {
      const parts = await retrieve(`/dicomweb/studies/${study}`, accept);
      expect(parts, String(accept)).toHaveLength(3);
    }
  });

  it('transcodes a compressed instance to Explicit VR LE by default, and serves it as stored when the client takes that', async () => {
    for (const accept of [undefined, `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_LE}`]) {
      const [part] = await retrieve(instanceUrl(jpeg), accept);
      expect(part!.headers['content-type'], String(accept)).toBe(`application/dicom; transfer-syntax=${EXPLICIT_LE}`);
      expect(part!.body.equals(jpeg.bytes)).toBe(false);
    }
    // Transcoding is only to Explicit VR LE: another compressed syntax is a 406 naming the stored one.
    const refused = await get(instanceUrl(jpeg), 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90');
    expect(refused.statusCode).toBe(406);
    expect(refused.json().error.message).toContain(JPEG_BASELINE);
    expect(refused.json().error.message).toMatch(/transcoding is only to Explicit VR Little Endian/);

    for (const accept of [ANY_TS, `multipart/related; type="application/dicom"; transfer-syntax=${JPEG_BASELINE}`]) {
      const parts = await retrieve(instanceUrl(jpeg), accept);
      expect(parts).toHaveLength(1);
      expect(parts[0]!.headers['content-type']).toBe(`application/dicom; transfer-syntax=${JPEG_BASELINE}`);
      expect(parts[0]!.body.equals(jpeg.bytes)).toBe(true);
    }
  });

  it('answers 406 on the instance route for other media types (metadata has its own route; rendered is not served yet)', async () => {
    for (const accept of ['application/dicom+json', 'image/jpeg', 'multipart/related; type="application/octet-stream"']) {
      expect((await get(instanceUrl(a1), accept)).statusCode, accept).toBe(406);
    }
  });

  it('answers 404 for unknown study, series or instance and 400 for a path segment that is not a UID', async () => {
    for (const url of [
      `/dicomweb/studies/${newUid()}`,
      `/dicomweb/studies/${study}/series/${newUid()}`,
      instanceUrl({ study, series: seriesA, sop: newUid() }),
      `${instanceUrl({ study, series: seriesA, sop: newUid() })}/frames/1`,
    ]) {
      const response = await get(url, ANY_TS);
      expect(response.statusCode, url).toBe(404);
      expect(response.json().error.message, url).toMatch(/(Study|Series|Instance) not found/);
    }
    const bad = await get(`/dicomweb/studies/${study}/series/not-a-uid`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('SeriesInstanceUID');
  });
});

describe('WADO-RS: retrieve frames', () => {
  it('returns native frames as application/octet-stream in the order asked, duplicates included', async () => {
    const response = await get(`${instanceUrl(multi)}/frames/3`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^multipart\/related; type="application\/octet-stream"; boundary=/);
    const [part] = splitMultipart(response.rawPayload, response.headers['content-type']);
    expect(part!.headers['content-type']).toBe('application/octet-stream');
    expect(part!.body.equals(nativeFrame(3))).toBe(true);

    const parts = await retrieve(`${instanceUrl(multi)}/frames/5,1,3,1`, 'multipart/related; type="application/octet-stream"');
    expect(parts.map((p) => p.body)).toEqual([5, 1, 3, 1].map(nativeFrame));
  });

  it('returns compressed frames as stored when the client accepts the stored syntax, equal to what dcmjs reads', async () => {
    expect(wsi.transferSyntax).toBe(JPEG_BASELINE);
    expect(wsi.frames).toHaveLength(30);
    const parts = await retrieve(`${instanceUrl(wsi)}/frames/1,30,7`, FRAMES_ANY_TS);
    expect(parts.map((p) => p.headers['content-type'])).toEqual(Array(3).fill(`application/octet-stream; transfer-syntax=${JPEG_BASELINE}`));
    expect(parts.map((p) => p.body)).toEqual([1, 30, 7].map((n) => wsi.frames[n - 1]));

    const asJpeg = await get(`${instanceUrl(wsi)}/frames/2`, 'multipart/related; type="image/jpeg"');
    expect(asJpeg.statusCode).toBe(200);
    expect(asJpeg.headers['content-type']).toMatch(/^multipart\/related; type="image\/jpeg"/);
    const [jpegPart] = splitMultipart(asJpeg.rawPayload, asJpeg.headers['content-type']);
    expect(jpegPart!.headers['content-type']).toBe(`image/jpeg; transfer-syntax=${JPEG_BASELINE}`);
    expect(jpegPart!.body.equals(wsi.frames[1]!)).toBe(true);

    expect(rle.frames).toHaveLength(10);
    const rleParts = await retrieve(`${instanceUrl(rle)}/frames/10,4`, `multipart/related; type="application/octet-stream"; transfer-syntax=${rle.transferSyntax}`);
    expect(rleParts.map((p) => p.body)).toEqual([rle.frames[9], rle.frames[3]]);
  });

  it('decodes compressed frames to raw pixels by default, and answers 406 for an image type that does not carry the stored syntax', async () => {
    for (const accept of [undefined, 'multipart/related; type="application/octet-stream"']) {
      const [part] = await retrieve(`${instanceUrl(wsi)}/frames/1`, accept);
      expect(part!.headers['content-type'], String(accept)).toBe('application/octet-stream');
      expect(part!.body.length).toBeGreaterThan(wsi.frames[0]!.length);
    }
    const response = await get(`${instanceUrl(wsi)}/frames/1`, 'multipart/related; type="image/jp2"');
    expect(response.statusCode).toBe(406);
    expect(response.json().error.message).toContain(JPEG_BASELINE);
  });

  it('answers 406 for frames that have no separate bytes as stored: video, deflated data set, bit-packed', async () => {
    for (const [instance, message] of [
      [video, /video/],
      [deflated, /layout of this instance is unknown/],
      [bitPacked, /bit-packed/],
    ] as const) {
      const response = await get(`${instanceUrl(instance)}/frames/1`, FRAMES_ANY_TS);
      expect(response.statusCode, instance.transferSyntax).toBe(406);
      expect(response.json().error.message).toMatch(message);
    }
    // The whole instance is still there for them.
    expect((await retrieve(instanceUrl(video), ANY_TS))[0]!.body.equals(video.bytes)).toBe(true);
  });

  it('serves big-endian native frames as stored when asked, labelled with their syntax, and byte-swapped by default', async () => {
    const [part] = await retrieve(`${instanceUrl(bigEndian)}/frames/2`, FRAMES_ANY_TS);
    expect(part!.headers['content-type']).toBe('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.2');
    expect(part!.body).toHaveLength(100 * 100 * 3 * 2);
    expect(bigEndian.bytes.subarray(bigEndian.bytes.length - part!.body.length).equals(part!.body)).toBe(true);

    const [swapped] = await retrieve(`${instanceUrl(bigEndian)}/frames/2`);
    expect(swapped!.headers['content-type']).toBe('application/octet-stream');
    expect(swapped!.body.equals(Buffer.from(part!.body).swap16())).toBe(true);
  });

  it('answers 400 for a malformed frame list or frame 0, and 404 past the last frame', async () => {
    for (const list of ['abc', '1,,2', '-1', '0', '2,0', '1.5']) {
      const response = await get(`${instanceUrl(multi)}/frames/${list}`);
      expect(response.statusCode, list).toBe(400);
      expect(response.json().error.message, list).toMatch(/[Ff]rame/);
    }
    const past = await get(`${instanceUrl(multi)}/frames/1,6`);
    expect(past.statusCode).toBe(404);
    expect(past.json().error.message).toContain('5 frames');
  });

  it('answers 400, not 500, for frames of an instance without pixel data (SR)', async () => {
    const response = await get(`${instanceUrl(sr)}/frames/1`, FRAMES_ANY_TS);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toMatch(/no pixel data/);
  });
});

describe('WADO-RS frames read only the frames', () => {
  it('issues one ranged read per fragment and never reads the whole file', async () => {
    const { app, store, close } = await buildCountingApp('pacs-wado-');
    try {
      expect((await stow(app, [wsi.bytes])).statusCode).toBe(200);
      const response = await app.inject({ method: 'GET', url: `${instanceUrl(wsi)}/frames/3,4`, headers: { accept: FRAMES_ANY_TS } });
      expect(response.statusCode).toBe(200);
      expect(store.gets).toBe(0);
      expect(store.ranges).toHaveLength(2);
      const read = store.ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0);
      expect(read).toBe(wsi.frames[2]!.length + wsi.frames[3]!.length);
      expect(read).toBeLessThan(wsi.bytes.length / 4);
    } finally {
      await close();
    }
  });
});
