/**
 * Interoperability: Debian's Orthanc 1.10 with its DICOMweb plugin (1.7) as a second archive that talks
 * to this server over DICOMweb, both on loopback over real HTTP. Orthanc lists the server in
 * `DicomWeb.Servers` as "ours" and
 * - pushes: instances uploaded to Orthanc are sent to us with its STOW-RS client
 *   (`POST /dicom-web/servers/ours/stow`), then are in our QIDO-RS and byte-identical through WADO-RS;
 * - pulls: a study stored here by STOW-RS is found by Orthanc's QIDO-RS client
 *   (`POST /dicom-web/servers/ours/qido` and `/get`) and retrieved with its WADO-RS client
 *   (`POST /dicom-web/servers/ours/retrieve`), byte-identical in Orthanc.
 * Orthanc must be installed (`.ci/run` installs it): when it is missing the suite fails, it does not skip.
 */
import type { IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { startOrthancPeer, type OrthancPeer } from '../test-support/orthanc-peer.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const ENDOSCOPY_PUSH = 'endoscopy-dicom-kvasir/vl-endoscopic-03-cju0sxqiclckk08551ycbwhno-jpeg-baseline.dcm';
const WSI_PULL = 'wsi-cmu1-small-region/tiled-sparse-orthanc-wsi/cmu1-level-03.dcm';
const ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';

type Json = Record<string, { Value?: unknown[] }>;
/** Orthanc's `/qido` answers in Orthanc's own JSON ({"Name", "Value": "<string>"}); DICOM JSON has arrays. */
type OrthancJson = Record<string, { Name?: string; Value?: unknown }>;
const firstValue = (element: { Value?: unknown } | undefined): unknown => (Array.isArray(element?.Value) ? element.Value[0] : element?.Value);

let t: TestApp;
let baseUrl: string;
let orthanc: OrthancPeer | undefined;
/** Method, path and Accept of every request our server received (to see what Orthanc's client sends). */
const received: Array<{ method: string; url: string; accept: string | undefined }> = [];

beforeAll(async () => {
  t = await buildTestApp();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.app.server.on('request', (request: IncomingMessage) =>
    received.push({ method: String(request.method), url: String(request.url), accept: request.headers.accept }),
  );
  const address = t.app.server.address();
  baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/dicomweb`;
  orthanc = await startOrthancPeer({ ours: `${baseUrl}/` });
}, 90_000);

afterAll(async () => {
  await orthanc?.stop();
  await t?.close();
});

async function orthancJson(method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${orthanc!.url}${route}`, {
    method,
    body: body === undefined ? undefined : Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`Orthanc ${method} ${route} → ${response.status}: ${text}\n${orthanc!.log().slice(-2000)}`);
  return JSON.parse(text) as unknown;
}

/** Orthanc's instance id for a SOP Instance UID, or undefined. */
async function orthancInstanceId(sopInstanceUid: string): Promise<string | undefined> {
  const found = (await orthancJson('POST', '/tools/lookup', Buffer.from(sopInstanceUid))) as Array<{ ID: string; Type: string }>;
  return found.find((entry) => entry.Type === 'Instance')?.ID;
}

async function orthancFile(id: string): Promise<Buffer> {
  const response = await fetch(`${orthanc!.url}/instances/${id}/file`);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

/** Our WADO-RS instance, as stored. */
async function oursAsStored(study: string, series: string, sop: string): Promise<Buffer> {
  const response = await fetch(`${baseUrl}/studies/${study}/series/${series}/instances/${sop}`, { headers: { Accept: ANY_TS } });
  expect(response.status).toBe(200);
  const parts = splitMultipart(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type'));
  expect(parts).toHaveLength(1);
  return parts[0]!.body;
}

describe('Orthanc peer', () => {
  it('runs Orthanc with the DICOMweb plugin and lists our server as a DICOMweb peer', async () => {
    expect(orthanc!.version).toMatch(/^\d+\.\d+/);
    expect(orthanc!.pluginVersion).toMatch(/^\d+\.\d+/);
    expect(await orthancJson('GET', '/dicom-web/servers')).toEqual(['ours']);
  });

  it('push: Orthanc sends instances to us with STOW-RS; they are in our QIDO and byte-identical through WADO-RS', async () => {
    const endoscopy = await readFile(path.join(requireSharedData(), ENDOSCOPY_PUSH));
    const generatedSop = newUid();
    const generatedStudy = newUid();
    const generatedSeries = newUid();
    const generated = makeInstance({ studyInstanceUid: generatedStudy, seriesInstanceUid: generatedSeries, sopInstanceUid: generatedSop, patientName: 'Orthanc^Push', patientId: 'ORTHANC-PUSH' });

    const uploads: Array<{ bytes: Buffer; id: string; study: string }> = [];
    for (const bytes of [endoscopy, generated]) {
      const answer = (await orthancJson('POST', '/instances', bytes)) as { ID: string; ParentStudy: string; Status: string };
      expect(answer.Status).toBe('Success');
      uploads.push({ bytes, id: answer.ID, study: answer.ParentStudy });
    }
    // Orthanc keeps an uploaded file as received.
    for (const upload of uploads) expect((await orthancFile(upload.id)).equals(upload.bytes)).toBe(true);

    received.length = 0;
    const stow = (await orthancJson('POST', '/dicom-web/servers/ours/stow', { Resources: uploads.map((u) => u.study) })) as Record<string, unknown>;
    expect(stow).toBeTypeOf('object');
    expect(received.filter((r) => r.method === 'POST').map((r) => r.url)).toContain('/dicomweb/studies');

    for (const upload of uploads) {
      const tags = (await orthancJson('GET', `/instances/${upload.id}/tags?simplify`)) as Record<string, string>;
      const [study, series, sop] = [tags['StudyInstanceUID']!, tags['SeriesInstanceUID']!, tags['SOPInstanceUID']!];
      const found = (await (await fetch(`${baseUrl}/studies/${study}/instances`)).json()) as Json[];
      expect(found.map((i) => i['00080018']!.Value![0])).toEqual([sop]);
      expect((await oursAsStored(study, series, sop)).equals(upload.bytes)).toBe(true);
    }
    expect(uploads[1]!.bytes.equals(generated)).toBe(true);
  });

  it('pull: Orthanc finds a study of ours with QIDO-RS and retrieves it byte-identical with WADO-RS', async () => {
    const study = newUid();
    const series = newUid();
    const generatedSops = [newUid(), newUid()];
    const generated = generatedSops.map((sopInstanceUid) =>
      makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, patientName: 'Orthanc^Pull^Native', patientId: 'ORTHANC-PULL', sopInstanceUid }),
    );
    const wsi = await readFile(path.join(requireSharedData(), WSI_PULL));
    const stored = await fetch(`${baseUrl}/studies`, {
      method: 'POST',
      headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' },
      body: new Uint8Array(multipartBody([...generated, wsi].map((body) => ({ body })))),
    });
    expect(stored.status).toBe(200);
    const stowAnswer = (await stored.json()) as Json;
    const referenced = (stowAnswer['00081199']!.Value as Json[]).map((item) => String(item['00081155']!.Value![0]));
    expect(referenced).toHaveLength(3);
    // ReferencedSOPSequence is not in request order (parts are stored concurrently): find the WSI's SOP.
    const wsiSop = referenced.find((sop) => !generatedSops.includes(sop))!;
    const expected = new Map([...generatedSops.map((sop, i) => [sop, generated[i]!] as const), [wsiSop, wsi] as const]);
    expect(expected.size).toBe(3);
    const wsiStudy = String(((await (await fetch(`${baseUrl}/instances?SOPInstanceUID=${wsiSop}`)).json()) as Json[])[0]!['0020000D']!.Value![0]);

    // QIDO-RS through Orthanc's client, both of its forms (the query goes in "Arguments": Orthanc refuses a "?" in "Uri").
    const qido = (await orthancJson('POST', '/dicom-web/servers/ours/qido', { Uri: '/studies', Arguments: { PatientName: 'Orthanc^Pull*' } })) as OrthancJson[];
    expect(qido.map((s) => firstValue(s['0020000D']))).toEqual([study]);
    expect(qido[0]!['0020000D']!.Name).toBe('StudyInstanceUID');
    const get = (await orthancJson('POST', '/dicom-web/servers/ours/get', { Uri: `/studies/${study}/series`, Arguments: {} })) as Json[];
    expect(get.map((s) => firstValue(s['0020000E']))).toEqual([series]);

    received.length = 0;
    const retrieve = (await orthancJson('POST', '/dicom-web/servers/ours/retrieve', { Resources: [{ Study: study }, { Study: wsiStudy }] })) as Record<string, string>;
    expect(Number(retrieve['ReceivedInstancesCount'])).toBe(3);
    const wadoRequests = received.filter((r) => r.method === 'GET' && r.url.startsWith('/dicomweb/studies/'));
    expect(wadoRequests.length).toBeGreaterThan(0);
    // What Orthanc's WADO-RS client asks for decides whether the JPEG WSI level comes back as stored or transcoded.
    const accepts = [...new Set(wadoRequests.map((r) => r.accept))];
    expect(accepts).toEqual([ANY_TS]);

    for (const [sop, bytes] of expected) {
      const id = await orthancInstanceId(sop);
      expect(id, `instance ${sop} in Orthanc`).toBeDefined();
      expect((await orthancFile(id!)).equals(bytes)).toBe(true);
    }
  });
});
