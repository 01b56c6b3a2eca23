import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';

type Match = Record<string, { vr: string; Value?: unknown[] }>;

let t: TestApp;
const studyA = newUid();
const studyB = newUid();
const seriesA1 = newUid();
const seriesA2 = newUid();

beforeAll(async () => {
  t = await buildTestApp();
  const parts = [
    makeInstance({ studyInstanceUid: studyA, seriesInstanceUid: seriesA1, patientName: 'Doe^Jane', patientId: 'QIDO-1', studyDate: '20240315', modality: 'CT', accessionNumber: 'A-100' }),
    makeInstance({ studyInstanceUid: studyA, seriesInstanceUid: seriesA1, patientName: 'Doe^Jane', patientId: 'QIDO-1', studyDate: '20240315', modality: 'CT', accessionNumber: 'A-100' }),
    makeInstance({ studyInstanceUid: studyA, seriesInstanceUid: seriesA2, patientName: 'Doe^Jane', patientId: 'QIDO-1', studyDate: '20240315', modality: 'SR', accessionNumber: 'A-100' }),
    makeInstance({ studyInstanceUid: studyB, patientName: 'Roe^Richard', patientId: 'QIDO-2', studyDate: '20231201', modality: 'ES', accessionNumber: 'B-200' }),
  ].map((body) => ({ body }));
  const response = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody(parts),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });
  expect(response.statusCode).toBe(200);
});
afterAll(async () => t.close());

const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });
const uids = (matches: Match[], tag: string) => matches.map((m) => m[tag]?.Value?.[0]);

describe('QIDO-RS over HTTP', () => {
  it('finds studies by patient name with wildcards, case-insensitively, as application/dicom+json', async () => {
    const response = await get('/dicomweb/studies?PatientName=doe*');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/dicom\+json/);
    const matches = response.json() as Match[];
    expect(uids(matches, '0020000D')).toEqual([studyA]);
    expect(matches[0]!['00201206']!.Value).toEqual([2]);
    expect(matches[0]!['00201208']!.Value).toEqual([3]);
    expect([...(matches[0]!['00080061']!.Value as string[])].sort()).toEqual(['CT', 'SR']);
    expect(matches[0]!['00081190']!.Value![0]).toMatch(new RegExp(`/dicomweb/studies/${studyA}$`));
  });

  it('accepts percent-encoded values and tags as keys', async () => {
    const response = await get(`/dicomweb/studies?00100020=${encodeURIComponent('QIDO-2')}`);
    expect(uids(response.json(), '0020000D')).toEqual([studyB]);
  });

  it('matches date ranges', async () => {
    expect(uids((await get('/dicomweb/studies?StudyDate=20240101-20241231&PatientID=QIDO-*')).json(), '0020000D')).toEqual([studyA]);
    expect(uids((await get('/dicomweb/studies?StudyDate=-20231231&PatientID=QIDO-*')).json(), '0020000D')).toEqual([studyB]);
  });

  it('matches ModalitiesInStudy against any series of the study', async () => {
    expect(uids((await get('/dicomweb/studies?ModalitiesInStudy=SR')).json(), '0020000D')).toEqual([studyA]);
  });

  it('lists the series of a study and the instances of a series with RetrieveURLs', async () => {
    const series = (await get(`/dicomweb/studies/${studyA}/series`)).json() as Match[];
    expect(uids(series, '0020000E').sort()).toEqual([seriesA1, seriesA2].sort());
    expect(series[0]!['00081190']!.Value![0]).toContain(`/studies/${studyA}/series/`);
    const instances = (await get(`/dicomweb/studies/${studyA}/series/${seriesA1}/instances`)).json() as Match[];
    expect(instances).toHaveLength(2);
    expect(instances[0]!['00081190']!.Value![0]).toContain(`/series/${seriesA1}/instances/`);
    expect((await get(`/dicomweb/studies/${studyA}/instances`)).json()).toHaveLength(3);
    expect((await get(`/dicomweb/series?Modality=ES`)).json()).toHaveLength(1);
  });

  it('pages with limit and offset without skipping or repeating', async () => {
    const page1 = (await get(`/dicomweb/studies/${studyA}/instances?limit=2&offset=0`)).json() as Match[];
    const page2 = (await get(`/dicomweb/studies/${studyA}/instances?limit=2&offset=2`)).json() as Match[];
    const all = [...uids(page1, '00080018'), ...uids(page2, '00080018')];
    expect(new Set(all).size).toBe(3);
  });

  it('returns included fields', async () => {
    const matches = (await get(`/dicomweb/studies?StudyInstanceUID=${studyA}&includefield=00280010,Columns`)).json() as Match[];
    expect(matches[0]!['00280010']?.Value).toEqual([4]);
    expect(matches[0]!['00280011']?.Value).toEqual([4]);
  });

  it('answers an empty result with 200 and []', async () => {
    const response = await get('/dicomweb/studies?PatientName=NOBODY*');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual([]);
  });

  it('answers 400 naming the parameter for a malformed query', async () => {
    for (const [query, parameter] of [
      ['NotAKeyword=1', 'NotAKeyword'],
      ['limit=-3', 'limit'],
      ['offset=abc', 'offset'],
      ['includefield=ZZZZ', 'includefield'],
    ] as const) {
      const response = await get(`/dicomweb/studies?${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.message, query).toContain(parameter);
    }
  });

  it('answers 400 for a path segment that is not a UID', async () => {
    const response = await get('/dicomweb/studies/not-a-uid/series');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toContain('StudyInstanceUID');
  });

  it('answers 406 for an Accept the server cannot meet', async () => {
    const response = await get('/dicomweb/studies', { accept: 'multipart/related; type="application/dicom+xml"' });
    expect(response.statusCode).toBe(406);
  });

  it('ignores keys it cannot match on and says so in a Warning header (PS3.18 §8.3.4.1)', async () => {
    const response = await get(`/dicomweb/studies?StudyInstanceUID=${studyA}&SpecificCharacterSet=ISO_IR%20100`);
    expect(response.statusCode).toBe(200);
    expect(uids(response.json(), '0020000D')).toEqual([studyA]);
    expect(String(response.headers['warning'])).toMatch(/^299 .*SpecificCharacterSet/);
  });

  it('accepts fuzzymatching', async () => {
    const response = await get('/dicomweb/studies?PatientName=jane&fuzzymatching=true');
    expect(response.statusCode).toBe(200);
  });

  it('logs no query string (patient names and IDs travel in it)', () => {
    const log = t.logLines.join('');
    expect(log).not.toContain('QIDO-2');
    expect(log).not.toMatch(/doe\*/i);
  });
});
