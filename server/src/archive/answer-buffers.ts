/**
 * Buffers for answers built whole in memory (WADO-RS frames as stored), used again by later answers
 * once the answer that carried them has been written out. One pool per server process.
 *
 * Why: every frame answer read its frames into fresh buffers (a 512 KB frame each; an 8-frame list 4
 * MB). V8 counts such buffers as external memory and starts a full mark-compact of the heap for every
 * ~64 MB of it, so a server answering frames ran a mark-compact every few hundred milliseconds, and a
 * whole-series retrieve among those answers paid them: 130–145 ms of server CPU per 66 MB series after
 * 8-frame lists, 65–75 ms alone (docs/benchmarks.md, "Frame answers reuse their buffers"). The series
 * retrieve's own parts already reuse theirs (part-buffers.ts); this does the same across frame answers.
 *
 * When is a buffer free again? When the HTTP response that carried it has emitted 'finish': Node emits
 * it from the callback of the response's last write, and one socket's writes complete in order, so by
 * then nothing (stream buffer, socket, libuv write request) holds any of its buffers. A response that
 * closes without 'finish' (the client went away, an error) gives nothing back: its buffers are left to
 * the garbage collector, as before. Only memory this pool lent is taken back, each lending once; small
 * answers (under `minBytes`) come from Node's own shared slab, which must never be reused whole.
 * Written by hand: npm's buffer pools free on the caller's word; here the word is the response's
 * 'finish', which is the part that needs care.
 */

export class AnswerBuffers {
  /** Memory free for reuse: whole backing stores, each from Buffer.allocUnsafeSlow. */
  private readonly free: ArrayBuffer[] = [];
  private freeBytes = 0;
  /** Memory lent and not given back yet. */
  private readonly lent = new WeakSet<ArrayBuffer>();
  /** Buffers allocated (not reused): what a test reads to see reuse happen. */
  allocated = 0;

  constructor(
    /** Most memory kept free between answers. */
    private readonly maxFreeBytes = 64 << 20,
    /** Smaller buffers are not pooled (Node's slab serves them without external allocations of their own). */
    private readonly minBytes = 64 << 10,
  ) {}

  /** A buffer of exactly `size` bytes (contents undefined, the caller fills all of it). */
  take(size: number): Buffer {
    if (size < this.minBytes) return Buffer.allocUnsafe(size);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const capacity = this.free[i]!.byteLength;
      // Fits, and wastes at most half of it (a 64 KB frame does not pin a 4 MB buffer).
      if (capacity >= size && capacity <= 2 * size && (best < 0 || capacity < this.free[best]!.byteLength)) best = i;
    }
    let memory: ArrayBuffer;
    if (best >= 0) {
      memory = this.free.splice(best, 1)[0]!;
      this.freeBytes -= memory.byteLength;
    } else {
      this.allocated += 1;
      memory = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
    }
    this.lent.add(memory);
    return Buffer.from(memory, 0, size);
  }

  /**
   * `buffers` are no longer read by anyone: the memory this pool lent among them is free again (within
   * `maxFreeBytes`). Other buffers, and memory given back already, are ignored.
   */
  giveBack(buffers: readonly Buffer[]): void {
    for (const buffer of buffers) {
      const memory = buffer.buffer as ArrayBuffer;
      if (!this.lent.has(memory)) continue;
      this.lent.delete(memory);
      if (this.freeBytes + memory.byteLength > this.maxFreeBytes) continue;
      this.free.push(memory);
      this.freeBytes += memory.byteLength;
    }
  }

  /** Gives `buffers` back once `response` has written them out ('finish'); never when it closes first. */
  giveBackWhenSent(response: { once(event: 'finish', listener: () => void): unknown }, buffers: readonly Buffer[]): void {
    response.once('finish', () => this.giveBack(buffers));
  }
}
