/**
 * Latency beats completeness: per stream at most one frame is being analysed and one waits. A newer
 * frame replaces the waiting one (which is counted as dropped), so a slow model makes the stream skip
 * frames, never fall behind, and memory per stream is two frames whatever the client sends. (The
 * session also drops a frame that waits too long at the shared model while a newer one waits here.)
 */
export interface SlotStats {
  received: number;
  processed: number;
  dropped: number;
}

export class LatestFrameSlot<T> {
  private running = false;
  private waiting: T | undefined;
  private closed = false;
  private readonly stats_: SlotStats = { received: 0, processed: 0, dropped: 0 };
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly process: (item: T) => Promise<void>,
    private readonly onDrop: (item: T) => void = () => {},
  ) {}

  offer(item: T): void {
    if (this.closed) return;
    this.stats_.received += 1;
    if (!this.running) {
      this.run(item);
      return;
    }
    if (this.waiting !== undefined) this.drop(this.waiting);
    this.waiting = item;
  }

  /** Whether a newer frame is waiting for the one being analysed. */
  hasWaiting(): boolean {
    return this.waiting !== undefined;
  }

  stats(): SlotStats {
    return { ...this.stats_ };
  }

  /** Stops taking frames; the waiting one is dropped. Resolves when the running one is done. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.waiting !== undefined) {
      this.drop(this.waiting);
      this.waiting = undefined;
    }
    if (this.running) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private drop(item: T): void {
    this.stats_.dropped += 1;
    this.onDrop(item);
  }

  private run(item: T): void {
    this.running = true;
    void this.process(item)
      .catch(() => {})
      .finally(() => {
        this.stats_.processed += 1;
        const next = this.waiting;
        this.waiting = undefined;
        if (next !== undefined && !this.closed) {
          this.run(next);
          return;
        }
        this.running = false;
        this.idleWaiters.splice(0).forEach((resolve) => resolve());
      });
  }
}
