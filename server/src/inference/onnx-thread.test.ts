import { execFile } from 'node:child_process';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR } from '../config.js';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { isAppError } from '../errors.js';
import { loadModelRegistry } from './model-registry.js';
import { OnnxBatchRunner } from './inference-engine.js';
import { ModelThreadStoppedError, OnnxThread } from './onnx-thread.js';

const POLYP = path.join(BUNDLED_MODELS_DIR, 'polyp-detector-1.1.0.onnx');
const io = { input: 'image', output: 'prob' };
// Image k of a batch: a pattern that differs from image to image.
const batch = (n: number) => new Uint8Array(n * 256 * 256 * 3).map((_, i) => (i * 31 + Math.floor(i / (256 * 256 * 3)) * 97) & 255);

describe('a model in a thread of its own', () => {
  it('keeps the main thread free while the model runs: timers keep firing during a run', async () => {
    const thread = await OnnxThread.start(POLYP, io, { executionProviders: ['cpu'], intraOpNumThreads: 1, threadSpinning: false });
    try {
      await thread.run(batch(1), [1, 256, 256, 3]);
      let ticks = 0;
      const timer = setInterval(() => (ticks += 1), 1);
      const started = performance.now();
      const out = await thread.run(batch(8), [8, 256, 256, 3]);
      const elapsed = performance.now() - started;
      clearInterval(timer);
      expect(out.dims).toEqual([8, 1, 64, 64]);
      expect(out.data).toBeInstanceOf(Float32Array);
      expect(out.data.length).toBe(8 * 64 * 64);
      // A run on the main thread (onnxruntime-node's own mode) blocks it: no timer could fire until it ends.
      expect(out.runMs).toBeGreaterThan(5);
      expect(ticks).toBeGreaterThanOrEqual(Math.min(5, Math.floor(elapsed / 4)));
    } finally {
      await thread.release();
    }
  });

  it('gives the probabilities onnxruntime gives on the calling thread, batch by batch, with spinning on or off', async () => {
    // The reference: onnxruntime-node's own session, run here as the engine did before the threads.
    const direct = await ort.InferenceSession.create(POLYP, { intraOpNumThreads: 1 });
    const a = await OnnxThread.start(POLYP, io, { executionProviders: ['cpu'], intraOpNumThreads: 1, threadSpinning: false });
    const b = await OnnxThread.start(POLYP, io, { executionProviders: ['cpu'], intraOpNumThreads: 2, threadSpinning: true });
    try {
      const input = batch(2);
      const want = (await direct.run({ image: new ort.Tensor('uint8', input, [2, 256, 256, 3]) }))['prob']!;
      const [x, y] = await Promise.all([a.run(input, [2, 256, 256, 3]), b.run(input, [2, 256, 256, 3])]);
      for (const got of [x, y]) {
        expect(got.dims).toEqual(want.dims);
        const expected = want.data as Float32Array;
        let maxDiff = 0;
        for (let i = 0; i < expected.length; i += 1) maxDiff = Math.max(maxDiff, Math.abs(got.data[i]! - expected[i]!));
        expect(maxDiff).toBeLessThan(1e-4);
      }
      // Not a constant answer: the two images of the batch differ, and so do their maps.
      expect(x.data.subarray(0, 4096)).not.toEqual(x.data.subarray(4096, 8192));
      // The caller's input is copied, not taken.
      expect(input.byteLength).toBe(2 * 256 * 256 * 3);
    } finally {
      await Promise.all([a.release(), b.release(), direct.release()]);
    }
  });

  it('fails the runs left when its thread dies, and answers the next run from a new thread', async () => {
    const thread = await OnnxThread.start(POLYP, io, { executionProviders: ['cpu'], intraOpNumThreads: 1, threadSpinning: false });
    try {
      await thread.run(batch(1), [1, 256, 256, 3]);
      // Queued after the exit: never answered by that thread.
      const killed = thread.kill();
      const left = thread.run(batch(1), [1, 256, 256, 3]);
      await killed;
      await expect(left).rejects.toBeInstanceOf(ModelThreadStoppedError);
      expect(thread.inFlight).toBe(0);
      const next = await thread.run(batch(1), [1, 256, 256, 3]);
      expect(next.dims).toEqual([1, 1, 64, 64]);
    } finally {
      await thread.release();
    }
  });

  it('turns a batch lost to a dying thread into SERVICE_BUSY (503, retry)', async () => {
    const registry = await loadModelRegistry(BUNDLED_MODELS_DIR);
    const polyp = registry.find((m) => m.spec.id === 'polyp-detector')!;
    const dying = { run: () => Promise.reject(new ModelThreadStoppedError('exited with code 70')) } as unknown as OnnxThread;
    const err = await new OnnxBatchRunner(dying, polyp.spec).run([Buffer.from(batch(1))]).catch((e: unknown) => e);
    expect(isAppError(err) && err.code).toBe('SERVICE_BUSY');
    expect((err as Error).message).toMatch(/polyp-detector.*restarted.*retry/);
  });

  it('keeps a process that awaits a model alive until the answer, and lets it exit once the model is released', async () => {
    // A script (or a worker process) with nothing else open: an idle model thread must not hold it, a
    // pending load, run or release must.
    const module = path.join(path.dirname(fileURLToPath(import.meta.url)), 'onnx-thread.ts');
    const script = `
      const { OnnxThread } = await import(${JSON.stringify(module)});
      const t = await OnnxThread.start(${JSON.stringify(POLYP)}, { input: 'image', output: 'prob' }, { executionProviders: ['cpu'], threadSpinning: false });
      const r = await t.run(new Uint8Array(256 * 256 * 3), [1, 256, 256, 3]);
      await t.release();
      console.log('answered', r.dims.join('x'));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 60_000 });
    expect(stdout.trim()).toBe('answered 1x1x64x64');
  });

  it('refuses a file that is not a model with onnxruntime’s reason', async () => {
    const notAModel = path.join(TEST_MODELS_DIR, 'manifest.json');
    await expect(OnnxThread.start(notAModel, io, { executionProviders: ['cpu'], threadSpinning: false })).rejects.toThrow(/protobuf|parse|load|model/i);
  });

  it('answers a run with a wrong input shape with an error, and goes on answering', async () => {
    const thread = await OnnxThread.start(POLYP, io, { executionProviders: ['cpu'], intraOpNumThreads: 1, threadSpinning: false });
    try {
      await expect(thread.run(new Uint8Array(10), [1, 10])).rejects.toThrow();
      expect((await thread.run(batch(1), [1, 256, 256, 3])).dims).toEqual([1, 1, 64, 64]);
    } finally {
      await thread.release();
    }
  });
});
