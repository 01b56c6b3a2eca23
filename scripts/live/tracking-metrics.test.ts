import { describe, expect, it } from 'vitest';
import { heldPlacement, linkFragments, median, placeBox, streamMetrics, type Answer, type SentFrame } from './tracking-metrics.js';

const box = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });
const POLYP = box(100, 100, 50, 50);
const BLIP = box(300, 300, 20, 20);
const STRAY = box(400, 50, 30, 30);

/**
 * 30 frames at 25 fps (1.2 s): 0–9 polyp-free, 10–19 one polyp appearance, 20–29 polyp-free; frame 15
 * dropped by the server. Raw boxes: a one-frame blip (2), a stray box on 4–5 that flickers off on 6 and
 * is back on 7, the polyp on 12, 14 and 16–19. Shown tracks: the stray box as track 2 on 5–7, the
 * polyp as track 1 from 12, kept through the misses up to 24.
 */
function sequence(): { frames: SentFrame[]; answers: Answer[] } {
  const frames: SentFrame[] = Array.from({ length: 30 }, (_, seq) => (seq >= 10 && seq <= 19 ? { seq, truth: [POLYP], appearance: 0 } : { seq, truth: [] }));
  const raw: Record<number, typeof POLYP[]> = { 2: [BLIP], 4: [STRAY], 5: [STRAY], 7: [STRAY], 12: [POLYP], 14: [POLYP], 16: [POLYP], 17: [POLYP], 18: [POLYP], 19: [POLYP] };
  const answers: Answer[] = frames
    .filter((f) => f.seq !== 15)
    .map(({ seq }) => ({
      seq,
      detections: raw[seq] ?? [],
      tracks: [...(seq >= 12 && seq <= 24 ? [{ id: 1, box: POLYP }] : []), ...(seq >= 5 && seq <= 7 ? [{ id: 2, box: STRAY }] : [])],
    }));
  return { frames, answers };
}

