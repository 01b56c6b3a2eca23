/**
 * WADO-RS metadata (PS3.18 §10.4.1.1.2, Annex F): what a viewer sees when it asks for the metadata of
 * a study, series or instance — DICOM JSON of every instance, with bulk data URIs for pixel data that
 * lead to exactly the stored pixel bytes — and that it comes from the index alone.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { instanceUrl, loadShared, stow, type SharedInstance } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { metadataDataset, metadataText } from '../archive/metadata.js';
import { buildCountingApp } from '../test-support/counting-store.js';
import { writePart10 } from '../dicom/write-part10.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const DICOM_JSON = 'application/dicom+json';

let t: TestApp;
const study = newUid();
const seriesA = newUid();
const seriesB = newUid();
const a1 = { study, series: seriesA, sop: newUid() };
const a2 = { study, series: seriesA, sop: newUid() };
const multi = { study, series: seriesB, sop: newUid() };
const stored = new Map<string, Buffer>();
let wsi: SharedInstance;
let rgb16: SharedInstance;
let float: SharedInstance;
let sr: SharedInstance;
let overlays: SharedInstance;
let deflated: SharedInstance;
let sparseLevel: SharedInstance;
/** A Microscopy Bulk Simple Annotations instance: 1000 points (8000 bytes of OF) in its second group. */
const ann = { study: newUid(), series: newUid(), sop: newUid() };
const annPoints = new Float32Array(2000).map((_, i) => i * 0.5);

/** The generated pixel pattern of make-dicom.ts. */
const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

beforeAll(async () => {
  t = await buildTestApp();
  stored.set(a1.sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesA, sopInstanceUid: a1.sop, rows: 16, columns: 16, patientName: 'DOE^JANE' }));
  stored.set(a2.sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesA, sopInstanceUid: a2.sop }));
  stored.set(multi.sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesB, sopInstanceUid: multi.sop, numberOfFrames: 5, rows: 3, columns: 4 }));
  stored.set(
    ann.sop,
    writePart10({
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.91.1',
      SOPInstanceUID: ann.sop,
      StudyInstanceUID: ann.study,
      SeriesInstanceUID: ann.series,
      Modality: 'ANN',
      AnnotationCoordinateType: '2D',
      AnnotationGroupSequence: [
        { AnnotationGroupNumber: 1, GraphicType: 'POINT', NumberOfAnnotations: 1, PointCoordinatesData: new Float32Array([1, 2]).buffer },
        { AnnotationGroupNumber: 2, GraphicType: 'POINT', NumberOfAnnotations: 1000, PointCoordinatesData: annPoints.buffer },
      ],
    }),
  );
  [wsi, rgb16, float, sr, overlays, deflated, sparseLevel] = await Promise.all([
    loadShared('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm'),
    loadShared('dicom-pydicom/pydicom-data/SC_rgb_16bit_2frame.dcm'),
    loadShared('dicom-pydicom/pydicom-data/parametric_map_float.dcm', '7FE00008'),
    loadShared('dicom-dcmjs-tests/sample-sr.dcm'),
    loadShared('dicom-pydicom/pydicom-data/MR-SIEMENS-DICOM-WithOverlays.dcm'),
    loadShared('dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm'),
    loadShared('wsi-cmu1-small-region/tiled-sparse-orthanc-wsi/cmu1-level-04.dcm'),
  ]);
  const shared = [wsi, rgb16, float, sr, overlays, deflated, sparseLevel].map((i) => i.bytes);
  const response = await stow(t.app, [...stored.values(), ...shared]);
  expect(response.statusCode, response.body).toBe(200);
});
afterAll(async () => t.close());

const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

async function metadata(url: string, headers: Record<string, string> = {}): Promise<DicomJsonDataset[]> {
  const response = await get(url, headers);
  expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
  expect(response.headers['content-type']).toBe(DICOM_JSON);
  return response.json() as DicomJsonDataset[];
}

const value = (ds: DicomJsonDataset | undefined, tag: string) => ds?.[tag]?.Value;
const sopsOf = (datasets: DicomJsonDataset[]) => datasets.map((ds) => value(ds, '00080018')?.[0]);

