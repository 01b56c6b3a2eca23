/**
 * WADO-RS decoding (PS3.18 §8.7.3, §10.4): with the default Accept, instances stored in another syntax
 * come back as Explicit VR Little Endian and compressed frames as raw little-endian pixels; asked with
 * transfer-syntax=* they still come back as stored. One file per transfer syntax (orthanc-tests
 * TransferSyntaxes/), each in its own archive (several share SOP Instance UIDs), plus the pydicom
 * `emri_small` set whose compressed variants have an uncompressed original to compare with.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs, { type DcmjsDict } from 'dcmjs';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';

dcmjs.log.setLevel('silent', false);
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent', false);

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const TS_DIR = 'dicom-orthanc-tests/TransferSyntaxes';
const PYDICOM = 'dicom-pydicom/pydicom-data';

interface Parsed {
  meta: DcmjsDict;
  dict: DcmjsDict;
}

const parse = (bytes: Buffer): Parsed =>
  dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer, { ignoreErrors: true });
const first = (dict: DcmjsDict, tag: string): unknown => dict[tag]?.Value?.[0];
const binary = (v: unknown): Buffer => {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new Error(`not binary: ${typeof v}`);
};
/** Native pixel data as one buffer (dcmjs gives one ArrayBuffer for native data). */
const nativePixels = (p: Parsed): Buffer => Buffer.concat((p.dict['7FE00010']?.Value ?? []).map(binary));

interface Image {
  rows: number;
  columns: number;
  samples: number;
  bytes: number;
  frames: number;
  frameLength: number;
}
function imageOf(p: Parsed): Image {
  const rows = Number(first(p.dict, '00280010'));
  const columns = Number(first(p.dict, '00280011'));
  const samples = Number(first(p.dict, '00280002') ?? 1);
  const bytes = Number(first(p.dict, '00280100')) / 8;
  const frames = Number(first(p.dict, '00280008') ?? 1);
  return { rows, columns, samples, bytes, frames, frameLength: rows * columns * samples * bytes };
}

interface Stored {
  t: TestApp;
  url: string;
  bytes: Buffer;
  source: Parsed;
}
const opened: TestApp[] = [];
afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
});

/** Stores one shared file in a fresh archive; undefined when STOW refuses it (e.g. no Part-10 header). */
async function store(relative: string): Promise<Stored> {
  const bytes = await readFile(path.join(sharedDataDir, relative));
  const source = parse(bytes);
  const t = await buildTestApp({ PACS_LOG_LEVEL: 'warn' });
  opened.push(t);
  const response = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody([{ body: bytes }]),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });
  expect(response.statusCode, response.body).toBe(200);
  const uid = (tag: string) => String(first(source.dict, tag));
  return { t, bytes, source, url: `/dicomweb/studies/${uid('0020000D')}/series/${uid('0020000E')}/instances/${uid('00080018')}` };
}

async function getParts(s: Stored, url: string, accept?: string) {
  const response = await s.t.app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } });
  expect(response.statusCode, `${url} ${response.body.slice(0, 300)}`).toBe(200);
  return splitMultipart(response.rawPayload, response.headers['content-type']);
}

/** Default-Accept retrieval: one Explicit VR LE part; returns its parsed data set and pixel data. */
async function retrieveTranscoded(s: Stored): Promise<{ parsed: Parsed; pixels: Buffer; image: Image }> {
  const parts = await getParts(s, s.url);
  expect(parts).toHaveLength(1);
  expect(parts[0]!.headers['content-type']).toBe(`application/dicom; transfer-syntax=${EXPLICIT_LE}`);
  const parsed = parse(parts[0]!.body);
  expect(first(parsed.meta, '00020010')).toBe(EXPLICIT_LE);
  expect(first(parsed.dict, '00080018')).toBe(first(s.source.dict, '00080018'));
  const image = imageOf(parsed);
  const pixels = nativePixels(parsed);
  // Odd totals are padded to even length.
  expect(pixels.length - image.frameLength * image.frames).toBeGreaterThanOrEqual(0);
  expect(pixels.length - image.frameLength * image.frames).toBeLessThanOrEqual(1);
  return { parsed, pixels: pixels.subarray(0, image.frameLength * image.frames), image };
}

