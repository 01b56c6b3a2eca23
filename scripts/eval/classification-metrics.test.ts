import { describe, expect, it } from 'vitest';
import { argmax, binaryReport, confusionMatrix, rocAuc } from './classification-metrics.js';

describe('classification metrics (as scripts/lesion/common.py computes them)', () => {
  it('AUC by ranks: perfect, reversed, ties averaged, undefined without both classes', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [false, true, false, true])).toBe(0.5);
    // one positive above both negatives, one tied with a negative: (1 + 1 + 1 + 0.5) / 4
    expect(rocAuc([0.2, 0.6, 0.9, 0.6], [false, false, true, true])).toBeCloseTo(0.875, 12);
    expect(rocAuc([0.1, 0.2], [true, true])).toBeNaN();
  });

  it('sensitivity and specificity at a cut (score ≥ cut is positive), the confusion matrix by argmax', () => {
    expect(binaryReport([0.4, 0.5, 0.7, 0.1], [true, true, false, false], 0.5)).toMatchObject({ tp: 1, fn: 1, tn: 1, fp: 1, sensitivity: 0.5, specificity: 0.5 });
    expect(argmax([0.2, 0.4, 0.4])).toBe(1);
    expect(confusionMatrix([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], [0, 1, 1], 2)).toEqual([[1, 0], [1, 1]]);
  });
});
