/**
 * One onnxruntime session in a worker thread of its own.
 *
 * Why: onnxruntime-node runs `session.run` synchronously on the calling thread (its binding defers the
 * call with setImmediate, then blocks), so a model run on the main thread stops every request, socket
 * and live frame of the server for the whole run (5–10 ms per live frame, tens of ms per slide tile
 * batch). In a thread of its own the model runs while the main thread reads the next frames, decodes
 * them (sharp, in the libuv pool) and answers other requests: with four live rooms the two cores were
 * otherwise a third idle while frames were dropped (docs/benchmarks.md, "Live endoscopy stream").
 * Written by hand: onnxruntime-node has no off-thread mode, and the protocol is four messages. A worker
 * pool library (piscina) was not used: each thread must hold one loaded session for its whole life, and
 * pools end idle or failing threads with worker.terminate(), which aborts the process when it lands
 * while onnxruntime runs (see release()).
 *
 * Inputs are copied to the thread (structured clone, ~0.2 MB per 256² image: tens of µs); outputs come
 * back transferred. One run at a time per session is the caller's rule (ModelQueue runs one batch per
 * model); runs sent together are answered in order. A thread that dies (out of memory, a native crash)
 * fails the runs in flight with an error and is started again for the next run.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface OnnxThreadOptions {
  /** onnxruntime execution providers, in order of preference. */
  executionProviders: string[];
  /** Intra-op threads; undefined = onnxruntime's default. */
  intraOpNumThreads?: number;
  /** false: idle intra-op threads sleep (`session.intra_op.allow_spinning = 0`). */
  threadSpinning: boolean;
}

export interface OnnxThreadOutput {
  data: Float32Array;
  dims: readonly number[];
  /** Milliseconds inside session.run, measured on the thread. */
  runMs: number;
}

// Runs in the worker (CommonJS, eval'd). Messages in: { id, input, dims } | 'release' | 'exit' (tests: ends
// the thread as a crash would, runs still queued unanswered). Out: { kind: 'ready' } |
// { kind: 'failed', message } (session creation) | { id, data, dims, runMs } | { id, error }.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
(async () => {
  let session;
  try {
    session = await ort.InferenceSession.create(workerData.path, workerData.sessionOptions);
  } catch (err) {
    parentPort.postMessage({ kind: 'failed', message: String((err && err.message) || err) });
    return;
  }
  parentPort.on('message', async (m) => {
    if (m === 'release') {
      await session.release();
      parentPort.close();
      return;
    }
    if (m === 'exit') process.exit(70);
    try {
      const tensor = new ort.Tensor('uint8', m.input, m.dims);
      const started = performance.now();
      const results = await session.run({ [workerData.inputName]: tensor });
      const runMs = performance.now() - started;
      const out = results[workerData.outputName];
      if (out === undefined) throw new Error('the model has no output "' + workerData.outputName + '"');
      const data = out.data;
      const reply = { id: m.id, data, dims: Array.from(out.dims), runMs };
      try {
        parentPort.postMessage(reply, [data.buffer]);
      } catch {
        parentPort.postMessage(reply);
      }
    } catch (err) {
      parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
    }
  });
  parentPort.postMessage({ kind: 'ready' });
})();
`;

/** A run that did not complete because the model's thread stopped (the next run starts a new one). */
export class ModelThreadStoppedError extends Error {
  constructor(why: string) {
    super(`the model's thread stopped (${why}); the run was not completed`);
    this.name = 'ModelThreadStoppedError';
  }
}

interface Pending {
  /** The thread the run was sent to: only its death fails the run. */
  worker: Worker;
  resolve(output: OnnxThreadOutput): void;
  reject(err: Error): void;
}

export class OnnxThread {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private released = false;

  private constructor(
    private readonly path: string,
    private readonly inputName: string,
    private readonly outputName: string,
    private readonly options: OnnxThreadOptions,
  ) {}

