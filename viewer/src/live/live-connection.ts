/**
 * The browser side of the live endoscopy WebSocket (docs/api.md "Live endoscopy"): JSON control
 * messages, one binary message per frame (4-byte big-endian header length, JSON header, JPEG bytes).
 * The messages are the server's (server/src/contracts/live.ts), imported as types only.
 */
import type { LiveClientMessage, LiveDetectionsMessage, LiveFrameHeader, LiveServerMessage, LiveStartedMessage, LiveStartMessage, LiveStoppedMessage } from '../../../server/src/contracts/live.js';
import { withTokenInQuery } from '../auth/http.js';
import { t } from '../i18n/i18n.js';

/** What `start` sends: the start message without its type (record and fps default on the server). */
export type StartOptions = Omit<LiveStartMessage, 'type'>;

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;

/**
 * ws(s)://host/live by default; `<meta name="live-url">` points elsewhere. Signed in: with
 * `?access_token=` (a browser WebSocket cannot send an Authorization header; the server checks the
 * token at the upgrade and accepts it in the query on this route only).
 */
export function liveUrl(): string {
  const url = new URL(meta('live-url') ?? '/live', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return withTokenInQuery(url.toString());
}

type Pending = { resolve(m: LiveServerMessage): void; reject(e: Error): void; type: LiveServerMessage['type'] };

export class LiveConnection {
  onDetections: (m: LiveDetectionsMessage) => void = () => {};
  onProblem: (message: string) => void = () => {};
  private pending: Pending[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      const message = JSON.parse(event.data) as LiveServerMessage;
      if (message.type === 'detections') {
        this.onDetections(message);
        return;
      }
      const waiter = this.pending.find((p) => p.type === message.type);
      if (waiter !== undefined) {
        this.pending.splice(this.pending.indexOf(waiter), 1);
        waiter.resolve(message);
      } else if (message.type === 'error') {
        // An error naming a frame (seq) is about that frame, never the answer to a start or stop.
        const failed = message.seq === undefined ? this.pending.shift() : undefined;
        if (failed !== undefined) failed.reject(new Error(message.message ?? t('live:refusedShort')));
        else this.onProblem(message.message ?? t('live:refused'));
      }
    });
    ws.addEventListener('close', () => {
      this.pending.splice(0).forEach((p) => p.reject(new Error(t('live:closed'))));
      this.onProblem('The live connection closed');
    });
  }

  static open(url = liveUrl()): Promise<LiveConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.addEventListener('open', () => resolve(new LiveConnection(ws)), { once: true });
      // Never the URL itself in the message: it may carry the access token.
      ws.addEventListener('error', () => reject(new Error(t('live:unreachable', { url: url.split('?')[0] }))), { once: true });
    });
  }

  start(options: StartOptions): Promise<LiveStartedMessage> {
    return this.ask('started', { type: 'start', ...options });
  }

  stop(): Promise<LiveStoppedMessage> {
    return this.ask('stopped', { type: 'stop' });
  }

  /** Bytes queued in the browser, not yet on the wire: the page skips frames while this is high. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sendFrame(seq: number, capturedAt: number, jpeg: ArrayBuffer): void {
    const frameHeader: LiveFrameHeader = { seq, capturedAt, format: 'jpeg' };
    const header = new TextEncoder().encode(JSON.stringify(frameHeader));
    const message = new Uint8Array(4 + header.length + jpeg.byteLength);
    new DataView(message.buffer).setUint32(0, header.length, false);
    message.set(header, 4);
    message.set(new Uint8Array(jpeg), 4 + header.length);
    this.ws.send(message);
  }

  close(): void {
    this.ws.close();
  }

  private ask<T extends LiveServerMessage>(type: T['type'], message: LiveClientMessage): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The answer is the message of that type (the listener matches on it).
      this.pending.push({ type, resolve: (m) => resolve(m as T), reject });
      this.ws.send(JSON.stringify(message));
    });
  }
}
