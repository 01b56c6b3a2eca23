/**
 * Optional HTTPS (PACS_TLS_CERT_FILE / PACS_TLS_KEY_FILE): a certificate made by openssl for the test,
 * the server answering DICOMweb over TLS with it, and no plain-HTTP answer on the same port. With TLS,
 * HTTP/2 (ALPN h2) and HTTP/1.1 are both served on the port (PACS_HTTP2, default on): an HTTP/2 client
 * (node:http2) and an HTTP/1.1 client get the same frames, JSON and Server-Sent Events work over
 * HTTP/2, and the live WebSocket is upgraded over HTTP/1.1 on the same port. PACS_HTTP2=false keeps
 * HTTP/1.1 only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http2, { type ClientHttp2Session } from 'node:http2';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance, stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';

let dir: string;
let ca: Buffer;
let t: TestApp;
let port: number;
const ids = { study: newUid(), series: newUid(), sop: newUid() };
let slide: { study: string; series: string };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  protocol: string;
}

/** GET over HTTP/1.1 (node:https; no ALPN offered, so the server falls back to HTTP/1.1). */
function getHttp1(pathname: string, headers: Record<string, string> = {}, to = port): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // A connection of its own each time (no keep-alive agent), so one refused request cannot affect the next.
    const req = request({ host: '127.0.0.1', port: to, path: pathname, ca, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), protocol: `HTTP/${res.httpVersion}` }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET over HTTP/2 on one session. */
function getHttp2(session: ClientHttp2Session, pathname: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': pathname, ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders as Answer['headers'], body: Buffer.concat(chunks), protocol: 'HTTP/2' }));
    stream.on('error', reject);
    stream.end();
  });
}

const FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  ca = await readFile(path.join(dir, 'cert.pem'));
  t = await buildTestApp({ PACS_TLS_CERT_FILE: path.join(dir, 'cert.pem'), PACS_TLS_KEY_FILE: path.join(dir, 'key.pem'), PACS_JOBS_WINDOWS_PER_UNIT: '8' });
  const files = [makeInstance({ studyInstanceUid: ids.study, seriesInstanceUid: ids.series, sopInstanceUid: ids.sop, rows: 64, columns: 64, numberOfFrames: 3 })];
  // The smallest CMU-1 pyramid, for a slide analysis job whose progress is streamed as Server-Sent Events.
  const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', 'tiled-sparse-orthanc-wsi');
  for (const name of (await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort()) files.push(await readFile(path.join(folder, name)));
  const described = describeInstance(files[1]!);
  slide = { study: described.study, series: described.series };
  expect((await stow(t.app, files)).statusCode).toBe(200);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
}, 60_000);

afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('HTTPS from configuration', () => {
  it('serves DICOMweb over TLS with the configured certificate', async () => {
    const { status, body, peerCn } = await new Promise<{ status: number; body: string; peerCn: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/dicomweb/studies?StudyInstanceUID=1.2.3.4', ca, headers: { accept: 'application/dicom+json' } }, (res) => {
        let text = '';
        const peerCn = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN);
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, peerCn }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(JSON.parse(body)).toEqual([]);
    expect(peerCn).toBe('127.0.0.1');
  });

  it('does not answer plain HTTP on the TLS port', async () => {
    const outcome = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (response) => `status ${response.status}`,
      () => 'refused',
    );
    expect(outcome).not.toBe('status 200');
  });
});

