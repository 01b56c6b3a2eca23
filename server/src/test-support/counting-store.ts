/** A real blob store wrapped to count how it is read, so tests can prove what a request touched. */
import type { Readable } from 'node:stream';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';

export class CountingStore implements BlobStore {
  gets = 0;
  stats = 0;
  ranges: ByteRange[] = [];
  rangeBytes = 0;

  constructor(private readonly inner: BlobStore) {}

  /** Whole-blob reads plus ranged reads. */
  get reads(): number {
    return this.gets + this.ranges.length;
  }

  get rangeCalls(): number {
    return this.ranges.length;
  }

  reset(): void {
    this.gets = 0;
    this.stats = 0;
    this.ranges = [];
    this.rangeBytes = 0;
  }

  put(key: string, body: Readable) {
    return this.inner.put(key, body);
  }
  get(key: string) {
    this.gets += 1;
    return this.inner.get(key);
  }
  async getRange(key: string, range: ByteRange) {
    this.ranges.push(range);
    const bytes = await this.inner.getRange(key, range);
    this.rangeBytes += bytes.length;
    return bytes;
  }
  stat(key: string) {
    this.stats += 1;
    return this.inner.stat(key);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list() {
    return this.inner.list();
  }
  removePartials(olderThan: Date) {
    return this.inner.removePartials(olderThan);
  }
  close() {
    return this.inner.close();
  }
}
