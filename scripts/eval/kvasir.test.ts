/**
 * The polyp detector's validation split as the Node evaluation reads it (scripts/polyp/validation-split.json,
 * written from train.py's seeded permutations): 80 Kvasir-SEG and 60 polyp-free images, all from the train
 * splits, none from the test splits the model cards report.
 */
import { describe, expect, it } from 'vitest';
import { requireSharedData } from '../../server/src/test-support/shared-data.js';
import { kvasirSplit, polypFreeSplit, validationSplit } from './kvasir.js';

describe('the polyp validation split', () => {
  it('holds 80 Kvasir-SEG and 60 polyp-free train images, none of the test splits', async () => {
    requireSharedData();
    const { kvasir, polypFree } = await validationSplit();
    expect(kvasir).toHaveLength(80);
    expect(polypFree).toHaveLength(60);
    expect(kvasir.every((image) => image.truth.length > 0)).toBe(true);
    const testIds = new Set([...(await kvasirSplit('test')).map((i) => i.id), ...(await polypFreeSplit('test')).map((i) => i.id)]);
    expect([...kvasir, ...polypFree].filter((image) => testIds.has(image.id))).toEqual([]);
    const trainIds = new Set((await polypFreeSplit('train')).map((i) => i.id));
    expect(polypFree.every((frame) => trainIds.has(frame.id))).toBe(true);
  });
});
