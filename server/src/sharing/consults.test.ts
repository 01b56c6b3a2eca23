/**
 * A second opinion from request to answer, at the server: the requester asks a specialist about a real
 * CT series; a de-identified copy is stored as a new study; the specialist opens it through the consult
 * link (which reaches the copy and nothing else), answers with a region on an image; the requester sees
 * requested → viewed → answered with the turnaround time, and the answer on the ORIGINAL study's
 * images. A specialist who is a user of the archive does the same signed in.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';

const BASE = 'https://pacs.example.org';
const CT2 = path.join(requireSharedData(), 'dicom-pydicom/debian-python3-pydicom-2.3.1/dicomdirtests/77654033/CT2');
const files = ['17106', '17136', '17166', '17196'].map((name) => readFileSync(path.join(CT2, name)));
/** One level of the CMU-1 pyramid (TILED_FULL): a 277 × 370 total pixel matrix in one 500 × 500 tile. */
const SLIDE_LEVEL = readFileSync(path.join(requireSharedData(), 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-3-frames-0-1.dcm'));

let issuer: TestIssuer;
let t: TestApp;
let requester: string;
let admin: string;
let originalStudy: string;

type Json = Record<string, any>;
const uidOf = (row: Json, tag: string): string => row[tag].Value[0];

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer, { PACS_PUBLIC_BASE_URL: BASE }));
  requester = await issuer.token({ sub: 'dr-lan', roles: ['physician'], extraClaims: { name: 'BS. Lan' } });
  admin = await issuer.token({ sub: 'privacy-officer', roles: ['admin'] });
  const stored = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: `Bearer ${await issuer.token({ roles: ['uploader'] })}` }, payload: multipartBody(files.map((body) => ({ body }))) });
  expect(stored.statusCode).toBe(200);
  const studies = await t.app.inject({ url: '/dicomweb/studies?ModalitiesInStudy=CT', headers: { authorization: `Bearer ${requester}` } });
  originalStudy = uidOf(studies.json()[0], '0020000D');
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
});

