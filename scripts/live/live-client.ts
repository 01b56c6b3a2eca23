/** A live-stream client (Node, `ws`) for the evaluation, the benchmark and tests. */
import WebSocket from 'ws';
import { encodeFrame } from '../../server/src/live/live-protocol.js';

export type LiveMessage = Record<string, any>;

export class LiveClient {
  /** Every message not yet taken by `next` (detections included). */
  readonly messages: LiveMessage[] = [];
  /** Every `detections` message with the local time it arrived (performance.now()). */
  readonly detections: Array<{ message: LiveMessage; arrivedAt: number }> = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const message = JSON.parse(data.toString()) as LiveMessage;
      if (message['type'] === 'detections') this.detections.push({ message, arrivedAt: performance.now() });
      this.messages.push(message);
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  static async connect(url: string): Promise<LiveClient> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new LiveClient(ws);
  }

  sendJson(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  sendJpeg(seq: number, jpeg: Buffer, capturedAt = seq * 40): void {
    this.ws.send(encodeFrame({ seq, capturedAt, format: 'jpeg' }, jpeg));
  }

  async next(predicate: (m: LiveMessage) => boolean, timeoutMs = 60_000): Promise<LiveMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found !== undefined) {
        this.messages.splice(this.messages.indexOf(found), 1);
        return found;
      }
      if (Date.now() > deadline) throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages).slice(0, 400)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** Waits until the detections for `seq` (or a later frame) have arrived. */
  async drained(seq: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.detections.some((d) => d.message['seq'] >= seq)) {
      if (Date.now() > deadline) throw new Error(`detections for frame ${seq} never arrived`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * Sends frames at a fixed rate like a camera (each stamped with its capture time), whatever the server
 * answers; resolves after the last frame was sent.
 */
export async function streamAtRate(client: LiveClient, frames: Buffer[], fps: number, sentAt: Map<number, number>): Promise<void> {
  const period = 1000 / fps;
  const start = performance.now();
  for (let seq = 0; seq < frames.length; seq += 1) {
    const due = start + seq * period;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const now = performance.now();
    sentAt.set(seq, now);
    client.sendJpeg(seq, frames[seq]!, now);
  }
}
