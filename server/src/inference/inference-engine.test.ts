import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { isAppError } from '../errors.js';
import { InferenceEngine } from './inference-engine.js';
import { loadModelRegistry } from './model-registry.js';
import { ModelThreadStoppedError, OnnxThread } from './onnx-thread.js';

function capturingLogger(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
  return { log: pino({ level: 'info' }, sink), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('choosing where models run', () => {
  it('falls back to the CPU with one warning when the configured GPU provider is not available here', async () => {
    // This machine (and CI) has neither CUDA libraries nor a WebGPU adapter.
    const { log, lines } = capturingLogger();
    const engine = await InferenceEngine.start(await loadModelRegistry(TEST_MODELS_DIR), { executionProvider: 'cuda', threads: 1, maxBatch: 2, queueDepth: 4 }, log);
    try {
      expect(engine.executionProvider).toBe('cpu');
      const warnings = lines().filter((l) => l['msg'] === 'execution provider unavailable: running models on CPU');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ requested: 'cuda' });
      const raw = { pixels: Buffer.alloc(32 * 32 * 3, 255), width: 32, height: 32, channels: 3 as const };
      const result = await engine.detect('bright-spot', raw, 0);
      expect(result.detections).toHaveLength(1);
      expect(result.detections[0]!.box).toEqual({ x: 0, y: 0, width: 32, height: 32 });
    } finally {
      await engine.close();
    }
  });

  it('runs models with idle onnxruntime threads sleeping instead of spinning (PACS_AI_THREAD_SPINNING=false), same answers', async () => {
    const { log } = capturingLogger();
    const engine = await InferenceEngine.start(await loadModelRegistry(TEST_MODELS_DIR), { executionProvider: 'cpu', threads: 2, threadSpinning: false, maxBatch: 2, queueDepth: 4 }, log);
    try {
      const raw = { pixels: Buffer.alloc(32 * 32 * 3, 255), width: 32, height: 32, channels: 3 as const };
      const result = await engine.detect('bright-spot', raw, 0);
      expect(result.detections.map((d) => d.box)).toEqual([{ x: 0, y: 0, width: 32, height: 32 }]);
    } finally {
      await engine.close();
    }
  });

  it('runs concurrent requests in batches and gives each caller its own boxes', async () => {
    const { log } = capturingLogger();
    const engine = await InferenceEngine.start(await loadModelRegistry(TEST_MODELS_DIR), { executionProvider: 'cpu', threads: 1, maxBatch: 4, queueDepth: 16 }, log);
    try {
      // Image i is 64×64 black with a white column block starting at x = 8 * i.
      const image = (i: number) => {
        const pixels = Buffer.alloc(64 * 64 * 3);
        for (let y = 0; y < 64; y += 1) for (let x = 8 * i; x < 8 * i + 8; x += 1) pixels.fill(255, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
        return { pixels, width: 64, height: 64, channels: 3 as const };
      };
      const results = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => engine.detect('bright-spot', image(i))));
      results.forEach((r, i) => expect(r.detections.map((d) => d.box)).toEqual([{ x: 8 * i, y: 0, width: 8, height: 64 }]));
      expect(engine.queueStats('bright-spot').batches).toBeLessThan(6);
    } finally {
      await engine.close();
    }
  });

  it('classifies images with a tile classifier in batches: class probabilities per image, in label order', async () => {
    const { log } = capturingLogger();
    const engine = await InferenceEngine.start(await loadModelRegistry(TEST_MODELS_DIR), { executionProvider: 'cpu', threads: 1, maxBatch: 4, queueDepth: 16 }, log);
    try {
      // dark-tissue: P(lesion) = sigmoid((170 - mean RGB) / 10).
      const grey = (value: number) => ({ pixels: Buffer.alloc(32 * 32 * 3, value), width: 32, height: 32, channels: 3 as const });
      const values = [250, 180, 170, 160, 100, 0];
      const results = await Promise.all(values.map((v) => engine.classify('dark-tissue', grey(v))));
      results.forEach((r, i) => {
        const lesion = 1 / (1 + Math.exp(-(170 - values[i]!) / 10));
        expect(r.model).toEqual({ id: 'dark-tissue', version: '1.0.0' });
        expect(r.probabilities).toHaveLength(2);
        expect(r.probabilities[1]!).toBeCloseTo(lesion, 4);
        expect(r.probabilities[0]! + r.probabilities[1]!).toBeCloseTo(1, 5);
        expect(r.positiveScore).toBeCloseTo(lesion, 4);
        expect(r.label).toBe(values[i]! < 170 ? 'lesion' : values[i]! > 170 ? 'normal' : r.label);
      });
      expect(engine.queueStats('dark-tissue').batches).toBeLessThan(6);
      // A larger image is letterboxed like a detector's input.
      const big = await engine.classify('dark-tissue', { pixels: Buffer.alloc(64 * 64 * 3, 100), width: 64, height: 64, channels: 3 });
      expect(big).toMatchObject({ width: 64, height: 64, label: 'lesion' });
    } finally {
      await engine.close();
    }
  });

  it('leaves no model thread running when a later model stops the start', async () => {
    const { log } = capturingLogger();
    const registry = await loadModelRegistry(TEST_MODELS_DIR);
    // dark-tissue (last) listed with three labels while its output has two: the start fails there.
    const broken = registry.map((m) => (m.spec.id === 'dark-tissue' ? { ...m, spec: { ...m.spec, labels: ['normal', 'lesion', 'other'] } } : m)) as typeof registry;
    const starts = vi.spyOn(OnnxThread, 'start');
    const releases = vi.spyOn(OnnxThread.prototype, 'release');
    try {
      await expect(InferenceEngine.start(broken, { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log)).rejects.toThrow(/"dark-tissue".*gives 2 values per image, the manifest lists 3 labels/);
      expect(starts).toHaveBeenCalledTimes(registry.length);
      expect(releases).toHaveBeenCalledTimes(registry.length);
    } finally {
      starts.mockRestore();
      releases.mockRestore();
    }
  });

  it('refuses to detect boxes with a classifier, or to classify with a detector, saying what the model does', async () => {
    const { log } = capturingLogger();
    const engine = await InferenceEngine.start(await loadModelRegistry(TEST_MODELS_DIR), { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log);
    try {
      const raw = { pixels: Buffer.alloc(32 * 32 * 3, 255), width: 32, height: 32, channels: 3 as const };
      await expect(engine.detect('dark-tissue', raw)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/"dark-tissue" is a tile classifier/) });
      await expect(engine.classify('bright-spot', raw)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/"bright-spot" is a detector/) });
    } finally {
      await engine.close();
    }
  });
});

