/**
 * bench:pair, the paired before/after benchmark: its options, and a small real run of two of our
 * servers side by side (the same checkout with two settings).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parsePairOptions, runPair } from './bench-pair.js';

const signals = ['SIGINT', 'SIGTERM'] as const;
const before = new Map(signals.map((s) => [s, process.listeners(s)]));
afterEach(() => {
  for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.removeListener(s, l);
});

describe('bench:pair options', () => {
  it('needs something to compare: a base revision or settings for A or B', () => {
    expect(() => parsePairOptions([])).toThrow(/nothing to compare/);
    expect(parsePairOptions(['--base', 'HEAD~1'])).toMatchObject({ base: 'HEAD~1', mode: 'stow50', clients: 1, rounds: 8, perRound: 4 });
    expect(parsePairOptions(['--env-a', 'PACS_X=1', '--env-b=PACS_X=2', '--env-b', 'PACS_Y=a=b', '--mode', 'stow1'])).toMatchObject({
      envA: { PACS_X: '1' },
      envB: { PACS_X: '2', PACS_Y: 'a=b' },
      mode: 'stow1',
      perRound: 150,
    });
  });

  it('stores whole studies by C-STORE in cstore mode: 300 instances per round unless told, a multiple of 50', () => {
    expect(parsePairOptions(['--base', 'x', '--mode', 'cstore', '--clients', '4'])).toMatchObject({ mode: 'cstore', clients: 4, perRound: 300 });
    expect(() => parsePairOptions(['--base', 'x', '--mode', 'cstore', '--per-round', '120'])).toThrow(/multiple of 50/);
  });

  it('times series retrieves after frame lists in mixed mode (3 per round unless told), 8-frame lists in frames mode (40)', () => {
    expect(parsePairOptions(['--base', 'x', '--mode', 'mixed'])).toMatchObject({ mode: 'mixed', clients: 1, perRound: 3 });
    expect(parsePairOptions(['--base', 'x', '--mode', 'frames'])).toMatchObject({ mode: 'frames', clients: 1, perRound: 40 });
  });

  it('refuses an unknown mode, a bad client count and a setting without a value', () => {
    expect(() => parsePairOptions(['--base', 'x', '--mode', 'fast'])).toThrow(/--mode/);
    expect(() => parsePairOptions(['--base', 'x', '--clients', '0'])).toThrow(/--clients/);
    expect(() => parsePairOptions(['--env-a', 'PACS_X'])).toThrow(/NAME=value/);
  });
});

describe('bench:pair run', () => {
  it('stores the same kind of work in both servers, round by round, and reports medians with their range', async () => {
    const report = await runPair({ ...parsePairOptions(['--env-b', 'PACS_LOG_LEVEL=error', '--mode', 'stow1', '--rounds', '2', '--per-round', '5']) });
    expect(report).toContain('A: this checkout, defaults; B: the working tree, PACS_LOG_LEVEL=error');
    const rate = /\| rate \[instances\/s\] \| ([\d.]+) \(([\d.]+)–([\d.]+)\) \| ([\d.]+) \(/.exec(report);
    expect(rate).not.toBeNull();
    const [, medianA, minA, maxA, medianB] = rate!.map(Number);
    expect(medianA).toBeGreaterThan(0);
    expect(medianB).toBeGreaterThan(0);
    expect(minA).toBeLessThanOrEqual(medianA!);
    expect(maxA).toBeGreaterThanOrEqual(medianA!);
    expect(report).toMatch(/Per round, A: \d+ \d+; B: \d+ \d+/);
    expect(report).toMatch(/B\/A rate median [\d.]+ \([\d.]+–[\d.]+\), B ahead in [0-2] of 2 rounds/);
    // the tail beside the median: a round's p95 is at least its p50
    const p50 = /\| request p50 \[ms\] \| ([\d.]+) /.exec(report);
    const p95 = /\| request p95 \[ms\] \| ([\d.]+) /.exec(report);
    expect(Number(p95?.[1])).toBeGreaterThanOrEqual(Number(p50?.[1]));
  }, 180_000);

  it('stores by DIMSE C-STORE with storescu in cstore mode, every instance answered Success', async () => {
    const report = await runPair({ ...parsePairOptions(['--env-b', 'PACS_LOG_LEVEL=error', '--mode', 'cstore', '--rounds', '1', '--per-round', '50']) });
    const rate = /\| rate \[instances\/s\] \| ([\d.]+) \(.*?\| ([\d.]+) \(/.exec(report);
    expect(rate).not.toBeNull();
    expect(Number(rate![1])).toBeGreaterThan(0);
    expect(Number(rate![2])).toBeGreaterThan(0);
    expect(report).toContain('cstore, 1 association(s), 1 rounds');
    expect(report).not.toContain('request p50');
  }, 180_000);
});
