/**
 * Hostile input at the DICOMweb API: attack files of the Orthanc tests and files that declare image
 * matrices far beyond their bytes get a 4xx (at STOW-RS, or when decoding / rendering / thumbnails / AI
 * are asked for), quickly and without the memory that the declared size would need; request-level
 * limits (parts per STOW-RS request, frames per frame list, sequence nesting, QIDO-RS page size) answer
 * as documented; and the server keeps serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writePart10 } from '../dicom/write-part10.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireSharedData } from '../test-support/shared-data.js';

const EDGE_CASES = 'dicom-orthanc-tests/edge-cases';
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ PACS_STOW_MAX_PARTS: '5', PACS_WADO_MAX_FRAMES: '4', PACS_QIDO_MAX_LIMIT: '3', PACS_DICOM_MAX_NESTING: '4' });
});
afterAll(async () => t.close());

async function shared(relative: string): Promise<Buffer> {
  return readFile(path.join(requireSharedData(), relative));
}

async function stow(parts: Buffer[]) {
  return t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody(parts.map((body) => ({ body }))),
    headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' },
  });
}

/** Where a stored instance lives, from its STOW-RS response (Referenced SOP Sequence). */
function storedUrl(body: Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>): string {
  const url = body['00081199']?.Value?.[0]?.['00081190']?.Value?.[0];
  if (url === undefined) throw new Error(`not stored: ${JSON.stringify(body).slice(0, 300)}`);
  return new URL(url).pathname;
}

/** Explicit VR LE element (gggg,eeee) US value at its first position in the file, overwritten. */
function patchUs(file: Buffer, group: number, element: number, value: number): void {
  const tag = Buffer.from([group & 0xff, group >> 8, element & 0xff, element >> 8, 0x55, 0x53, 2, 0]);
  const at = file.indexOf(tag, 132);
  if (at < 0) throw new Error('tag not found');
  file.writeUInt16LE(value, at + 8);
}

/** Makes the SOP Instance UID (and the meta copy) unique without changing any length: its last digits. */
function retag(file: Buffer, suffix: string): Buffer {
  const copy = Buffer.from(file);
  for (const tag of [Buffer.from([0x02, 0x00, 0x03, 0x00, 0x55, 0x49]), Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49])]) {
    const at = copy.indexOf(tag);
    if (at < 0) continue;
    const length = copy.readUInt16LE(at + 6);
    let end = at + 8 + length;
    while (copy[end - 1] === 0 || copy[end - 1] === 0x20) end--;
    copy.write(suffix, end - suffix.length, 'latin1');
  }
  return copy;
}

/** A file claiming `rows` × `columns` with the few bytes of pixel data the original has. */
async function claimingMatrix(relative: string, rows: number, columns: number, suffix: string): Promise<Buffer> {
  const file = retag(await shared(relative), suffix);
  patchUs(file, 0x0028, 0x0010, rows);
  patchUs(file, 0x0028, 0x0011, columns);
  return file;
}

async function serverStillServes(): Promise<void> {
  const health = await t.app.inject({ method: 'GET', url: '/healthz' });
  expect(health.statusCode).toBe(200);
  const small = await stow([makeInstance()]);
  expect(small.statusCode).toBe(200);
}

describe('attack files of the Orthanc tests', () => {
  it.each([
    ['2026-05-26-oob-monochrome-65535.dcm', /65535x65535/],
    ['2026-05-26-oob-monochrome-46341.dcm', /46341x46341/],
    ['2026-05-06-Deeply-Nested-Sequence.dcm', /nested deeper than 4 levels/],
  ])('%s is refused by STOW-RS with a 4xx that says why, and the server keeps serving', async (name, reason) => {
    const started = Date.now();
    const response = await stow([await shared(`${EDGE_CASES}/${name}`)]);
    expect(response.statusCode).toBe(409); // PS3.18 §10.5.3.1: every instance failed
    expect(JSON.stringify(response.json())).toMatch(reason);
    expect(Date.now() - started).toBeLessThan(5000);
    await serverStillServes();
  });
});

