/**
 * CORS (PACS_CORS_ORIGINS): off by default; when configured, only the listed origins may read
 * responses, preflights work, and the headers DICOMweb clients need are exposed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';

const VIEWER = 'https://viewer.example.org';

let off: TestApp;
let on: TestApp;

beforeAll(async () => {
  off = await buildTestApp({ PACS_LOG_LEVEL: 'silent' });
  on = await buildTestApp({ PACS_LOG_LEVEL: 'silent', PACS_CORS_ORIGINS: `${VIEWER}, http://localhost:3000` });
});
afterAll(async () => {
  await off?.close();
  await on?.close();
});

describe('CORS', () => {
  it('is off by default: no Access-Control-Allow-Origin, preflight not answered', async () => {
    const response = await off.app.inject({ method: 'GET', url: '/dicomweb/studies', headers: { origin: VIEWER } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await off.app.inject({
      method: 'OPTIONS',
      url: '/dicomweb/studies',
      headers: { origin: VIEWER, 'access-control-request-method': 'GET' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows a configured origin and exposes the DICOMweb headers', async () => {
    const response = await on.app.inject({ method: 'GET', url: '/dicomweb/studies', headers: { origin: VIEWER } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe(VIEWER);
    const exposed = String(response.headers['access-control-expose-headers']).split(',').map((h) => h.trim().toLowerCase());
    for (const header of ['content-type', 'content-length', 'content-range', 'etag', 'warning', 'location']) {
      expect(exposed).toContain(header);
    }
    expect(String(response.headers['vary'])).toContain('Origin');
  });

  it('does not allow other origins', async () => {
    const response = await on.app.inject({ method: 'GET', url: '/dicomweb/studies', headers: { origin: 'https://evil.example.com' } });
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a preflight for STOW-RS from a configured origin', async () => {
    const preflight = await on.app.inject({
      method: 'OPTIONS',
      url: '/dicomweb/studies',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://localhost:3000');
    expect(String(preflight.headers['access-control-allow-methods'])).toContain('POST');
    expect(String(preflight.headers['access-control-allow-headers']).toLowerCase()).toContain('content-type');
  });

  it('keeps Vary: Accept and Origin on cached retrievals', async () => {
    const study = newUid();
    const series = newUid();
    const sop = newUid();
    const stored = await on.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop }) }]),
      headers: { 'content-type': STOW_CONTENT_TYPE() },
    });
    expect(stored.statusCode).toBe(200);
    const response = await on.app.inject({
      method: 'GET',
      url: `/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/1`,
      headers: { origin: VIEWER },
    });
    expect(response.statusCode).toBe(200);
    const vary = String(response.headers['vary']).split(',').map((h) => h.trim());
    expect(vary).toEqual(expect.arrayContaining(['Origin', 'Accept']));
    expect(response.headers['access-control-allow-origin']).toBe(VIEWER);
  });
});
