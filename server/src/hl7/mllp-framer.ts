/**
 * MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2: `<VT> message <FS><CR>`), written here
 * rather than taken from a library: the MLLP servers of the npm HL7 libraries (node-hl7-server,
 * @medplum/hl7) buffer a frame without any bound, find the end of a frame only where a TCP chunk happens
 * to end (two frames in one chunk, or a frame split after <FS>, go wrong), and node-hl7-client's codec
 * trims and rewrites the message text; none can refuse an oversized frame before holding it.
 *
 * This framer works on bytes (a message is decoded only once it is whole, so a multi-byte UTF-8
 * character split between chunks is never damaged), holds at most `maxMessageBytes` of an unfinished
 * frame, ignores bytes between frames (counted), treats a <VT> inside a frame as the start of a new one
 * (the sender gave up on the old frame: it is dropped, nothing of it is applied), and accepts <FS>
 * without the <CR> (the next byte, when it is <CR>, is consumed).
 */

export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;

export type FrameEvent =
  /** A complete message (the bytes between <VT> and <FS>). */
  | { kind: 'message'; bytes: Buffer }
  /** A frame grew beyond the limit: `head` is its first bytes (enough for the MSH, to answer AR). Nothing more is read. */
  | { kind: 'oversize'; head: Buffer }
  /** A <VT> arrived inside a frame: the unfinished frame (`droppedBytes` long) was dropped. */
  | { kind: 'restart'; droppedBytes: number };

/** How much of an oversized frame is kept to read its MSH for the AR. */
const HEAD_BYTES = 4096;

export class MllpFramer {
  private chunks: Buffer[] = [];
  private length = 0;
  private inFrame = false;
  private afterFs = false;
  private stopped = false;
  /** Bytes received outside any frame (ignored). */
  junkBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes of an unfinished frame held now (0 between frames). */
  get pendingBytes(): number {
    return this.inFrame ? this.length : 0;
  }

  /** True between a <VT> and its <FS>: a peer that closes now leaves a truncated frame. */
  get inside(): boolean {
    return this.inFrame;
  }

  /** Splits received bytes into frame events, in order. After an `oversize` event every further byte is ignored. */
  push(data: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let i = 0;
    while (i < data.length && !this.stopped) {
      if (this.afterFs) {
        this.afterFs = false;
        if (data[i] === CR) {
          i++;
          continue;
        }
      }
      if (!this.inFrame) {
        const start = data.indexOf(VT, i);
        if (start === -1) {
          this.junkBytes += data.length - i;
          break;
        }
        this.junkBytes += start - i;
        this.inFrame = true;
        i = start + 1;
        continue;
      }
      const fs = data.indexOf(FS, i);
      const vt = data.indexOf(VT, i);
      const end = fs === -1 ? vt : vt === -1 ? fs : Math.min(fs, vt);
      const stop = end === -1 ? data.length : end;
      if (!this.take(data.subarray(i, stop))) {
        events.push({ kind: 'oversize', head: this.head() });
        this.stopped = true;
        this.reset();
        break;
      }
      if (end === -1) break;
      if (data[end] === VT) {
        events.push({ kind: 'restart', droppedBytes: this.length });
        this.reset();
        this.inFrame = true;
      } else {
        events.push({ kind: 'message', bytes: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length) });
        this.reset();
        this.afterFs = true;
      }
      i = end + 1;
    }
    return events;
  }

  /** Adds frame bytes; false when the frame would exceed the limit (the first bytes are kept for `head`). */
  private take(bytes: Buffer): boolean {
    if (bytes.length === 0) return true;
    if (this.length + bytes.length > this.maxMessageBytes) {
      if (this.length < HEAD_BYTES) this.chunks.push(Buffer.from(bytes.subarray(0, HEAD_BYTES - this.length)));
      this.length = Math.min(HEAD_BYTES, this.length + bytes.length);
      return false;
    }
    // Copied: the socket's chunk may be a slice of a larger pooled buffer.
    this.chunks.push(Buffer.from(bytes));
    this.length += bytes.length;
    return true;
  }

  private head(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.subarray(0, Math.min(HEAD_BYTES, all.length));
  }

  private reset(): void {
    this.chunks = [];
    this.length = 0;
    this.inFrame = false;
  }
}
