/**
 * What every ChangeFeed must do, as the caches of two server processes sharing one index see it. Each
 * backend's test file calls `runChangeFeedContract` with a setup that builds two feeds on one fresh
 * backend (`a` and `b`: two processes) and, where the backend can lose a subscription, a way to break
 * `b`'s (a killed connection, rows it never read).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { Change, ChangeFeed, InstancesChange } from './change-feed.js';

export interface ChangeFeedFixture {
  a: ChangeFeed;
  b: ChangeFeed;
  /** Makes `b` miss what is sent meanwhile (its connection killed, its unread rows gone). */
  interrupt?: () => Promise<void>;
  teardown(): Promise<void>;
}

export const quietLogger = () => pino({ level: 'silent' });

/** Polls `check` every 10 ms until it passes, at most `ms` (the feed latency the suite allows). */
export async function eventually(check: () => void | Promise<void>, ms = 2000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const uid = (i: number) => `1.2.826.0.1.3680043.10.543.${Date.now()}.${i}`;

export function runChangeFeedContract(name: string, setup: () => Promise<ChangeFeedFixture>, options: { crossProcess: boolean }): void {
  describe(`ChangeFeed contract: ${name}`, () => {
    let f: ChangeFeedFixture;
    let heardA: Change[];
    let heardB: Change[];

    beforeEach(async () => {
      f = await setup();
      heardA = [];
      heardB = [];
      f.a.subscribe((change) => heardA.push(change));
      f.b.subscribe((change) => heardB.push(change));
    });
    afterEach(async () => {
      await f.teardown();
    });

    const studiesHeard = (changes: Change[]) => changes.flatMap((c) => (c.kind === 'flush' || c.kind === 'link-revoked' ? [] : c.studies));

    it('tells the publishing process synchronously, before publish returns, once', async () => {
      const change: InstancesChange = { kind: 'instances-removed', studies: [uid(1)], blobKeys: ['aa/bb/key.dcm'] };
      const publishing = f.a.publish(change);
      expect(heardA).toEqual([change]);
      await publishing;
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(heardA).toEqual([change]);
      expect(f.a.live).toBe(true);
    });

    it.runIf(options.crossProcess)('tells the other process, in the order published', async () => {
      const changes: Change[] = [
        { kind: 'patient-changed', studies: [uid(1), uid(2)] },
        { kind: 'link-revoked', linkId: 'f3b1c2d4-0000-4000-8000-000000000001' },
        {
          kind: 'instances-changed',
          studies: [uid(3)],
          instances: [{ studyInstanceUid: uid(3), seriesInstanceUid: uid(4), sopInstanceUid: uid(5) }],
          blobKeys: ['ab/cd/new.dcm'],
        },
      ];
      for (let i = 0; i < 20; i += 1) changes.push({ kind: 'instances-added', studies: [uid(100 + i)] });
      for (const change of changes) await f.a.publish(change);
      await eventually(() => expect(heardB).toEqual(changes));
      // B's own publishing reaches A the same way.
      await f.b.publish({ kind: 'link-revoked', linkId: 'f3b1c2d4-0000-4000-8000-000000000002' });
      await eventually(() => expect(heardA.at(-1)).toEqual({ kind: 'link-revoked', linkId: 'f3b1c2d4-0000-4000-8000-000000000002' }));
    });

    it.runIf(options.crossProcess)('delivers a change too large for one message whole (split), or as a flush', async () => {
      const studies = Array.from({ length: 600 }, (_, i) => uid(i));
      const blobKeys = Array.from({ length: 300 }, (_, i) => `${String(i % 100).padStart(2, '0')}/x/${uid(i)}.dcm`);
      await f.a.publish({ kind: 'instances-removed', studies, blobKeys });
      await eventually(() => {
        const flushed = heardB.some((c) => c.kind === 'flush');
        const keys = heardB.flatMap((c) => (c.kind === 'instances-removed' ? (c.blobKeys ?? []) : []));
        expect(flushed || (new Set(studiesHeard(heardB)).size === studies.length && new Set(keys).size === blobKeys.length)).toBe(true);
      });
    });

    it('keeps telling the other listeners when one throws, and stops telling one that unsubscribed', async () => {
      const seen: string[] = [];
      f.a.subscribe(() => {
        throw new Error('listener bug');
      });
      const off = f.a.subscribe(() => seen.push('off'));
      f.a.subscribe(() => seen.push('kept'));
      await f.a.publish({ kind: 'link-revoked', linkId: 'one' });
      off();
      await f.a.publish({ kind: 'link-revoked', linkId: 'two' });
      expect(seen).toEqual(['off', 'kept', 'kept']);
      expect(heardA).toHaveLength(2);
    });

    it.runIf(options.crossProcess)('flushes when a message may have been missed, and hears again afterwards', async () => {
      await f.a.publish({ kind: 'patient-changed', studies: [uid(1)] });
      await eventually(() => expect(heardB).toHaveLength(1));
      await f.interrupt!();
      // What a sends while b's subscription is down is lost; b must flush instead of trusting its caches.
      await f.a.publish({ kind: 'patient-changed', studies: [uid(2)] });
      await eventually(() => expect(heardB.some((c) => c.kind === 'flush')).toBe(true), 5000);
      await eventually(() => expect(f.b.live).toBe(true), 10_000);
      const after: Change = { kind: 'instances-removed', studies: [uid(3)] };
      await eventually(async () => {
        await f.a.publish(after);
        expect(heardB).toContainEqual(after);
      }, 10_000, 100);
      // The last flush came after (or with) the subscription back: nothing missed meanwhile stays cached.
      const lastFlush = heardB.map((c) => c.kind).lastIndexOf('flush');
      expect(lastFlush).toBeGreaterThan(0);
    });

    it('never rejects a publish, and tells nothing more once closed', async () => {
      await f.b.close();
      expect(f.b.live).toBe(false);
      await expect(f.b.publish({ kind: 'link-revoked', linkId: 'after-close' })).resolves.toBeUndefined();
      await f.a.publish({ kind: 'link-revoked', linkId: 'to-a-closed-one' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(heardB.filter((c) => c.kind !== 'link-revoked' || c.linkId !== 'after-close')).toEqual([]);
    });
  });
}
