/**
 * A C-GET requester that stops taking part (never answers the C-STORE sub-operation we send it) holds
 * nothing forever: the association is aborted after the PDU timeout, and the service keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dcmjsDimse from 'dcmjs-dimse';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';

const { Client, requests } = dcmjsDimse;

describe('a peer that stops responding', () => {
  let dimse: TestDimse;
  beforeAll(async () => {
    dimse = await startTestDimse({ timeoutSeconds: 2 });
  });
  afterAll(async () => {
    await dimse?.close();
  });

  it('is cut off after the PDU timeout during a C-GET, and other associations are served meanwhile', async () => {
    const studyInstanceUid = newUid();
    const bytes = makeInstance({ studyInstanceUid });
    const stored = await (await dimse.archive.scanAndStore((async function* () { yield bytes; })())).completion;
    expect(stored.ok).toBe(true);

    const client = new Client();
    const get = requests.CGetRequest.createStudyGetRequest(studyInstanceUid);
    client.addRequest(get);
    let storeRequests = 0;
    // Receives our C-STORE sub-operation and never answers it.
    // (Two parameters: the event emitter would answer for a listener that takes no callback.)
    client.on('cStoreRequest', (_request: unknown, _callback: unknown) => {
      storeRequests++;
    });
    const closed = new Promise<number>((resolve) => {
      const started = Date.now();
      client.on('closed', () => resolve(Date.now() - started));
      client.on('networkError', () => {});
    });
    client.send('127.0.0.1', dimse.port, 'STALLED', dimse.aeTitle);

    // While that association hangs, another peer is served.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const echo = await runTool('echoscu', ['-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)]);
    expect(echo.code).toBe(0);

    const elapsed = await closed;
    expect(storeRequests).toBe(1);
    expect(elapsed).toBeGreaterThan(1_500); // held until the 2 s PDU timeout...
    expect(elapsed).toBeLessThan(10_000); // ...and no longer
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(dimse.server.connections()).toBe(0);
  }, 30_000);
});
