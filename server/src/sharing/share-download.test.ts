/**
 * "Download" of what a share link shares, as the patient's phone and the next hospital get it: a ZIP of
 * JPEGs (one per image, each frame of a multi-frame image) and a ZIP of the DICOM files, each file
 * byte-identical to what WADO-RS serves the link; confined to the link's chosen series; audited as
 * `study-export` (ATNA 110106 Export) with the link as the user; refused once the link is revoked. And
 * WADO-RS `Accept: application/zip` (PS3.18 §8.7.3.5.2) for staff and links alike, with the same
 * confinement as every WADO-RS read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { splitMultipart } from '../test-support/split-multipart.js';

let t: TestApp;
const A = { study: newUid(), series1: newUid(), series2: newUid(), sop11: newUid(), sop12: newUid(), sop21: newUid() };
const B = { study: newUid(), series: newUid(), sop: newUid() };
const files = new Map<string, Buffer>();

const withLink = (credential: string) => ({ authorization: `Bearer share.${credential}` });

async function makeLink(body: Record<string, unknown>): Promise<{ token: string; link: { id: string } }> {
  const response = await t.app.inject({ method: 'POST', url: '/share/links', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  expect(response.statusCode, response.body).toBe(201);
  return response.json();
}

/** The entries of a ZIP in order (yauzl checks the central directory and each entry's CRC-32 as it reads). */
function unzip(bytes: Buffer): Promise<Array<{ name: string; body: Buffer; compressed: boolean }>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true }, (err, zip) => {
      if (err !== null || zip === undefined) return reject(err ?? new Error('not a zip'));
      const entries: Array<{ name: string; body: Buffer; compressed: boolean }> = [];
      zip.on('error', reject);
      zip.on('end', () => resolve(entries));
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e !== null || stream === undefined) return reject(e ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            entries.push({ name: entry.fileName, body: Buffer.concat(chunks), compressed: entry.compressionMethod === 8 });
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
}

