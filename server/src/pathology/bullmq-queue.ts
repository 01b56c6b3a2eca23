/**
 * The job queue on Redis with BullMQ, for production: the API process adds steps, inference workers
 * (server/src/worker.ts, any number of processes or machines sharing the blob store and the index)
 * take them. A worker that dies mid-step stops renewing its lock; after `stalledSeconds` BullMQ hands
 * the step to another worker (at-least-once). Steps are idempotent against the job store, so a step
 * delivered twice is done once (job-store.ts: completeUnit). Message ids are stable (messageId), so a
 * step re-added while still waiting is kept once.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { messageId, type JobQueue, type MessageHandler, type QueueItem, type QueueMessage } from './job-queue.js';

const ADD_TIMEOUT_MS = 5000;
const CLOSE_TIMEOUT_MS = 60_000;

function withTimeout<T>(ms: number, message: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface BullmqQueueOptions {
  redisUrl: string;
  /** Redis key prefix (several installations may share one Redis). */
  prefix: string;
  queueName?: string;
  /** How long a step may run without its worker renewing the lock before another worker takes it. */
  stalledSeconds: number;
}

export class BullmqQueue<M extends QueueItem = QueueMessage> implements JobQueue<M> {
  readonly kind = 'bullmq' as const;
  private readonly queue: Queue;
  private readonly connections: Redis[] = [];
  private worker: Worker | undefined;

  constructor(private readonly options: BullmqQueueOptions) {
    // Adding steps fails fast when Redis is down (the API answers 503) instead of waiting forever.
    this.queue = new Queue(options.queueName ?? 'slide-analysis', { connection: this.connection(3), prefix: options.prefix });
    this.queue.on('error', () => undefined);
  }

  /** Workers block on Redis: their commands must never give up (maxRetriesPerRequest null, BullMQ's requirement). */
  private connection(maxRetriesPerRequest: number | null = null): Redis {
    const redis = new Redis(this.options.redisUrl, { maxRetriesPerRequest });
    redis.on('error', () => undefined);
    this.connections.push(redis);
    return redis;
  }

  async add(messages: readonly M[]): Promise<void> {
    if (messages.length === 0) return;
    // BullMQ waits for a connection without limit; a caller (an HTTP request) must not.
    await withTimeout(ADD_TIMEOUT_MS, 'Redis did not accept the job steps in time', this.queue.addBulk(
      messages.map((message) => ({
        name: message.kind,
        data: message,
        // A step fails only when its worker shuts down mid-step (other errors end the job in the store): retry it.
        opts: { jobId: messageId(message), removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'fixed', delay: 1000 } },
      })),
    ));
  }

  async startWorkers(handler: MessageHandler<M>, concurrency: number): Promise<void> {
    const lockMs = this.options.stalledSeconds * 1000;
    this.worker = new Worker(
      this.options.queueName ?? 'slide-analysis',
      async (job) => {
        await handler(job.data as M);
      },
      {
        connection: this.connection(),
        prefix: this.options.prefix,
        concurrency: Math.max(1, concurrency),
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: 5,
      },
    );
    this.worker.on('error', () => undefined);
    // Not awaited: with Redis down the server still starts (and answers 503 to new jobs); the worker
    // connects, and takes the waiting steps, when Redis is back.
    void this.worker.waitUntilReady().catch(() => undefined);
  }

  /** Waiting steps of a cancelled job stay queued; workers skip them after one store read each. */
  async discard(_jobId: string): Promise<void> {}

  async close(): Promise<void> {
    // Running steps finish first; with Redis unreachable, closing gives up after a while.
    await withTimeout(CLOSE_TIMEOUT_MS, 'closing', (async () => {
      await this.worker?.close();
      await this.queue.close();
    })()).catch(() => undefined);
    for (const connection of this.connections) connection.disconnect();
  }
}
