/**
 * The browser side of the live endoscopy WebSocket (docs/api.md "Live endoscopy"): JSON control
 * messages, one binary message per frame (4-byte big-endian header length, JSON header, JPEG bytes).
 */
import { withTokenInQuery } from '../auth/http.js';

export interface LiveDetection {
  label: string;
  score: number;
  box: { x: number; y: number; width: number; height: number };
}

export interface DetectionsMessage {
  type: 'detections';
  seq: number;
  capturedAt: number;
  frame: number | null;
  width: number;
  height: number;
  detections: LiveDetection[];
  timings: { serverMs: number; modelMs: number };
  stats: { received: number; processed: number; dropped: number };
}

export interface StartedMessage {
  type: 'started';
  studyInstanceUid: string;
  model: { id: string; version: string };
  recording: { seriesInstanceUid: string; sopInstanceUid: string } | null;
}

export interface StoppedMessage {
  type: 'stopped';
  stats: { received: number; processed: number; dropped: number };
  recording: null | {
    studyInstanceUid: string;
    video: { seriesInstanceUid: string; sopInstanceUid: string; frames: number };
    report: { seriesInstanceUid: string; sopInstanceUid: string; detections: number };
  };
  error?: { message: string };
}

export interface StartOptions {
  model: string;
  record: boolean;
  fps: number;
  study: { studyInstanceUid: string } | { patientName: string; patientId: string };
}

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

type Pending = { resolve(m: any): void; reject(e: Error): void; type: string };

export class LiveConnection {
  onDetections: (m: DetectionsMessage) => void = () => {};
  onProblem: (message: string) => void = () => {};
  private pending: Pending[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      const message = JSON.parse(event.data) as { type: string; message?: string; seq?: number };
      if (message.type === 'detections') {
        this.onDetections(message as unknown as DetectionsMessage);
        return;
      }
      const waiter = this.pending.find((p) => p.type === message.type);
      if (waiter !== undefined) {
        this.pending.splice(this.pending.indexOf(waiter), 1);
        waiter.resolve(message);
      } else if (message.type === 'error') {
        // An error naming a frame (seq) is about that frame, never the answer to a start or stop.
        const failed = message.seq === undefined ? this.pending.shift() : undefined;
        if (failed !== undefined) failed.reject(new Error(message.message ?? 'refused'));
        else this.onProblem(message.message ?? 'The server refused a frame');
      }
    });
    ws.addEventListener('close', () => {
      this.pending.splice(0).forEach((p) => p.reject(new Error('The live connection closed')));
      this.onProblem('The live connection closed');
    });
  }

  static open(url = liveUrl()): Promise<LiveConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.addEventListener('open', () => resolve(new LiveConnection(ws)), { once: true });
      // Never the URL itself in the message: it may carry the access token.
      ws.addEventListener('error', () => reject(new Error(`Cannot reach the live service at ${url.split('?')[0]}`)), { once: true });
    });
  }

  start(options: StartOptions): Promise<StartedMessage> {
    return this.ask('started', { type: 'start', ...options });
  }

  stop(): Promise<StoppedMessage> {
    return this.ask('stopped', { type: 'stop' });
  }

  /** Bytes queued in the browser, not yet on the wire: the page skips frames while this is high. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sendFrame(seq: number, capturedAt: number, jpeg: ArrayBuffer): void {
    const header = new TextEncoder().encode(JSON.stringify({ seq, capturedAt, format: 'jpeg' }));
    const message = new Uint8Array(4 + header.length + jpeg.byteLength);
    new DataView(message.buffer).setUint32(0, header.length, false);
    message.set(header, 4);
    message.set(new Uint8Array(jpeg), 4 + header.length);
    this.ws.send(message);
  }

  close(): void {
    this.ws.close();
  }

  private ask<T>(type: string, message: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ type, resolve, reject });
      this.ws.send(JSON.stringify(message));
    });
  }
}
