/**
 * Live endoscopy sessions that are finishing (storing their recording). The composition module
 * (services.ts) holds one and drains it before the index and blob store close, so a recording whose
 * WebSocket closed during shutdown is still stored.
 */
export class LiveSessionRegistry {
  private readonly finishing = new Set<Promise<void>>();
  track(done: Promise<void>): void {
    this.finishing.add(done);
    void done.finally(() => this.finishing.delete(done));
  }
  async drain(): Promise<void> {
    while (this.finishing.size > 0) await Promise.all(this.finishing);
  }
}