async function frame(s: Stored, n: number, accept?: string): Promise<Buffer> {
  const parts = await getParts(s, `${s.url}/frames/${n}`, accept);
  expect(parts).toHaveLength(1);
  if (accept === undefined) expect(parts[0]!.headers['content-type']).toBe('application/octet-stream');
  return parts[0]!.body;
}

const LOSSLESS_COMPRESSED = ['1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.5'];
const LOSSY_COMPRESSED = ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.91'];
const NATIVE_OTHER = ['1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99'];

describe('WADO-RS decoding, one file per transfer syntax (orthanc-tests)', () => {
  const decodedNm1: Buffer[] = [];

  it.each([...LOSSLESS_COMPRESSED, ...LOSSY_COMPRESSED])('%s: instance → Explicit VR LE, frame 1 → raw pixels, transfer-syntax=* → stored', async (syntax) => {
    const s = await store(`${TS_DIR}/${syntax}.dcm`);
    expect(first(s.source.meta, '00020010')).toBe(syntax);
    const started = performance.now();
    const { pixels, image, parsed } = await retrieveTranscoded(s);
    const instanceMs = performance.now() - started;
    expect(image.frames).toBe(1);
    expect(pixels.some((b) => b !== 0)).toBe(true);
    if (syntax === '1.2.840.10008.1.2.4.50') {
      // YBR_FULL_422 JPEG comes back as interleaved RGB.
      expect(first(parsed.dict, '00280004')).toBe('RGB');
      expect(image.frameLength).toBe(480 * 640 * 3);
    }
    if (LOSSY_COMPRESSED.includes(syntax)) expect(first(parsed.dict, '00282110')).toBe('01');

    const raw = await frame(s, 1);
    expect(raw).toHaveLength(image.frameLength);
    expect(raw.equals(pixels)).toBe(true);
    if (['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.5'].includes(syntax)) decodedNm1.push(raw);

    const [asStored] = await getParts(s, s.url, ANY_TS);
    expect(asStored!.headers['content-type']).toBe(`application/dicom; transfer-syntax=${syntax}`);
    expect(asStored!.body.equals(s.bytes)).toBe(true);
    const storedFrame = await frame(s, 1, FRAMES_ANY_TS);
    expect(storedFrame.length).toBeLessThan(image.frameLength);
    console.info(`${syntax}: ${image.rows}x${image.columns}x${image.samples}x${image.bytes * 8}-bit instance transcoded in ${instanceMs.toFixed(0)} ms`);
  });

  it('JPEG-LS, JPEG 2000 and RLE lossless of the same image (WG04 NM1) decode to identical pixels', () => {
    expect(decodedNm1).toHaveLength(3);
    expect(decodedNm1[0]!).toHaveLength(1024 * 256 * 2);
    expect(decodedNm1[1]!.equals(decodedNm1[0]!)).toBe(true);
    expect(decodedNm1[2]!.equals(decodedNm1[0]!)).toBe(true);
  });

  it.each(NATIVE_OTHER)('%s: instance → Explicit VR LE with the same pixels', async (syntax) => {
    const s = await store(`${TS_DIR}/${syntax}.dcm`);
    const { pixels, image } = await retrieveTranscoded(s);
    // 8-bit (big endian RGB) needs no swap; the deflated CT is 16-bit little endian once inflated.
    expect(pixels.equals(nativePixels(s.source).subarray(0, image.frameLength * image.frames))).toBe(true);
    const [asStored] = await getParts(s, s.url, ANY_TS);
    expect(asStored!.body.equals(s.bytes)).toBe(true);
  });

  it('Explicit VR LE: the default Accept streams the stored file byte for byte', async () => {
    const s = await store(`${TS_DIR}/${EXPLICIT_LE}.dcm`);
    const [part] = await getParts(s, s.url);
    expect(part!.body.equals(s.bytes)).toBe(true);
  });

  it.each(['dicom-orthanc-tests/misc/ColorTestMalaterre.dcm', 'dicom-dcmjs-tests/cine-test.dcm'])(
    'Implicit VR LE (%s; the TransferSyntaxes/ sample has no Part-10 header): instance → Explicit VR LE with the same pixels',
    async (file) => {
      const s = await store(file);
      expect(first(s.source.meta, '00020010')).toBe('1.2.840.10008.1.2');
      const { pixels, image } = await retrieveTranscoded(s);
      expect(pixels.equals(nativePixels(s.source).subarray(0, image.frameLength * image.frames))).toBe(true);
      // Native little-endian frames need no decoding: served as stored.
      expect((await frame(s, image.frames)).equals(pixels.subarray((image.frames - 1) * image.frameLength))).toBe(true);
    },
  );

  it('refuses at STOW the Implicit VR LE sample that has no Part-10 header (nothing to transcode)', async () => {
    const bytes = await readFile(path.join(sharedDataDir, TS_DIR, '1.2.840.10008.1.2.dcm'));
    const t = await buildTestApp({ PACS_LOG_LEVEL: 'warn' });
    opened.push(t);
    const response = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: bytes }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(response.statusCode).not.toBe(200);
  });
});