/** The path of a BulkDataURI (the test app is reached by inject, not by its host name). */
const pathOf = (uri: string | undefined) => new URL(uri!).pathname;

describe('WADO-RS metadata of generated instances', () => {
  it('describes one instance: patient, UIDs, image attributes, transfer syntax and a bulk data URI for its pixel data', async () => {
    const [ds, ...rest] = await metadata(`${instanceUrl(a1)}/metadata`);
    expect(rest).toEqual([]);
    expect(ds!['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE' }] });
    expect(ds!['00080018']).toEqual({ vr: 'UI', Value: [a1.sop] });
    expect(ds!['0020000D']).toEqual({ vr: 'UI', Value: [study] });
    expect(ds!['00280010']).toEqual({ vr: 'US', Value: [16] });
    expect(ds!['00280011']).toEqual({ vr: 'US', Value: [16] });
    expect(ds!['00020010']).toEqual({ vr: 'UI', Value: [EXPLICIT_LE] });
    expect(ds!['7FE00010']).toEqual({
      vr: 'OB',
      BulkDataURI: `http://localhost:80/dicomweb/studies/${study}/series/${seriesA}/instances/${a1.sop}/bulkdata/7FE00010`,
    });
    // DICOM JSON keys in tag order: transfer syntax first, pixel data last.
    const keys = Object.keys(ds!);
    expect(keys).toEqual([...keys].sort());
  });

  it('leads through the BulkDataURI to exactly the pixel bytes of the stored file', async () => {
    for (const [sop, size] of [[a1.sop, 16 * 16], [a2.sop, 16], [multi.sop, 3 * 4 * 5]] as const) {
      const [ds] = await metadata(`${instanceUrl({ study, series: sop === multi.sop ? seriesB : seriesA, sop })}/metadata`);
      const response = await get(pathOf(ds!['7FE00010']?.BulkDataURI));
      expect(response.statusCode).toBe(200);
      const [part, ...others] = splitMultipart(response.rawPayload, response.headers['content-type']);
      expect(others).toHaveLength(0);
      expect(part!.body.equals(pattern(size)), sop).toBe(true);
      const file = stored.get(sop)!;
      expect(part!.body.equals(file.subarray(file.length - size))).toBe(true);
    }
  });

  it('lists every instance of a series and of a study, in the order instances are retrieved', async () => {
    // Equal series and instance numbers: the order is the (parallel) storing order, as for retrieval.
    const listed = async (scope: { seriesInstanceUid?: string }) =>
      (await t.services.catalog.listInstances({ studyInstanceUid: study, ...scope })).map((i) => i.sopInstanceUid);
    const series = sopsOf(await metadata(`/dicomweb/studies/${study}/series/${seriesA}/metadata`));
    expect([...series].sort()).toEqual([a1.sop, a2.sop].sort());
    expect(series).toEqual(await listed({ seriesInstanceUid: seriesA }));
    const all = await metadata(`/dicomweb/studies/${study}/metadata`);
    expect([...sopsOf(all)].sort()).toEqual([a1.sop, a2.sop, multi.sop].sort());
    expect(sopsOf(all)).toEqual(await listed({}));
    expect(value(all.find((ds) => value(ds, '00080018')?.[0] === multi.sop), '00280008')).toEqual([5]);
    expect(all.every((ds) => ds['7FE00010']?.BulkDataURI?.endsWith('/bulkdata/7FE00010'))).toBe(true);
  });

  it('accepts application/dicom+json, application/json and */*, and answers 406 for XML', async () => {
    for (const accept of [DICOM_JSON, 'application/json', '*/*', 'application/dicom+xml;q=0.5, application/dicom+json']) {
      expect(sopsOf(await metadata(`${instanceUrl(a2)}/metadata`, { accept })), accept).toEqual([a2.sop]);
    }
    for (const accept of ['multipart/related; type="application/dicom+xml"', 'application/dicom+xml', 'multipart/related; type="application/dicom"']) {
      const response = await get(`${instanceUrl(a2)}/metadata`, { accept });
      expect(response.statusCode, accept).toBe(406);
      expect(response.json().error.message).toMatch(/application\/dicom\+json/);
    }
  });

  it('answers 404 for an unknown study, series or instance and 400 for a path segment that is not a UID', async () => {
    for (const [url, message] of [
      [`/dicomweb/studies/${newUid()}/metadata`, 'Study not found'],
      [`/dicomweb/studies/${study}/series/${newUid()}/metadata`, 'Series not found'],
      [`${instanceUrl({ study, series: seriesA, sop: newUid() })}/metadata`, 'Instance not found'],
    ] as const) {
      const response = await get(url);
      expect(response.statusCode, url).toBe(404);
      expect(response.json().error.message).toBe(message);
    }
    const bad = await get(`/dicomweb/studies/${study}/series/1.2.x/metadata`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('SeriesInstanceUID');
  });
});