/** What WADO-RS serves these credentials for one instance, as stored (`transfer-syntax=*`). */
async function wadoBytes(headers: Record<string, string>, study: string, series: string, sop: string): Promise<Buffer> {
  const response = await t.app.inject({ url: `/dicomweb/studies/${study}/series/${series}/instances/${sop}`, headers: { ...headers, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
  expect(response.statusCode).toBe(200);
  return splitMultipart(response.rawPayload, response.headers['content-type'])[0]!.body;
}

beforeAll(async () => {
  t = await buildTestApp({ PACS_HOSPITAL_NAME: 'Bệnh viện Đa khoa Tỉnh' });
  const a = { studyInstanceUid: A.study, patientName: 'PHAM^VAN DUC', patientId: 'ZIP-A', studyDate: '20260603', rows: 24, columns: 32 };
  const instances = [
    { sop: A.sop11, bytes: makeInstance({ ...a, seriesInstanceUid: A.series1, sopInstanceUid: A.sop11 }) },
    // A multi-frame image: one JPEG per frame.
    { sop: A.sop12, bytes: makeInstance({ ...a, seriesInstanceUid: A.series1, sopInstanceUid: A.sop12, numberOfFrames: 3 }) },
    { sop: A.sop21, bytes: makeInstance({ ...a, seriesInstanceUid: A.series2, sopInstanceUid: A.sop21, samplesPerPixel: 3, pixels: new Uint8Array(24 * 32 * 3).fill(200) }) },
    { sop: B.sop, bytes: makeInstance({ studyInstanceUid: B.study, seriesInstanceUid: B.series, sopInstanceUid: B.sop, patientName: 'VO^THI LAN', patientId: 'ZIP-B', rows: 16, columns: 16 }) },
  ];
  for (const i of instances) files.set(i.sop, i.bytes);
  // One request each, in order: series whose Series Number ties are listed in the order they were
  // first stored, and the parts of one STOW-RS request may be indexed in any order.
  for (const i of instances) {
    const stored = await t.app.inject({ method: 'POST', url: '/dicomweb/studies', headers: { 'content-type': STOW_CONTENT_TYPE() }, payload: multipartBody([{ body: i.bytes }]) });
    expect(stored.statusCode, stored.body).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('the ZIP of JPEGs', () => {
  it('holds one JPEG per image (each frame of a multi-frame image) and a README, named by the study date, never cached', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const response = await t.app.inject({ url: '/share/view/download/images.zip', headers: withLink(token) });
    expect(response.statusCode, response.body.slice(0, 200)).toBe(200);
    expect(response.headers['content-type']).toBe('application/zip');
    expect(response.headers['cache-control']).toBe('private, no-store');
    expect(response.headers['content-disposition']).toBe('attachment; filename="images-20260603.zip"');
    const entries = await unzip(response.rawPayload);
    expect(entries.map((e) => e.name)).toEqual([
      'series-01/image-0001.jpg',
      'series-01/image-0002-frame-001.jpg',
      'series-01/image-0002-frame-002.jpg',
      'series-01/image-0002-frame-003.jpg',
      'series-02/image-0001.jpg',
      'README.txt',
    ]);
    for (const entry of entries.filter((e) => e.name.endsWith('.jpg'))) {
      expect([...entry.body.subarray(0, 3)], entry.name).toEqual([0xff, 0xd8, 0xff]);
      // Already compressed: stored, not deflated again.
      expect(entry.compressed).toBe(false);
    }
    const readme = entries.at(-1)!.body.toString('utf8');
    expect(readme).toContain('không dùng để chẩn đoán');
    expect(readme).toContain("Not for diagnosis: images for the patient's information.");
    expect(readme).toContain('Images: 5.');
    expect(readme).not.toContain('PHAM');
  });
});

describe('the ZIP of DICOM files', () => {
  it('holds every instance the link shares, one folder per series, each byte-identical to what WADO-RS serves the link', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study });
    const response = await t.app.inject({ url: '/share/view/download/dicom.zip', headers: withLink(token) });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-disposition']).toBe('attachment; filename="dicom-20260603.zip"');
    expect(response.headers['cache-control']).toBe('private, no-store');
    const entries = await unzip(response.rawPayload);
    expect(entries.map((e) => e.name)).toEqual(['series-01/image-0001.dcm', 'series-01/image-0002.dcm', 'series-02/image-0001.dcm']);
    const expected = [
      [A.series1, A.sop11],
      [A.series1, A.sop12],
      [A.series2, A.sop21],
    ] as const;
    for (const [i, [series, sop]] of expected.entries()) {
      const served = await wadoBytes(withLink(token), A.study, series, sop);
      expect(entries[i]!.body.equals(served), entries[i]!.name).toBe(true);
      // Nothing was changed since storage: the stored file itself.
      expect(entries[i]!.body.equals(files.get(sop)!)).toBe(true);
    }
    // Native pixel data gains from deflate.
    expect(entries.every((e) => e.compressed)).toBe(true);
  });
});

describe('confinement, audit, revocation', () => {
  it('gives a link to chosen series only those series, in both archives and through WADO-RS application/zip', async () => {
    const { token } = await makeLink({ studyInstanceUid: A.study, seriesInstanceUids: [A.series2] });
    const dicom = await unzip((await t.app.inject({ url: '/share/view/download/dicom.zip', headers: withLink(token) })).rawPayload);
    expect(dicom.map((e) => e.name)).toEqual(['series-01/image-0001.dcm']);
    expect(dicom[0]!.body.equals(files.get(A.sop21)!)).toBe(true);
    const jpegs = await unzip((await t.app.inject({ url: '/share/view/download/images.zip', headers: withLink(token) })).rawPayload);
    expect(jpegs.map((e) => e.name)).toEqual(['series-01/image-0001.jpg', 'README.txt']);
    // WADO-RS: the shared series as a ZIP; the other series is "not found", the whole study "forbidden".
    const zip = { accept: 'application/zip; transfer-syntax=*' };
    const series2 = await t.app.inject({ url: `/dicomweb/studies/${A.study}/series/${A.series2}`, headers: { ...withLink(token), ...zip } });
    expect(series2.statusCode).toBe(200);
    expect((await unzip(series2.rawPayload)).map((e) => e.body.equals(files.get(A.sop21)!))).toEqual([true]);
    expect((await t.app.inject({ url: `/dicomweb/studies/${A.study}/series/${A.series1}`, headers: { ...withLink(token), ...zip } })).statusCode).toBe(404);
    expect((await t.app.inject({ url: `/dicomweb/studies/${A.study}`, headers: { ...withLink(token), ...zip } })).statusCode).toBe(403);
    expect((await t.app.inject({ url: `/dicomweb/studies/${B.study}/series/${B.series}`, headers: { ...withLink(token), ...zip } })).statusCode).toBe(404);
  });

  it('records each download as study-export (ATNA 110106 Export) with the link as the user and the study and series as objects', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study });
    await t.app.inject({ url: '/share/view/download/dicom.zip', headers: withLink(token) });
    await t.app.inject({ url: '/share/view/download/images.zip', headers: withLink(token) });
    await t.services.audit!.flush();
    const response = await t.app.inject({ url: `/admin/audit?user=${encodeURIComponent(`link:${link.id}`)}&action=study-export&limit=10` });
    expect(response.statusCode, response.body).toBe(200);
    const records = response.json().records as Array<{ action: string; status: number; interface: string; route: string; who: { subject: string; kind: string }; objects: Array<{ study?: string; series?: string }>; detail: Record<string, unknown> }>;
    expect(records.map((r) => `${r.action} ${r.status} ${r.route}`).sort()).toEqual(['study-export 200 GET /share/view/download/dicom.zip', 'study-export 200 GET /share/view/download/images.zip']);
    for (const record of records) {
      expect(record.who).toMatchObject({ subject: `link:${link.id}`, kind: 'link' });
      expect(record.interface).toBe('share');
      expect(record.objects).toEqual([{ study: A.study }, { study: A.study, series: A.series1 }, { study: A.study, series: A.series2 }]);
      expect(record.detail).toMatchObject({ linkId: link.id, instances: 3 });
    }
    expect(records.map((r) => r.detail['format']).sort()).toEqual(['dicom', 'jpeg']);
    // The ATNA message says Export.
    const xml = await t.app.inject({ url: `/admin/audit?user=${encodeURIComponent(`link:${link.id}`)}&action=study-export&limit=1`, headers: { accept: 'application/xml' } });
    if (xml.statusCode === 200 && String(xml.headers['content-type']).includes('xml')) expect(xml.body).toContain('csd-code="110106"');
  });

  it('refuses a revoked link (410), and staff credentials that are not a link (404)', async () => {
    const { token, link } = await makeLink({ studyInstanceUid: A.study });
    expect((await t.app.inject({ method: 'DELETE', url: `/share/links/${link.id}` })).statusCode).toBe(200);
    for (const url of ['/share/view/download/dicom.zip', '/share/view/download/images.zip']) {
      const response = await t.app.inject({ url, headers: withLink(token) });
      expect(response.statusCode).toBe(410);
      expect(response.json().error.code).toBe('LINK_GONE');
      expect(response.headers['content-type']).toContain('application/json');
    }
    expect((await t.app.inject({ url: '/share/view/download/dicom.zip' })).statusCode).toBe(404);
  });
});

