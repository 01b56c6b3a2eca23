import { describe, expect, it } from 'vitest';
import { averagePrecision, averagePrecision50to95, countsAt, iou } from './average-precision.js';

const box = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });

describe('detection metrics of the model card', () => {
  it('computes intersection over union', () => {
    expect(iou(box(0, 0, 10, 10), box(0, 0, 10, 10))).toBe(1);
    expect(iou(box(0, 0, 10, 10), box(5, 0, 10, 10))).toBeCloseTo(50 / 150, 10);
    expect(iou(box(0, 0, 10, 10), box(20, 20, 5, 5))).toBe(0);
  });

  it('gives AP 1 for perfect detections and 0 for none', () => {
    const truth = [{ id: 'a', truth: [box(0, 0, 10, 10)], detections: [{ score: 0.9, box: box(0, 0, 10, 10) }] }];
    expect(averagePrecision(truth, 0.5)).toBe(1);
    expect(averagePrecision([{ id: 'a', truth: [box(0, 0, 10, 10)], detections: [] }], 0.5)).toBe(0);
  });

  it('integrates the precision envelope over recall (a worked example)', () => {
    // Two objects; ranked detections: TP (0.9), FP (0.8), TP (0.7) → recall 0.5 at precision 1, recall 1 at precision 2/3.
    const images = [
      { id: 'a', truth: [box(0, 0, 10, 10)], detections: [{ score: 0.9, box: box(0, 0, 10, 10) }, { score: 0.8, box: box(50, 50, 10, 10) }] },
      { id: 'b', truth: [box(0, 0, 10, 10)], detections: [{ score: 0.7, box: box(1, 1, 10, 10) }] },
    ];
    expect(averagePrecision(images, 0.5)).toBeCloseTo(0.5 * 1 + 0.5 * (2 / 3), 10);
    expect(countsAt(images, 0.75)).toEqual({ tp: 1, fp: 1, fn: 1, precision: 0.5, recall: 0.5 });
  });

  it('counts a second detection of the same object as a false positive', () => {
    const images = [{ id: 'a', truth: [box(0, 0, 10, 10)], detections: [{ score: 0.9, box: box(0, 0, 10, 10) }, { score: 0.8, box: box(0, 0, 10, 10) }] }];
    expect(countsAt(images, 0)).toMatchObject({ tp: 1, fp: 1, fn: 0 });
  });

  it('averages AP over IoU 0.50:0.95, so loose boxes score lower than tight ones', () => {
    const loose = [{ id: 'a', truth: [box(0, 0, 10, 10)], detections: [{ score: 0.9, box: box(0, 0, 10, 13) }] }]; // IoU 0.77
    expect(averagePrecision(loose, 0.5)).toBe(1);
    expect(averagePrecision50to95(loose)).toBeCloseTo(0.6, 10); // passes at 0.50 … 0.75
  });
});
