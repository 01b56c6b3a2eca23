/**
 * Buffers for the multipart parts of one study / series retrieve, used again once the parts they held
 * have been written out.
 *
 * Why: a 500-instance series read into fresh buffers allocates its 66 MB anew on every request. V8 counts
 * those buffers as external memory and starts a full mark-compact of the heap for every few tens of MB of
 * it; with the ~80 MB heap of a running server that tripled a series retrieve's CPU after other large
 * answers (frames at concurrency 16: 150–205 ms against 70–80 ms per request, docs/benchmarks.md,
 * "Whole-series retrieve: four cuts"). Here a retrieve allocates about as many buffers as
 * it has parts in flight (the read-ahead window and the few the socket holds) and reuses them.
 *
 * When is a part's buffer free again? Only when nothing can still read it. The caller tells every byte it
 * passes on (`handOut` for parts in these buffers, `passed` for any other chunk) and gives `queued()`: how
 * many of the bytes passed on are still held by someone (for an HTTP answer: the body stream's buffer
 * plus the response's and the socket's unfinished writes). Everything but the last `queued()` bytes has
 * then been written out, so the parts that end before that point are free. `queued()` may count more than
 * that (headers, a previous answer on the connection): that only delays reuse. When it cannot tell
 * (undefined), nothing is reused; buffers are then allocated as before, so the check can cost reuse,
 * never correctness.
 * Written by hand: Node has no pool tied to socket write completion, and npm's buffer pools free on the
 * caller's word, which here is exactly the hard part.
 */
export class PartBuffers {
  /** Memory free for reuse (whole backing stores: one per buffer, from Buffer.allocUnsafeSlow). */
  private readonly free: ArrayBuffer[] = [];
  /** Parts handed out and perhaps not written out yet, in order, with the byte count passed on up to their end. */
  private handed: Array<{ memory: ArrayBuffer; end: number }> = [];
  /** Bytes passed on so far. */
  private total = 0;
  /** Buffers allocated (not reused): what a test reads to see reuse happen. */
  allocated = 0;

  constructor(
    private readonly queued: () => number | undefined,
    private readonly maxFree = 48,
  ) {}

  /** A buffer of exactly `size` bytes (contents undefined): reused memory when some is free and fits. */
  take(size: number): Buffer {
    this.reclaim();
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const capacity = this.free[i]!.byteLength;
      // Fits, and wastes at most half of it (a 64 KB part does not pin a 4 MB buffer).
      if (capacity >= size && capacity <= 2 * size && (best < 0 || capacity < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) {
      const memory = this.free.splice(best, 1)[0]!;
      return Buffer.from(memory, 0, size);
    }
    this.allocated += 1;
    return Buffer.allocUnsafeSlow(size);
  }

  /** `bytes` (from take) is passed on now: its memory is reused once it has been written out. */
  handOut(bytes: Buffer): void {
    this.total += bytes.length;
    this.handed.push({ memory: bytes.buffer as ArrayBuffer, end: this.total });
  }

  /** A chunk of `length` bytes that is not from take is passed on now (it delays reuse by its size). */
  passed(length: number): void {
    this.total += length;
  }

  private reclaim(): void {
    if (this.handed.length === 0) return;
    const queued = this.queued();
    if (queued === undefined) return;
    const writtenOut = this.total - queued;
    let done = 0;
    while (done < this.handed.length && this.handed[done]!.end <= writtenOut) {
      if (this.free.length < this.maxFree) this.free.push(this.handed[done]!.memory);
      done++;
    }
    if (done > 0) this.handed = this.handed.slice(done);
  }
}
