/**
 * The syslog export to an ATNA audit repository, received by real listeners on loopback: over UDP one
 * RFC 5424 datagram per record; over TCP RFC 6587 octet-counted frames, sent once the collector comes
 * up and again after it drops the connection. Each message's header (PRI, version, timestamp, host,
 * app-name, procid, msgid) is parsed and its MSG read as a DICOM audit message.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { childrenNamed, parseXml } from '../test-support/audit-xml.js';
import { freePort } from '../test-support/spawn-server.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Syslog {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  structuredData: string;
  xml: string;
}

/** RFC 5424: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP BOM MSG]`. */
function parseSyslog(message: Buffer): Syslog {
  const text = message.toString('utf8');
  const match = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) \uFEFF([\s\S]*)$/.exec(text);
  if (match === null) throw new Error(`not an RFC 5424 message with a UTF-8 MSG: ${text.slice(0, 120)}`);
  const [, pri, version, timestamp, hostname, appName, procId, msgId, structuredData, xml] = match;
  return { pri: Number(pri), version: Number(version), timestamp: timestamp!, hostname: hostname!, appName: appName!, procId: procId!, msgId: msgId!, structuredData: structuredData!, xml: xml! };
}

/** RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, repeated. */
function splitOctetCounted(stream: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let offset = 0;
  while (offset < stream.length) {
    const space = stream.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(stream.subarray(offset, space).toString('ascii'));
    if (!Number.isInteger(length) || space + 1 + length > stream.length) break;
    frames.push(stream.subarray(space + 1, space + 1 + length));
    offset = space + 1 + length;
  }
  return frames;
}

async function until<T>(read: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function expectHeader(syslog: Syslog, recordTime: number): void {
  expect(syslog.pri).toBe(85); // facility 10 (security/authorization), severity 5 (notice)
  expect(syslog.version).toBe(1);
  expect(syslog.timestamp).toBe(new Date(recordTime).toISOString());
  expect(syslog.hostname).toBe(os.hostname());
  expect(syslog.appName).toBe('filmless-pacs');
  expect(syslog.procId).toBe(String(process.pid));
  expect(syslog.msgId).toBe('IHE+RFC-3881');
  expect(syslog.structuredData).toBe('-');
}

async function appWithSyslog(target: string): Promise<TestApp> {
  const t = await buildTestApp({ PACS_AUDIT_SYSLOG: target });
  cleanups.push(() => t.close());
  return t;
}

describe('audit records exported to a syslog audit repository', () => {
  it('sends each record over UDP as one RFC 5424 datagram carrying the DICOM audit message', async () => {
    const received: Buffer[] = [];
    const collector = dgram.createSocket('udp4');
    collector.on('message', (message) => received.push(message));
    await new Promise<void>((resolve) => collector.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => collector.close(() => resolve())));

    const t = await appWithSyslog(`udp://127.0.0.1:${collector.address().port}`);
    const response = await t.app.inject({ url: `/dicomweb/studies?PatientName=${encodeURIComponent('SYSLOG^UDP*')}` });
    expect(response.statusCode).toBe(200);
    await t.services.audit!.flush();
    const [record] = await t.services.audit!.store.list({ limit: 1 });

    const datagram = await until(() => received[0], 'the syslog datagram');
    const syslog = parseSyslog(datagram);
    expectHeader(syslog, record!.time);
    const message = parseXml(syslog.xml);
    const [event] = childrenNamed(message, 'EventIdentification');
    expect(event!.attributes).toMatchObject({ EventActionCode: 'E', EventOutcomeIndicator: '0' });
    expect(childrenNamed(event!, 'EventID')[0]!.attributes).toEqual({ 'csd-code': '110112', codeSystemName: 'DCM', originalText: 'Query' });
    expect(childrenNamed(message, 'ActiveParticipant')[0]!.attributes).toMatchObject({ UserID: 'anonymous', UserIsRequestor: 'true', NetworkAccessPointID: '127.0.0.1' });
    const [query] = childrenNamed(message, 'ParticipantObjectIdentification');
    expect(query!.attributes).toEqual({ ParticipantObjectID: '/dicomweb/studies', ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '24' });
    expect(JSON.parse(Buffer.from(childrenNamed(query!, 'ParticipantObjectQuery')[0]!.text, 'base64').toString('utf8'))).toEqual({ level: 'study', keys: { PatientName: 'SYSLOG^UDP*' } });
    expect(received).toHaveLength(1);
  });

  it('sends records over TCP with octet-counting framing once the collector is up, and again after it drops the connection', async () => {
    const port = await freePort();
    const t = await appWithSyslog(`tcp://127.0.0.1:${port}`);
    // The collector is down: the request is served all the same and its message waits.
    expect((await t.app.inject({ url: '/dicomweb/studies?StudyDate=20260101' })).statusCode).toBe(200);
    await t.services.audit!.flush();

    let stream = Buffer.alloc(0);
    const connections: net.Socket[] = [];
    const collector = net.createServer((socket) => {
      connections.push(socket);
      socket.on('data', (chunk) => (stream = Buffer.concat([stream, chunk])));
    });
    await new Promise<void>((resolve) => collector.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      for (const socket of connections) socket.destroy();
      collector.close(() => resolve());
    }));
    expect((await t.app.inject({ url: '/dicomweb/studies?StudyDate=20260102' })).statusCode).toBe(200);

    const first = await until(() => (splitOctetCounted(stream).length >= 2 ? splitOctetCounted(stream) : undefined), 'two framed messages');
    const records = (await t.services.audit!.store.list({ limit: 2 })).reverse();
    first.forEach((frame, i) => {
      const syslog = parseSyslog(frame);
      expectHeader(syslog, records[i]!.time);
      const query = childrenNamed(parseXml(syslog.xml), 'ParticipantObjectIdentification')[0]!;
      expect(Buffer.from(childrenNamed(query, 'ParticipantObjectQuery')[0]!.text, 'base64').toString('utf8')).toContain(`2026010${i + 1}`);
    });

    // The collector restarts its side: the next record goes over a new connection.
    connections[0]!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await t.app.inject({ url: '/dicomweb/studies?StudyDate=20260103' })).statusCode).toBe(200);
    const all = await until(() => (splitOctetCounted(stream).length >= 3 ? splitOctetCounted(stream) : undefined), 'the message after reconnecting');
    expect(all).toHaveLength(3);
    expect(parseSyslog(all[2]!).xml).toContain('<AuditMessage>');
    expect(connections.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a syslog setting that is not udp:// or tcp:// host:port', async () => {
    await expect(buildTestApp({ PACS_AUDIT_SYSLOG: 'syslog.example.org' })).rejects.toThrow(/PACS_AUDIT_SYSLOG must be udp:\/\/host:port or tcp:\/\/host:port/);
  });
});
