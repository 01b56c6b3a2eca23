/**
 * WADO-RS frames of one series for the stack viewer, fetched for thin links: one request per frame in
 * the form that costs the fewest bytes at full fidelity, a bounded cache of the compressed bytes, the
 * transfer rate measured on every response, and prefetching of the frames around the one shown within
 * what the measured rate moves in a few seconds, cancelled (AbortController) when the user moves on.
 *
 * Full fidelity means: the stored bitstream (`transfer-syntax=*`) for frames stored compressed, and for
 * frames stored uncompressed JPEG-LS lossless (`image/jls`), which decodes to exactly the stored pixels
 * and is 2–4× smaller (2.9× for the benchmark's CT slices). An archive that cannot encode JPEG-LS answers 406: the series then falls back to
 * the stored bytes.
 */
import { request } from './client.js';
import { parseMultipart } from './multipart.js';

export const AS_STORED_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
export const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
export const JPEG_LS_ACCEPT = `multipart/related; type="image/jls"; transfer-syntax=${JPEG_LS_LOSSLESS}`;
const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** One frame as received: its bytes and the transfer syntax they are in. */
export interface FrameBytes {
  body: Uint8Array;
  transferSyntax: string;
}

export interface FrameRef {
  sop: string;
  frame: number;
}

/** The Accept header for full fidelity at the fewest bytes, by the instance's stored transfer syntax. */
export function fullFidelityAccept(storedTransferSyntax: string | undefined): string {
  return storedTransferSyntax !== undefined && NATIVE.has(storedTransferSyntax) ? JPEG_LS_ACCEPT : AS_STORED_ACCEPT;
}

/** The transfer syntax of a frame part (its `transfer-syntax` parameter; none means native little endian). */
export function transferSyntaxOf(partContentType: string | undefined): string {
  const match = /transfer-syntax\s*=\s*"?([0-9.]+)"?/i.exec(partContentType ?? '');
  return match?.[1] ?? EXPLICIT_VR_LITTLE_ENDIAN;
}

/**
 * Transfer rate from the responses themselves: bytes over the time from request to last byte, over the
 * last samples (the round trip included: for small frames it is the rate one request at a time achieves,
 * and on high-latency links the estimate errs low).
 */
export class TransferRate {
  private samples: Array<{ bytes: number; ms: number }> = [];

  add(bytes: number, ms: number): void {
    if (bytes <= 0 || ms <= 0) return;
    this.samples.push({ bytes, ms });
    if (this.samples.length > 12) this.samples.shift();
  }

  /** Bytes per second, or undefined before the first sizeable response. */
  get bytesPerSecond(): number | undefined {
    if (this.samples.length === 0) return undefined;
    const bytes = this.samples.reduce((s, x) => s + x.bytes, 0);
    const ms = this.samples.reduce((s, x) => s + x.ms, 0);
    return (bytes / ms) * 1000;
  }
}

/** Prefetch holds at most what the measured rate moves in this time. */
const PREFETCH_HORIZON_S = 3;
const PREFETCH_MAX_FRAMES = 48;
const PREFETCH_IN_FLIGHT = 2;
const CACHE_BYTES = 96 * 1024 * 1024;

interface Entry {
  promise: Promise<FrameBytes>;
  controller: AbortController;
  prefetch: boolean;
  bytes?: FrameBytes;
}

export class FrameFetcher {
  readonly rate = new TransferRate();
  /** For tests and the benchmark: what happened. */
  readonly counters = { requested: 0, prefetched: 0, aborted: 0, fromCache: 0, bytes: 0 };
  /** Called whenever a frame has arrived (for the page's counters). */
  onArrived: () => void = () => undefined;
  private readonly entries = new Map<string, Entry>();
  private cachedBytes = 0;
  private readonly accept = new Map<string, string>();
  private wanted: FrameRef[] = [];
  private destroyed = false;

  /**
   * @param frameUrl the WADO-RS frame URL of a frame
   * @param storedSyntax the stored transfer syntax of an instance (from its metadata)
   */
  constructor(
    private readonly frameUrl: (ref: FrameRef) => string,
    private readonly storedSyntax: (sop: string) => string | undefined,
  ) {}

  private static key(ref: FrameRef): string {
    return `${ref.sop}/${ref.frame}`;
  }

  private acceptFor(sop: string): string {
    return this.accept.get(sop) ?? fullFidelityAccept(this.storedSyntax(sop));
  }

