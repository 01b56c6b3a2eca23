/**
 * Frame answers over a real socket reuse their buffers once written out (answer-buffers.ts) and still
 * send every frame byte for byte: many answers in a row and at once, from clients that read as fast as
 * they can, clients that read slowly (the socket backs up while later answers are read), and clients that
 * go away mid-answer (their buffers are never taken back).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AnswerBuffers } from '../archive/answer-buffers.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { stow } from '../test-support/shared-instance.js';
import { splitMultipart } from '../test-support/split-multipart.js';

const FRAMES = 24;
const SIDE = 400; // 160 KB of 8-bit pixels per frame: pooled (over 64 KB), 8 frames more than a socket buffers
let t: TestApp;
let port: number;
const study = newUid();
const series = newUid();
const sop = newUid();
const pixels = randomBytes(SIDE * SIDE * FRAMES);
const frame = (n: number) => pixels.subarray((n - 1) * SIDE * SIDE, n * SIDE * SIDE);

beforeAll(async () => {
  t = await buildTestApp();
  const instance = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, rows: SIDE, columns: SIDE, numberOfFrames: FRAMES, pixels });
  expect((await stow(t.app, [instance])).statusCode).toBe(200);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
}, 60_000);
afterAll(async () => t.close());

/**
 * The frames as a client reading `pauseMs` between chunks gets them; `abortAfter`: goes away after so many
 * bytes; `hold`: stops reading after its first chunk until the promise settles.
 */
function frames(list: number[], pauseMs: number, abortAfter?: number, hold?: Promise<unknown>): Promise<{ contentType: string; body: Buffer } | 'aborted'> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        path: `/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/${list.join(',')}`,
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          chunks.push(Buffer.from(chunk)); // a copy: the test keeps what arrived, whatever the stream does later
          received += chunk.length;
          if (abortAfter !== undefined && received >= abortAfter) {
            request.destroy();
            resolve('aborted');
            return;
          }
          if (hold !== undefined && chunks.length === 1) {
            response.pause();
            void hold.then(() => response.resume());
          } else if (pauseMs > 0) {
            response.pause();
            setTimeout(() => response.resume(), pauseMs);
          }
        });
        response.on('end', () => resolve({ contentType: String(response.headers['content-type']), body: Buffer.concat(chunks) }));
        response.on('error', (err) => (abortAfter === undefined ? reject(err) : resolve('aborted')));
      },
    );
    request.on('error', (err) => (abortAfter === undefined ? reject(err) : resolve('aborted')));
  });
}

function expectFrames(answer: Awaited<ReturnType<typeof frames>>, list: number[]): void {
  expect(answer).not.toBe('aborted');
  const { contentType, body } = answer as { contentType: string; body: Buffer };
  const parts = splitMultipart(body, contentType);
  expect(parts.map((p) => p.body.length)).toEqual(list.map(() => SIDE * SIDE));
  parts.forEach((part, i) => expect(part.body.equals(frame(list[i]!)), `frame ${list[i]} (part ${i + 1})`).toBe(true));
}

const randomList = (count: number) => Array.from({ length: count }, () => 1 + Math.floor(Math.random() * FRAMES));

describe('frame answers with buffers used again', () => {
  it('send every frame byte for byte, one answer after another and four at once, allocating far fewer buffers than frames', async () => {
    const take = vi.spyOn(AnswerBuffers.prototype, 'take');
    let sent = 0;
    for (let i = 0; i < 12; i++) {
      const list = randomList(8);
      expectFrames(await frames(list, 0), list);
      sent += list.length;
    }
    for (let round = 0; round < 6; round++) {
      const lists = [randomList(8), randomList(1), randomList(8), randomList(3)];
      const answers = await Promise.all(lists.map((list, i) => frames(list, i === 2 ? 2 : 0)));
      answers.forEach((answer, i) => expectFrames(answer, lists[i]!));
      sent += lists.reduce((sum, list) => sum + list.length, 0);
    }
    const pools = [...new Set(take.mock.contexts as AnswerBuffers[])];
    const taken = take.mock.calls.length;
    take.mockRestore();
    expect(pools).toHaveLength(1);
    expect(taken).toBe(sent);
    // About the frames of the answers in flight at once (4 answers, 20 frames), not one per frame (216).
    expect(pools[0]!.allocated).toBeLessThanOrEqual(40);
  }, 60_000);

  it('does not reuse the memory of an answer a client stopped reading while other answers are made and sent', async () => {
    // 60 frames, 9.6 MB: more than the loopback socket's buffers hold, so most of the answer waits in Node.
    const held = Array.from({ length: 60 }, (_, i) => 1 + ((i * 7) % FRAMES));
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const heldAnswer = frames(held, 0, undefined, hold);
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 15; i++) {
      const list = randomList(8);
      expectFrames(await frames(list, 0), list);
    }
    release();
    expectFrames(await heldAnswer, held);
  }, 60_000);

  it('keeps answering correctly when clients go away mid-answer, their buffers never reused while they might be read', async () => {
    for (let round = 0; round < 5; round++) {
      const lists = [randomList(8), randomList(8), randomList(8)];
      const [cut, slow, fast] = await Promise.all([frames(lists[0]!, 0, 200_000), frames(lists[1]!, 3), frames(lists[2]!, 0)]);
      expect(cut).toBe('aborted');
      expectFrames(slow, lists[1]!);
      expectFrames(fast, lists[2]!);
    }
    const list = randomList(8);
    expectFrames(await frames(list, 0), list);
  }, 60_000);
});