describe('WADO-RS metadata of shared files', () => {
  it('describes a tiled whole-slide image like its file says, and its bulk data is every JPEG fragment as stored', async () => {
    const [ds] = await metadata(`${instanceUrl(wsi)}/metadata`);
    expect(value(ds, '00020010')).toEqual([JPEG_BASELINE]);
    for (const tag of ['00080008', '00080016', '00280010', '00280011', '00480006', '00480007', '00280002', '00280004']) {
      expect(value(ds, tag), tag).toEqual(wsi.dict[tag]!.Value);
    }
    expect(value(ds, '00280008')).toEqual([30]);
    expect(ds!['7FE00010']).toEqual({ vr: 'OB', BulkDataURI: expect.stringMatching(new RegExp(`/instances/${wsi.sop}/bulkdata/7FE00010$`)) });

    const uri = pathOf(ds!['7FE00010']?.BulkDataURI);
    // By default (no transfer-syntax: Explicit VR LE, PS3.18 §8.7.3) the tiles come back decoded.
    const decoded = await get(uri);
    expect(decoded.statusCode).toBe(200);
    const response = await get(uri, { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' });
    expect(response.statusCode).toBe(200);
    const [part] = splitMultipart(response.rawPayload, response.headers['content-type']);
    expect(part!.headers['content-type']).toBe(`application/octet-stream; transfer-syntax=${JPEG_BASELINE}`);
    expect(wsi.frames).toHaveLength(30);
    expect(part!.body.equals(Buffer.concat(wsi.frames))).toBe(true);
  });

  it('gives 16-bit native pixel data as OW and float pixel data as OF under its own tag, each leading to the stored bytes', async () => {
    const [rgb] = await metadata(`${instanceUrl(rgb16)}/metadata`);
    expect(rgb!['7FE00010']?.vr).toBe('OW');
    expect(value(rgb, '00280100')).toEqual([16]);
    const rgbBytes = await get(pathOf(rgb!['7FE00010']?.BulkDataURI), { accept: 'application/octet-stream' });
    expect(rgbBytes.statusCode).toBe(200);
    expect(rgbBytes.rawPayload.equals(Buffer.concat(rgb16.frames))).toBe(true);
    expect(rgbBytes.rawPayload).toHaveLength(2 * 100 * 100 * 3 * 2);

    const [map] = await metadata(`${instanceUrl(float)}/metadata`);
    expect(map).not.toHaveProperty('7FE00010');
    expect(map!['7FE00008']).toEqual({ vr: 'OF', BulkDataURI: expect.stringMatching(/\/bulkdata\/7FE00008$/) });
    const floatBytes = await get(pathOf(map!['7FE00008']?.BulkDataURI), { accept: 'application/octet-stream' });
    expect(floatBytes.statusCode).toBe(200);
    expect(floatBytes.rawPayload.equals(Buffer.concat(float.frames))).toBe(true);
  });

  it('gives a large non-pixel binary value (overlay data) a bulk data URI that returns its bytes', async () => {
    expect(overlays.dict['60003000']?.vr).toBe('OW');
    const [ds] = await metadata(`${instanceUrl(overlays)}/metadata`);
    expect(ds!['60003000']).toEqual({ vr: 'OW', BulkDataURI: expect.stringMatching(new RegExp(`/instances/${overlays.sop}/bulkdata/60003000$`)) });
    expect(ds!['7FE00010']).toEqual({ vr: 'OW', BulkDataURI: expect.stringMatching(/\/bulkdata\/7FE00010$/) });
    const overlay = await get(pathOf(ds!['60003000']?.BulkDataURI), { accept: 'application/octet-stream' });
    expect(overlay.statusCode).toBe(200);
    const expected = overlays.dict['60003000']!.Value![0] as ArrayBuffer;
    expect(overlay.rawPayload.equals(Buffer.from(expected))).toBe(true);
    // A text element is in the metadata, not bulk data.
    const text = await get(`${instanceUrl(overlays)}/bulkdata/00100010`);
    expect(text.statusCode).toBe(404);
    expect(text.json().error.message).toMatch(/not a binary element/);
  });

  it('gives large binary values inside sequences bulk data URIs (annotation coordinates, an ICC profile), small ones stay inline', async () => {
    // PS3.18 §F.2.5 / §F.2.7: `{vr}` alone would say "empty"; Slim's viewer library reads the
    // coordinates of a Microscopy Bulk Simple Annotations group from its BulkDataURI.
    const [annotations] = await metadata(`${instanceUrl(ann)}/metadata`);
    const groups = annotations!['006A0002']!.Value as DicomJsonDataset[];
    expect(groups[0]!['00660016']).toEqual({ vr: 'OF', InlineBinary: Buffer.from(new Float32Array([1, 2]).buffer).toString('base64') });
    expect(groups[1]!['00660016']).toEqual({ vr: 'OF', BulkDataURI: expect.stringMatching(new RegExp(`/instances/${ann.sop}/bulkdata/006A0002/2/00660016$`)) });
    // dicomweb-client's default Accept for bulk data: one multipart part holding the value.
    const points = await get(pathOf(groups[1]!['00660016']!.BulkDataURI), { accept: 'multipart/related; type="application/octet-stream"' });
    expect(points.statusCode).toBe(200);
    const [part] = splitMultipart(points.rawPayload, points.headers['content-type'] as string);
    expect(part!.body.equals(Buffer.from(annPoints.buffer))).toBe(true);
    expect(part!.headers['content-location']).toMatch(/\/bulkdata\/006A0002\/2\/00660016$/);
    const bare = await get(pathOf(groups[1]!['00660016']!.BulkDataURI), { accept: 'application/octet-stream', range: 'bytes=0-7' });
    expect(bare.statusCode).toBe(206);
    expect(bare.rawPayload.equals(Buffer.from(annPoints.buffer, 0, 8))).toBe(true);

    // A JPEG-compressed WSI level: its 6,922-byte ICC profile in the Optical Path Sequence is served as
    // stored (element values do not depend on the pixel data's transfer syntax).
    const [level] = await metadata(`${instanceUrl(sparseLevel)}/metadata`);
    const icc = (level!['00480105']!.Value as DicomJsonDataset[])[0]!['00282000'];
    expect(icc).toEqual({ vr: 'OB', BulkDataURI: expect.stringMatching(/\/bulkdata\/00480105\/1\/00282000$/) });
    const profile = await get(pathOf(icc!.BulkDataURI), { accept: 'application/octet-stream' });
    expect(profile.statusCode).toBe(200);
    const storedProfile = Buffer.from(((sparseLevel.dict['00480105']!.Value![0] as Record<string, { Value: ArrayBuffer[] }>)['00282000']!.Value[0])!);
    expect(storedProfile.length).toBeGreaterThan(4096);
    expect(profile.rawPayload.equals(storedProfile)).toBe(true);
    expect(profile.rawPayload.subarray(36, 40).toString('latin1')).toBe('acsp');

    // Paths that name nothing, or badly.
    expect((await get(`${instanceUrl(ann)}/bulkdata/006A0002/3/00660016`)).statusCode).toBe(404);
    expect((await get(`${instanceUrl(ann)}/bulkdata/006A0002/0/00660016`)).statusCode).toBe(400);
    expect((await get(`${instanceUrl(ann)}/bulkdata/006A0002/2`)).statusCode).toBe(400);
  });

  it('gives pixel data inside a deflated data set no bulk data URI (its bytes have no place in the file)', async () => {
    const [ds] = await metadata(`${instanceUrl(deflated)}/metadata`);
    expect(value(ds, '00020010')).toEqual([deflated.transferSyntax]);
    expect(ds!['7FE00010']?.vr).toMatch(/^O[BW]$/);
    expect(ds!['7FE00010']).not.toHaveProperty('BulkDataURI');
  });

  it('describes an instance without pixel data (SR) with its content and no bulk data', async () => {
    const [ds] = await metadata(`${instanceUrl(sr)}/metadata`);
    expect(value(ds, '00080018')).toEqual([sr.sop]);
    expect(ds!['0040A730']?.vr).toBe('SQ'); // ContentSequence
    expect(JSON.stringify(ds)).not.toContain('BulkDataURI');
  });
});

describe('WADO-RS metadata caching and compression', () => {
  const url = () => `/dicomweb/studies/${study}/metadata`;

  it('answers 304 without a body when If-None-Match carries the ETag it gave', async () => {
    const first = await get(url());
    expect(first.statusCode).toBe(200);
    const etag = first.headers['etag'] as string;
    expect(etag).toMatch(/^"[0-9a-f]{40}"$/);
    expect(first.headers['cache-control']).toBe('private, no-cache');
    expect((await get(url())).headers['etag']).toBe(etag);

    const revalidated = await get(url(), { 'if-none-match': etag });
    expect(revalidated.statusCode).toBe(304);
    expect(revalidated.rawPayload).toHaveLength(0);
    expect(revalidated.headers['etag']).toBe(etag);
    expect((await get(url(), { 'if-none-match': `"other", W/${etag}` })).statusCode).toBe(304);
    expect((await get(url(), { 'if-none-match': '"something-else"' })).statusCode).toBe(200);

    // Another scope is another body, with another validator.
    const series = await get(`/dicomweb/studies/${study}/series/${seriesA}/metadata`, { 'if-none-match': etag });
    expect(series.statusCode).toBe(200);
    expect(series.headers['etag']).not.toBe(etag);
  });

  it('compresses with gzip when the client accepts it, and the content is the same', async () => {
    const plain = await get(url());
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['vary']).toBe('Accept-Encoding');
    expect(plain.rawPayload.length).toBeGreaterThan(1024);

    const zipped = await get(url(), { 'accept-encoding': 'gzip, deflate, br' });
    expect(zipped.statusCode).toBe(200);
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers['vary']).toBe('Accept-Encoding');
    expect(zipped.headers['content-type']).toBe(DICOM_JSON);
    expect(zipped.rawPayload.length).toBeLessThan(plain.rawPayload.length);
    expect(JSON.parse(gunzipSync(zipped.rawPayload).toString('utf8'))).toEqual(plain.json());
    expect(zipped.headers['etag']).not.toBe(plain.headers['etag']);
    expect((await get(url(), { 'accept-encoding': 'gzip', 'if-none-match': zipped.headers['etag'] as string })).statusCode).toBe(304);

    for (const encoding of ['identity', 'gzip;q=0', 'br']) {
      expect((await get(url(), { 'accept-encoding': encoding })).headers['content-encoding'], encoding).toBeUndefined();
    }
  });
});

