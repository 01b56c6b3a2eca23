import { describe, expect, it } from 'vitest';
import { GroupCommit, type MemberOutcome } from './group-commit.js';

/** A group writer that records its groups and answers each item doubled, or fails the ones asked to. */
function recordingWriter(options: { failItem?: number; failGroup?: number; holdMs?: number } = {}) {
  const groups: number[][] = [];
  let active = 0;
  let overlapped = false;
  const write = async (items: readonly number[]): Promise<Array<MemberOutcome<number>>> => {
    active += 1;
    if (active > 1) overlapped = true;
    groups.push([...items]);
    try {
      if (options.holdMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.holdMs));
      if (items.includes(options.failGroup ?? Number.NaN)) throw new Error('the transaction failed');
      return items.map((item) => (item === options.failItem ? { error: new Error(`item ${item} failed`) } : { value: item * 2 }));
    } finally {
      active -= 1;
    }
  };
  return { write, groups, overlapped: () => overlapped };
}

describe('group commit', () => {
  it('writes what is submitted in the same turn as one group and answers each member in order', async () => {
    const writer = recordingWriter();
    const group = new GroupCommit(writer.write, 32);
    const answers = await Promise.all([1, 2, 3, 4, 5].map((n) => group.submit(n)));
    expect(answers).toEqual([2, 4, 6, 8, 10]);
    expect(writer.groups).toEqual([[1, 2, 3, 4, 5]]);
  });

  it('writes a lone submission as a group of one', async () => {
    const writer = recordingWriter();
    const group = new GroupCommit(writer.write, 32);
    expect(await group.submit(7)).toBe(14);
    expect(await group.submit(8)).toBe(16);
    expect(writer.groups).toEqual([[7], [8]]);
  });

  it('never holds more than maxGroup members in one group', async () => {
    const writer = recordingWriter();
    const group = new GroupCommit(writer.write, 3);
    await Promise.all(Array.from({ length: 8 }, (_, i) => group.submit(i)));
    expect(writer.groups).toEqual([[0, 1, 2], [3, 4, 5], [6, 7]]);
  });

  it('gathers what arrives while a group is written into the next group, one group at a time', async () => {
    const writer = recordingWriter({ holdMs: 30 });
    const group = new GroupCommit(writer.write, 32);
    const first = group.submit(1);
    await new Promise((resolve) => setTimeout(resolve, 5)); // the first group is being written
    const later = [2, 3, 4].map((n) => group.submit(n));
    expect(await Promise.all([first, ...later])).toEqual([2, 4, 6, 8]);
    expect(writer.groups).toEqual([[1], [2, 3, 4]]);
    expect(writer.overlapped()).toBe(false);
  });

  it('fails only the member whose own write failed', async () => {
    const writer = recordingWriter({ failItem: 2 });
    const group = new GroupCommit(writer.write, 32);
    const settled = await Promise.allSettled([1, 2, 3].map((n) => group.submit(n)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toEqual(new Error('item 2 failed'));
  });

  it('fails every member of a group whose transaction failed, and goes on with the next group', async () => {
    const writer = recordingWriter({ failGroup: 2 });
    const group = new GroupCommit(writer.write, 32);
    const settled = await Promise.allSettled([1, 2, 3].map((n) => group.submit(n)));
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'the transaction failed')).toBe(true);
    expect(await group.submit(4)).toBe(8);
  });

  it('refuses a group size that is not a whole number of at least 1', () => {
    const writer = recordingWriter();
    expect(() => new GroupCommit(writer.write, 0)).toThrow(RangeError);
    expect(() => new GroupCommit(writer.write, 2.5)).toThrow(RangeError);
  });
});
