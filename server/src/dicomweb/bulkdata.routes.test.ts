/**
 * WADO-RS bulk data (PS3.18 §10.4.1.1.5, §8.7.3): the pixel data value behind a metadata BulkDataURI,
 * as multipart or as the bare value with HTTP byte ranges, read from storage in bounded ranged reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dcmjs from 'dcmjs';
import { BULKDATA_CHUNK_BYTES } from '../archive/bulkdata.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, makeLargeInstanceHeader, newUid } from '../test-support/make-dicom.js';
import { loadShared, stow, type SharedInstance } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { buildCountingApp } from '../test-support/counting-store.js';

const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const BIG_ENDIAN = '1.2.840.10008.1.2.2';
const OCTET = 'application/octet-stream';
const ANY_TS_MULTIPART = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

const bulkUrl = (i: { study: string; series: string; sop: string }, tag = '7FE00010') =>
  `/dicomweb/studies/${i.study}/series/${i.series}/instances/${i.sop}/bulkdata/${tag}`;

let t: TestApp;
const ROWS = 64;
const COLUMNS = 64;
const FRAMES = 4;
const SIZE = ROWS * COLUMNS * FRAMES;
const native = { study: newUid(), series: newUid(), sop: newUid() };
/** The generated pixel pattern of make-dicom.ts. */
const pixels = Buffer.from(Array.from({ length: SIZE }, (_, i) => i % 251));
let wsi: SharedInstance;
let bigEndian: SharedInstance;
let sr: SharedInstance;
let deflated: SharedInstance;

beforeAll(async () => {
  t = await buildTestApp();
  [wsi, bigEndian, sr, deflated] = await Promise.all([
    loadShared('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm'),
    loadShared('dicom-pydicom/pydicom-data/SC_rgb_expb_16bit_2frame.dcm'),
    loadShared('dicom-dcmjs-tests/sample-sr.dcm'),
    loadShared('dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm'),
  ]);
  const generated = makeInstance({ studyInstanceUid: native.study, seriesInstanceUid: native.series, sopInstanceUid: native.sop, rows: ROWS, columns: COLUMNS, numberOfFrames: FRAMES });
  const files = [generated, wsi.bytes, bigEndian.bytes, sr.bytes, deflated.bytes];
  const response = await stow(t.app, files);
  expect(response.statusCode, response.body).toBe(200);
});
afterAll(async () => t.close());

const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