describe('WADO-RS metadata spliced from the indexed JSON text', () => {
  it('gives every stored sample the same data set as the general path', async () => {
    const studies = (await get('/dicomweb/studies?limit=1000')).json() as DicomJsonDataset[];
    let spliced = 0;
    let compared = 0;
    for (const studyUid of studies.map((d) => d['0020000D']!.Value![0] as string)) {
      for (const entry of await t.services.catalog.listInstancesWithAttributes({ studyInstanceUid: studyUid })) {
        const uriOf = (i: { sopInstanceUid: string }, tag: string) => `http://pacs.test/dicomweb/instances/${i.sopInstanceUid}/bulkdata/${tag}`;
        const text = metadataText(entry, uriOf);
        const { attributesJson: _raw, bitsAllocated: _bits, ...withoutText } = entry;
        expect(JSON.parse(text), entry.instance.sopInstanceUid).toEqual(metadataDataset({ ...withoutText, attributes: entry.attributes }, uriOf));
        if (!/"vr":"(?:OB|OD|OF|OL|OV|OW|UN)"/.test(entry.attributesJson!)) spliced += 1;
        compared += 1;
      }
    }
    expect(compared).toBeGreaterThan(10);
    // Both paths are exercised: plain headers are spliced, headers with binary elements are not.
    expect(spliced).toBeGreaterThan(2);
    expect(spliced).toBeLessThan(compared);
  });
});

