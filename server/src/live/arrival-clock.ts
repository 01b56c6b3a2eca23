/**
 * How late a live frame was read, judged from its capture time rather than from when the server got to
 * it. A frame that sat unread in the socket while the event loop was busy (a stall), or in the kernel
 * while the socket was paused, looks fresh to a clock started when it is read; against its capture time
 * it does not.
 *
 * The client's clock (`capturedAt`) and the server's (`receivedAt`) differ by an unknown offset, plus the
 * network's transit time. The quickest frame of the recent past bounds both: `receivedAt − capturedAt`
 * is lowest for a frame that went straight through, so a frame's lateness is its `receivedAt − capturedAt`
 * minus that lowest value (the minimum filter of NTP-style offset estimation, RFC 5905 §10). The minimum
 * is kept over the last one to two windows (two buckets, O(1) memory), so a client clock that drifts or
 * is stepped backwards stops being judged against an outdated minimum after at most two windows.
 */
export class ArrivalClock {
  private current = Infinity;
  private previous = Infinity;
  private bucketStart = -Infinity;

  constructor(private readonly windowMs = 10_000) {}

  /** Milliseconds by which this frame was read later than the recent quickest frame (0 for the quickest). */
  lateMs(receivedAt: number, capturedAt: number): number {
    const offset = receivedAt - capturedAt;
    if (!Number.isFinite(offset)) return 0;
    if (receivedAt - this.bucketStart >= this.windowMs) {
      this.previous = this.current;
      this.current = Infinity;
      this.bucketStart = receivedAt;
    }
    this.current = Math.min(this.current, offset);
    return Math.max(0, offset - Math.min(this.current, this.previous));
  }
}
