import { describe, expect, it } from 'vitest';
import type { AuditRecord } from './audit-record.js';
import { RepeatCoalescer } from './repeat-coalescer.js';

const FRAMES = 'GET /dicomweb/studies/:study/series/:series/instances/:instance/frames/:frames';

function read(time: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time,
    action: 'retrieve',
    outcome: 0,
    status: 200,
    who: { subject: 'dr-path', kind: 'token' },
    clientAddress: '10.0.0.5',
    interface: 'dicomweb',
    route: FRAMES,
    objects: [{ study: '1.2', series: '1.2.3', instance: '1.2.3.4' }],
    detail: { frames: '7' },
    ...overrides,
  };
}

describe('repeated tile reads of one instance become one record and a count', () => {
  it('lets the first read through and counts the rest of its window', () => {
    const c = new RepeatCoalescer(10_000);
    expect(c.fold(read(1000))).toBe(false);
    for (let t = 1001; t < 1100; t += 1) expect(c.fold(read(t))).toBe(true);
    expect(c.due(5000)).toEqual([]);
    const [summary, ...rest] = c.due(11_000);
    expect(rest).toEqual([]);
    expect(summary).toMatchObject({ time: 1099, route: FRAMES, detail: { repeats: 99, firstTime: 1000 } });
    expect(summary!.detail).not.toHaveProperty('frames');
    expect(c.size).toBe(0);
  });

  it('never folds other users, addresses, instances, routes, failures, stores or whole retrieves', () => {
    const c = new RepeatCoalescer(10_000);
    expect(c.fold(read(0))).toBe(false);
    const others: Partial<AuditRecord>[] = [
      { who: { subject: 'someone-else', kind: 'token' } },
      { clientAddress: '10.0.0.6' },
      { objects: [{ study: '1.2', series: '1.2.3', instance: '1.2.3.5' }] },
      { route: 'GET /dicomweb/studies/:study/series/:series/instances/:instance/rendered' },
    ];
    for (const other of others) expect(c.fold(read(1, other)), JSON.stringify(other)).toBe(false);
    const never: Partial<AuditRecord>[] = [
      { outcome: 4, status: 404 },
      { action: 'store' },
      { route: 'GET /dicomweb/studies/:study/series/:series/instances/:instance' },
      { objects: [] },
    ];
    for (const other of never) {
      expect(c.fold(read(2, other)), JSON.stringify(other)).toBe(false);
      expect(c.fold(read(3, other)), JSON.stringify(other)).toBe(false);
    }
    // Nothing was repeated: no summaries.
    expect(c.due(Number.POSITIVE_INFINITY)).toEqual([]);
  });

  it('starts a new window after the old one, and owes the old count first', () => {
    const c = new RepeatCoalescer(10_000);
    c.fold(read(0));
    c.fold(read(5));
    expect(c.fold(read(20_000))).toBe(false);
    expect(c.due(20_001)).toEqual([expect.objectContaining({ detail: { repeats: 1, firstTime: 0 } })]);
    c.fold(read(20_002));
    expect(c.due(Number.POSITIVE_INFINITY)).toEqual([expect.objectContaining({ time: 20_002, detail: { repeats: 1, firstTime: 20_000 } })]);
  });
});
