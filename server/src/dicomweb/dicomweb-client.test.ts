/** The npm `dicomweb-client` (what OHIF and Slim use) stores and searches against the real HTTP server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import XMLHttpRequest from 'xhr2';
import { api } from 'dicomweb-client';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';

let t: TestApp;
let baseUrl: string;

beforeAll(async () => {
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XMLHttpRequest;
  t = await buildTestApp();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/dicomweb`;
});
afterAll(async () => t.close());

const toArrayBuffer = (buffer: Buffer): ArrayBuffer => Uint8Array.from(buffer).buffer;

describe('dicomweb-client against the server', () => {
  it('stores instances and finds them at study, series and instance level', async () => {
    const client = new api.DICOMwebClient({ url: baseUrl, singlepart: false });
    const studyInstanceUID = newUid();
    const seriesInstanceUID = newUid();
    const datasets = [1, 2, 3].map(() =>
      toArrayBuffer(makeInstance({ studyInstanceUid: studyInstanceUID, seriesInstanceUid: seriesInstanceUID, patientName: 'Client^Test', modality: 'ES' })),
    );
    await client.storeInstances({ datasets });

    const studies = (await client.searchForStudies({ queryParams: { PatientName: 'client*' } })) as Array<Record<string, { Value: unknown[] }>>;
    expect(studies.map((s) => s['0020000D']!.Value[0])).toEqual([studyInstanceUID]);
    const series = (await client.searchForSeries({ studyInstanceUID })) as Array<Record<string, { Value: unknown[] }>>;
    expect(series.map((s) => s['0020000E']!.Value[0])).toEqual([seriesInstanceUID]);
    const instances = await client.searchForInstances({ studyInstanceUID, seriesInstanceUID });
    expect(instances).toHaveLength(3);
  });
});
