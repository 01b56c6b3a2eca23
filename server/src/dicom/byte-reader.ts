/**
 * A pull-based byte reader over an async iterable of chunks, so that a binary format can be walked with
 * sequential code (`await reader.ensure(8)`, read fields, `await reader.skip(n)`) while the bytes stream
 * through. Each chunk is handed to an optional sink when it is first pulled (awaited, for backpressure),
 * exactly once and in order, whatever the walker later does with it.
 *
 * Hot paths read `buf`/`pos` directly: when `buf.length - pos >= n` the bytes are there and no await is
 * needed, so per-element cost stays a few property reads.
 */
import { InvalidDicomError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

export type ChunkSink = (chunk: Buffer) => Promise<void> | void;

function toBuffer(v: Buffer | Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export class ByteReader {
  /** Current contiguous window; `buf[pos]` is the next unread byte. */
  buf: Buffer = EMPTY;
  pos = 0;
  /** Absolute offset (from the start of the input) of `buf[0]`. */
  private bufStart = 0;
  /** Bytes already pulled that follow `buf` (the tail of a chunk split by `ensure`). */
  private pending: Buffer | undefined;
  private eof = false;
  private aborted = false;
  /** Every pulled chunk, in order from offset 0, while `keeping` (for `extract`). */
  private kept: Buffer[] = [];
  private keeping = true;
  /** The error thrown by the source iterator or the sink, if one did: callers rethrow it untouched. */
  failure: unknown;

  constructor(
    private readonly iterator: AsyncIterator<Buffer | Uint8Array>,
    private readonly sink?: ChunkSink,
  ) {}

  /** Absolute offset of the next unread byte. */
  get position(): number {
    return this.bufStart + this.pos;
  }

  get available(): number {
    return this.buf.length - this.pos;
  }

  /** After this, nothing more is pulled or passed to the sink; pending pulls are discarded. */
  abort(): void {
    this.aborted = true;
    this.kept = [];
    this.keeping = false;
  }

  /** Stops retaining pulled chunks and releases those retained so far. */
  stopKeeping(): void {
    this.keeping = false;
    this.kept = [];
  }

  /** Copies bytes [from, to) out of the retained chunks (keeping must have been on since offset 0). */
  extract(from: number, to: number): Buffer {
    const out = Buffer.allocUnsafe(Math.max(0, to - from));
    let chunkStart = 0;
    let written = 0;
    for (const c of this.kept) {
      const s = Math.max(from, chunkStart);
      const e = Math.min(to, chunkStart + c.length);
      if (s < e) {
        c.copy(out, written, s - chunkStart, e - chunkStart);
        written += e - s;
      }
      chunkStart += c.length;
      if (chunkStart >= to) break;
    }
    if (written !== out.length) throw new Error(`internal: extract(${from}, ${to}) found ${written} bytes`);
    return out;
  }

  /** Next raw chunk (non-empty) from pending or the source, passed to the sink; undefined at the end. */
  private async pull(): Promise<Buffer | undefined> {
    if (this.pending !== undefined) {
      const p = this.pending;
      this.pending = undefined;
      return p;
    }
    for (;;) {
      if (this.eof || this.aborted) return undefined;
      let r: IteratorResult<Buffer | Uint8Array>;
      try {
        r = await this.iterator.next();
      } catch (err) {
        this.failure = err;
        throw err;
      }
      if (this.aborted) return undefined;
      if (r.done) {
        this.eof = true;
        return undefined;
      }
      const c = toBuffer(r.value);
      if (c.length === 0) continue;
      if (this.sink !== undefined) {
        try {
          await this.sink(c);
        } catch (err) {
          this.failure = err;
          throw err;
        }
      }
      if (this.keeping) this.kept.push(c);
      return c;
    }
  }

  /**
   * Makes `n` bytes contiguous at `buf[pos]`. Returns false if the input ends first (then everything
   * left is in `buf`). Copies at most the bytes that straddle a chunk boundary.
   */
  async ensure(n: number): Promise<boolean> {
    if (this.buf.length - this.pos >= n) return true;
    const start = this.position;
    const rest = this.buf.subarray(this.pos);
    const parts: Buffer[] = rest.length > 0 ? [rest] : [];
    let have = rest.length;
    let ok = true;
    while (have < n) {
      const c = await this.pull();
      if (c === undefined) {
        ok = false;
        break;
      }
      if (have === 0 || c.length <= n - have) {
        parts.push(c);
        have += c.length;
      } else {
        const need = n - have;
        parts.push(c.subarray(0, need));
        this.pending = c.subarray(need);
        have = n;
      }
    }
    this.buf = parts.length === 1 ? parts[0]! : parts.length === 0 ? EMPTY : Buffer.concat(parts, have);
    this.bufStart = start;
    this.pos = 0;
    return ok;
  }

  /** Reads exactly `n` bytes (a view, valid until the next call), or throws "file ends inside <what>". */
  async read(n: number, what: string): Promise<Buffer> {
    if (this.buf.length - this.pos < n && !(await this.ensure(n))) throw truncated(what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Skips `n` bytes (they still go to the sink), or throws "file ends inside <what>". */
  async skip(n: number, what: string): Promise<void> {
    const inBuf = this.buf.length - this.pos;
    if (inBuf >= n) {
      this.pos += n;
      return;
    }
    let left = n - inBuf;
    this.pos = this.buf.length;
    while (left > 0) {
      const c = await this.pull();
      if (c === undefined) throw truncated(what);
      this.bufStart += this.buf.length;
      this.buf = c;
      if (c.length >= left) {
        this.pos = left;
        left = 0;
      } else {
        this.pos = c.length;
        left -= c.length;
      }
    }
  }

  /**
   * Hands out the rest of the input as raw chunks: first what is left of the window, then pulled chunks
   * (already passed to the sink). Undefined at the end. Used to feed the inflater of a deflated data set.
   */
  async nextRaw(): Promise<Buffer | undefined> {
    if (this.buf.length > this.pos) {
      const out = this.buf.subarray(this.pos);
      this.pos = this.buf.length;
      return out;
    }
    const c = await this.pull();
    if (c === undefined) return undefined;
    this.bufStart += this.buf.length;
    this.buf = c;
    this.pos = c.length;
    return c;
  }

  /** Consumes (and sinks) everything left. */
  async drain(): Promise<void> {
    while ((await this.nextRaw()) !== undefined) {
      /* every chunk already went to the sink */
    }
  }
}

const truncations = new WeakSet<object>();

export function truncated(what: string): InvalidDicomError {
  const err = new InvalidDicomError(`truncated DICOM file: it ends inside ${what}`);
  truncations.add(err);
  return err;
}

/** True for the errors made by `truncated()`: the input ended inside something it declared. */
export function isTruncation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && truncations.has(err);
}
