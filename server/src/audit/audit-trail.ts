/**
 * Records audit events without slowing the requests that cause them: `record()` only queues; a writer
 * appends what is queued to the store in one transaction per batch (at most BATCH records, a few
 * milliseconds after the first one), then hands the written records to the exporters (syslog).
 *
 * Never lost silently:
 * - a failed write keeps the batch queued and retries (1 s, doubling to 30 s), logging an error each
 *   time (counts and the database's error code only: records may hold patient data, logs may not);
 * - while writes fail the trail is *unavailable*: with PACS_AUDIT_FAIL_CLOSED (the default) every
 *   protected request is refused with 503 AUDIT_UNAVAILABLE until a write succeeds again, so patient
 *   data is never served unaudited for longer than one batch;
 * - the queue is bounded (MAX_QUEUED); beyond it new records are dropped and the drops counted in an
 *   error log line (fail-closed keeps this to refused requests);
 * - `close()` writes what is still queued.
 *
 * Repeated partial reads of one instance by one user (tiles, frames) are folded into a count
 * (repeat-coalescer.ts): the first is recorded at once, the count when its 10 s window ends.
 */
import type { Logger } from 'pino';
import type { AuditRecord } from './audit-record.js';
import type { AuditStore } from './audit-store.js';
import { RepeatCoalescer } from './repeat-coalescer.js';

const BATCH = 256;
const FLUSH_DELAY_MS = 5;
const MAX_QUEUED = 100_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/** Receives every record once it is stored (with its id). Must not throw or block. */
export interface AuditExporter {
  export(record: AuditRecord): void;
  close(): Promise<void>;
}

export interface AuditTrailOptions {
  /** Refuse protected requests while the store cannot be written (default true). */
  failClosed?: boolean;
  exporters?: AuditExporter[];
}

export class AuditTrail {
  private queue: AuditRecord[] = [];
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private retryMs = RETRY_MIN_MS;
  private dropped = 0;
  private closed = false;
  readonly failClosed: boolean;
  private readonly exporters: AuditExporter[];
  private readonly repeats = new RepeatCoalescer();
  /** Emits the counts of folded reads whose window ended, also when no new request comes. */
  private readonly sweeper = setInterval(() => this.enqueueDue(Date.now()), 1000).unref();

  constructor(
    readonly store: AuditStore,
    private readonly log: Logger,
    options: AuditTrailOptions = {},
  ) {
    this.failClosed = options.failClosed ?? true;
    this.exporters = options.exporters ?? [];
  }

  /** Queues one record (or counts it as a repeat of one queued earlier). Never throws, never waits. */
  record(record: AuditRecord): void {
    if (this.repeats.fold(record)) return;
    this.enqueue(record);
  }

  private enqueueDue(now: number): void {
    for (const summary of this.repeats.due(now)) this.enqueue(summary);
  }

  private enqueue(record: AuditRecord): void {
    if (this.queue.length >= MAX_QUEUED) {
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 1000 === 0) {
        this.log.error({ dropped: this.dropped, queued: this.queue.length }, 'audit queue full: audit records dropped');
      }
      return;
    }
    this.queue.push(record);
    if (this.closed) return;
    this.schedule(this.queue.length >= BATCH ? 0 : FLUSH_DELAY_MS);
  }

  /** False while the store cannot be written (then, failing closed, protected requests are refused). */
  available(): boolean {
    return !this.failing;
  }

  /** Writes everything queued so far, counts of folded repeats included (tests, shutdown). Rejects if the store still fails. */
  async flush(): Promise<void> {
    this.enqueueDue(Number.POSITIVE_INFINITY);
    this.clearTimer();
    while (this.writing !== undefined) await this.writing;
    while (this.queue.length > 0) {
      await this.writeBatch();
      if (this.failing) throw new Error('the audit store cannot be written');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.closed = true;
    try {
      await this.flush();
    } catch {
      this.log.error({ lost: this.queue.length }, 'audit records could not be written before shutdown');
    }
    this.clearTimer();
    for (const exporter of this.exporters) await exporter.close().catch(() => undefined);
    await this.store.close();
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.writing !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.writeBatch();
    }, delayMs);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private writeBatch(): Promise<void> {
    this.writing ??= (async () => {
      const batch = this.queue.slice(0, BATCH);
      try {
        const written = await this.store.append(batch);
        this.queue.splice(0, batch.length);
        if (this.failing) this.log.warn({ queued: this.queue.length }, 'audit store writable again');
        this.failing = false;
        this.retryMs = RETRY_MIN_MS;
        for (const record of written) for (const exporter of this.exporters) exporter.export(record);
      } catch (err) {
        this.failing = true;
        const code = (err as { code?: unknown }).code;
        this.log.error({ queued: this.queue.length, code: typeof code === 'string' ? code : undefined, retryInMs: this.retryMs }, 'audit records could not be written');
      }
    })().finally(() => {
      this.writing = undefined;
      if (this.queue.length > 0 && !this.closed) {
        if (this.failing) {
          const delay = this.retryMs;
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.writeBatch();
          }, delay);
          this.timer.unref();
        } else {
          this.schedule(this.queue.length >= BATCH ? 0 : FLUSH_DELAY_MS);
        }
      }
    });
    return this.writing;
  }
}
