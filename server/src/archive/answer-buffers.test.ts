/**
 * Frame answers' buffers (answer-buffers.ts): memory is lent once and taken back only when its answer
 * was written out; only memory of about the asked size is reused; small answers and foreign memory are
 * never pooled; the free memory is bounded.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AnswerBuffers } from './answer-buffers.js';

describe('AnswerBuffers', () => {
  it('reuses memory only after it was given back, and each lending once', () => {
    const pool = new AnswerBuffers();
    const first = pool.take(100_000);
    const second = pool.take(100_000);
    expect(second.buffer).not.toBe(first.buffer);
    pool.giveBack([first]);
    pool.giveBack([first]); // twice: taken back once
    const third = pool.take(90_000);
    expect(third.buffer).toBe(first.buffer);
    expect(third.length).toBe(90_000);
    expect(pool.take(100_000).buffer).not.toBe(first.buffer); // lent again, not free
    expect(pool.allocated).toBe(3);
  });

  it('reuses memory only for an answer that fits it and would not waste more than half', () => {
    const pool = new AnswerBuffers();
    const big = pool.take(400_000);
    pool.giveBack([big]);
    expect(pool.take(500_000).buffer).not.toBe(big.buffer); // too small
    expect(pool.take(100_000).buffer).not.toBe(big.buffer); // fits, but would pin 4×
    expect(pool.take(300_000).buffer).toBe(big.buffer);
  });

  it('never pools small buffers (Node slab memory) nor memory it did not lend', () => {
    const pool = new AnswerBuffers(64 << 20, 4096);
    const small = pool.take(1000); // under minBytes: Node's 8 KB slab, shared with other small buffers
    const foreign = Buffer.allocUnsafeSlow(200_000);
    pool.giveBack([small, foreign]);
    expect(pool.take(150_000).buffer).not.toBe(foreign.buffer);
    expect(pool.take(5000).buffer).not.toBe(small.buffer); // the slab would fit 5,000 bytes if it were pooled
    expect(pool.allocated).toBe(2);
  });

  it('keeps at most maxFreeBytes free', () => {
    const pool = new AnswerBuffers(250_000, 1);
    const a = pool.take(100_000);
    const b = pool.take(100_000);
    const c = pool.take(100_000);
    pool.giveBack([a, b, c]); // the third would pass 250,000: dropped
    const reused = new Set([pool.take(100_000).buffer, pool.take(100_000).buffer]);
    expect(reused).toEqual(new Set([a.buffer, b.buffer]));
    expect(pool.take(100_000).buffer).not.toBe(c.buffer);
  });

  it("takes an answer's buffers back on its 'finish', never when it closes without it", () => {
    const pool = new AnswerBuffers();
    const sent = new EventEmitter();
    const cut = new EventEmitter();
    const x = pool.take(100_000);
    const y = pool.take(100_000);
    pool.giveBackWhenSent(sent, [x]);
    pool.giveBackWhenSent(cut, [y]);
    expect(pool.take(100_000).buffer).not.toBe(x.buffer); // not written out yet
    cut.emit('close');
    sent.emit('close');
    expect([pool.take(100_000).buffer]).not.toContain(y.buffer);
    sent.emit('finish');
    expect(pool.take(100_000).buffer).toBe(x.buffer);
  });
});