describe('WADO-RS Accept: application/zip (PS3.18 §8.7.3.5.2)', () => {
  it('serves staff a study as a ZIP of its Part-10 files, stored bytes with transfer-syntax=*, one folder per series', async () => {
    const response = await t.app.inject({ url: `/dicomweb/studies/${A.study}`, headers: { accept: 'application/zip; transfer-syntax=*' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/zip');
    expect(response.headers['content-disposition']).toBe('attachment; filename="study.zip"');
    const entries = await unzip(response.rawPayload);
    expect(entries.map((e) => e.name)).toEqual(['series-01/image-0001.dcm', 'series-01/image-0002.dcm', 'series-02/image-0001.dcm']);
    expect(entries.map((e) => e.body.equals(files.get([A.sop11, A.sop12, A.sop21][entries.indexOf(e)]!)!))).toEqual([true, true, true]);
  });

  it('chooses by q-value: multipart when it is preferred, the ZIP when it is', async () => {
    const url = `/dicomweb/studies/${A.study}/series/${A.series1}/instances/${A.sop11}`;
    const multipart = await t.app.inject({ url, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*, application/zip' } });
    expect(String(multipart.headers['content-type'])).toContain('multipart/related');
    const zip = await t.app.inject({ url, headers: { accept: 'multipart/related; type="application/dicom"; q=0.5, application/zip' } });
    expect(zip.headers['content-type']).toBe('application/zip');
    expect(zip.headers['content-disposition']).toBe('attachment; filename="instance.zip"');
    // No transfer syntax: the PS3.18 default, Explicit VR Little Endian (these are stored in it: the same bytes).
    expect((await unzip(zip.rawPayload))[0]!.body.equals(files.get(A.sop11)!)).toBe(true);
    // Anything else than a ZIP or multipart: still 406.
    expect((await t.app.inject({ url, headers: { accept: 'text/html' } })).statusCode).toBe(406);
  });
});
