/**
 * A series retrieve over a real socket reuses its part buffers (part-buffers.ts) and still sends every
 * stored file byte for byte: with a client that reads as fast as it can, and with one that reads slowly,
 * so that the socket backs up and parts wait in Node's and the kernel's queues while later parts are read.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PartBuffers } from '../archive/part-buffers.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const COUNT = 48;
const SIDE = 400; // 160 KB of 8-bit pixels each, 7.7 MB in all: more than the socket's buffers hold
let t: TestApp;
let port: number;
const study = newUid();
const series = newUid();
const stored = new Map<string, Buffer>();

beforeAll(async () => {
  t = await buildTestApp();
  for (let i = 0; i < COUNT; i++) {
    const sop = newUid();
    stored.set(sop, makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: SIDE, columns: SIDE, pixels: randomBytes(SIDE * SIDE) }));
  }
  const files = [...stored.values()];
  for (let at = 0; at < files.length; at += 12) expect((await stow(t.app, files.slice(at, at + 12))).statusCode).toBe(200);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
}, 60_000);
afterAll(async () => t.close());

/** The series as a client reading `pauseMs` between chunks gets it. */
function retrieve(pauseMs: number): Promise<{ contentType: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: `/dicomweb/studies/${study}/series/${series}`, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' }, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => {
          chunks.push(Buffer.from(chunk)); // a copy: the test keeps what arrived, whatever the stream does later
          if (pauseMs > 0) {
            response.pause();
            setTimeout(() => response.resume(), pauseMs);
          }
        });
        response.on('end', () => resolve({ contentType: String(response.headers['content-type']), body: Buffer.concat(chunks) }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

describe('series retrieve with part buffers used again', () => {
  it.each([
    ['a fast client', 0],
    ['a slow client (the socket backs up)', 2],
  ])('sends every stored file byte for byte to %s, allocating fewer buffers than parts', async (_name, pauseMs) => {
    // Calls through; records the PartBuffers each call was made on.
    const handOut = vi.spyOn(PartBuffers.prototype, 'handOut');
    const { contentType, body } = await retrieve(pauseMs);
    const made = [...new Set(handOut.mock.contexts as PartBuffers[])];
    handOut.mockRestore();
    const parts = splitMultipart(body, contentType);
    expect(parts).toHaveLength(COUNT);
    const sent = new Set<string>();
    for (const part of parts) {
      const location = part.headers['content-location'] ?? '';
      const sop = location.slice(location.lastIndexOf('/') + 1);
      expect(part.body.equals(stored.get(sop)!), `part ${sop}`).toBe(true);
      sent.add(sop);
    }
    expect(sent.size).toBe(COUNT);
    expect(made).toHaveLength(1);
    // About the read-ahead window (16 parts) plus what the socket holds, not one per part (48).
    expect(made[0]!.allocated).toBeLessThanOrEqual(24);
  }, 60_000);
});