describe('WADO-RS decoding against an uncompressed original (pydicom emri_small, 10 frames 64x64 16-bit)', () => {
  let reference: { pixels: Buffer; image: Image };
  it.each(['emri_small_jpeg_ls_lossless.dcm', 'emri_small_jpeg_2k_lossless.dcm', 'emri_small_RLE.dcm', 'emri_small_big_endian.dcm'])(
    '%s decodes to the original pixels, whole instance and frame by frame',
    async (file) => {
      if (reference === undefined) {
        const original = parse(await readFile(path.join(sharedDataDir, PYDICOM, 'emri_small.dcm')));
        reference = { pixels: nativePixels(original), image: imageOf(original) };
        expect(reference.image.frames).toBe(10);
      }
      const s = await store(`${PYDICOM}/${file}`);
      const { pixels } = await retrieveTranscoded(s);
      expect(pixels.equals(reference.pixels)).toBe(true);
      const length = reference.image.frameLength;
      for (const n of [1, 7, 10]) {
        expect((await frame(s, n)).equals(reference.pixels.subarray((n - 1) * length, n * length)), `frame ${n}`).toBe(true);
      }
      const parts = await getParts(s, `${s.url}/frames/10,2,10`);
      expect(parts.map((p) => p.body)).toEqual([10, 2, 10].map((n) => reference.pixels.subarray((n - 1) * length, n * length)));
    },
  );
});

describe('WADO-RS decoding of other pydicom pairs (compressed lossless vs uncompressed original)', () => {
  it.each([
    ['US1_J2KR.dcm', 'US1_UNCR.dcm'],
    ['MR2_J2KR.dcm', 'MR2_UNCR.dcm'],
    ['693_J2KR.dcm', '693_UNCR.dcm'],
    ['OBXXXX1A_rle_2frame.dcm', 'OBXXXX1A_2frame.dcm'],
  ])('%s decodes to the pixels of %s', async (compressed, original) => {
    const reference = parse(await readFile(path.join(sharedDataDir, PYDICOM, original)));
    const s = await store(`${PYDICOM}/${compressed}`);
    const { pixels, image } = await retrieveTranscoded(s);
    expect(pixels.equals(nativePixels(reference).subarray(0, image.frameLength * image.frames))).toBe(true);
    expect((await frame(s, 1)).equals(pixels.subarray(0, image.frameLength))).toBe(true);
  });
});

describe('WADO-RS decoding refusals', () => {
  it('answers 406 naming the syntax for an instance or frames it cannot decode (video), and still serves them as stored', async () => {
    const s = await store('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm');
    const syntax = String(first(s.source.meta, '00020010'));
    const refused = await s.t.app.inject({ method: 'GET', url: s.url });
    expect(refused.statusCode).toBe(406);
    expect(refused.json().error.message).toContain(syntax);
    expect(refused.json().error.message).toMatch(/cannot decode/);
    const [asStored] = await getParts(s, s.url, ANY_TS);
    expect(asStored!.body.equals(s.bytes)).toBe(true);
  });
});
