/**
 * eval:live end to end, in its smoke size (3 polyp-free stills and 3 polyps, each held 1 s at 25 fps, both
 * modes) with the bundled polyp detector, on the validation split (`--split val`): the figures of issue 23's video evaluation — false-alarm tracks
 * per minute, per-frame sensitivity, first-detection delay and flicker, before and after tracking — come
 * out of a real server over /live for both modes, and tracking never shows more tracks than the raw
 * detections' fragments. (The full-size figures are in docs/benchmarks.md; the metric code itself is
 * unit-tested in scripts/live/tracking-metrics.test.ts.)
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSharedData } from '../server/src/test-support/shared-data.js';
import { validationSplit } from './eval/kvasir.js';

const run = promisify(execFile);
let outDir: string | undefined;
afterAll(async () => {
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
});

interface Side {
  analysedPolypFreeFrames: number;
  falseAlarmTracks: number;
  falseAlarmTracksPerMinute: number;
  tracks: number;
  appearancesDetected: number;
  delayMedianMs: number | null;
  sensitivityPerAnalysedFrame: number | null;
}
interface Run {
  mode: 'paced' | 'realtime';
  errors: unknown[];
  /** The appearances detected after tracking, with the Kvasir-SEG image each one showed. */
  appearances?: Array<{ appearance: number; kvasirId?: string }>;
  metrics: { sentFrames: number; analysedFrames: number; before: Side; after: Side };
}

describe('npm run eval:live (smoke size)', () => {
  it('measures polyp-free and polyp video before and after tracking, paced and in real time, through /live', async () => {
    requireSharedData();
    outDir = await mkdtemp(path.join(os.tmpdir(), 'eval-live-'));
    // On the validation split (what tuning the tracker may read): its stills, never the test split's.
    await run(process.execPath, ['--import', 'tsx', 'scripts/eval-live.ts', '--smoke', '--split', 'val', '--out-dir', outDir], { timeout: 240_000, maxBuffer: 1 << 24 });
    const report = JSON.parse(await readFile(path.join(outDir, 'eval-live-smoke-val.json'), 'utf8')) as {
      model: string;
      split: string;
      polypFree: { stills: number; runs: Run[] };
      polyp: { stills: number; runs: Run[] };
    };
    expect(report.model).toBe('polyp-detector');
    expect(report.split).toBe('val');
    const validation = await validationSplit();
    const shown = report.polyp.runs.flatMap((r) => r.appearances ?? []).map((a) => a.kvasirId);
    expect(shown.length).toBeGreaterThan(0);
    for (const id of shown) expect(validation.kvasir.map((k) => k.id)).toContain(id);
    for (const stream of [report.polypFree, report.polyp]) {
      expect(stream.runs.map((r) => r.mode).sort()).toEqual(['paced', 'realtime']);
      for (const r of stream.runs) {
        expect(r.errors).toEqual([]);
        if (r.mode === 'paced') expect(r.metrics.analysedFrames).toBe(r.metrics.sentFrames);
        expect(r.metrics.analysedFrames).toBeGreaterThan(0.8 * r.metrics.sentFrames);
        // Shown tracks are confirmed raw fragments: tracking removes flicker, it never adds tracks.
        expect(r.metrics.after.tracks).toBeLessThanOrEqual(r.metrics.before.tracks);
        expect(r.metrics.after.falseAlarmTracks).toBeLessThanOrEqual(r.metrics.before.falseAlarmTracks);
      }
    }
    const paced = report.polyp.runs.find((r) => r.mode === 'paced')!;
    expect(paced.metrics.after.appearancesDetected).toBeGreaterThanOrEqual(1);
    expect(paced.metrics.after.sensitivityPerAnalysedFrame).toBeGreaterThan(0);
    expect(paced.metrics.after.delayMedianMs).not.toBeNull();
    const polypFree = report.polypFree.runs.find((r) => r.mode === 'paced')!;
    expect(polypFree.metrics.after.analysedPolypFreeFrames).toBe(polypFree.metrics.sentFrames);
    const markdown = await readFile(path.join(outDir, 'eval-live-smoke-val.md'), 'utf8');
    expect(markdown).toContain('polyp-free TRAIN frames held out for validation');
    expect(markdown).toContain('Goals (issue 23)');
    expect(markdown).toMatch(/false-alarm tracks after tracking [\d.]+\/min/);
  }, 300_000);
});
