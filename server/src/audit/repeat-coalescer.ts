/**
 * Folds repeated reads of one instance by one user into a count, so that a pathologist panning a
 * slide (hundreds of tile requests a second) or a viewer scrolling a multi-frame instance does not
 * write one audit row per tile.
 *
 * What is kept: the first successful frame / rendered / thumbnail / bulk data read of an instance by a
 * user from an address is recorded at once, like any request (so the access itself is never delayed
 * or lost). Further reads of the same instance through the same route within WINDOW_MS are counted;
 * when the window ends one more record says how many (`detail.repeats`, `detail.firstTime`; its
 * `time` is the last read's). Refusals, failures, searches, stores and whole-instance retrieves are
 * never folded. A crash loses at most the counts of the open windows, never a first access.
 *
 * PS3.15 A.5.3.2 (DICOM Instances Transferred / Accessed) identifies the instances, user and time of
 * an access; it does not require one message per HTTP request.
 */
import type { AuditRecord } from './audit-record.js';

export const REPEAT_WINDOW_MS = 10_000;

/** Routes whose reads are parts of one instance (frames, tiles, rendered views, bulk data). */
const PARTIAL_READ_ROUTE = /\/instances\/:instance\/(?:frames\/|rendered|thumbnail|bulkdata\/)/;

interface OpenWindow {
  first: AuditRecord;
  repeats: number;
  lastTime: number;
}

export class RepeatCoalescer {
  private readonly open = new Map<string, OpenWindow>();

  constructor(private readonly windowMs: number = REPEAT_WINDOW_MS) {}

  /**
   * True when `record` was folded into an open window (the caller records nothing now); false when
   * the caller must record it (it may also have opened a window).
   */
  fold(record: AuditRecord): boolean {
    const key = keyOf(record);
    if (key === undefined) return false;
    const window = this.open.get(key);
    if (window !== undefined && record.time - window.first.time < this.windowMs) {
      window.repeats += 1;
      window.lastTime = Math.max(window.lastTime, record.time);
      return true;
    }
    // A read after the window: the old window's count is due first (the caller asks for it with due()).
    this.open.set(key, { first: record, repeats: 0, lastTime: record.time });
    if (window !== undefined && window.repeats > 0) this.closedEarly.push(summaryOf(window));
    return false;
  }

  /** Summaries of windows that ended by `now` (all of them when `now` is Infinity), oldest first. */
  due(now: number): AuditRecord[] {
    const out = this.closedEarly.splice(0);
    for (const [key, window] of this.open) {
      if (now - window.first.time < this.windowMs) continue;
      this.open.delete(key);
      if (window.repeats > 0) out.push(summaryOf(window));
    }
    return out;
  }

  /** Windows still open (for tests and the shutdown log). */
  get size(): number {
    return this.open.size;
  }

  private readonly closedEarly: AuditRecord[] = [];
}

function keyOf(record: AuditRecord): string | undefined {
  if (record.action !== 'retrieve' || record.outcome !== 0 || record.objects.length !== 1) return undefined;
  const instance = record.objects[0]!.instance;
  if (instance === undefined || !PARTIAL_READ_ROUTE.test(record.route)) return undefined;
  return `${record.who.subject}\u0000${record.clientAddress}\u0000${record.route}\u0000${instance}`;
}

function summaryOf(window: OpenWindow): AuditRecord {
  const { id: _id, ...first } = window.first;
  const { frames: _frames, ...detail } = first.detail ?? {};
  return {
    ...first,
    time: window.lastTime,
    detail: { ...detail, repeats: window.repeats, firstTime: window.first.time },
  };
}
