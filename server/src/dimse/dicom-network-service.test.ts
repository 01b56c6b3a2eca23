/**
 * The DICOM network service against Debian dcmtk's command-line peers: echo, store a mixed folder
 * (compressed syntaxes stored as received, then visible through QIDO-RS and byte-identical through
 * WADO-RS), find at every level, move to a dcmtk storescp, get; association policy; broken peers.
 */
import { readFile, readdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitMultipart } from '../test-support/split-multipart.js';
import { datasetBytes, mixedDicomFiles, readDataset, writeStorescpConfig, writeStorescuConfig } from '../test-support/dimse-files.js';
import { requireDcmtk, runTool, startStorescp, startTestDimse, type StoreScp, type TestDimse } from '../test-support/dimse-peer.js';
import { mkdtemp, rm } from 'node:fs/promises';

requireDcmtk();

interface Stored {
  file: string;
  study: string;
  series: string;
  sop: string;
}

/** The UIDs of a file, by dcmtk's dcmdump (independent of our parser). */
async function uidsOf(file: string): Promise<Omit<Stored, 'file'>> {
  const out = (await runTool('dcmdump', ['+P', '0020,000d', '+P', '0020,000e', '+P', '0008,0018', file])).stdout;
  const value = (tag: string) => new RegExp(`\\(${tag}\\) UI \\[([^\\]]*)\\]`).exec(out)?.[1]?.replace(/\0/g, '') ?? '';
  return { study: value('0020,000d'), series: value('0020,000e'), sop: value('0008,0018') };
}

