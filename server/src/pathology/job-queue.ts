/**
 * The work queue of slide analyses, behind one interface with two implementations: in-process (the
 * embedded default: a FIFO in memory, nothing to install) and BullMQ on Redis (bullmq-queue.ts) so
 * inference workers can run as separate processes (server/src/worker.ts). A message names a step of a
 * job: `plan` (tissue mask, windows, units), `unit` (one batch of windows) or `finalize` (the DICOM
 * result). Delivery is at least once: every step is idempotent against the job store (a done unit is
 * skipped, a completed job is not written twice), so a message delivered again after a crash is harmless.
 * The in-process queue forgets its messages when the process stops; the job store does not, and the
 * server re-queues the steps of unfinished jobs when it starts (AnalysisService.recover).
 *
 * The queue is generic over its message type, so other durable work kept in SQL reuses the same engine
 * (the FHIR push outbox, fhir/fhir-push.ts: `{ kind: 'fhir-push', jobId: <outbox id> }` on a queue of
 * its own name); slide analysis steps are the default.
 */
export type QueueMessage = { kind: 'plan'; jobId: string } | { kind: 'unit'; jobId: string; unit: number } | { kind: 'finalize'; jobId: string };

/** What any queue message has: a kind and the id of the job (or outbox entry) it works on. */
export interface QueueItem {
  readonly kind: string;
  readonly jobId: string;
}

export type MessageHandler<M extends QueueItem = QueueMessage> = (message: M) => Promise<void>;

export interface JobQueue<M extends QueueItem = QueueMessage> {
  readonly kind: 'inprocess' | 'bullmq';
  add(messages: readonly M[]): Promise<void>;
  /** Starts consuming: up to `concurrency` messages handled at once by this process. */
  startWorkers(handler: MessageHandler<M>, concurrency: number): Promise<void>;
  /** Drops the waiting messages of a job (cancel); running ones see the job state and stop. */
  discard(jobId: string): Promise<void>;
  /** Stops taking messages and waits for the running ones. */
  close(): Promise<void>;
}

/** A stable id per step: a queue that deduplicates by id (BullMQ) keeps one copy of a re-added step. */
export function messageId(message: QueueItem): string {
  const unit = (message as { unit?: unknown }).unit;
  return message.kind === 'unit' && typeof unit === 'number' ? `${message.jobId}_u${unit}` : `${message.jobId}_${message.kind}`;
}

export class InProcessQueue<M extends QueueItem = QueueMessage> implements JobQueue<M> {
  readonly kind = 'inprocess' as const;
  private readonly waiting: M[] = [];
  private readonly queued = new Set<string>();
  private handler: MessageHandler<M> | undefined;
  private concurrency = 1;
  private running = 0;
  private closed = false;
  private readonly idle: Array<() => void> = [];

  async add(messages: readonly M[]): Promise<void> {
    if (this.closed) return;
    for (const message of messages) {
      const id = messageId(message);
      if (this.queued.has(id)) continue;
      this.queued.add(id);
      this.waiting.push(message);
    }
    this.pump();
  }

  async startWorkers(handler: MessageHandler<M>, concurrency: number): Promise<void> {
    this.handler = handler;
    this.concurrency = Math.max(1, concurrency);
    this.pump();
  }

  async discard(jobId: string): Promise<void> {
    for (let i = this.waiting.length - 1; i >= 0; i -= 1) {
      if (this.waiting[i]!.jobId === jobId) {
        this.queued.delete(messageId(this.waiting[i]!));
        this.waiting.splice(i, 1);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    this.queued.clear();
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    const handler = this.handler;
    if (handler === undefined) return;
    while (!this.closed && this.running < this.concurrency && this.waiting.length > 0) {
      const message = this.waiting.shift()!;
      this.queued.delete(messageId(message));
      this.running += 1;
      // The handler records its own failures in the job store; nothing may escape as unhandled.
      void handler(message)
        .catch(() => undefined)
        .finally(() => {
          this.running -= 1;
          if (this.running === 0) for (const resolve of this.idle.splice(0)) resolve();
          // Let I/O and HTTP requests in between units.
          setImmediate(() => this.pump());
        });
    }
  }
}