describe('files declaring image matrices far beyond their bytes', () => {
  // Encapsulated pixel data can't be checked against Rows × Columns at ingest (the bitstream size says
  // nothing about the decoded size), so these are stored as bytes and refused when decoding is asked for.
  const cases: Array<[string, string, number, number, string]> = [
    ['JPEG Lossless 3x3 claiming 65535 x 65535', `${EDGE_CASES}/Issue140.dcm`, 65535, 65535, '91'],
    ['JPEG Lossless 3x3 claiming 46341 x 46341', `${EDGE_CASES}/Issue140.dcm`, 46341, 46341, '92'],
    ['JPEG Baseline 480x640 claiming 20000 x 20000', 'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm', 20000, 20000, '93'],
  ];

  it.each(cases)('%s: rendered, thumbnails, decoded frames, transcoding, bulk data and AI answer 4xx quickly', async (_name, file, rows, columns, suffix) => {
    const response = await stow([await claimingMatrix(file, rows, columns, suffix)]);
    expect(response.statusCode).toBe(200);
    const instance = storedUrl(response.json());
    const series = instance.replace(/\/instances\/[^/]+$/, '');
    const study = series.replace(/\/series\/[^/]+$/, '');
    const aiFrame = `/ai${instance.replace(/^\/dicomweb/, '')}/frames/1/detections?model=bright-spot`;
    const probes: Array<{ method: 'GET' | 'POST'; url: string; accept?: string }> = [
      { method: 'GET', url: `${instance}/rendered` },
      { method: 'GET', url: `${instance}/frames/1/rendered` },
      { method: 'GET', url: `${instance}/thumbnail` },
      { method: 'GET', url: `${series}/thumbnail` },
      { method: 'GET', url: `${study}/thumbnail` },
      { method: 'GET', url: `${instance}/frames/1`, accept: 'multipart/related; type="application/octet-stream"' },
      { method: 'GET', url: instance, accept: 'multipart/related; type="application/dicom"' },
      { method: 'GET', url: `${instance}/bulkdata/7FE00010` },
      { method: 'POST', url: aiFrame },
    ];
    const rssBefore = process.memoryUsage().rss;
    for (const probe of probes) {
      const started = Date.now();
      const answer = await t.app.inject({ method: probe.method, url: probe.url, headers: probe.accept ? { accept: probe.accept } : {} });
      expect(answer.statusCode, `${probe.method} ${probe.url}: ${answer.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(answer.statusCode, `${probe.method} ${probe.url}: ${answer.body.slice(0, 200)}`).toBeLessThan(500);
      expect(answer.json().error.message, probe.url).toMatch(/limit/);
      expect(Date.now() - started, probe.url).toBeLessThan(5000);
    }
    // Nothing near the declared size (≥ 1.6 GB RGBA) was allocated.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(400 * 1024 * 1024);
    // The stored bytes are still there as they came.
    const asStored = await t.app.inject({ method: 'GET', url: `${instance}/frames/1`, headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    expect(asStored.statusCode).toBe(200);
    await serverStillServes();
  }, 60_000);
});

describe('request-level limits', () => {
  it('refuses a STOW-RS request with more parts than PACS_STOW_MAX_PARTS with 413, keeping the whole instances before the limit', async () => {
    const study = newUid();
    const parts = Array.from({ length: 7 }, () => makeInstance({ studyInstanceUid: study }));
    const response = await stow(parts);
    expect(response.statusCode).toBe(413);
    expect(response.json().error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringMatching(/more than 5 parts/) });
    // The first five were whole instances, stored as they streamed in (sending them again is harmless).
    const page = async (offset: number) => (await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${study}/instances?limit=3&offset=${offset}` })).json() as unknown[];
    expect((await page(0)).length + (await page(3)).length).toBe(5);
    const again = await stow(parts.slice(0, 5));
    expect(again.statusCode).toBe(200);
  });

  it('refuses a frame list longer than PACS_WADO_MAX_FRAMES with 400', async () => {
    const response = await stow([makeInstance({ numberOfFrames: 6 })]);
    const instance = storedUrl(response.json());
    const accept = { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
    const ok = await t.app.inject({ method: 'GET', url: `${instance}/frames/1,2,3,4`, headers: accept });
    expect(ok.statusCode).toBe(200);
    const tooMany = await t.app.inject({ method: 'GET', url: `${instance}/frames/1,2,3,4,5`, headers: accept });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().error.message).toMatch(/at most 4 frames/);
  });

  it('refuses sequences nested deeper than PACS_DICOM_MAX_NESTING and stores those within it', async () => {
    const nested = (depth: number) => {
      let item: Record<string, unknown> = { CodeMeaning: 'leaf' };
      for (let i = 1; i < depth; i++) item = { ContentSequence: [item] };
      return writePart10({
        SOPClassUID: SECONDARY_CAPTURE,
        SOPInstanceUID: newUid(),
        StudyInstanceUID: newUid(),
        SeriesInstanceUID: newUid(),
        Modality: 'OT',
        ContentSequence: [item],
      });
    };
    expect((await stow([nested(4)])).statusCode).toBe(200);
    const deep = await stow([nested(5)]);
    expect(deep.statusCode).toBe(409);
    expect(JSON.stringify(deep.json())).toMatch(/nested deeper than 4 levels/);
  });

  it('answers a QIDO-RS limit above PACS_QIDO_MAX_LIMIT with the maximum and a Warning (PS3.18 §8.3.4.4)', async () => {
    const study = newUid();
    await stow(Array.from({ length: 4 }, () => makeInstance({ studyInstanceUid: study })));
    const capped = await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${study}/instances?limit=50` });
    expect(capped.statusCode).toBe(200);
    expect(capped.json()).toHaveLength(3);
    expect(capped.headers['warning']).toMatch(/^299 .*"The number of results exceeded the maximum supported by the server\. Additional results can be requested\."$/);
    const rest = await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${study}/instances?limit=3&offset=3` });
    expect(rest.json()).toHaveLength(1);
    expect(rest.headers['warning']).toBeUndefined();
  });
});
