import { describe, expect, it } from 'vitest';
import type { Detection } from '../inference/inference-engine.js';
import { DEFAULT_TRACKING, DetectionTracker, trackThresholds, validateTracking, type TrackingConfig } from './tracker.js';

// An operating threshold as the polyp detector 1.0.0's: show 0.856, keep 0.685, instant 0.928 (1.1.0: 0.869).
const OPERATING = 0.856;
const newTracker = (config: TrackingConfig = DEFAULT_TRACKING) => new DetectionTracker(config, trackThresholds(OPERATING, config));
const polyp = (x: number, y: number, score = 0.9, size = 100): Detection => ({ label: 'polyp', score, box: { x, y, width: size, height: size } });

describe('live tracking: what the endoscopist sees', () => {
  it('a box that jitters by a few pixels is one steady track', () => {
    const tracker = newTracker();
    const ids = new Set<number>();
    const xs: number[] = [];
    const jitter = [0, 6, -5, 7, -6, 4, -7, 5, -4, 6];
    jitter.forEach((dx, i) => {
      const { shown } = tracker.update([polyp(200 + dx, 150 - dx, 0.88)], i + 1);
      if (i === 0) expect(shown).toEqual([]); // 0.88 < instant: shown from its second hit (2 of 3)
      shown.forEach((s) => ids.add(s.id));
      if (i >= 1) xs.push(shown[0]!.box.x);
    });
    expect([...ids]).toEqual([1]);
    // The raw box moves over 14 px; the shown box over much less.
    expect(Math.max(...xs) - Math.min(...xs)).toBeLessThan(8);
    const [record] = tracker.finish();
    expect(record).toMatchObject({ id: 1, label: 'polyp', peakScore: 0.88 });
    expect(record!.regions.map((r) => r.frame)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('a one-frame blip never shows', () => {
    const tracker = newTracker();
    const seen: number[] = [];
    const frames: Detection[][] = [[], [polyp(50, 50, 0.9)], [], [], [], [polyp(400, 300, 0.87)], [], []];
    for (const dets of frames) seen.push(...tracker.update(dets).shown.map((s) => s.id));
    expect(seen).toEqual([]);
    expect(tracker.finish()).toEqual([]);
  });

  it('a real polyp with a high score shows on its first frame, with the new-track cue', () => {
    const tracker = newTracker();
    const first = tracker.update([polyp(120, 80, 0.97)], 1);
    expect(first.shown).toEqual([{ id: 1, label: 'polyp', score: 0.97, box: { x: 120, y: 80, width: 100, height: 100 }, isNew: true, missed: 0 }]);
    expect(first.trackIds).toEqual([1]);
    const second = tracker.update([polyp(122, 81, 0.95)], 2);
    expect(second.shown[0]).toMatchObject({ id: 1, isNew: false, missed: 0 });
  });

  it('a track survives a 2-frame miss and keeps its id, then ends after the allowed misses', () => {
    const tracker = newTracker();
    tracker.update([polyp(100, 100, 0.95)], 1);
    expect(tracker.update([], 2).shown).toMatchObject([{ id: 1, missed: 1 }]);
    expect(tracker.update([], 3).shown).toMatchObject([{ id: 1, missed: 2 }]);
    expect(tracker.update([polyp(104, 98, 0.9)], 4).shown).toMatchObject([{ id: 1, missed: 0, isNew: false }]);
    for (let f = 5; f <= 5 + DEFAULT_TRACKING.maxMisses - 1; f += 1) expect(tracker.update([], f).shown).toHaveLength(1);
    const gone = tracker.update([], 99);
    expect(gone.shown).toEqual([]);
    expect(gone.ended.map((r) => [r.id, r.regions.map((g) => g.frame)])).toEqual([[1, [1, 4]]]);
  });

  it('two polyps get two ids, each keeping its own', () => {
    const tracker = newTracker();
    for (let f = 1; f <= 5; f += 1) {
      const { shown, trackIds } = tracker.update([polyp(500 + f, 300, 0.96), polyp(50 - f, 40, 0.95, 80)], f);
      expect(shown.map((s) => s.id)).toEqual([1, 2]);
      expect(trackIds).toEqual([1, 2]);
      expect(shown[0]!.box.x).toBeGreaterThan(400);
    }
    const records = tracker.finish();
    expect(records.map((r) => r.id)).toEqual([1, 2]);
  });

  it('a shown polyp is kept by a weaker score (hysteresis), which could not have started a track', () => {
    const tracker = newTracker();
    tracker.update([polyp(100, 100, 0.95)], 1);
    // 0.72: under the operating threshold (0.856), over the keep threshold (0.685).
    expect(tracker.update([polyp(102, 100, 0.72)], 2).shown).toMatchObject([{ id: 1, missed: 0, score: 0.72 }]);
    // The same weak score elsewhere neither starts nor shows anything.
    const fresh = newTracker();
    for (let f = 1; f <= 4; f += 1) expect(fresh.update([polyp(100, 100, 0.72)], f).shown).toEqual([]);
  });

  it('follows a polyp that moves too far for any overlap by its centre', () => {
    const tracker = newTracker();
    tracker.update([polyp(100, 100, 0.95, 60)], 1);
    // 62 px to the right of a 60 px box: no overlap, centre 62 px away (< 0.75 × 85 px diagonal).
    expect(tracker.update([polyp(162, 100, 0.9, 60)], 2).shown).toMatchObject([{ id: 1, missed: 0 }]);
  });

  it('refuses a configuration that could never show a track', () => {
    expect(() => validateTracking({ ...DEFAULT_TRACKING, confirmHits: 4, confirmWindow: 3 })).toThrow(/confirm hits/);
    expect(() => validateTracking({ ...DEFAULT_TRACKING, smoothing: 0 })).toThrow(/smoothing/);
  });
});
