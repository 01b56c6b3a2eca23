/**
 * What a C-STORE SCU is told when the archive refuses an instance: the DIMSE status mapped from the
 * ingest failure, with an error comment, and nothing stored. Sent with dcmjs-dimse's own SCU so the
 * command can be made to disagree with the data set.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dcmjsDimse from 'dcmjs-dimse';
import { makeInstance } from '../test-support/make-dicom.js';
import { startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { Dataset } from './dimse-lib.js';

const { Client, requests } = dcmjsDimse;

async function cStore(port: number, request: InstanceType<typeof requests.CStoreRequest>): Promise<{ status: number; comment: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let answer: { status: number; comment: string } | undefined;
    request.on('response', (response: { getStatus(): number; getErrorComment(): string }) => {
      answer = { status: response.getStatus(), comment: response.getErrorComment() ?? '' };
    });
    client.addRequest(request);
    client.on('networkError', (err: Error) => reject(err));
    client.on('closed', () => (answer ? resolve(answer) : reject(new Error('no response'))));
    client.send('127.0.0.1', port, 'DCMJSSCU', 'FILMLESS');
  });
}

describe('C-STORE statuses', () => {
  let dimse: TestDimse;
  beforeAll(async () => {
    dimse = await startTestDimse();
  });
  afterAll(async () => {
    await dimse?.close();
  });

  const dir = mkdtempSync(path.join(os.tmpdir(), 'pacs-cstore-'));
  const file = path.join(dir, 'instance.dcm');
  writeFileSync(file, makeInstance());
  const explicitFile = () => file;

  it('stores an instance sent by dcmjs-dimse (status 0000)', async () => {
    const dataset = Dataset.fromFile(explicitFile())!;
    expect(await cStore(dimse.port, new requests.CStoreRequest(dataset))).toMatchObject({ status: 0x0000 });
  });

  it('refuses a data set whose SOP Instance UID differs from the command with A900, storing nothing', async () => {
    const dataset = Dataset.fromFile(explicitFile())!;
    dataset.setElement('SOPInstanceUID', '1.2.3.4.5.6.7.8');
    const request = new requests.CStoreRequest(dataset);
    request.setAffectedSopInstanceUid('1.2.3.4.5.6.7.9');
    const answer = await cStore(dimse.port, request);
    expect(answer.status).toBe(0xa900);
    expect(answer.comment).toMatch(/SOP Instance UID/);
    const found = await dimse.testApp.app.inject({ method: 'GET', url: '/dicomweb/instances?SOPInstanceUID=1.2.3.4.5.6.7.8' });
    expect(JSON.parse(found.body || '[]')).toHaveLength(0);
  });

  it('answers C000 for a data set without the UIDs every instance needs', async () => {
    const dataset = new Dataset({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.7', SOPInstanceUID: '1.2.3.4.5.6.7.10', PatientID: 'X' }, '1.2.840.10008.1.2.1');
    const answer = await cStore(dimse.port, new requests.CStoreRequest(dataset));
    expect(answer.status).toBe(0xc000);
  });

  it('answers 0111 for a SOP Instance UID already stored under another study', async () => {
    const dataset = Dataset.fromFile(explicitFile())!;
    dataset.setElement('StudyInstanceUID', '1.2.3.4.5.6.7.11');
    expect((await cStore(dimse.port, new requests.CStoreRequest(dataset))).status).toBe(0x0111);
  });
});