describe('WADO-RS bulk data of native pixel data', () => {
  it('returns the pixel bytes as one multipart/related part by default', async () => {
    for (const accept of [undefined, '*/*', 'multipart/related', 'multipart/related; type="application/octet-stream"']) {
      const response = await get(bulkUrl(native), accept === undefined ? {} : { accept });
      expect(response.statusCode, String(accept)).toBe(200);
      expect(response.headers['content-type']).toMatch(/^multipart\/related; type="application\/octet-stream"; boundary=/);
      const parts = splitMultipart(response.rawPayload, response.headers['content-type']);
      expect(parts).toHaveLength(1);
      expect(parts[0]!.headers['content-type']).toBe(OCTET);
      expect(parts[0]!.headers['content-location']).toMatch(new RegExp(`${bulkUrl(native)}$`));
      expect(parts[0]!.body.equals(pixels)).toBe(true);
      expect(Number(response.headers['content-length'])).toBe(response.rawPayload.length);
    }
  });

  it('returns the bare value for Accept: application/octet-stream, announcing byte ranges', async () => {
    const response = await get(bulkUrl(native), { accept: OCTET });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(OCTET);
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers['content-length']).toBe(String(SIZE));
    expect(response.rawPayload.equals(pixels)).toBe(true);
  });

  it('answers a byte range with 206, the right bytes and Content-Range', async () => {
    for (const [range, start, end] of [
      ['bytes=100-199', 100, 199],
      ['bytes=16000-', 16000, SIZE - 1],
      ['bytes=-10', SIZE - 10, SIZE - 1],
      ['bytes=0-0', 0, 0],
      [`bytes=16380-99999999`, 16380, SIZE - 1],
    ] as const) {
      const response = await get(bulkUrl(native), { accept: OCTET, range });
      expect(response.statusCode, range).toBe(206);
      expect(response.headers['content-range'], range).toBe(`bytes ${start}-${end}/${SIZE}`);
      expect(response.headers['content-length']).toBe(String(end - start + 1));
      expect(response.rawPayload.equals(pixels.subarray(start, end + 1)), range).toBe(true);
    }
  });

  it('answers 416 for a range past the end, and ignores ranges it does not serve', async () => {
    for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`, 'bytes=-0']) {
      const response = await get(bulkUrl(native), { accept: OCTET, range });
      expect(response.statusCode, range).toBe(416);
      expect(response.headers['content-range']).toBe(`bytes */${SIZE}`);
    }
    // Several ranges, other units, malformed: the whole value (RFC 9110 lets a server ignore Range).
    for (const range of ['bytes=0-5,10-12', 'items=0-1', 'bytes=5-2']) {
      const response = await get(bulkUrl(native), { accept: OCTET, range });
      expect(response.statusCode, range).toBe(200);
      expect(response.rawPayload.equals(pixels)).toBe(true);
    }
    // The multipart form is always whole.
    const multipart = await get(bulkUrl(native), { range: 'bytes=0-9' });
    expect(multipart.statusCode).toBe(200);
    expect(splitMultipart(multipart.rawPayload, multipart.headers['content-type'])[0]!.body.equals(pixels)).toBe(true);
  });

  it('answers 406 for media types other than octet-stream', async () => {
    for (const accept of ['image/jpeg', 'application/dicom+json', 'multipart/related; type="image/jpeg"']) {
      expect((await get(bulkUrl(native), { accept })).statusCode, accept).toBe(406);
    }
  });
});

describe('WADO-RS bulk data stored in other syntaxes', () => {
  it('returns the JPEG fragments of every frame, concatenated, as stored to clients that accept the stored syntax', async () => {
    // Another compressed syntax is not transcoded to.
    const refused = await get(bulkUrl(wsi), { accept: `${OCTET}; transfer-syntax=1.2.840.10008.1.2.4.70` });
    expect(refused.statusCode).toBe(406);
    expect(refused.json().error.message).toContain(JPEG_BASELINE);

    const all = Buffer.concat(wsi.frames);
    for (const accept of [ANY_TS_MULTIPART, `multipart/related; type="application/octet-stream"; transfer-syntax=${JPEG_BASELINE}`]) {
      const response = await get(bulkUrl(wsi), { accept });
      expect(response.statusCode, accept).toBe(200);
      const [part] = splitMultipart(response.rawPayload, response.headers['content-type']);
      expect(part!.headers['content-type']).toBe(`${OCTET}; transfer-syntax=${JPEG_BASELINE}`);
      expect(part!.body.equals(all)).toBe(true);
    }

    // A range across the boundary of the first two fragments.
    const boundary = wsi.frames[0]!.length;
    const range = await get(bulkUrl(wsi), { accept: `${OCTET}; transfer-syntax=*`, range: `bytes=${boundary - 10}-${boundary + 9}` });
    expect(range.statusCode).toBe(206);
    expect(range.headers['content-type']).toBe(`${OCTET}; transfer-syntax=${JPEG_BASELINE}`);
    expect(range.headers['content-range']).toBe(`bytes ${boundary - 10}-${boundary + 9}/${all.length}`);
    expect(range.rawPayload.equals(all.subarray(boundary - 10, boundary + 10))).toBe(true);
  });

  it('returns big-endian pixel data only as stored, labelled with its syntax', async () => {
    expect((await get(bulkUrl(bigEndian))).statusCode).toBe(406);
    const response = await get(bulkUrl(bigEndian), { accept: `${OCTET}; transfer-syntax=${BIG_ENDIAN}` });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(`${OCTET}; transfer-syntax=${BIG_ENDIAN}`);
    expect(response.rawPayload).toHaveLength(2 * 100 * 100 * 3 * 2);
    expect(bigEndian.bytes.subarray(bigEndian.bytes.length - response.rawPayload.length).equals(response.rawPayload)).toBe(true);
  });

  it('answers 406 for pixel data inside a deflated data set', async () => {
    const response = await get(bulkUrl(deflated), { accept: ANY_TS_MULTIPART });
    expect(response.statusCode).toBe(406);
    expect(response.json().error.message).toMatch(/deflated/);
  });
});

/** One shared file in an archive of its own (several shared files have the same UIDs). */
async function storeAlone(relative: string, edit: (bytes: Buffer) => Buffer = (b) => b): Promise<SharedInstance & { app: TestApp }> {
  const loaded = await loadShared(relative);
  const app = await buildTestApp();
  alone.push(app);
  const bytes = edit(Buffer.from(loaded.bytes));
  const response = await stow(app.app, [bytes]);
  expect(response.statusCode, response.body).toBe(200);
  return { ...loaded, bytes, app };
}
const alone: TestApp[] = [];
afterAll(async () => {
  await Promise.all(alone.map((a) => a.close()));
});

const getFrom = (s: { app: TestApp }, url: string, headers: Record<string, string> = {}) => s.app.app.inject({ method: 'GET', url, headers });
const frameUrl = (i: { study: string; series: string; sop: string }, frames: string) =>
  `/dicomweb/studies/${i.study}/series/${i.series}/instances/${i.sop}/frames/${frames}`;
/** The single part of a multipart response, checked to be decoded (plain application/octet-stream). */
function decodedPart(response: { statusCode: number; body: string; rawPayload: Buffer; headers: Record<string, unknown> }): Buffer {
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  const parts = splitMultipart(response.rawPayload, String(response.headers['content-type']));
  expect(parts).toHaveLength(1);
  expect(parts[0]!.headers['content-type']).toBe(OCTET);
  return parts[0]!.body;
}
const ENDOSCOPY = 'endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-jpeg-baseline.dcm';
const CLIENT_DEFAULT = 'multipart/related; type="application/octet-stream"';

describe('WADO-RS bulk data of compressed pixel data, decoded (no transfer-syntax = Explicit VR LE)', () => {
  it('decodes a JPEG baseline still to rows × columns × 3 RGB bytes, the same as the decoded frame', async () => {
    const endoscopy = await storeAlone(ENDOSCOPY);
    const { dict } = dcmjs.data.DicomMessage.readFile(Uint8Array.from(endoscopy.bytes).buffer);
    const rows = Number(dict['00280010']!.Value![0]);
    const columns = Number(dict['00280011']!.Value![0]);
    const frame = decodedPart(await getFrom(endoscopy, frameUrl(endoscopy, '1')));
    expect(frame).toHaveLength(rows * columns * 3);

    for (const accept of [undefined, '*/*', CLIENT_DEFAULT, `${CLIENT_DEFAULT}; transfer-syntax=1.2.840.10008.1.2.1`]) {
      const response = await getFrom(endoscopy, bulkUrl(endoscopy), accept === undefined ? {} : { accept });
      const body = decodedPart(response);
      expect(body.equals(frame), String(accept)).toBe(true);
      expect(Number(response.headers['content-length'])).toBe(response.rawPayload.length);
    }

    const bare = await getFrom(endoscopy, bulkUrl(endoscopy), { accept: OCTET });
    expect(bare.statusCode).toBe(200);
    expect(bare.headers['content-type']).toBe(OCTET);
    expect(bare.headers['content-length']).toBe(String(frame.length));
    expect(bare.rawPayload.equals(frame)).toBe(true);

    // The stored bytes are still there for clients that accept them, under another ETag.
    const stored = await getFrom(endoscopy, bulkUrl(endoscopy), { accept: `${OCTET}; transfer-syntax=*` });
    expect(stored.rawPayload.equals(Buffer.concat(endoscopy.frames))).toBe(true);
    expect(stored.headers['etag']).not.toBe(bare.headers['etag']);
    const revalidated = await getFrom(endoscopy, bulkUrl(endoscopy), { accept: OCTET, 'if-none-match': String(bare.headers['etag']) });
    expect(revalidated.statusCode).toBe(304);
    expect((await getFrom(endoscopy, bulkUrl(endoscopy), { accept: `${OCTET}; transfer-syntax=*`, 'if-none-match': String(bare.headers['etag']) })).statusCode).toBe(200);

    // Byte ranges apply to the decoded bytes.
    const range = await getFrom(endoscopy, bulkUrl(endoscopy), { accept: OCTET, range: 'bytes=1000-1999' });
    expect(range.statusCode).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 1000-1999/${frame.length}`);
    expect(range.headers['etag']).toBe(bare.headers['etag']);
    expect(range.rawPayload.equals(frame.subarray(1000, 2000))).toBe(true);
    const past = await getFrom(endoscopy, bulkUrl(endoscopy), { accept: OCTET, range: `bytes=${frame.length}-` });
    expect(past.statusCode).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${frame.length}`);
  });

  it('decodes every frame of a multi-frame JPEG instance, concatenated in frame order', async () => {
    const count = wsi.frames.length;
    expect(count).toBeGreaterThan(1);
    const list = Array.from({ length: count }, (_, i) => i + 1).join(',');
    const response = await get(frameUrl(wsi, list));
    expect(response.statusCode).toBe(200);
    const decodedFrames = splitMultipart(response.rawPayload, response.headers['content-type']!).map((p) => p.body);
    expect(decodedFrames).toHaveLength(count);
    const body = decodedPart(await get(bulkUrl(wsi), { accept: CLIENT_DEFAULT }));
    expect(body.equals(Buffer.concat(decodedFrames))).toBe(true);
    const tail = await get(bulkUrl(wsi), { accept: OCTET, range: `bytes=-${decodedFrames[count - 1]!.length}` });
    expect(tail.statusCode).toBe(206);
    expect(tail.rawPayload.equals(decodedFrames[count - 1]!)).toBe(true);
  });

  it('decodes lossless JPEG-LS and RLE (orthanc-tests WG04 NM1) to the same pixels as the decoded frame', async () => {
    const decoded: Buffer[] = [];
    for (const syntax of ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.5']) {
      const s = await storeAlone(`dicom-orthanc-tests/TransferSyntaxes/${syntax}.dcm`);
      const body = decodedPart(await getFrom(s, bulkUrl(s), { accept: CLIENT_DEFAULT }));
      expect(body, syntax).toHaveLength(1024 * 256 * 2);
      expect(body.equals(decodedPart(await getFrom(s, frameUrl(s, '1')))), syntax).toBe(true);
      decoded.push(body);
    }
    expect(decoded[1]!.equals(decoded[0]!)).toBe(true);
  });

  it('decodes a 10-frame RLE instance to the pixels of its uncompressed original (pydicom emri_small)', async () => {
    const original = await loadShared('dicom-pydicom/pydicom-data/emri_small.dcm');
    const rle = await storeAlone('dicom-pydicom/pydicom-data/emri_small_RLE.dcm');
    const body = decodedPart(await getFrom(rle, bulkUrl(rle)));
    expect(body).toHaveLength(10 * 64 * 64 * 2);
    expect(body.equals(Buffer.concat(original.frames))).toBe(true);
  });

  it('still answers 406 for video (not decodable) and for decoded values over the size limit', async () => {
    const video = await storeAlone('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm');
    const refused = await getFrom(video, bulkUrl(video), { accept: CLIENT_DEFAULT });
    expect(refused.statusCode).toBe(406);
    expect(refused.json().error.message).toMatch(/cannot decode/);
    expect((await getFrom(video, bulkUrl(video), { accept: ANY_TS_MULTIPART })).statusCode).toBe(200);

    // The JPEG still with Rows and Columns (US, explicit VR LE) raised to 65535: 12.9 GB decoded.
    const huge = await storeAlone(ENDOSCOPY, (bytes) => {
      for (const element of [0x0010, 0x0011]) {
        const tag = Buffer.from([0x28, 0x00, element, 0x00, 0x55, 0x53, 0x02, 0x00]);
        const at = bytes.indexOf(tag);
        expect(at).toBeGreaterThan(0);
        bytes.writeUInt16LE(0xffff, at + 8);
      }
      return bytes;
    });
    const tooLarge = await getFrom(huge, bulkUrl(huge));
    expect(tooLarge.statusCode).toBe(406);
    expect(tooLarge.json().error.message).toMatch(/over the \d+-byte limit for decoded bulk data/);
    expect((await getFrom(huge, bulkUrl(huge), { accept: ANY_TS_MULTIPART })).statusCode).toBe(200);
  });
});

describe('WADO-RS bulk data that is not there', () => {
  it('answers 404 for non-binary or absent tags, instances without pixel data and unknown instances; 400 for a malformed tag', async () => {
    const other = await get(bulkUrl(native, '00100010'));
    expect(other.statusCode).toBe(404);
    expect(other.json().error.message).toMatch(/not a binary element/);
    const absent = await get(bulkUrl(native, '00282000'));
    expect(absent.statusCode).toBe(404);
    expect(absent.json().error.message).toMatch(/No element 00282000/);
    const none = await get(bulkUrl(sr));
    expect(none.statusCode).toBe(404);
    expect(none.json().error.message).toMatch(/no pixel data/);
    const unknown = await get(bulkUrl({ ...native, sop: newUid() }));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toBe('Instance not found');
    expect((await get(bulkUrl(native, 'pixel'))).statusCode).toBe(400);
    expect((await get(bulkUrl(native, '7fe00010'), { accept: OCTET })).rawPayload.equals(pixels)).toBe(true);
  });
});

describe('WADO-RS bulk data reads in bounded chunks', () => {
  it('streams a 20 MiB value by ranged reads of at most 8 MiB, and a range by reads of that range only', async () => {
    const { app, store, close } = await buildCountingApp('pacs-bulkdata-');
    try {
      const large = { study: newUid(), series: newUid(), sop: newUid() };
      const { header, pixelBytes } = makeLargeInstanceHeader({ studyInstanceUid: large.study, seriesInstanceUid: large.series, sopInstanceUid: large.sop, rows: 4096, columns: 5120 });
      expect(pixelBytes).toBe(20 * 1024 * 1024);
      const value = Buffer.alloc(pixelBytes);
      for (let i = 0; i < value.length; i += 4096) value.writeUInt32LE(i, i);
      expect((await stow(app, [Buffer.concat([header, value])])).statusCode).toBe(200);

      const whole = await app.inject({ method: 'GET', url: bulkUrl(large), headers: { accept: OCTET } });
      expect(whole.statusCode).toBe(200);
      expect(whole.rawPayload.equals(value)).toBe(true);
      expect(store.gets).toBe(0);
      expect(store.ranges.map((r) => r.end - r.start + 1)).toEqual([BULKDATA_CHUNK_BYTES, BULKDATA_CHUNK_BYTES, 4 * 1024 * 1024]);

      store.ranges = [];
      const start = 9 * 1024 * 1024 + 5;
      const part = await app.inject({ method: 'GET', url: bulkUrl(large), headers: { accept: OCTET, range: `bytes=${start}-${start + 999}` } });
      expect(part.statusCode).toBe(206);
      expect(part.rawPayload.equals(value.subarray(start, start + 1000))).toBe(true);
      expect(store.ranges).toEqual([{ start: header.length + start, end: header.length + start + 999 }]);
    } finally {
      await close();
    }
  });
});
