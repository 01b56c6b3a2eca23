/**
 * JSON responses compressed by Accept-Encoding (compress-json.ts): QIDO-RS and the AI API as brotli when
 * accepted, else gzip, else identity, always with `Vary: Accept-Encoding`; small bodies, metadata (gzip'ed
 * by its own route) and pixel data (frames, rendered JPEG) are never compressed here.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { stow } from '../test-support/shared-instance.js';
import { negotiateContentCoding } from './compress-json.js';

let t: TestApp;
const study = newUid();
const series = newUid();
const sops = Array.from({ length: 40 }, () => newUid());

beforeAll(async () => {
  t = await buildTestApp();
  const files = sops.map((sop) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 8, columns: 8 }));
  expect((await stow(t.app, files)).statusCode).toBe(200);
});
afterAll(async () => t?.close());

const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

function decoded(body: Buffer, coding: string | undefined): string {
  if (coding === 'br') return brotliDecompressSync(body).toString();
  if (coding === 'gzip') return gunzipSync(body).toString();
  return body.toString();
}

describe('Accept-Encoding negotiation', () => {
  it('prefers brotli, then gzip, by q-value and wildcard', () => {
    expect(negotiateContentCoding(undefined)).toBeUndefined();
    expect(negotiateContentCoding('gzip, deflate, br')).toBe('br');
    expect(negotiateContentCoding('gzip')).toBe('gzip');
    expect(negotiateContentCoding('br;q=0.5, gzip')).toBe('gzip');
    expect(negotiateContentCoding('br;q=0, gzip;q=0')).toBeUndefined();
    expect(negotiateContentCoding('*')).toBe('br');
    expect(negotiateContentCoding('identity')).toBeUndefined();
    expect(negotiateContentCoding('x-gzip')).toBe('gzip');
  });
});

describe('JSON responses', () => {
  it('compresses QIDO-RS results: brotli when accepted, gzip otherwise, identity otherwise, Vary always', async () => {
    const url = `/dicomweb/studies/${study}/series/${series}/instances`;
    const plain = await get(url, { accept: 'application/dicom+json' });
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(String(plain.headers['vary'])).toMatch(/Accept-Encoding/i);
    expect(plain.rawPayload.length).toBeGreaterThan(1024);
    const expected = JSON.parse(plain.body) as unknown[];
    expect(expected).toHaveLength(40);
    for (const [acceptEncoding, coding] of [
      ['gzip, deflate, br', 'br'],
      ['gzip', 'gzip'],
      ['br;q=0.1, gzip', 'gzip'],
      ['identity', undefined],
    ] as const) {
      const res = await get(url, { accept: 'application/dicom+json', 'accept-encoding': acceptEncoding });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-encoding'], acceptEncoding).toBe(coding);
      expect(String(res.headers['vary'])).toMatch(/Accept-Encoding/i);
      expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
      if (coding !== undefined) expect(res.rawPayload.length).toBeLessThan(plain.rawPayload.length / 3);
      expect(JSON.parse(decoded(res.rawPayload, coding))).toEqual(expected);
    }
  });

  it('compresses the AI API and OpenAPI JSON, and leaves small bodies alone', async () => {
    const openapi = await get('/api/openapi.json', { 'accept-encoding': 'br' });
    expect(openapi.headers['content-encoding']).toBe('br');
    expect(JSON.parse(decoded(openapi.rawPayload, 'br')).openapi).toMatch(/^3\./);
    const models = await get('/ai/models', { 'accept-encoding': 'gzip, br' });
    expect(models.statusCode).toBe(200);
    expect(String(models.headers['vary'])).toMatch(/Accept-Encoding/i);
    const body = decoded(models.rawPayload, models.headers['content-encoding'] as string | undefined);
    expect(JSON.parse(body).models.length).toBeGreaterThan(0);
    if (body.length < 1024) expect(models.headers['content-encoding']).toBeUndefined();
    const small = await get('/healthz', { 'accept-encoding': 'br' });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.json()).toEqual({ status: 'ok' });
  });

  it('leaves metadata to its own gzip, and never compresses pixel data', async () => {
    const metadata = await get(`/dicomweb/studies/${study}/series/${series}/metadata`, { 'accept-encoding': 'gzip, br' });
    expect(metadata.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(metadata.rawPayload).toString())).toHaveLength(40);
    const base = `/dicomweb/studies/${study}/series/${series}/instances/${sops[0]}`;
    for (const [url, accept] of [
      [`${base}/frames/1`, 'multipart/related; type="application/octet-stream"'],
      [`${base}/frames/1`, 'multipart/related; type="image/jpeg"'],
      [`${base}/rendered`, 'image/jpeg'],
      [base, 'multipart/related; type="application/dicom"; transfer-syntax=*'],
    ] as const) {
      const res = await get(url, { accept, 'accept-encoding': 'gzip, deflate, br' });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-encoding'], `${url} ${accept}`).toBeUndefined();
    }
  });
});