describe('video figures before and after tracking', () => {
  it('counts frames, false alarms, delay and fragments of a sequence with known answers', () => {
    const { frames, answers } = sequence();
    const m = streamMetrics(frames, answers, { fps: 25 });
    expect(m).toMatchObject({ sentFrames: 30, analysedFrames: 29, durationS: 1.2, appearances: 1 });

    // Before: fragments blip, stray (4–5), stray again (7), polyp 12, polyp 14–19 (15 was not analysed,
    // so 14 and 16 are successive analysed frames: one fragment).
    expect(m.before).toMatchObject({
      analysedPolypFrames: 9,
      sentPolypFrames: 10,
      analysedPolypFreeFrames: 20,
      tracks: 5,
      falseAlarmTracks: 3,
      appearancesDetected: 1,
      delayMedianMs: 80,
      fragmentsPerAppearance: 2,
    });
    expect(m.before.sensitivityPerAnalysedFrame).toBeCloseTo(6 / 9, 10);
    // Frame 15 (dropped) shows frame 14's answer: 12, 14, 15, 16–19.
    expect(m.before.sensitivityPerSentFrame).toBeCloseTo(7 / 10, 10);
    expect(m.before.clearPolypFreeFrames).toBeCloseTo(16 / 20, 10);
    expect(m.before.falseAlarmTracksPerMinute).toBeCloseTo(3 / (1.2 / 60), 6);
    expect(m.before.delays).toEqual([{ appearance: 0, frames: 2, ms: 80, fragments: 2 }]);

    // After: one steady polyp track and one false track.
    expect(m.after).toMatchObject({ tracks: 2, falseAlarmTracks: 1, delayMedianMs: 80, fragmentsPerAppearance: 1 });
    expect(m.after.sensitivityPerAnalysedFrame).toBeCloseTo(7 / 9, 10);
    expect(m.after.sensitivityPerSentFrame).toBeCloseTo(8 / 10, 10);
    // Polyp-free frames with nothing shown: 0–4, 8, 9 and 25–29.
    expect(m.after.clearPolypFreeFrames).toBeCloseTo(12 / 20, 10);
    expect(m.after.falseAlarmTracksPerMinute).toBeCloseTo(50, 6);
  });

  it('adds the latency of the first correct answer to the delay, and counts a missed appearance apart', () => {
    const frames: SentFrame[] = [
      ...Array.from({ length: 5 }, (_, seq) => ({ seq, truth: [POLYP], appearance: 0 })),
      ...Array.from({ length: 5 }, (_, i) => ({ seq: 5 + i, truth: [POLYP], appearance: 1 })),
      ...Array.from({ length: 5 }, (_, i) => ({ seq: 10 + i, truth: [POLYP], appearance: 2 })),
    ];
    const answers: Answer[] = frames.map(({ seq }) => ({
      seq,
      latencyMs: 15,
      detections: seq === 0 || seq === 13 ? [POLYP] : [],
      tracks: [],
    }));
    const m = streamMetrics(frames, answers, { fps: 25 });
    expect(m.before.delays.map((d) => d.ms)).toEqual([15, null, 135]);
    expect(m.before.appearancesDetected).toBe(2);
    expect(m.before.delayMedianMs).toBe(75);
    expect(m.before.delayMaxMs).toBe(135);
    expect(m.after).toMatchObject({ appearancesDetected: 0, delayMedianMs: null, fragmentsPerAppearance: null, sensitivityPerAnalysedFrame: 0 });
  });

  it('a box off the polyp (IoU below the threshold) is a false alarm, not a hit', () => {
    const frames: SentFrame[] = [{ seq: 0, truth: [POLYP], appearance: 0 }];
    const shifted = box(130, 130, 50, 50); // IoU 400/4600 with the polyp
    const m = streamMetrics(frames, [{ seq: 0, detections: [shifted], tracks: [] }], { fps: 25 });
    expect(m.before).toMatchObject({ falseAlarmTracks: 1, appearancesDetected: 0, sensitivityPerAnalysedFrame: 0 });
  });

  it('links raw boxes of successive analysed frames by overlap, each box to one fragment', () => {
    const a = box(0, 0, 10, 10);
    const b = box(50, 50, 10, 10);
    const tracked = linkFragments([
      { seq: 0, detections: [a, b], tracks: [] },
      { seq: 1, detections: [box(1, 1, 10, 10), box(2, 2, 10, 10)], tracks: [] },
      { seq: 2, detections: [], tracks: [] },
      { seq: 3, detections: [a], tracks: [] },
    ]);
    expect(tracked.map((t) => t.map((x) => x.id))).toEqual([[1, 2], [1, 3], [], [4]]);
  });

  it('takes the median of an odd and an even count', () => {
    expect(median([])).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('stills held as video', () => {
  it('places identical repeats at one centred letterbox, and maps boxes with it', () => {
    const p = heldPlacement(621, 530, 720, 576, 0, 25, false);
    expect(p).toEqual({ left: 23, top: 0, width: 675, height: 576 });
    for (const r of [1, 12, 24]) expect(heldPlacement(621, 530, 720, 576, r, 25, false)).toEqual(p);
    expect(placeBox(box(0, 0, 621, 530), 621, 530, p)).toEqual({ x: 23, y: 0, width: 675, height: 576 });
  });

  it('drifts slowly within the frame over a hold', () => {
    const placements = Array.from({ length: 25 }, (_, r) => heldPlacement(633, 531, 720, 576, r, 25, true));
    for (const p of placements) {
      expect(p.left).toBeGreaterThanOrEqual(0);
      expect(p.top).toBeGreaterThanOrEqual(0);
      expect(p.left + p.width).toBeLessThanOrEqual(720);
      expect(p.top + p.height).toBeLessThanOrEqual(576);
    }
    expect(placements[0]!.width).toBeGreaterThan(placements[24]!.width);
    // Successive frames move by at most a few pixels (a slow withdrawal, not a shake).
    for (let r = 1; r < 25; r += 1) expect(Math.abs(placements[r]!.left - placements[r - 1]!.left)).toBeLessThanOrEqual(2);
  });
});
