import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import http from 'node:http';
import { Readable } from 'node:stream';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ PACS_STOW_MAX_BODY_BYTES: String(2 * 1024 * 1024) });
});
afterAll(async () => t.close());

const stow = (payload: Buffer | Readable, contentType = STOW_CONTENT_TYPE(), url = '/dicomweb/studies', headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType, accept: 'application/dicom+json', ...headers } });

const qidoInstances = async (studyUid: string) => {
  const response = await t.app.inject({ method: 'GET', url: `/dicomweb/studies/${studyUid}/instances` });
  expect(response.statusCode).toBe(200);
  return response.json() as Array<Record<string, { Value?: unknown[] }>>;
};

async function countBlobs(dir: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === '.tmp') continue;
    if (entry.isDirectory()) count += await countBlobs(path.join(dir, entry.name));
    else count += 1;
  }
  return count;
}

describe('STOW-RS: storing instances', () => {
  it('stores every part and answers 200 with RetrieveURLs (PS3.18 Table 10.5.3-1)', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const a = newUid();
    const b = newUid();
    const response = await stow(
      multipartBody([
        { body: makeInstance({ studyInstanceUid: studyUid, seriesInstanceUid: seriesUid, sopInstanceUid: a }) },
        { body: makeInstance({ studyInstanceUid: studyUid, seriesInstanceUid: seriesUid, sopInstanceUid: b }) },
      ]),
    );
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/dicom\+json/);
    const body = response.json();
    expect(body['00081190'].Value[0]).toMatch(new RegExp(`/dicomweb/studies/${studyUid}$`));
    const referenced = body['00081199'].Value as Array<Record<string, { Value: string[] }>>;
    // In the order of the parts, though parts are finished in parallel.
    expect(referenced.map((item) => item['00081155']!.Value[0])).toEqual([a, b]);
    expect(referenced[0]!['00081190']!.Value[0]).toContain(`/studies/${studyUid}/series/${seriesUid}/instances/`);
    expect(body['00081198']).toBeUndefined();
    expect((await qidoInstances(studyUid)).length).toBe(2);
  });

  it('reports parts in request order even when a later, smaller part finishes first', async () => {
    const uids = [newUid(), newUid(), newUid()];
    const response = await stow(
      multipartBody([
        { body: makeInstance({ sopInstanceUid: uids[0], rows: 1100, columns: 1100 }) },
        { body: makeInstance({ sopInstanceUid: uids[1] }) },
        { body: makeInstance({ sopInstanceUid: uids[2] }) },
      ]),
    );
    expect(response.statusCode).toBe(200);
    const referenced = response.json()['00081199'].Value as Array<Record<string, { Value: string[] }>>;
    expect(referenced.map((item) => item['00081155']!.Value[0])).toEqual(uids);
  });

  it('stores the good part and reports the bad one: 202 with FailedSOPSequence', async () => {
    const studyUid = newUid();
    const response = await stow(
      multipartBody([
        { body: makeInstance({ studyInstanceUid: studyUid }) },
        { body: Buffer.from('this is not a DICOM file at all') },
      ]),
    );
    expect(response.statusCode).toBe(202);
    const failed = response.json()['00081198'].Value as Array<Record<string, { Value: unknown[] }>>;
    expect(failed).toHaveLength(1);
    expect(failed[0]!['00081197']!.Value[0]).toBe(0xc000);
    expect(String(failed[0]!['0040A160']!.Value[0])).toMatch(/Part-10|DICM|preamble/i);
    expect((await qidoInstances(studyUid)).length).toBe(1);
  });

  it('answers 409 when no part could be stored', async () => {
    const response = await stow(multipartBody([{ body: Buffer.alloc(300, 1) }]));
    expect(response.statusCode).toBe(409);
    expect(response.json()['00081198'].Value).toHaveLength(1);
  });

  it('refuses instances of another study when the path names a study (409, reason 0xA900)', async () => {
    const pathStudy = newUid();
    const response = await stow(multipartBody([{ body: makeInstance() }]), STOW_CONTENT_TYPE(), `/dicomweb/studies/${pathStudy}`);
    expect(response.statusCode).toBe(409);
    const failed = response.json()['00081198'].Value[0];
    expect(failed['00081197'].Value[0]).toBe(0xa900);
    expect((await qidoInstances(pathStudy)).length).toBe(0);
  });

  it('accepts instances of the study named in the path', async () => {
    const studyUid = newUid();
    const response = await stow(multipartBody([{ body: makeInstance({ studyInstanceUid: studyUid }) }]), STOW_CONTENT_TYPE(), `/dicomweb/studies/${studyUid}`);
    expect(response.statusCode).toBe(200);
  });

  it('fails a part with a non-DICOM content type alone', async () => {
    const studyUid = newUid();
    const response = await stow(
      multipartBody([
        { body: Buffer.from('{"00100010":{}}'), contentType: 'application/dicom+json' },
        { body: makeInstance({ studyInstanceUid: studyUid }) },
      ]),
    );
    expect(response.statusCode).toBe(202);
    expect(JSON.stringify(response.json()['00081198'])).toContain('application/dicom+json');
  });

  it('stores the same instance twice idempotently: one copy, success both times', async () => {
    const instance = makeInstance();
    const blobRoot = t.config.blobStore.kind === 'fs' ? t.config.blobStore.root : '';
    const before = await countBlobs(blobRoot);
    const first = await stow(multipartBody([{ body: instance }]));
    const second = await stow(multipartBody([{ body: instance }]));
    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(200);
    expect((await countBlobs(blobRoot)) - before).toBe(1);
  });

  it('refuses the same SOP Instance UID under another study, keeping the stored one', async () => {
    const sopUid = newUid();
    const original = makeInstance({ sopInstanceUid: sopUid });
    expect((await stow(multipartBody([{ body: original }]))).statusCode).toBe(200);
    const clash = await stow(multipartBody([{ body: makeInstance({ sopInstanceUid: sopUid }) }]));
    expect(clash.statusCode).toBe(409);
    expect(clash.json()['00081198'].Value[0]['00081197'].Value[0]).toBe(0x0111);
  });
});

