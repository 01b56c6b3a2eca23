/**
 * Part buffers of a study / series retrieve: memory handed out is used again only after the caller's
 * check says everything handed out has been written out; a buffer is reused only for a part of about
 * its size; the free list is bounded.
 */
import { describe, expect, it } from 'vitest';
import { PartBuffers } from './part-buffers.js';

describe('PartBuffers', () => {
  it('never gives out memory of a part that may not have been written out yet', () => {
    let queued: number | undefined = 0;
    const buffers = new PartBuffers(() => queued);
    const first = buffers.take(1000);
    first.fill(1);
    buffers.handOut(first);
    queued = 1000; // all of it still queued
    const second = buffers.take(1000);
    expect(second.buffer).not.toBe(first.buffer);
    second.fill(2);
    expect(first.every((b) => b === 1)).toBe(true);
    buffers.handOut(second);
    buffers.passed(50); // a delimiter
    queued = 1050 + 1; // the first part's last byte still queued
    expect(buffers.take(1000).buffer).not.toBe(first.buffer);
    queued = 1050; // the first part is out, the second is not
    const fourth = buffers.take(900);
    expect(fourth.buffer).toBe(first.buffer);
    expect(fourth.length).toBe(900);
    queued = undefined; // cannot tell: nothing reused
    expect(buffers.take(1000).buffer).not.toBe(second.buffer);
    expect(buffers.allocated).toBe(4);
  });

  it('reuses memory only for a part that fits it and would not waste more than half', () => {
    const buffers = new PartBuffers(() => 0);
    const big = buffers.take(100_000);
    buffers.handOut(big);
    expect(buffers.take(200_000).buffer).not.toBe(big.buffer); // too small
    const small = buffers.take(10_000); // fits, but would pin 10×: a new one
    expect(small.buffer).not.toBe(big.buffer);
    expect(buffers.take(60_000).buffer).toBe(big.buffer);
  });

  it('keeps a bounded number of free buffers', () => {
    const buffers = new PartBuffers(() => 0, 3);
    const parts = Array.from({ length: 10 }, () => buffers.take(100));
    for (const part of parts) buffers.handOut(part);
    const reused = new Set<ArrayBufferLike>();
    for (let i = 0; i < 10; i++) reused.add(buffers.take(100).buffer);
    expect(buffers.allocated).toBe(10 + 7);
    expect(reused.size).toBe(10);
  });
});
