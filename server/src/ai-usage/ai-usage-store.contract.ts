/**
 * Behaviour the AI usage store must show on every engine, run by ai-usage-store.test.ts (SQLite and
 * PostgreSQL). Each test gets a fresh store from `setup`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AiDecisionInput, AiFindingFacts, AiUsageStore } from './ai-usage-store.js';

export interface AiUsageStoreUnderTest {
  store: AiUsageStore;
  /** Another store on the same database (a second process, or a restart): opening again is idempotent. */
  openAgain(): Promise<AiUsageStore>;
  teardown(): Promise<void>;
}

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 10);
const polypV1 = { id: 'polyp-detector', version: '1.0.0' };
const polypV2 = { id: 'polyp-detector', version: '2.0.0' };
const nuclei = { id: 'nuclei-detector', version: '1.0.0' };
const finding = (sop: string, item: string, model = polypV1): AiFindingFacts => ({ sopInstanceUid: sop, item, studyInstanceUid: '2.25.9', seriesInstanceUid: '2.25.8', model, label: 'polyp' });
const lan = { subject: 'user-lan', name: 'BS. Trần Thị Lan' };
const decide = (f: AiFindingFacts, decision: 'accepted' | 'rejected', at: number, extra: Partial<AiDecisionInput> = {}): AiDecisionInput => ({ finding: f, decision, by: lan, at, source: 'verdict', ...extra });

export function runAiUsageStoreContract(name: string, setup: () => Promise<AiUsageStoreUnderTest>): void {
  describe(`the AI usage store on ${name}`, () => {
    let t: AiUsageStoreUnderTest;
    beforeEach(async () => {
      t = await setup();
    });
    afterEach(async () => {
      await t.teardown();
    });

    it('counts a finding shown once, however often it is shown', async () => {
      expect(await t.store.recordShown([finding('2.25.1', '2-1'), finding('2.25.1', '2-2'), finding('2.25.1', '2-1')], T0)).toBe(2);
      expect(await t.store.recordShown([finding('2.25.1', '2-1'), finding('2.25.1', '5-1')], T0 + 1000)).toBe(1);
      expect(await t.store.usage(T0, T0 + DAY)).toEqual([{ model: polypV1, shown: 3, accepted: 0, rejected: 0 }]);
    });

    it('sums per model id and version: shown, accepted, rejected (the latest decision per finding)', async () => {
      await t.store.recordShown([finding('2.25.1', '2-1'), finding('2.25.1', '2-2'), finding('2.25.1', '5-1'), finding('2.25.2', '1-1', polypV2), finding('2.25.3', '1', nuclei)], T0);
      await t.store.recordDecisions([
        decide(finding('2.25.1', '2-1'), 'accepted', T0 + 10, { source: 'report', reportId: 'r-1', reportVersion: 1 }),
        decide(finding('2.25.1', '2-2'), 'rejected', T0 + 10, { source: 'report', reportId: 'r-1', reportVersion: 1 }),
        decide(finding('2.25.2', '1-1', polypV2), 'rejected', T0 + 20),
        decide(finding('2.25.3', '1', nuclei), 'accepted', T0 + 20, { comment: 'true mitosis' }),
      ]);
      // An amendment turns a rejection into an acceptance: the finding counts once, as accepted.
      await t.store.recordDecisions([decide(finding('2.25.1', '2-2'), 'accepted', T0 + 30, { source: 'report', reportId: 'r-1', reportVersion: 2 })]);
      // A decision older than the one recorded does not replace it (it stays in the history).
      await t.store.recordDecisions([decide(finding('2.25.1', '2-1'), 'rejected', T0 + 5)]);
      expect(await t.store.usage(T0, T0 + DAY)).toEqual([
        { model: nuclei, shown: 1, accepted: 1, rejected: 0 },
        { model: polypV1, shown: 3, accepted: 2, rejected: 0 },
        { model: polypV2, shown: 1, accepted: 0, rejected: 1 },
      ]);
      const history = await t.store.decisions('2.25.1', '2-2');
      expect(history.map((d) => [d.decision, d.reportVersion])).toEqual([
        ['rejected', 1],
        ['accepted', 2],
      ]);
      expect(history[0]).toMatchObject({ by: lan, source: 'report', reportId: 'r-1', at: T0 + 10 });
      expect((await t.store.decisions('2.25.3', '1'))[0]!.comment).toBe('true mitosis');
    });

    it('filters by period: shown when first shown, decided when decided', async () => {
      await t.store.recordShown([finding('2.25.1', '1-1'), finding('2.25.1', '1-2')], T0);
      await t.store.recordDecisions([decide(finding('2.25.1', '1-1'), 'accepted', T0 + 2 * DAY)]);
      // A finding decided without having been recorded as shown is shown at its decision.
      await t.store.recordDecisions([decide(finding('2.25.4', '3-1'), 'rejected', T0 + 2 * DAY)]);
      expect(await t.store.usage(T0, T0 + DAY)).toEqual([{ model: polypV1, shown: 2, accepted: 0, rejected: 0 }]);
      expect(await t.store.usage(T0 + DAY, T0 + 3 * DAY)).toEqual([{ model: polypV1, shown: 1, accepted: 1, rejected: 1 }]);
      expect(await t.store.usage(T0 + 5 * DAY, T0 + 6 * DAY)).toEqual([]);
    });

    it('opens again on the same database without losing anything', async () => {
      await t.store.recordShown([finding('2.25.1', '1-1')], T0);
      const again = await t.openAgain();
      try {
        expect(await again.usage(T0, T0 + DAY)).toEqual([{ model: polypV1, shown: 1, accepted: 0, rejected: 0 }]);
      } finally {
        await again.close();
      }
    });
  });
}
