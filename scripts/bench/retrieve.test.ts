import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMultipart, timedGet } from './retrieve.js';
import type { TargetServer } from './target.js';

/** A multipart/related answer of three parts (sizes 70,000 / 0 / 5), sent in small writes. */
const BOUNDARY = 'b-123';
const PARTS = [Buffer.alloc(70_000, 7), Buffer.alloc(0), Buffer.from('hello')];
const BODY = Buffer.concat([
  ...PARTS.flatMap((p) => [Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), p, Buffer.from('\r\n')]),
  Buffer.from(`--${BOUNDARY}--\r\n`),
]);

let server: http.Server;
let target: TargetServer;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/root/multipart') {
      res.writeHead(200, { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` });
      for (let at = 0; at < BODY.length; at += 4096) res.write(BODY.subarray(at, at + 4096));
      res.end();
    } else if (req.url === '/root/json') {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('[{}]');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such thing');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  target = { name: 'test', dicomwebRoot: `http://127.0.0.1:${port}/root` } as TargetServer;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('bench:retrieve client', () => {
  it('counts a multipart answer as it streams: the same parts and payload bytes as parsing the whole body', async () => {
    const sample = await timedGet(target, '/multipart', 'multipart/related; type="application/dicom"');
    const whole = parseMultipart(`multipart/related; boundary=${BOUNDARY}`, BODY)!;
    expect(sample).toMatchObject({ ok: true, status: 200, parts: 3, payloadBytes: 70_005, bytes: BODY.length });
    expect([whole.parts, whole.payloadBytes]).toEqual([sample.parts, sample.payloadBytes]);
    expect(sample.body).toBeUndefined();
  });

  it('keeps the body of other answers, and of errors for their message', async () => {
    const json = await timedGet(target, '/json', 'application/dicom+json');
    expect(json).toMatchObject({ ok: true, parts: 1, bytes: 4 });
    const missing = await timedGet(target, '/missing', 'multipart/related; type="application/dicom"');
    expect(missing.ok).toBe(false);
    expect(missing.error).toContain('HTTP 404');
    expect(missing.error).toContain('no such thing');
  });
});
