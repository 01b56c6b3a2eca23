/**
 * Fetches tiles as WADO-RS frames with a bounded number in flight, in the order asked (the display asks
 * for the coarsest level first, then visible tiles from the centre out), keeps decoded tiles in an LRU
 * cache, and aborts requests for tiles that are no longer wanted (panned or zoomed away).
 *
 * Thin links: the transfer rate is measured on every tile; once the screen is complete, the tiles around
 * it (the next pan) are prefetched at low priority, at most what the measured rate moves in a couple of
 * seconds, and dropped (aborted) as soon as the view moves elsewhere. Over HTTP/2 more requests are kept
 * in flight (one connection multiplexes them; HTTP/1.1 has six connections per origin).
 *
 * Tiles stored as JPEG Baseline come as stored and are decoded by the browser; tiles in any other
 * syntax are asked for as JPEG (`image/jpeg`, quality 90, encoded by the archive, PS3.18 §8.7.3.5),
 * or, from an archive that cannot encode frames, as rendered PNG.
 */
import { renderedUrl, request, retrieveFrames } from '../dicomweb/client.js';
import { TransferRate } from '../dicomweb/frames.js';
import { parseMultipart } from '../dicomweb/multipart.js';
import type { TileRef } from './pyramid.js';
import { t } from '../i18n/i18n.js';

const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const CACHE_TILES = 600;
/** JPEG quality of tiles the archive re-encodes from other syntaxes. */
export const TILE_JPEG_QUALITY = 90;
/** Prefetch holds at most what the measured rate moves in this time. */
const PREFETCH_HORIZON_S = 2;
const PREFETCH_IN_FLIGHT = 2;

interface InFlight {
  controller: AbortController;
  prefetch: boolean;
}

/** Whether the page came over HTTP/2 or later (the origin's tiles then share one multiplexed connection). */
function multiplexed(): boolean {
  const navigation = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
  return /^h[23]/.test(navigation?.nextHopProtocol ?? '');
}

export class TileLoader {
  private readonly cache = new Map<string, ImageBitmap>();
  private readonly failed = new Set<string>();
  private readonly inFlight = new Map<string, InFlight>();
  private queue: Array<{ key: string; ref: TileRef }> = [];
  private prefetchQueue: Array<{ key: string; ref: TileRef }> = [];
  private readonly maxInFlight = multiplexed() ? 16 : 6;
  private readonly rate = new TransferRate();
  private tileBytes = { total: 0, count: 0 };
  /** Some tile was re-encoded (not JPEG as stored): the view says it shows lossy JPEG tiles. */
  reencoded = false;
  private encodeRefused = false;
  /** Counters for tests and the benchmark: requests started, aborted, completed, prefetched. */
  readonly counters = { requested: 0, aborted: 0, loaded: 0, failed: 0, prefetched: 0 };
  onLoaded: () => void = () => undefined;
  onError: (message: string) => void = () => undefined;

  constructor(
    private readonly study: string,
    private readonly series: string,
  ) {}

  /** Tiles asked for and not yet here (queued or in flight), prefetches not counted. */
  get pending(): number {
    return this.queue.length + [...this.inFlight.values()].filter((f) => !f.prefetch).length;
  }

  static keyOf(ref: TileRef): string {
    return `${ref.sop}:${ref.frame}`;
  }