  /** Starts the thread and loads the model; rejects with onnxruntime's message when it cannot be loaded. */
  static async start(path: string, io: { input: string; output: string }, options: OnnxThreadOptions): Promise<OnnxThread> {
    const thread = new OnnxThread(path, io.input, io.output, options);
    await thread.spawn();
    return thread;
  }

  /** Runs the model on uint8 `input` of shape `dims`. */
  async run(input: Uint8Array, dims: readonly number[]): Promise<OnnxThreadOutput> {
    if (this.released) throw new Error('the model has been released');
    if (this.worker === undefined) await this.spawn();
    await this.ready;
    const worker = this.worker!;
    const id = this.nextId++;
    return new Promise<OnnxThreadOutput>((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      this.holdOpen();
      worker.postMessage({ id, input, dims });
    });
  }

  /** Runs in flight (0 when idle). */
  get inFlight(): number {
    return this.pending.size;
  }

  async release(): Promise<void> {
    this.released = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    // The thread ends once its current run is done. Never worker.terminate(): terminating a thread while
    // onnxruntime runs in it aborts the whole process ("terminate called after throwing Napi::Error").
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Whoever awaits the release is kept waiting for it (an idle thread is unreferenced).
    worker.ref();
    worker.postMessage('release');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }

  /** Ends the thread as a crash would, after the run it is in (tests); runs queued behind it fail. */
  async kill(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.ref();
    worker.postMessage('exit');
    await exited;
  }

  private spawn(): Promise<void> {
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const { executionProviders, intraOpNumThreads, threadSpinning } = this.options;
    const sessionOptions = {
      executionProviders,
      graphOptimizationLevel: 'all',
      ...(intraOpNumThreads !== undefined ? { intraOpNumThreads } : {}),
      // Session config keys (onnxruntime_session_options_config_keys.h), read by onnxruntime-node's binding.
      ...(threadSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
    };
    const worker = new Worker(WORKER, {
      eval: true,
      // Plain CommonJS: none of the parent's loader flags (tsx in development and tests costs ~0.1 s a thread).
      execArgv: [],
      workerData: { ort: ortPath, path: this.path, sessionOptions, inputName: this.inputName, outputName: this.outputName },
    });
    this.worker = worker;
    // Loading keeps the process alive (someone awaits it); an idle model does not (holdOpen).
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: { kind?: string; message?: string }) => {
        if (m.kind === 'ready') {
          worker.off('message', onMessage);
          worker.on('message', (reply: { id: number; data?: Float32Array; dims?: number[]; runMs?: number; error?: string }) => this.answer(reply));
          this.holdOpen();
          resolve();
        } else if (m.kind === 'failed') {
          worker.off('message', onMessage);
          this.worker = undefined;
          // Safe here (see release()): no session exists in it, so nothing of onnxruntime's is running.
          void worker.terminate();
          reject(new Error(m.message ?? 'the model could not be loaded'));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', (err) => reject(err));
      worker.once('exit', (code) => reject(new Error(`the model's thread exited (code ${code}) while loading`)));
    });
    worker.on('error', (err) => this.died(worker, err.message));
    worker.on('exit', (code) => this.died(worker, `exited with code ${code}`));
    return this.ready;
  }

  /**
   * The thread keeps the process alive while runs are in flight (their callers await them: a script or
   * a worker process with nothing else open must not exit under them), and not while it is idle.
   */
  private holdOpen(): void {
    if (this.pending.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private answer(reply: { id: number; data?: Float32Array; dims?: number[]; runMs?: number; error?: string }): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    this.holdOpen();
    if (reply.error !== undefined) pending.reject(new Error(reply.error));
    else pending.resolve({ data: reply.data!, dims: reply.dims!, runMs: reply.runMs! });
  }

  /** Fails the runs sent to `worker`; the next run starts a new thread (unless released). */
  private died(worker: Worker, why: string): void {
    if (this.worker === worker) this.worker = undefined;
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(new ModelThreadStoppedError(why));
    }
  }
}
