/**
 * WADO-RS frames in a compressed form the client asks for (PS3.18 §8.7.3.5, Table 8.7.3-5): JPEG
 * Baseline (`image/jpeg`, `quality`), JPEG-LS lossless (`image/jls`) and HTJ2K lossless (`image/jphc`)
 * encoded from any decodable source; lossless forms decode to exactly the raw frame; 406 when nothing
 * acceptable can be produced.
 */
import sharp from 'sharp';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame, initializeCodecs, type PixelAttributes } from '../archive/transcode.js';
import { writePart10 } from '../dicom/write-part10.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { newUid } from '../test-support/make-dicom.js';
import { describeInstance, instanceUrl, loadShared, stow, type SharedInstance } from '../test-support/shared-instance.js';
import { splitMultipart, type ResponsePart } from '../test-support/split-multipart.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
const RAW = `multipart/related; type="application/octet-stream"; transfer-syntax=${EXPLICIT_LE}`;
const AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

let t: TestApp;
let ct: SharedInstance;
let mr: SharedInstance;
let mrJ2k: SharedInstance;
let endoJpeg: SharedInstance;
let endoRgb: SharedInstance;
let video: SharedInstance;
let rle: SharedInstance;

/** A 64×48 signed 16-bit CT slice (Bits Stored 12): air at -1024 HU stored as 0, a disc, a ramp. */
function signedCt(): Buffer {
  const rows = 48;
  const columns = 64;
  const pixels = new Int16Array(rows * columns);
  for (let y = 0; y < rows; y += 1) {
    for (let x = 0; x < columns; x += 1) pixels[y * columns + x] = Math.hypot(x - 32, y - 24) < 18 ? 1000 + x * 10 : x < 8 ? -1024 + y * 30 : -1024;
  }
  return writePart10({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    SOPInstanceUID: newUid(),
    StudyInstanceUID: newUid(),
    SeriesInstanceUID: newUid(),
    PatientName: 'ENCODE^TEST',
    PatientID: 'ENC-1',
    Modality: 'CT',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 1,
    RescaleIntercept: '0',
    RescaleSlope: '1',
    WindowCenter: '40',
    WindowWidth: '400',
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OW' },
  });
}

beforeAll(async () => {
  dcmjs.log.setLevel('silent');
  t = await buildTestApp({ PACS_AI_ENABLED: 'false' });
  ct = describeInstance(signedCt());
  [mr, mrJ2k, endoJpeg, endoRgb, video, rle] = await Promise.all([
    loadShared('dicom-pydicom/pydicom-data/MR2_UNCR.dcm'),
    loadShared('dicom-pydicom/pydicom-data/emri_small_jpeg_2k_lossless.dcm'),
    loadShared('endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-jpeg-baseline.dcm'),
    loadShared('endoscopy-dicom-kvasir/vl-endoscopic-01-cju0s690hkp960855tjuaqvv0-explicit-le-rgb.dcm'),
    loadShared('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm'),
    loadShared('dicom-pydicom/pydicom-data/emri_small_RLE.dcm'),
  ]);
  const response = await stow(t.app, [ct, mr, mrJ2k, endoJpeg, endoRgb, video, rle].map((i) => i.bytes));
  expect(response.statusCode, response.body).toBe(200);
  await initializeCodecs();
});
afterAll(async () => t?.close());

const get = (url: string, accept?: string) => t.app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } });

async function parts(url: string, accept: string): Promise<ResponsePart[]> {
  const response = await get(url, accept);
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  return splitMultipart(response.rawPayload, response.headers['content-type']);
}

function attributesOf(i: SharedInstance): PixelAttributes {
  const n = (tag: string) => Number(i.dict[tag]?.Value?.[0]);
  const bitsAllocated = n('00280100');
  return {
    rows: n('00280010'),
    columns: n('00280011'),
    bitsAllocated,
    bitsStored: bitsAllocated,
    highBit: bitsAllocated - 1,
    pixelRepresentation: 0,
    samplesPerPixel: n('00280002') || 1,
    photometricInterpretation: String(i.dict['00280004']?.Value?.[0]),
    planarConfiguration: 0,
  };
}