describe('WADO-RS metadata kept in memory while the series is unchanged', () => {
  it('answers a repeated request with the same bytes, and a series that gains an instance with the new instance', async () => {
    const series = { study: newUid(), series: newUid() };
    const make = () => makeInstance({ studyInstanceUid: series.study, seriesInstanceUid: series.series, sopInstanceUid: newUid(), rows: 8, columns: 8 });
    const files = [make(), make(), make()];
    expect((await stow(t.app, files)).statusCode).toBe(200);
    const url = `/dicomweb/studies/${series.study}/series/${series.series}/metadata`;
    for (const headers of [{}, { 'accept-encoding': 'gzip' }] as Record<string, string>[]) {
      const first = await get(url, headers);
      const again = await get(url, headers);
      expect(again.statusCode).toBe(200);
      expect(again.rawPayload.equals(first.rawPayload)).toBe(true);
      expect(again.headers['etag']).toBe(first.headers['etag']);
      expect(again.headers['content-encoding']).toBe(first.headers['content-encoding']);
      expect(t.logLines.filter((line) => line.includes('"cached":true')).length).toBeGreaterThan(0);
    }
    const before = await get(url);
    expect(before.json()).toHaveLength(3);

    files.push(make());
    expect((await stow(t.app, [files[3]!])).statusCode).toBe(200);
    const logged = t.logLines.length;
    const after = await get(url);
    expect(after.json()).toHaveLength(4);
    // Only the new instance was built; the other three came from memory.
    expect(t.logLines.slice(logged).filter((line) => line.includes('"built":1,') || line.includes('"built":1}'))).toHaveLength(1);
    expect(after.headers['etag']).not.toBe(before.headers['etag']);
    const zipped = await get(url, { 'accept-encoding': 'gzip' });
    expect(JSON.parse(gunzipSync(zipped.rawPayload).toString('utf8'))).toHaveLength(4);

    // Three instances' texts came from memory, one was built: the same bytes as a server without any cache.
    const uncached = await buildTestApp({ PACS_METADATA_CACHE_MB: '0' });
    try {
      expect((await stow(uncached.app, files)).statusCode).toBe(200);
      const fresh = await uncached.app.inject({ method: 'GET', url });
      // Compared per instance: instances without InstanceNumber are listed in arrival order, which differs.
      const bySop = (body: Buffer) =>
        Object.fromEntries((JSON.parse(body.toString('utf8')) as DicomJsonDataset[]).map((d) => [d['00080018']!.Value![0] as string, JSON.stringify(d)]));
      expect(bySop(after.rawPayload)).toEqual(bySop(fresh.rawPayload));
      expect(fresh.rawPayload.length).toBe(after.rawPayload.length);
    } finally {
      await uncached.close();
    }
  });
});

describe('WADO-RS metadata comes from the index', () => {
  it('answers a 200-instance series without reading any stored file', async () => {
    const { app, store, close } = await buildCountingApp('pacs-metadata-');
    try {
      const bigStudy = newUid();
      const bigSeries = newUid();
      const sops = Array.from({ length: 200 }, () => newUid());
      const files = sops.map((sop) => makeInstance({ studyInstanceUid: bigStudy, seriesInstanceUid: bigSeries, sopInstanceUid: sop }));
      expect((await stow(app, files)).statusCode).toBe(200);
      store.reset();

      const response = await app.inject({ method: 'GET', url: `/dicomweb/studies/${bigStudy}/series/${bigSeries}/metadata` });
      expect(response.statusCode).toBe(200);
      const datasets = response.json() as DicomJsonDataset[];
      expect(sopsOf(datasets).sort()).toEqual([...sops].sort()); // same instance number: stored (parallel) order
      expect(datasets.every((ds) => ds['7FE00010']?.BulkDataURI !== undefined)).toBe(true);
      expect(store.gets).toBe(0);
      expect(store.stats).toBe(0);
      expect(store.ranges).toHaveLength(0);
    } finally {
      await close();
    }
  });
});