describe('HTTP/2 beside HTTP/1.1 on the TLS port', () => {
  it('gives an HTTP/2 client and an HTTP/1.1 client the same frames, many requests on one HTTP/2 connection', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    try {
      const url = `/dicomweb/studies/${ids.study}/series/${ids.series}/instances/${ids.sop}/frames`;
      const [one, two, three, json] = await Promise.all([
        getHttp2(session, `${url}/1`, { accept: FRAMES }),
        getHttp2(session, `${url}/2`, { accept: FRAMES }),
        getHttp2(session, `${url}/3,1`, { accept: FRAMES }),
        getHttp2(session, `/dicomweb/studies/${ids.study}/series`, { accept: 'application/dicom+json' }),
      ]);
      expect((session.socket as TLSSocket).alpnProtocol).toBe('h2');
      for (const answer of [one, two, three]) {
        expect(answer.status).toBe(200);
        expect(String(answer.headers['content-type'])).toMatch(/^multipart\/related; type="application\/octet-stream"/);
        expect(answer.headers['cache-control']).toBe('private, max-age=31536000, immutable');
      }
      expect(json.status).toBe(200);
      expect(JSON.parse(json.body.toString())[0]['0020000E'].Value).toEqual([ids.series]);

      const old = await getHttp1(`${url}/3,1`, { accept: FRAMES });
      expect(old.protocol).toBe('HTTP/1.1');
      expect(old.status).toBe(200);
      const parts = (a: Answer) => splitMultipart(a.body, String(a.headers['content-type'])).map((p) => p.body);
      expect(parts(old)).toEqual(parts(three));
      expect(parts(three)[0]!.length).toBe(64 * 64);
      expect(parts(one)[0]!.equals(parts(three)[1]!)).toBe(true);
      expect(parts(two)[0]!.equals(parts(one)[0]!)).toBe(false);

      // Error answers over HTTP/2 too (the error handler must not set HTTP/1.1 connection headers).
      const missing = await getHttp2(session, `${url}/9`, { accept: FRAMES });
      expect(missing.status).toBe(404);
      expect(JSON.parse(missing.body.toString()).error.code).toBe('NOT_FOUND');
      const refused = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/dicomweb/studies', 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
        let status = 0;
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.resume();
        stream.on('end', () => resolve(status));
        stream.on('error', reject);
        stream.end(Buffer.from('--x\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--x--\r\n'));
      });
      expect(refused).toBeGreaterThanOrEqual(400);
    } finally {
      session.close();
    }
  });

  it('keeps the header size bound on both protocols (PACS_HTTP_MAX_HEADER_BYTES, 16 KiB)', async () => {
    const big = { 'x-padding': 'a'.repeat(20_000) };
    expect((await getHttp1('/healthz', big)).status).toBe(431);
    expect((await getHttp1('/healthz', { 'x-padding': 'a'.repeat(10_000) })).status).toBe(200);
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    try {
      expect((await getHttp2(session, '/healthz', big)).status).toBe(431);
      expect((await getHttp2(session, '/healthz', { 'x-padding': 'a'.repeat(10_000) })).status).toBe(200);
    } finally {
      session.destroy();
    }
  });

  it('compresses JSON by Accept-Encoding over both protocols', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    try {
      for (const answer of [
        await getHttp2(session, '/api/openapi.json', { 'accept-encoding': 'gzip' }),
        await getHttp1('/api/openapi.json', { 'accept-encoding': 'gzip' }),
      ]) {
        expect(answer.status, answer.protocol).toBe(200);
        expect(answer.headers['content-encoding'], answer.protocol).toBe('gzip');
        expect(String(answer.headers['vary'])).toMatch(/accept-encoding/i);
        expect(JSON.parse(gunzipSync(answer.body).toString()).openapi).toMatch(/^3\./);
      }
    } finally {
      session.close();
    }
  });

  it('streams Server-Sent Events of a slide analysis job over HTTP/2 as they happen', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    let id = '';
    try {
      const created = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': `/ai/studies/${slide.study}/series/${slide.series}/analyses`, 'content-type': 'application/json' });
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
        stream.end(JSON.stringify({ model: 'dark-spot' }));
      });
      expect(created.status, created.body).toBe(202);
      id = JSON.parse(created.body).id as string;
      // Events arrive one by one while the job runs (not buffered to the end): two progress events seen.
      const { headers, text } = await new Promise<{ headers: http2.IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const stream = session.request({ ':path': `/ai/analyses/${id}/events`, 'accept-encoding': 'gzip, br' });
        let received: http2.IncomingHttpHeaders = {};
        let text = '';
        stream.on('response', (h) => (received = h));
        stream.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.split('event: progress').length > 2 || /event: (completed|failed)/.test(text)) {
            stream.close();
            resolve({ headers: received, text });
          }
        });
        stream.on('error', reject);
      });
      expect(Number(headers[':status'])).toBe(200);
      expect(String(headers['content-type'])).toMatch(/^text\/event-stream/);
      expect(headers['content-encoding'], 'event streams are never compressed').toBeUndefined();
      expect(text).toMatch(/^retry: \d+\n\nevent: progress\ndata: \{/);
    } finally {
      session.close();
      if (id !== '') await t.app.inject({ method: 'DELETE', url: `/ai/analyses/${id}` });
    }
  }, 60_000);

  it('upgrades the live WebSocket over HTTP/1.1 on the same port', async () => {
    const socket = new WebSocket(`wss://127.0.0.1:${port}/live`, { ca });
    const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
      socket.on('open', () => socket.send(JSON.stringify({ type: 'start', model: 'bright-spot', fps: 25, study: { patientName: 'TLS^ROOM', patientId: 'TLS-1' } })));
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as Record<string, unknown>;
        if (message['type'] === 'started') resolve(message);
      });
      socket.on('error', reject);
    });
    expect(started['model']).toEqual({ id: 'bright-spot', version: '1.0.0' });
    socket.close();
  });
});

describe('PACS_HTTP2=false', () => {
  it('serves HTTP/1.1 only over TLS', async () => {
    const only1 = await buildTestApp({ PACS_TLS_CERT_FILE: path.join(dir, 'cert.pem'), PACS_TLS_KEY_FILE: path.join(dir, 'key.pem'), PACS_HTTP2: 'false', PACS_AI_ENABLED: 'false' });
    try {
      await only1.app.listen({ host: '127.0.0.1', port: 0 });
      const other = (only1.app.server.address() as AddressInfo).port;
      expect((await getHttp1('/healthz', {}, other)).status).toBe(200);
      const session = http2.connect(`https://127.0.0.1:${other}`, { ca });
      const failed = await new Promise<boolean>((resolve) => {
        session.on('error', () => resolve(true));
        session.on('connect', () => resolve(false));
      });
      session.destroy();
      expect(failed).toBe(true);
    } finally {
      await only1.close();
    }
  });
});
