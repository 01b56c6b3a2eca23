import { describe, expect, it } from 'vitest';
import { LatestFrameSlot } from './latest-frame-slot.js';

describe('one frame analysed, one waiting, the newest wins', () => {
  it('drops frames that arrive while one is analysed and one already waits, and analyses the newest', async () => {
    const analysed: number[] = [];
    const dropped: number[] = [];
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const slot = new LatestFrameSlot<number>(async (n) => {
      analysed.push(n);
      await gate;
    }, (n) => dropped.push(n));
    for (let i = 1; i <= 10; i += 1) slot.offer(i);
    expect(analysed).toEqual([1]);
    expect(dropped).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    const first = release;
    gate = new Promise<void>((r) => (release = r));
    first();
    await new Promise((r) => setImmediate(r));
    expect(analysed).toEqual([1, 10]);
    release();
    await slot.close();
    expect(slot.stats()).toEqual({ received: 10, processed: 2, dropped: 8 });
  });

  it('keeps going after an analysis fails, and close waits for the running one', async () => {
    const seen: number[] = [];
    const slot = new LatestFrameSlot<number>(async (n) => {
      seen.push(n);
      if (n === 1) throw new Error('bad frame');
    });
    slot.offer(1);
    slot.offer(2);
    await slot.close();
    slot.offer(3);
    expect(seen).toEqual([1]);
    expect(slot.stats()).toMatchObject({ received: 2, dropped: 1, processed: 1 });
  });
});
