/**
 * A second archive as DIMSE peer: Debian's Orthanc (private instance, loopback) sends us instances by
 * C-STORE and pulls a study from us by C-MOVE (we open the sub-association to its Storage SCP).
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mixedDicomFiles } from '../test-support/dimse-files.js';
import { startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { startOrthancPeer, type OrthancPeer } from '../test-support/orthanc-peer.js';
import { freePort } from '../test-support/spawn-server.js';

describe('DICOM network service with Orthanc as peer', () => {
  let dimse: TestDimse;
  let orthanc: OrthancPeer;

  beforeAll(async () => {
    const orthancPort = await freePort();
    dimse = await startTestDimse({ destinations: { ORTHANC: { host: '127.0.0.1', port: orthancPort } } });
    orthanc = await startOrthancPeer(
      {},
      { aeTitle: 'ORTHANC', port: orthancPort, modalities: { filmless: { aeTitle: dimse.aeTitle, host: '127.0.0.1', port: dimse.port } } },
    );
  }, 90_000);

  afterAll(async () => {
    await orthanc?.stop();
    await dimse?.close();
  });

  const rest = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${orthanc.url}${path}`, {
      method,
      ...(body !== undefined && { body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text === '' ? undefined : JSON.parse(text);
  };

  it('receives instances Orthanc sends by C-STORE (compressed ones as they are)', async () => {
    const files = mixedDicomFiles().filter((f) => /1\.2\.840\.10008\.1\.2\.(1|4\.50|4\.70|4\.80|4\.90|5)\.dcm$/.test(f));
    const ids: string[] = [];
    for (const file of files) ids.push(((await rest('POST', '/instances', await readFile(file))) as { ID: string }).ID);
    const echo = await rest('POST', '/modalities/filmless/echo', {});
    expect(echo).toBeDefined();
    await rest('POST', '/modalities/filmless/store', { Resources: ids, Synchronous: true });

    for (const id of ids) {
      const tags = (await rest('GET', `/instances/${id}/simplified-tags`)) as Record<string, string>;
      const qido = await dimse.testApp.app.inject({ method: 'GET', url: `/dicomweb/instances?SOPInstanceUID=${tags['SOPInstanceUID']}` });
      expect(JSON.parse(qido.body), id).toHaveLength(1);
      const syntax = ((await rest('GET', `/instances/${id}/metadata?expand`)) as Record<string, string>)['TransferSyntax'];
      const stored = (await dimse.archive.findInstances({ studyInstanceUid: tags['StudyInstanceUID']!, seriesInstanceUid: tags['SeriesInstanceUID']!, sopInstanceUid: tags['SOPInstanceUID']! }))[0]!;
      expect(stored.transferSyntaxUid).toBe(syntax);
    }
  }, 120_000);

  it('lets Orthanc pull a study from us by C-MOVE', async () => {
    // A study only we hold: stored straight into our archive.
    const file = mixedDicomFiles().find((f) => f.endsWith('1.2.840.10008.1.2.4.91.dcm'))!;
    const bytes = await readFile(file);
    const scanned = await dimse.archive.scanAndStore((async function* () { yield bytes; })());
    const result = await scanned.completion;
    expect(result.ok).toBe(true);
    const item = result.ok ? result.item : undefined;
    const before = (await rest('POST', '/tools/find', { Level: 'Instance', Query: { SOPInstanceUID: item!.sopInstanceUid } })) as string[];
    expect(before).toHaveLength(0);

    await rest('POST', '/modalities/filmless/move', {
      Level: 'Study',
      Resources: [{ StudyInstanceUID: item!.studyInstanceUid }],
      TargetAet: 'ORTHANC',
      Synchronous: true,
    });
    const after = (await rest('POST', '/tools/find', { Level: 'Instance', Query: { SOPInstanceUID: item!.sopInstanceUid } })) as string[];
    expect(after).toHaveLength(1);
    const metadata = (await rest('GET', `/instances/${after[0]}/metadata?expand`)) as Record<string, string>;
    expect(metadata['TransferSyntax']).toBe('1.2.840.10008.1.2.4.91');
  }, 120_000);
});