describe('WADO-RS frames encoded on request', () => {
  it('encodes JPEG-LS and HTJ2K lossless from native and compressed sources; each decodes to exactly the raw frame', async () => {
    for (const source of [ct, mr, mrJ2k, rle]) {
      const frame = source === rle ? '3' : '1';
      const [raw] = await parts(`${instanceUrl(source)}/frames/${frame}`, RAW);
      for (const [accept, syntax, type] of [
        ['multipart/related; type="image/jls"', JPEG_LS_LOSSLESS, 'image/jls'],
        [`multipart/related; type="application/octet-stream"; transfer-syntax=${JPEG_LS_LOSSLESS}`, JPEG_LS_LOSSLESS, 'application/octet-stream'],
        ['multipart/related; type="image/jphc"', HTJ2K_LOSSLESS, 'image/jphc'],
        [`multipart/related; type="image/jphc"; transfer-syntax=${HTJ2K_LOSSLESS}`, HTJ2K_LOSSLESS, 'image/jphc'],
      ] as const) {
        const response = await get(`${instanceUrl(source)}/frames/${frame}`, accept);
        expect(response.statusCode, `${source.transferSyntax} ${accept}: ${response.body.slice(0, 200)}`).toBe(200);
        expect(response.headers['content-type']).toMatch(new RegExp(`^multipart/related; type="${type.replace('/', '\\/')}"`));
        expect(response.headers['cache-control']).toBe('private, max-age=31536000, immutable');
        const [part] = splitMultipart(response.rawPayload, response.headers['content-type']);
        expect(part!.headers['content-type']).toBe(`${type}; transfer-syntax=${syntax}`);
        expect(part!.body.length, 'smaller than the raw frame').toBeLessThan(raw!.body.length);
        const decoded = decodeFrame(syntax, attributesOf(source), part!.body);
        expect(decoded.pixels.equals(raw!.body), `${source.transferSyntax} → ${syntax} decodes to the raw frame`).toBe(true);
      }
    }
  });

  it('encodes JPEG Baseline from 16-bit greyscale through the data set window, at the quality asked for', async () => {
    const url = `${instanceUrl(ct)}/frames/1`;
    const response = await get(url, 'multipart/related; type="image/jpeg"');
    expect(response.statusCode).toBe(200);
    const [part] = splitMultipart(response.rawPayload, response.headers['content-type']);
    expect(part!.headers['content-type']).toBe(`image/jpeg; transfer-syntax=${JPEG_BASELINE}`);
    const meta = await sharp(part!.body).metadata();
    expect([meta.width, meta.height, meta.channels], 'a one-component JPEG').toEqual([64, 48, 1]);
    const { data } = await sharp(part!.body).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    // Window 40/400: air (-1024) black, the disc (1000 + 10x > 240) white.
    expect(data[2 * 64 + 40]!).toBeLessThan(10);
    expect(data[24 * 64 + 32]!).toBeGreaterThan(245);

    const low = await get(`${url}?quality=10`, 'multipart/related; type="image/jpeg"');
    const high = await get(`${url}?quality=100`, 'multipart/related; type="image/jpeg"');
    expect(low.rawPayload.length).toBeLessThan(high.rawPayload.length);
    expect(low.headers['etag']).not.toBe(high.headers['etag']);
    expect((await get(`${url}?quality=0`, 'multipart/related; type="image/jpeg"')).statusCode).toBe(400);
    expect((await get(`${url}?quality=abc`, 'multipart/related; type="image/jpeg"')).statusCode).toBe(400);
  });

  it('encodes JPEG Baseline from native RGB close to its samples, and keeps a stored JPEG as stored', async () => {
    const [part] = await parts(`${instanceUrl(endoRgb)}/frames/1?quality=95`, 'multipart/related; type="image/jpeg"; transfer-syntax=*');
    expect(part!.headers['content-type']).toBe(`image/jpeg; transfer-syntax=${JPEG_BASELINE}`);
    const { data, info } = await sharp(part!.body).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    const source = endoRgb.frames[0]!;
    let diff = 0;
    for (let i = 0; i < data.length; i += 1) diff += Math.abs(data[i]! - source[i]!);
    expect(diff / data.length, 'mean absolute difference per sample').toBeLessThan(4);

    const [stored] = await parts(`${instanceUrl(endoJpeg)}/frames/1?quality=10`, 'multipart/related; type="image/jpeg"');
    expect(stored!.headers['content-type']).toBe(`image/jpeg; transfer-syntax=${JPEG_BASELINE}`);
    expect(stored!.body.equals(endoJpeg.frames[0]!)).toBe(true);
    const [same] = await parts(`${instanceUrl(endoJpeg)}/frames/1`, AS_STORED);
    expect(same!.body.equals(stored!.body)).toBe(true);
  });

  it('takes ranges by q-value, and answers 406 when nothing acceptable can be produced', async () => {
    const [stored] = await parts(`${instanceUrl(mr)}/frames/1`, `multipart/related; type="image/jls"; q=0.5, ${AS_STORED}`);
    expect(stored!.headers['content-type']).toBe('application/octet-stream');
    const [jls] = await parts(`${instanceUrl(mr)}/frames/1`, `multipart/related; type="image/jls", ${AS_STORED}; q=0.5`);
    expect(jls!.headers['content-type']).toBe(`image/jls; transfer-syntax=${JPEG_LS_LOSSLESS}`);

    for (const [instance, accept] of [
      [mr, 'multipart/related; type="image/jp2"'],
      [mr, 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.70'],
      [mr, 'image/jpeg'],
      [video, 'multipart/related; type="image/jpeg"'],
      [video, 'multipart/related; type="image/jls"'],
    ] as const) {
      const response = await get(`${instanceUrl(instance)}/frames/1`, accept);
      expect(response.statusCode, accept).toBe(406);
      expect(response.json().error.code).toBe('NOT_ACCEPTABLE');
    }
  });
});
