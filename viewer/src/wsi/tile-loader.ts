/**
 * Fetches tiles as WADO-RS frames with a bounded number in flight, in the order asked (the display asks
 * for the coarsest level first, then visible tiles from the centre out), keeps decoded tiles in an LRU
 * cache, and aborts requests for tiles that are no longer wanted (panned or zoomed away).
 */
import { renderedUrl, request, retrieveFrames } from '../dicomweb/client.js';
import type { TileRef } from './pyramid.js';

const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const MAX_IN_FLIGHT = 6;
const CACHE_TILES = 600;

interface InFlight {
  controller: AbortController;
}

export class TileLoader {
  private readonly cache = new Map<string, ImageBitmap>();
  private readonly failed = new Set<string>();
  private readonly inFlight = new Map<string, InFlight>();
  private queue: Array<{ key: string; ref: TileRef }> = [];
  /** Counters for tests and the benchmark: requests started, aborted, completed. */
  readonly counters = { requested: 0, aborted: 0, loaded: 0, failed: 0 };
  onLoaded: () => void = () => undefined;
  onError: (message: string) => void = () => undefined;

  constructor(
    private readonly study: string,
    private readonly series: string,
  ) {}

  /** Tiles asked for and not yet here (queued or in flight). */
  get pending(): number {
    return this.queue.length + this.inFlight.size;
  }

  static keyOf(ref: TileRef): string {
    return `${ref.sop}:${ref.frame}`;
  }

  get(ref: TileRef): ImageBitmap | undefined {
    const key = TileLoader.keyOf(ref);
    const bitmap = this.cache.get(key);
    if (bitmap !== undefined) {
      // Refresh LRU position.
      this.cache.delete(key);
      this.cache.set(key, bitmap);
    }
    return bitmap;
  }

  /** Replaces the wanted list (in priority order); aborts in-flight requests not in it. */
  want(refs: TileRef[]): void {
    const wanted = new Map<string, TileRef>();
    for (const ref of refs) {
      const key = TileLoader.keyOf(ref);
      if (!this.cache.has(key) && !this.failed.has(key) && !wanted.has(key)) wanted.set(key, ref);
    }
    for (const [key, f] of this.inFlight) {
      if (!wanted.has(key)) {
        f.controller.abort();
        this.inFlight.delete(key);
        this.counters.aborted += 1;
      }
    }
    this.queue = [...wanted].filter(([key]) => !this.inFlight.has(key)).map(([key, ref]) => ({ key, ref }));
    this.pump();
  }

  private pump(): void {
    while (this.inFlight.size < MAX_IN_FLIGHT && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next === undefined) break;
      const controller = new AbortController();
      this.inFlight.set(next.key, { controller });
      this.counters.requested += 1;
      void this.fetchTile(next.ref, controller.signal).then(
        (bitmap) => {
          if (this.inFlight.get(next.key)?.controller !== controller) {
            bitmap.close();
            return;
          }
          this.inFlight.delete(next.key);
          this.cache.set(next.key, bitmap);
          this.counters.loaded += 1;
          this.evict();
          this.onLoaded();
          this.pump();
        },
        (err: unknown) => {
          if (this.inFlight.get(next.key)?.controller === controller) this.inFlight.delete(next.key);
          if ((err as Error).name !== 'AbortError') {
            this.failed.add(next.key);
            this.counters.failed += 1;
            this.onError(`A tile could not be loaded: ${(err as Error).message}`);
          }
          this.pump();
        },
      );
    }
  }

  private async fetchTile(ref: TileRef, signal: AbortSignal): Promise<ImageBitmap> {
    let blob: Blob;
    if (ref.transferSyntax === JPEG_BASELINE || ref.transferSyntax === undefined) {
      // The stored JPEG bitstream, decoded by the browser.
      const [part] = await retrieveFrames(this.study, this.series, ref.sop, [ref.frame], 'image/jpeg', signal);
      if (part === undefined) throw new Error('empty frame response');
      blob = new Blob([part.body as BlobPart], { type: 'image/jpeg' });
    } else {
      // Other syntaxes (JPEG 2000, JPEG-LS, native…): the archive renders the frame.
      const url = `${renderedUrl(this.study, this.series, ref.sop).replace(/\/rendered$/, '')}/frames/${ref.frame}/rendered`;
      const res = await request(url, { what: 'Tile retrieval', headers: { Accept: 'image/png' }, signal });
      blob = await res.blob();
    }
    return createImageBitmap(blob);
  }

  private evict(): void {
    while (this.cache.size > CACHE_TILES) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.get(oldest)?.close();
      this.cache.delete(oldest);
    }
  }

  destroy(): void {
    for (const f of this.inFlight.values()) f.controller.abort();
    this.inFlight.clear();
    this.queue = [];
    for (const b of this.cache.values()) b.close();
    this.cache.clear();
  }
}