describe('a detector with a box verifier (manifest output.verifier)', () => {
  /** A copy of the test models with bright-spot checked by red-box (reddish boxes pass) at `gate`. */
  async function withVerifier(gate: number, edit?: (verifier: Record<string, unknown>) => void): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'verifier-models-'));
    await cp(TEST_MODELS_DIR, dir, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    const sha256 = createHash('sha256').update(await readFile(path.join(dir, 'red-box-1.0.0.onnx'))).digest('hex');
    const verifier = { file: 'red-box-1.0.0.onnx', sha256, input: 'crop', output: 'prob', size: 16, context: 1.5, minSide: 4, gate };
    edit?.(verifier);
    manifest.models[0].output.verifier = verifier;
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    return dir;
  }

  /** 64×64 black with a white 12×12 square at (4,4) and a bright red-ish (255,200,255) one at (40,40). */
  function twoSpots() {
    const pixels = Buffer.alloc(64 * 64 * 3);
    const square = (x0: number, y0: number, rgb: number[]) => {
      for (let y = y0; y < y0 + 12; y++) for (let x = x0; x < x0 + 12; x++) pixels.set(rgb, (y * 64 + x) * 3);
    };
    square(4, 4, [255, 255, 255]);
    square(40, 40, [255, 200, 255]);
    return { pixels, width: 64, height: 64, channels: 3 as const };
  }

  it('reports only the boxes the verifier passes, and all of them when its gate is 0', async () => {
    const { log } = capturingLogger();
    for (const [gate, expected] of [
      [0.8, [{ x: 40, y: 40, width: 12, height: 12 }]],
      [0, [{ x: 4, y: 4, width: 12, height: 12 }, { x: 40, y: 40, width: 12, height: 12 }]],
    ] as const) {
      const dir = await withVerifier(gate);
      const engine = await InferenceEngine.start(await loadModelRegistry(dir), { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log);
      try {
        // Without the verifier both squares are bright-spot boxes; red-box scores the white one 0.5 (R = G).
        const result = await engine.detect('bright-spot', twoSpots(), 0);
        expect(result.detections.map((d) => d.box).sort((a, b) => a.x - b.x)).toEqual(expected);
      } finally {
        await engine.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  });

  it('never shows unverified boxes when the verifier thread dies: SERVICE_BUSY for a run it lost, verified boxes from a new thread after', async () => {
    const { log } = capturingLogger();
    const dir = await withVerifier(0.8);
    const engine = await InferenceEngine.start(await loadModelRegistry(dir), { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log);
    // The loaded model's verifier thread (private to the engine; reached here to end it as a crash would).
    const verifier = (engine as unknown as { models: Map<string, { verifier?: { session: OnnxThread } }> }).models.get('bright-spot')!.verifier!;
    const reddish = [{ x: 40, y: 40, width: 12, height: 12 }];
    try {
      expect((await engine.detect('bright-spot', twoSpots(), 0)).detections.map((d) => d.box)).toEqual(reddish);
      // Its thread dies between requests: the next run starts a new one, and the boxes are still verified.
      await verifier.session.kill();
      expect((await engine.detect('bright-spot', twoSpots(), 0)).detections.map((d) => d.box)).toEqual(reddish);
      // A thread that dies while it runs a request's crops: that request is refused (retry), not answered unverified.
      const real = verifier.session;
      verifier.session = { run: () => Promise.reject(new ModelThreadStoppedError('exited with code 70')) } as unknown as OnnxThread;
      const err = await engine.detect('bright-spot', twoSpots(), 0).catch((e: unknown) => e);
      expect(isAppError(err) && err.code).toBe('SERVICE_BUSY');
      expect((err as Error).message).toMatch(/"bright-spot"'s box verifier was restarted.*retry/);
      verifier.session = real;
      expect((await engine.detect('bright-spot', twoSpots(), 0)).detections.map((d) => d.box)).toEqual(reddish);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops the start when the verifier file is altered or its output is not one probability per crop', async () => {
    const { log } = capturingLogger();
    const altered = await withVerifier(0.5, (v) => (v['sha256'] = '0'.repeat(64)));
    await expect(loadModelRegistry(altered)).rejects.toThrow(/model "bright-spot": red-box-1\.0\.0\.onnx has sha256 [0-9a-f]{64}, the manifest pins 0{64}/);
    await rm(altered, { recursive: true, force: true });
    // The bright-spot detector itself as a "verifier": its output is a mask, not [N, 1].
    const wrong = await withVerifier(0.5);
    const manifest = JSON.parse(await readFile(path.join(wrong, 'manifest.json'), 'utf8'));
    manifest.models[0].output.verifier = { ...manifest.models[0].output.verifier, file: manifest.models[0].file, sha256: manifest.models[0].sha256, input: 'image', size: 64 };
    await writeFile(path.join(wrong, 'manifest.json'), JSON.stringify(manifest));
    await expect(InferenceEngine.start(await loadModelRegistry(wrong), { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log)).rejects.toThrow(
      /model "bright-spot": box verifier output "prob" gives 4096 values per crop, 1 expected/,
    );
    await rm(wrong, { recursive: true, force: true });
    // A registry entry naming a verifier without its checked file (not what loadModelRegistry gives) is refused.
    const [bright] = await loadModelRegistry(TEST_MODELS_DIR);
    const named = { ...bright!, spec: { ...bright!.spec, output: { ...(bright!.spec.output as object), verifier: { file: 'red-box-1.0.0.onnx', sha256: '0'.repeat(64), input: 'crop', output: 'prob', size: 16, context: 1.5, minSide: 4, gate: 0.5 } } } } as typeof bright;
    await expect(InferenceEngine.start([named!], { executionProvider: 'cpu', threads: 1, maxBatch: 2, queueDepth: 4 }, log)).rejects.toThrow(/its box verifier red-box-1\.0\.0\.onnx was not registered/);
  });
});
