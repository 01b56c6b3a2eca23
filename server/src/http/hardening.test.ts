/**
 * HTTP-level limits against hostile clients, over real sockets: a slow-loris client trickling its
 * headers is cut off, oversized headers get 431, a connection on which nothing moves is closed, while an
 * upload that keeps sending (however slowly, for longer than every time-out) is stored; and a client
 * sending too many requests gets 429 with Retry-After and the project's JSON error body.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { authEnv, startTestIssuer } from '../test-support/test-issuer.js';
import { makeInstance, multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await buildTestApp({
    PACS_HTTP_HEADERS_TIMEOUT_MS: '1000',
    PACS_HTTP_IDLE_TIMEOUT_MS: '1500',
    PACS_HTTP_MAX_HEADER_BYTES: '4096',
    PACS_RATE_LIMIT_MAX: '5',
    PACS_RATE_LIMIT_WINDOW_SECONDS: '60',
  });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as net.AddressInfo).port;
});
afterAll(async () => t.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Connection {
  socket: net.Socket;
  received: () => string;
  closed: Promise<number>;
}

/** A raw connection; `closed` resolves with the time (ms since connect) at which the server closed it. */
async function connect(): Promise<Connection> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const started = Date.now();
  let data = '';
  socket.on('data', (chunk) => (data += chunk.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  return { socket, received: () => data, closed };
}

async function healthy(): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  expect(response.status).toBe(200);
}

describe('slow clients', () => {
  it('cuts off a slow-loris client that trickles its headers, and keeps serving others', async () => {
    const c = await connect();
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header byte every 200 ms: never idle, never finished.
    let sent = 0;
    const trickle = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write(sent++ % 2 === 0 ? 'X' : '-');
    }, 200);
    try {
      const closedAfter = await Promise.race([c.closed, sleep(6000).then(() => -1)]);
      expect(closedAfter).toBeGreaterThan(0);
      // PACS_HTTP_HEADERS_TIMEOUT_MS (1 s) plus one check interval (250 ms) plus slack.
      expect(closedAfter).toBeLessThan(3000);
      expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      clearInterval(trickle);
      c.socket.destroy();
    }
    await healthy();
  });

  it('answers 431 to request headers larger than PACS_HTTP_MAX_HEADER_BYTES', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { 'x-padding': 'a'.repeat(8000) } });
    expect(response.status).toBe(431);
    await healthy();
  });

  it('closes a connection on which nothing moves for PACS_HTTP_IDLE_TIMEOUT_MS (a stalled upload)', async () => {
    const c = await connect();
    c.socket.write(
      `POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${STOW_CONTENT_TYPE()}\r\nContent-Length: 100000\r\n\r\n--test-boundary-7f3a\r\n`,
    );
    const closedAfter = await Promise.race([c.closed, sleep(6000).then(() => -1)]);
    expect(closedAfter).toBeGreaterThan(1000);
    expect(closedAfter).toBeLessThan(4000);
    await healthy();
  });

  it('stores an upload that keeps sending slowly for longer than every time-out', async () => {
    const body = multipartBody([{ body: makeInstance() }]);
    const c = await connect();
    c.socket.write(`POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${STOW_CONTENT_TYPE()}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    // ~4 s in all (more than the 1 s header and 1.5 s idle time-outs), a piece every 400 ms.
    const pieces = 10;
    const size = Math.ceil(body.length / pieces);
    for (let i = 0; i < pieces; i++) {
      await sleep(400);
      expect(c.socket.destroyed, `cut after piece ${i}`).toBe(false);
      c.socket.write(body.subarray(i * size, (i + 1) * size));
    }
    await Promise.race([c.closed, sleep(5000)]);
    expect(c.received()).toMatch(/^HTTP\/1\.1 200/);
  }, 20_000);
});

describe('rate limiting per client', () => {
  it('answers 429 with Retry-After and a JSON error once a client passes PACS_RATE_LIMIT_MAX, other clients unaffected', async () => {
    const from = (remoteAddress: string) => t.app.inject({ method: 'GET', url: '/dicomweb/studies', remoteAddress });
    for (let i = 0; i < 5; i++) expect((await from('10.0.0.7')).statusCode).toBe(200);
    const refused = await from('10.0.0.7');
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.headers['content-type']).toMatch(/application\/json/);
    expect(refused.json()).toEqual({ error: { code: 'TOO_MANY_REQUESTS', message: expect.stringMatching(/retry in \d+ s/) } });
    // Another client, and loopback clients (exempt by default), are not limited.
    expect((await from('10.0.0.8')).statusCode).toBe(200);
    for (let i = 0; i < 10; i++) expect((await from('127.0.0.1')).statusCode).toBe(200);
  });

  it('counts requests refused before any route runs: 401s of a client guessing tokens, unknown URLs', async () => {
    const issuer = await startTestIssuer();
    const signedIn = await buildTestApp(authEnv(issuer, { PACS_RATE_LIMIT_MAX: '4', PACS_RATE_LIMIT_WINDOW_SECONDS: '60' }));
    try {
      const guess = (token: string) => signedIn.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${token}` }, remoteAddress: '10.0.0.9' });
      for (let i = 0; i < 3; i++) expect((await guess(`guess-${i}`)).statusCode).toBe(401);
      expect((await signedIn.app.inject({ url: '/no/such/route', remoteAddress: '10.0.0.9' })).statusCode).toBe(401);
      const refused = await guess('guess-4');
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error.code).toBe('TOO_MANY_REQUESTS');
      // A valid token from that address is refused too until the window ends; other clients are served.
      const token = await issuer.token({ sub: 'reader', roles: ['reader'] });
      expect((await guess(token)).statusCode).toBe(429);
      expect((await signedIn.app.inject({ url: '/dicomweb/studies', headers: { authorization: `Bearer ${token}` }, remoteAddress: '10.0.0.10' })).statusCode).toBe(200);
    } finally {
      await signedIn.close();
      await issuer.close();
    }
  });
});
