/**
 * A bounded queue in front of one model: requests wait here while the model is busy and are run in
 * batches of up to `maxBatch` (one batch at a time per model: on a CPU a second concurrent run only
 * competes for the same cores). When `maxWaiting` requests already wait, a new one is refused at once
 * with SERVICE_BUSY (503 + Retry-After) instead of queueing without bound: memory stays flat however
 * many clients call, and a caller learns immediately that it should come back.
 */
import { ServiceBusyError } from '../errors.js';

export interface BatchRunner<In, Out> {
  /** Runs one batch; returns one output per input, in order. */
  run(inputs: In[]): Promise<Out[]>;
}

export interface QueueStats {
  waiting: number;
  running: number;
  batches: number;
  refused: number;
}

/** A request that became stale while it waited: it was not run (live frames: counted as dropped). */
export class DeadlineExpiredError extends Error {
  constructor() {
    super('The request became stale while it waited and was not run');
    this.name = 'DeadlineExpiredError';
  }
}

interface Pending<In, Out> {
  input: In;
  /** True once the request is no longer worth running (checked when a batch is formed). */
  isStale: () => boolean;
  resolve(output: Out): void;
  reject(err: unknown): void;
}

export class ModelQueue<In, Out> {
  private readonly waiting: Pending<In, Out>[] = [];
  private running = 0;
  private batches = 0;
  private refused = 0;
  /** Mean batch duration (ms), to tell a refused caller when to retry. */
  private meanBatchMs = 50;

  constructor(
    private readonly name: string,
    private readonly runner: BatchRunner<In, Out>,
    private readonly maxBatch: number,
    private readonly maxWaiting: number,
  ) {}

  submit(input: In, isStale: () => boolean = () => false): Promise<Out> {
    if (this.waiting.length >= this.maxWaiting) {
      this.refused += 1;
      const backlogBatches = Math.ceil((this.waiting.length + 1) / this.maxBatch) + this.running;
      const retryAfterSeconds = Math.max(1, Math.ceil((backlogBatches * this.meanBatchMs) / 1000));
      return Promise.reject(
        new ServiceBusyError(`Model "${this.name}" is busy (${this.waiting.length} requests waiting); retry in ${retryAfterSeconds} s`, retryAfterSeconds),
      );
    }
    return new Promise<Out>((resolve, reject) => {
      this.waiting.push({ input, isStale, resolve, reject });
      this.pump();
    });
  }

  stats(): QueueStats {
    return { waiting: this.waiting.length, running: this.running, batches: this.batches, refused: this.refused };
  }

  private pump(): void {
    if (this.running > 0) return;
    for (let i = this.waiting.length - 1; i >= 0; i -= 1) {
      const pending = this.waiting[i]!;
      if (pending.isStale()) {
        this.waiting.splice(i, 1);
        pending.reject(new DeadlineExpiredError());
      }
    }
    if (this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.running = batch.length;
    const started = performance.now();
    this.runner
      .run(batch.map((p) => p.input))
      .then(
        (outputs) => {
          if (outputs.length !== batch.length) throw new Error(`runner returned ${outputs.length} outputs for ${batch.length} inputs`);
          batch.forEach((p, i) => p.resolve(outputs[i]!));
        },
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      )
      .catch((err: unknown) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        this.batches += 1;
        this.meanBatchMs = this.meanBatchMs * 0.8 + (performance.now() - started) * 0.2;
        this.running = 0;
        this.pump();
      });
  }
}