describe('STOW-RS: malformed requests', () => {
  it('answers 415 for a body that is not multipart/related', async () => {
    for (const contentType of ['application/json', 'application/dicom', 'text/plain', 'multipart/form-data; boundary=x']) {
      const response = await stow(Buffer.from('{}'), contentType);
      expect(response.statusCode, contentType).toBe(415);
      expect(response.json().error.message).toMatch(/multipart\/related/);
    }
  });

  it('answers 415 for multipart/related of DICOM JSON or XML metadata', async () => {
    const response = await stow(Buffer.from('x'), 'multipart/related; type="application/dicom+xml"; boundary=b');
    expect(response.statusCode).toBe(415);
    expect(response.json().error.message).toContain('application/dicom+xml');
  });

  it('answers 400 when the boundary is missing', async () => {
    const response = await stow(Buffer.from('x'), 'multipart/related; type="application/dicom"');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toMatch(/boundary/);
  });

  it('answers 400 for an empty body', async () => {
    const response = await stow(Buffer.alloc(0));
    expect(response.statusCode).toBe(400);
  });

  it('answers 400 for a truncated body and keeps nothing of the cut part', async () => {
    const studyUid = newUid();
    const whole = multipartBody([{ body: makeInstance({ studyInstanceUid: studyUid, rows: 64, columns: 64 }) }]);
    const response = await stow(whole.subarray(0, whole.length - 2000));
    expect(response.statusCode).toBe(400);
    expect((await qidoInstances(studyUid)).length).toBe(0);
  });

  it('answers 413 when Content-Length exceeds the limit', async () => {
    const big = multipartBody([{ body: makeInstance({ rows: 1600, columns: 1600 }) }]);
    const response = await stow(big);
    expect(response.statusCode).toBe(413);
  });

  it('answers 413 when a streamed body of unknown length exceeds the limit', async () => {
    const big = multipartBody([{ body: makeInstance({ rows: 1600, columns: 1600 }) }]);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    // Chunked transfer encoding: no Content-Length, so the limit is enforced while counting bytes.
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port, path: '/dicomweb/studies', method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE() } });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      Readable.from((function* () {
        for (let i = 0; i < big.length; i += 65536) yield big.subarray(i, i + 65536);
      })()).pipe(request);
    });
    expect(status).toBe(413);
  });

  it('answers 406 when the client accepts only XML responses', async () => {
    const response = await stow(multipartBody([{ body: makeInstance() }]), STOW_CONTENT_TYPE(), '/dicomweb/studies', {
      accept: 'application/dicom+xml',
    });
    expect(response.statusCode).toBe(406);
  });
});