describe('DICOM network service with dcmtk peers', () => {
  let dimse: TestDimse;
  let storescp: StoreScp;
  let work: string;
  const stored: Stored[] = [];
  const files = mixedDicomFiles();

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-dimse-test-'));
    storescp = await startStorescp('MOVEDEST');
    dimse = await startTestDimse({ destinations: { MOVEDEST: { host: '127.0.0.1', port: storescp.port } } });
    for (const file of files) stored.push({ file, ...(await uidsOf(file)) });
  }, 60_000);

  afterAll(async () => {
    await dimse?.close();
    await storescp?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const peer = () => ['-aet', 'TESTSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)];

  it('answers C-ECHO from echoscu', async () => {
    const result = await runTool('echoscu', ['-v', ...peer()]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout + result.stderr).toContain('Received Echo Response (Success)');
  });

  it('stores a mixed folder from storescu, compressed syntaxes as received, then serves each instance through QIDO-RS and byte-identical through WADO-RS', async () => {
    const config = await writeStorescuConfig(path.join(work, 'storescu.cfg'));
    const result = await runTool('storescu', ['-v', '--no-halt', '--config-file', config, 'AsReceived', ...peer(), ...files], 120_000);
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(0);
    expect(output.match(/Received Store Response \(Success\)/g)?.length).toBe(files.length);

    // What went over the wire, as a reference: the same files through the same storescu to dcmtk's
    // storescp, which writes the received data set bit-preserving (+B).
    const reference = await startStorescp('REFSCP', ['--config-file', await writeStorescpConfig(path.join(work, 'storescp.cfg')), 'AnyAsSent']);
    const sent = await runTool('storescu', ['--no-halt', '--config-file', config, 'AsReceived', '-aec', 'REFSCP', '127.0.0.1', String(reference.port), ...files], 120_000);
    expect(sent.code).toBe(0);
    const referenceFiles = await readdir(reference.dir);
    const wire = new Map<string, Buffer>();
    for (const name of referenceFiles) wire.set(name.slice(name.indexOf('.') + 1), datasetBytes(await readFile(path.join(reference.dir, name))));
    await reference.stop();

    const { app } = dimse.testApp;
    let sameAsOriginalFile = 0;
    for (const item of stored) {
      const qido = await app.inject({ method: 'GET', url: `/dicomweb/studies/${item.study}/series/${item.series}/instances?SOPInstanceUID=${item.sop}` });
      expect(qido.statusCode, item.file).toBe(200);
      expect(JSON.parse(qido.body)).toHaveLength(1);
      const wado = await app.inject({
        method: 'GET',
        url: `/dicomweb/studies/${item.study}/series/${item.series}/instances/${item.sop}`,
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      });
      expect(wado.statusCode, item.file).toBe(200);
      const [part] = splitMultipart(wado.rawPayload, wado.headers['content-type']);
      // The data set is exactly what storescu sent (as storescp received it); only the File Meta group is ours.
      expect(wire.has(item.sop), item.file).toBe(true);
      // storescp inflates a deflated data set when it writes it: that one is checked by its syntax below.
      if (!item.file.endsWith('1.2.840.10008.1.2.1.99.dcm')) {
        expect(Buffer.compare(datasetBytes(part!.body), wire.get(item.sop)!), path.basename(item.file)).toBe(0);
      }
      if (Buffer.compare(datasetBytes(part!.body), readDataset(item.file)) === 0) sameAsOriginalFile++;
      const syntax = /transfer-syntax=([0-9.]+)/.exec(part!.headers['content-type'] ?? '')?.[1];
      const base = path.basename(item.file);
      if (/^1\.2\.840\.10008\.1\.2[.0-9]*\.dcm$/.test(base)) expect(syntax).toBe(base.replace(/\.dcm$/, ''));
    }
    // storescu re-serializes what it reads (dcmtk writes its own encoding), so only some data sets
    // are also identical to the files on disk; the wire comparison above is the one that matters.
    expect(sameAsOriginalFile).toBeGreaterThan(0);
    // Storing the same files again is idempotent: success, nothing duplicated.
    const again = await runTool('storescu', ['--no-halt', '--config-file', config, 'AsReceived', ...peer(), files[0]!], 60_000);
    expect(again.code).toBe(0);
    const all = await app.inject({ method: 'GET', url: '/dicomweb/instances?limit=1000' });
    expect(JSON.parse(all.body)).toHaveLength(files.length);
  }, 180_000);

  const find = async (model: 'P' | 'S', keys: string[]) => {
    const result = await runTool('findscu', ['-v', `-${model}`, ...keys.flatMap((k) => ['-k', k]), ...peer()]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    return result.stdout + result.stderr;
  };

  it('answers findscu at patient, study, series and image level with QIDO-RS matching (Patient Root and Study Root)', async () => {
    const first = stored[0]!;
    const patients = await find('P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName', 'NumberOfPatientRelatedStudies']);
    expect(patients).toMatch(/Find Response: \d+ \(Pending\)/);
    expect(patients).toContain('(0010,0020)');

    const studies = await find('S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${first.study}`, 'StudyDate', 'PatientName', 'NumberOfStudyRelatedInstances']);
    expect(studies.match(/\(Pending\)/g)).toHaveLength(1);
    expect(studies).toContain(first.study);

    const everyStudy = await find('S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
    expect(everyStudy.match(/\(Pending\)/g)?.length).toBe(new Set(stored.map((s) => s.study)).size);

    const series = await find('S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${first.study}`, 'SeriesInstanceUID', 'Modality']);
    expect(series).toContain(first.series);

    const images = await find('P', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${first.study}`, `SeriesInstanceUID=${first.series}`, 'SOPInstanceUID', 'InstanceNumber']);
    expect(images).toContain(first.sop);
    // Empty binary-number return keys (Rows, Columns: US of length 0) ask for the value; they match
    // anything (PS3.4 C.2.2.2.3, universal matching). dcmjs-dimse's dcmjs read them as 0 (a match on 0).
    const withRows = await find('P', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${first.study}`, `SeriesInstanceUID=${first.series}`, 'SOPInstanceUID', 'Rows', 'Columns']);
    expect(withRows, withRows.slice(-2000)).toContain(first.sop);
    expect(withRows).toMatch(/\(0028,0010\) US [1-9]\d*/);

    // Same matching rules as QIDO-RS: wildcard on a modality, no match for an unknown UID.
    const wildcard = await find('S', ['QueryRetrieveLevel=SERIES', 'Modality=C*', 'SeriesInstanceUID']);
    const qido = await dimse.testApp.app.inject({ method: 'GET', url: '/dicomweb/series?Modality=C*' });
    expect(wildcard.match(/\(Pending\)/g)?.length ?? 0).toBe(JSON.parse(qido.body).length);
    const none = await find('S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID=1.2.3.4.5.6.7.8.9']);
    expect(none).not.toContain('(Pending)');
    expect(none).toContain('Success');
  }, 60_000);

  it('moves a study with movescu to a storescp started by the test, with sub-operation counts', async () => {
    const first = stored[0]!;
    const inStudy = stored.filter((s) => s.study === first.study);
    const result = await runTool('movescu', ['-d', '-S', '-aem', 'MOVEDEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${first.study}`, ...peer()], 120_000);
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(0);
    // The final response (Status 0000H) with Number of Completed Sub-operations (0000,1021), Failed (0000,1022).
    const finalResponse = output.slice(output.lastIndexOf('C-MOVE RSP'));
    expect(finalResponse, output.slice(-3000)).toMatch(/DIMSE Status\s*:\s*0x0000/);
    expect(finalResponse).toMatch(new RegExp(`Completed Suboperations\\s*:\\s*${inStudy.length}\\b`));
    expect(finalResponse).toMatch(/Failed Suboperations\s*:\s*0\b/);
    const received = (await readdir(storescp.dir)).filter((f) => !f.startsWith('.'));
    expect(received.length).toBeGreaterThanOrEqual(inStudy.length);
    // Sent with the stored syntax: the data set storescp wrote is the one originally stored.
    const byteSame = await Promise.all(
      received.map(async (name) => readFile(path.join(storescp.dir, name)).then((b) => datasetBytes(b))),
    );
    for (const instance of await dimse.archive.findInstances({ studyInstanceUid: first.study })) {
      const chunks: Buffer[] = [];
      for await (const chunk of await dimse.archive.openInstance(instance)) chunks.push(chunk as Buffer);
      const storedDataset = datasetBytes(Buffer.concat(chunks));
      expect(byteSame.some((b) => Buffer.compare(b, storedDataset) === 0), instance.sopInstanceUid).toBe(true);
    }

    const unknown = await runTool('movescu', ['-S', '-aem', 'NOWHERE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${first.study}`, ...peer()]);
    expect(unknown.stdout + unknown.stderr).toMatch(/MoveDestinationUnknown|a801/i);
  }, 180_000);

  it('sends a series to getscu on its own association (C-GET)', async () => {
    const target = stored.find((s) => s.file.endsWith('1.2.840.10008.1.2.4.80.dcm'))!;
    const out = await mkdtemp(path.join(work, 'get-'));
    const result = await runTool(
      'getscu',
      ['-v', '-S', '--output-directory', out, '-k', 'QueryRetrieveLevel=SERIES', '-k', `StudyInstanceUID=${target.study}`, '-k', `SeriesInstanceUID=${target.series}`, ...peer()],
      120_000,
    );
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(0);
    const got = await readdir(out);
    const inSeries = stored.filter((s) => s.series === target.series);
    expect(got).toHaveLength(inSeries.length);
    expect(output).toMatch(/Number of Failed Suboperations\s*:\s*0/);
    expect(output).toMatch(new RegExp(`Number of Completed Suboperations\\s*:\\s*${inSeries.length}`));
  }, 180_000);

  it('announces its own 256 KiB receive limit whatever the peer proposes (PS3.8 §D.1), and sends within a peer\'s smaller one', async () => {
    // storescu proposes 16 KiB for itself; it may then send us data sets in PDUs of up to its own send cap (128 KiB).
    const store = await runTool('storescu', ['-d', ...peer(), files[0]!], 60_000);
    const storeOutput = store.stdout + store.stderr;
    expect(store.code, storeOutput).toBe(0);
    expect(storeOutput).toMatch(/Their Max PDU Receive Size:\s*262144/);
    expect(storeOutput).toMatch(/Max Send PDV: 131060/);
    // A getscu that takes only 4 KiB PDUs gets instances larger than that, cut to its limit (dcmtk aborts on a larger PDU).
    const target = stored.find((s) => s.file.endsWith('1.2.840.10008.1.2.4.80.dcm'))!;
    expect((await readFile(target.file)).length).toBeGreaterThan(16 * 1024);
    const out = await mkdtemp(path.join(work, 'get-small-pdu-'));
    const get = await runTool(
      'getscu',
      ['-v', '--max-pdu', '4096', '--output-directory', out, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${target.study}`, '-k', `SeriesInstanceUID=${target.series}`, '-k', `SOPInstanceUID=${target.sop}`, ...peer()],
      60_000,
    );
    expect(get.code, get.stdout + get.stderr).toBe(0);
    expect(get.stdout + get.stderr).toMatch(/Number of Completed Suboperations\s*:\s*1/);
    expect(await readdir(out)).toHaveLength(1);
  }, 120_000);

  it('refuses an unsupported SOP class by presentation context and keeps serving', async () => {
    const unknown = path.join(path.dirname(path.dirname(files[0]!)), 'edge-cases', 'UnknownSopClassUid.dcm');
    const result = await runTool('storescu', ['-v', ...peer(), unknown]);
    expect(result.stdout + result.stderr).toMatch(/No presentation context|Presentation Context|not supported|abstract syntax/i);
    const echo = await runTool('echoscu', peer());
    expect(echo.code).toBe(0);
  });
});

describe('DICOM network service: association policy, address and broken peers', () => {
  it('rejects a calling AE title that is not on the allow-list and accepts one that is', async () => {
    const dimse = await startTestDimse({ allowedCallingAeTitles: ['GOODSCU'] });
    try {
      const bad = await runTool('echoscu', ['-v', '-aet', 'BADSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)]);
      expect(bad.code).not.toBe(0);
      expect(bad.stdout + bad.stderr).toMatch(/Association Rejected|Calling AE Title Not Recognized/i);
      const good = await runTool('echoscu', ['-aet', 'GOODSCU', '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)]);
      expect(good.code).toBe(0);
    } finally {
      await dimse.close();
    }
  });

  it('listens only on the configured address', async () => {
    const dimse = await startTestDimse({ host: '127.0.0.2' });
    try {
      expect(dimse.server.host).toBe('127.0.0.2');
      const echo = await runTool('echoscu', ['-aec', dimse.aeTitle, '127.0.0.2', String(dimse.port)]);
      expect(echo.code).toBe(0);
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: dimse.port });
        socket.once('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
      expect(refused).toBe('ECONNREFUSED');
    } finally {
      await dimse.close();
    }
  });

  it('ends malformed, aborted and silent associations cleanly, indexes nothing half-stored, and keeps serving', async () => {
    const dimse = await startTestDimse({ timeoutSeconds: 2 });
    try {
      // 1. A malformed PDU (unknown type) and garbage.
      await rawSession(dimse.port, [Buffer.from([0x09, 0x00, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4])]);
      await rawSession(dimse.port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
      // 2. An association aborted in the middle of a C-STORE: storescu over a proxy that cuts the connection.
      const file = mixedDicomFiles().find((f) => f.endsWith('1.2.840.10008.1.2.2.dcm'))!;
      const proxy = await cuttingProxy(dimse.port, 200_000);
      const cut = await runTool('storescu', ['-aec', dimse.aeTitle, '127.0.0.1', String(proxy.port), file], 30_000);
      expect(cut.code).not.toBe(0);
      await proxy.close();
      // 3. A peer that opens a connection and never says anything: cut after the association timeout.
      const silent = net.connect({ host: '127.0.0.1', port: dimse.port });
      silent.on('error', () => {});
      const silentClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
      await Promise.race([silentClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('silent peer not cut off')), 8000))]);

      await new Promise((resolve) => setTimeout(resolve, 300));
      const all = await dimse.testApp.app.inject({ method: 'GET', url: '/dicomweb/instances' });
      expect(JSON.parse(all.body || '[]')).toHaveLength(0);
      const blobs = await listFiles(path.join(dimse.testApp.dataDir, 'blobs'));
      expect(blobs.filter((f) => f.endsWith('.dcm'))).toHaveLength(0);
      const echo = await runTool('echoscu', ['-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)]);
      expect(echo.code).toBe(0);
      // And the whole file still stores afterwards.
      const whole = await runTool('storescu', ['-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port), file]);
      expect(whole.code, whole.stdout + whole.stderr).toBe(0);
      expect(dimse.testApp.logLines.join('')).not.toMatch(/Rubo|Anonymized/i);
    } finally {
      await dimse.close();
    }
  }, 60_000);
});

async function listFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Connects, writes the chunks, and waits until the server closes the connection (or 5 s). */
async function rawSession(port: number, chunks: Buffer[]): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  for (const chunk of chunks) socket.write(chunk);
  await Promise.race([new Promise<void>((resolve) => socket.once('close', () => resolve())), new Promise((resolve) => setTimeout(resolve, 5000))]);
  socket.destroy();
}

/** A TCP proxy to the SCP that forwards `limit` bytes from the client, then destroys both sides. */
async function cuttingProxy(targetPort: number, limit: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    let sent = 0;
    client.on('error', () => {});
    upstream.on('error', () => {});
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      const room = limit - sent;
      if (room <= 0) return;
      upstream.write(chunk.subarray(0, room));
      sent += Math.min(room, chunk.length);
      if (sent >= limit) {
        setTimeout(() => {
          upstream.destroy();
          client.destroy();
        }, 100);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
