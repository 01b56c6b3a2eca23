import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { InferenceEngine } from './inference-engine.js';
import { loadModelRegistry } from './model-registry.js';

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