describe('a consult round trip', () => {
  it('goes from request through the consult link to an answer the requester sees on the original study', async () => {
    const asked = await t.app.inject({
      method: 'POST',
      url: '/consults',
      headers: { authorization: `Bearer ${requester}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ studyInstanceUid: originalStudy, specialist: { name: 'GS. Trần Văn Minh', contact: 'minh@example.org' }, message: 'Xin ý kiến: nốt mờ thùy phải?' }),
    });
    expect(asked.statusCode, asked.body).toBe(201);
    const { consult, link } = asked.json();
    expect(consult).toMatchObject({ status: 'requested', deidentified: true, originalStudyInstanceUid: originalStudy, copy: { instances: 4, excluded: [] }, viewedAt: null, answer: null });
    expect(consult.caseStudyInstanceUid).toMatch(/^2\.25\./);
    expect(consult.caseStudyInstanceUid).not.toBe(originalStudy);
    expect(link.url).toBe(`${BASE}/s/${link.token}`);

    // The copy is a new study of the archive under the consult's pseudonym; the original is as stored.
    const staffHeaders = { authorization: `Bearer ${requester}` };
    const copyRow = (await t.app.inject({ url: `/dicomweb/studies?StudyInstanceUID=${consult.caseStudyInstanceUid}&includefield=all`, headers: staffHeaders })).json()[0];
    expect(copyRow['00100010'].Value[0].Alphabetic).toMatch(/^CONSULT\^[0-9A-F]{8}$/);
    const originalInstances = (await t.app.inject({ url: `/dicomweb/studies/${originalStudy}/instances`, headers: staffHeaders })).json() as Json[];
    const first = originalInstances.find((row) => uidOf(row, '00080018') !== undefined)!;
    const retrieved = await t.app.inject({ url: `/dicomweb/studies/${originalStudy}/series/${uidOf(first, '0020000E')}/instances/${uidOf(first, '00080018')}`, headers: { ...staffHeaders, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    expect(files.some((file) => retrieved.rawPayload.includes(file))).toBe(true);

    // The specialist opens the link: the case and nothing else, the consult's message, and it is "viewed".
    const session = (await t.app.inject({ method: 'POST', url: `/share/${link.token}/session`, headers: { 'content-type': 'application/json' }, payload: '{}' })).json();
    expect(session.view).toMatchObject({ purpose: 'consult', consultId: consult.id, study: { studyInstanceUid: consult.caseStudyInstanceUid } });
    const specialist = { authorization: `Bearer ${session.accessToken}` };
    expect((await t.app.inject({ url: `/dicomweb/studies/${originalStudy}/metadata`, headers: specialist })).statusCode).toBe(404);
    const visible = (await t.app.inject({ url: '/dicomweb/studies', headers: specialist })).json() as Json[];
    expect(visible.map((row) => uidOf(row, '0020000D'))).toEqual([consult.caseStudyInstanceUid]);
    const seen = (await t.app.inject({ url: `/consults/${consult.id}`, headers: specialist })).json();
    expect(seen).toMatchObject({ status: 'viewed', message: 'Xin ý kiến: nốt mờ thùy phải?', originalStudyInstanceUid: null, copy: null });
    expect(JSON.stringify(seen)).not.toContain(originalStudy);

    // The specialist draws a region on an image of the copy and answers.
    const caseInstances = (await t.app.inject({ url: `/dicomweb/studies/${consult.caseStudyInstanceUid}/instances`, headers: specialist })).json() as Json[];
    expect(caseInstances).toHaveLength(4);
    const image = caseInstances[0]!;
    const region = { seriesInstanceUid: uidOf(image, '0020000E'), sopInstanceUid: uidOf(image, '00080018'), points: [100, 120, 140, 120, 140, 160, 100, 160], label: 'nốt mờ' };
    const answered = await t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: { ...specialist, 'content-type': 'application/json' }, payload: JSON.stringify({ text: 'Nốt 6 mm, theo dõi sau 6 tháng.', regions: [region] }) });
    expect(answered.statusCode, answered.body).toBe(200);
    expect(answered.json()).toMatchObject({ status: 'answered', answer: { regions: [region], answeredBy: { subject: `link:${consult.linkId}`, name: 'GS. Trần Văn Minh' } } });
    const again = await t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: { ...specialist, 'content-type': 'application/json' }, payload: JSON.stringify({ text: 'again' }) });
    expect(again.statusCode).toBe(409);

    // The requester sees it answered, with the turnaround, on the original study's images.
    const mine = (await t.app.inject({ url: `/consults/${consult.id}`, headers: staffHeaders })).json();
    expect(mine.status).toBe('answered');
    expect(mine.turnaroundSeconds).toBeGreaterThanOrEqual(0);
    expect(mine.viewedAt).not.toBeNull();
    const original = mine.answer.regions[0];
    expect(original).toMatchObject({ points: region.points, label: 'nốt mờ' });
    const originalRow = originalInstances.find((row) => uidOf(row, '00080018') === original.sopInstanceUid);
    expect(originalRow, 'the answer names an instance of the original study').toBeDefined();
    expect(uidOf(originalRow!, '0020000E')).toBe(original.seriesInstanceUid);
    const listed = (await t.app.inject({ url: `/consults?study=${originalStudy}`, headers: staffHeaders })).json();
    expect(listed.consults.map((c: Json) => c.id)).toContain(consult.id);

    // Audited: the request by the requester naming both studies, the answer by the link.
    await t.services.audit!.flush();
    const records = (await t.app.inject({ url: '/admin/audit?limit=200', headers: { authorization: `Bearer ${admin}` } })).json().records as Json[];
    const request = records.find((r) => r.action === 'consult-request')!;
    expect(request.who.subject).toBe('dr-lan');
    expect(request.objects).toEqual([{ study: originalStudy }, { study: consult.caseStudyInstanceUid }]);
    const answer = records.find((r) => r.action === 'consult-answer' && r.status === 200)!;
    expect(answer.who).toMatchObject({ subject: `link:${consult.linkId}`, kind: 'link' });
  }, 60_000);

  it('works for a specialist who is a user of the archive, signed in, and hides the consult from anyone else', async () => {
    const study = newUid();
    const series = newUid();
    const sop = newUid();
    await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: `Bearer ${await issuer.token({ roles: ['uploader'] })}` }, payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: 8, columns: 8 }) }]) });
    const asked = await t.app.inject({
      method: 'POST',
      url: '/consults',
      headers: { authorization: `Bearer ${requester}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ studyInstanceUid: study, specialist: { subject: 'dr-minh', name: 'GS. Minh' }, message: 'Second look, please', deidentify: false }),
    });
    expect(asked.statusCode, asked.body).toBe(201);
    const { consult } = asked.json();
    expect(consult).toMatchObject({ deidentified: false, caseStudyInstanceUid: study, copy: null });
    const minh = { authorization: `Bearer ${await issuer.token({ sub: 'dr-minh', roles: ['reader'] })}` };
    const mine = (await t.app.inject({ url: '/consults?role=specialist', headers: minh })).json();
    expect(mine.consults.map((c: Json) => c.id)).toEqual([consult.id]);
    const someoneElse = { authorization: `Bearer ${await issuer.token({ sub: 'dr-other', roles: ['reader'] })}` };
    expect((await t.app.inject({ url: `/consults/${consult.id}`, headers: someoneElse })).statusCode).toBe(404);
    // Only the specialist answers; an image outside the case is refused.
    const wrongImage = await t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: { ...minh, 'content-type': 'application/json' }, payload: JSON.stringify({ text: 'x', regions: [{ seriesInstanceUid: series, sopInstanceUid: newUid(), points: [1, 1] }] }) });
    expect(wrongImage.statusCode).toBe(400);
    const byRequester = await t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: { authorization: `Bearer ${requester}`, 'content-type': 'application/json' }, payload: JSON.stringify({ text: 'x' }) });
    expect(byRequester.statusCode).toBe(403);
    const answered = await t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: { ...minh, 'content-type': 'application/json' }, payload: JSON.stringify({ text: 'Agree.', regions: [{ seriesInstanceUid: series, sopInstanceUid: sop, points: [2, 2, 4, 4] }] }) });
    expect(answered.statusCode, answered.body).toBe(200);
    const seen = (await t.app.inject({ url: `/consults/${consult.id}`, headers: { authorization: `Bearer ${requester}` } })).json();
    expect(seen).toMatchObject({ status: 'answered', answer: { text: 'Agree.', answeredBy: { subject: 'dr-minh' }, regions: [{ sopInstanceUid: sop }] } });
  });

  it('takes regions on a whole-slide image in its total pixel matrix, and refuses one outside it or naming a frame', async () => {
    const uploader = { authorization: `Bearer ${await issuer.token({ roles: ['uploader'] })}` };
    expect((await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE(), ...uploader }, payload: multipartBody([{ body: SLIDE_LEVEL }]) })).statusCode).toBe(200);
    const slideStudy = uidOf((await t.app.inject({ url: '/dicomweb/studies?ModalitiesInStudy=SM', headers: { authorization: `Bearer ${requester}` } })).json()[0], '0020000D');
    const asked = await t.app.inject({
      method: 'POST',
      url: '/consults',
      headers: { authorization: `Bearer ${requester}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ studyInstanceUid: slideStudy, specialist: { name: 'GS. Hoa' }, message: 'Bờ tổn thương?' }),
    });
    expect(asked.statusCode, asked.body).toBe(201);
    const { consult, link } = asked.json();
    const session = (await t.app.inject({ method: 'POST', url: `/share/${link.token}/session`, headers: { 'content-type': 'application/json' }, payload: '{}' })).json();
    const specialist = { authorization: `Bearer ${session.accessToken}`, 'content-type': 'application/json' };
    const [image] = (await t.app.inject({ url: `/dicomweb/studies/${consult.caseStudyInstanceUid}/instances`, headers: specialist })).json() as Json[];
    const on = { seriesInstanceUid: uidOf(image!, '0020000E'), sopInstanceUid: uidOf(image!, '00080018') };
    const answer = (regions: unknown[]) => t.app.inject({ method: 'POST', url: `/consults/${consult.id}/answer`, headers: specialist, payload: JSON.stringify({ text: 'Bờ rõ.', regions }) });
    // Beyond the 277 columns of the total pixel matrix (the one 500 × 500 tile's Columns would allow it).
    const outside = await answer([{ ...on, points: [10, 10, 300, 10, 300, 200] }]);
    expect(outside.statusCode).toBe(400);
    expect(outside.json().error.message).toContain('outside the slide\'s total pixel matrix (277 × 370)');
    expect((await answer([{ ...on, points: [10, 10, 100, 380, 50, 50] }])).statusCode).toBe(400);
    // A frame: tile coordinates are not what a slide region is given in.
    const framed = await answer([{ ...on, frame: 1, points: [10, 10, 100, 10, 50, 50] }]);
    expect(framed.statusCode).toBe(400);
    expect(framed.json().error.message).toContain('names no frame');
    // Within it, to the matrix's far corner: stored, and the requester gets it on the original slide.
    const region = { ...on, points: [10.5, 20, 277, 20, 277, 370, 10.5, 370], label: 'bờ' };
    const answered = await answer([region]);
    expect(answered.statusCode, answered.body).toBe(200);
    const mine = (await t.app.inject({ url: `/consults/${consult.id}`, headers: { authorization: `Bearer ${requester}` } })).json();
    const original = (await t.app.inject({ url: `/dicomweb/studies/${slideStudy}/instances`, headers: { authorization: `Bearer ${requester}` } })).json() as Json[];
    expect(mine.answer.regions).toEqual([{ seriesInstanceUid: uidOf(original[0]!, '0020000E'), sopInstanceUid: uidOf(original[0]!, '00080018'), points: region.points, label: 'bờ' }]);
  });
});