  /** The frame, from the cache, a request in flight, or a new request (which a prefetch never delays). */
  get(ref: FrameRef): Promise<FrameBytes> {
    const key = FrameFetcher.key(ref);
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      // Refresh its LRU position; a prefetch asked for now is no longer a prefetch (never aborted).
      this.entries.delete(key);
      this.entries.set(key, entry);
      entry.prefetch = false;
      if (entry.bytes !== undefined) this.counters.fromCache += 1;
      return entry.promise;
    }
    return this.start(ref, false).promise;
  }

  private start(ref: FrameRef, prefetch: boolean): Entry {
    const key = FrameFetcher.key(ref);
    const controller = new AbortController();
    const entry: Entry = { controller, prefetch, promise: Promise.resolve(undefined as never) };
    entry.promise = this.fetchFrame(ref, controller.signal).then(
      (bytes) => {
        entry.bytes = bytes;
        this.cachedBytes += bytes.body.length;
        this.evict();
        this.onArrived();
        if (entry.prefetch) this.pump();
        return bytes;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        if (entry.prefetch) this.pump();
        throw err;
      },
    );
    // A prefetch that fails is simply not there; the frame is asked for again when shown.
    if (prefetch) entry.promise.catch(() => undefined);
    this.entries.set(key, entry);
    this.counters.requested += 1;
    if (prefetch) this.counters.prefetched += 1;
    return entry;
  }

  private async fetchFrame(ref: FrameRef, signal: AbortSignal): Promise<FrameBytes> {
    const accept = this.acceptFor(ref.sop);
    const started = performance.now();
    let res: Response;
    try {
      res = await request(this.frameUrl(ref), { what: 'Frame retrieval', headers: { Accept: accept }, signal });
    } catch (err) {
      // An archive that does not encode JPEG-LS: the stored bytes, for this instance from now on.
      if (accept !== AS_STORED_ACCEPT && (err as { status?: number }).status === 406) {
        this.accept.set(ref.sop, AS_STORED_ACCEPT);
        return this.fetchFrame(ref, signal);
      }
      throw err;
    }
    const body = new Uint8Array(await res.arrayBuffer());
    this.rate.add(body.length, performance.now() - started);
    this.counters.bytes += body.length;
    const [part] = parseMultipart(body, res.headers.get('content-type') ?? '');
    if (part === undefined) throw new Error('the frame response has no part');
    return { body: part.body, transferSyntax: transferSyntaxOf(part.headers['content-type']) };
  }

  /**
   * Prefetch `refs` (nearest first) as far as the measured rate allows: at most what it moves in
   * PREFETCH_HORIZON_S, two requests at a time. Prefetches of frames no longer in the list are aborted.
   */
  prefetch(refs: FrameRef[]): void {
    if (this.destroyed) return;
    const keep = new Set(refs.map(FrameFetcher.key));
    for (const [key, entry] of this.entries) {
      if (entry.prefetch && entry.bytes === undefined && !keep.has(key)) {
        entry.controller.abort();
        this.entries.delete(key);
        this.counters.aborted += 1;
      }
    }
    this.wanted = refs;
    this.pump();
  }

  /** How many frames ahead the link allows: the rate over the horizon, in frames of the size seen so far. */
  prefetchDepth(): number {
    const rate = this.rate.bytesPerSecond;
    const sizes = [...this.entries.values()].flatMap((e) => (e.bytes === undefined ? [] : [e.bytes.body.length]));
    if (rate === undefined || sizes.length === 0) return 1;
    const frameBytes = sizes.reduce((s, x) => s + x, 0) / sizes.length;
    return Math.max(1, Math.min(PREFETCH_MAX_FRAMES, Math.floor((rate * PREFETCH_HORIZON_S) / frameBytes)));
  }

  private pump(): void {
    if (this.destroyed) return;
    const depth = this.prefetchDepth();
    let inFlight = [...this.entries.values()].filter((e) => e.prefetch && e.bytes === undefined).length;
    for (const ref of this.wanted.slice(0, depth)) {
      if (inFlight >= PREFETCH_IN_FLIGHT) break;
      if (this.entries.has(FrameFetcher.key(ref))) continue;
      this.start(ref, true);
      inFlight += 1;
    }
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.cachedBytes <= CACHE_BYTES) break;
      if (entry.bytes === undefined) continue;
      this.cachedBytes -= entry.bytes.body.length;
      this.entries.delete(key);
    }
  }

  /** Aborts everything in flight (another series, or the page left). */
  destroy(): void {
    this.destroyed = true;
    for (const entry of this.entries.values()) {
      if (entry.bytes === undefined) {
        entry.controller.abort();
        this.counters.aborted += 1;
      }
    }
    this.entries.clear();
    this.cachedBytes = 0;
  }
}
