/** Packed annotation records (records.ts). */
import { describe, expect, it } from 'vitest';
import { AnnotationBuffer, ANNOTATION_FLOATS, recordsOf } from './records.js';

describe('annotation records', () => {
  it('packs annotations as float32 records that survive a database round trip at any byte offset', () => {
    const buffer = new AnnotationBuffer();
    for (let i = 0; i < 1000; i += 1) buffer.push(i + 0.5, 2 * i, i, 2 * i - 1, i + 1, 2 * i + 1, 0.75, i % 2);
    const bytes = buffer.toBuffer();
    expect(bytes.length).toBe(1000 * ANNOTATION_FLOATS * 4);
    const shifted = Buffer.concat([Buffer.alloc(1), bytes]).subarray(1);
    const records = recordsOf(shifted);
    expect(records[ANNOTATION_FLOATS * 999]).toBe(999.5);
    expect(records[ANNOTATION_FLOATS * 999 + 7]).toBe(1);
  });
});