  /** Whether the tile is decoded and cached, or failed for good (the LRU order is left as it is). */
  settled(ref: TileRef): boolean {
    const key = TileLoader.keyOf(ref);
    return this.cache.has(key) || this.failed.has(key);
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

  /**
   * Replaces the wanted list (in priority order: the screen), the tiles fetched once the wanted ones are
   * all here (`after`: the overview level), and the prefetch list (tiles the next pan will need, nearest
   * first, as many as the measured rate allows); aborts in-flight requests in none of them. A low-priority
   * request in flight that is now wanted stays.
   */
  want(refs: TileRef[], after: TileRef[] = [], prefetch: TileRef[] = []): void {
    const wanted = this.uncached(refs);
    const ahead = this.uncached([...after, ...prefetch.slice(0, this.prefetchDepth())]);
    for (const [key, f] of this.inFlight) {
      if (wanted.has(key)) f.prefetch = false;
      else if (!ahead.has(key)) {
        f.controller.abort();
        this.inFlight.delete(key);
        this.counters.aborted += 1;
      }
    }
    this.queue = [...wanted].filter(([key]) => !this.inFlight.has(key)).map(([key, ref]) => ({ key, ref }));
    this.prefetchQueue = [...ahead].filter(([key]) => !this.inFlight.has(key) && !wanted.has(key)).map(([key, ref]) => ({ key, ref }));
    this.pump();
  }

  private uncached(refs: TileRef[]): Map<string, TileRef> {
    const out = new Map<string, TileRef>();
    for (const ref of refs) {
      const key = TileLoader.keyOf(ref);
      if (!this.cache.has(key) && !this.failed.has(key) && !out.has(key)) out.set(key, ref);
    }
    return out;
  }

  /** Tiles the measured rate moves in PREFETCH_HORIZON_S (none before the first measurement). */
  private prefetchDepth(): number {
    const rate = this.rate.bytesPerSecond;
    if (rate === undefined || this.tileBytes.count === 0) return 0;
    return Math.max(1, Math.floor((rate * PREFETCH_HORIZON_S) / (this.tileBytes.total / this.tileBytes.count)));
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next !== undefined) this.start(next.key, next.ref, false);
    }
    // Low priority only once every wanted tile is here (no sharing of the link with the screen's tiles),
    // and only a couple at a time.
    const prefetching = () => [...this.inFlight.values()].filter((f) => f.prefetch).length;
    while (this.pending === 0 && prefetching() < PREFETCH_IN_FLIGHT && this.prefetchQueue.length > 0) {
      const next = this.prefetchQueue.shift();
      if (next !== undefined) this.start(next.key, next.ref, true);
    }
  }

  private start(key: string, ref: TileRef, prefetch: boolean): void {
    const controller = new AbortController();
    const flight: InFlight = { controller, prefetch };
    this.inFlight.set(key, flight);
    this.counters.requested += 1;
    if (prefetch) this.counters.prefetched += 1;
    void this.fetchTile(ref, controller.signal).then(
      (bitmap) => {
        if (this.inFlight.get(key) !== flight) {
          bitmap.close();
          return;
        }
        this.inFlight.delete(key);
        this.cache.set(key, bitmap);
        this.counters.loaded += 1;
        this.evict();
        this.onLoaded();
        this.pump();
      },
      (err: unknown) => {
        if (this.inFlight.get(key) === flight) this.inFlight.delete(key);
        if ((err as Error).name !== 'AbortError' && !flight.prefetch) {
          this.failed.add(key);
          this.counters.failed += 1;
          this.onError(t('wsi:tileFailed', { message: (err as Error).message }));
        }
        this.pump();
      },
    );
  }

  private measured(bytes: number, started: number): void {
    this.rate.add(bytes, performance.now() - started);
    this.tileBytes.total += bytes;
    this.tileBytes.count += 1;
  }

  private async fetchTile(ref: TileRef, signal: AbortSignal): Promise<ImageBitmap> {
    const started = performance.now();
    let blob: Blob;
    if (ref.transferSyntax === JPEG_BASELINE || ref.transferSyntax === undefined) {
      // The stored JPEG bitstream, decoded by the browser.
      const [part] = await retrieveFrames(this.study, this.series, ref.sop, [ref.frame], 'image/jpeg', signal);
      if (part === undefined) throw new Error('empty frame response');
      this.measured(part.body.length, started);
      blob = new Blob([part.body as BlobPart], { type: 'image/jpeg' });
    } else if (!this.encodeRefused) {
      // Another syntax: encoded as JPEG by the archive (one request, a fraction of a PNG's bytes).
      const frameUrl = `${renderedUrl(this.study, this.series, ref.sop).replace(/\/rendered$/, '')}/frames/${ref.frame}?quality=${TILE_JPEG_QUALITY}`;
      try {
        const res = await request(frameUrl, { what: t('common:what.tileRetrieval'), headers: { Accept: 'multipart/related; type="image/jpeg"' }, signal });
        const body = new Uint8Array(await res.arrayBuffer());
        const [part] = parseMultipart(body, res.headers.get('content-type') ?? '');
        if (part === undefined) throw new Error('empty frame response');
        this.measured(body.length, started);
        this.reencoded = true;
        blob = new Blob([part.body as BlobPart], { type: 'image/jpeg' });
      } catch (err) {
        if ((err as { status?: number }).status !== 406) throw err;
        this.encodeRefused = true;
        return this.fetchTile(ref, signal);
      }
    } else {
      // An archive that does not encode frames: the frame rendered as PNG.
      const url = `${renderedUrl(this.study, this.series, ref.sop).replace(/\/rendered$/, '')}/frames/${ref.frame}/rendered`;
      const res = await request(url, { what: t('common:what.tileRetrieval'), headers: { Accept: 'image/png' }, signal });
      blob = await res.blob();
      this.measured(blob.size, started);
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
    this.prefetchQueue = [];
    for (const b of this.cache.values()) b.close();
    this.cache.clear();
  }
}
