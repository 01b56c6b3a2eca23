/**
 * Group commit: writes submitted in the same turn of the event loop, or while a group is being written,
 * go together into the next group, one transaction for all of them. A lone write waits only for the
 * end of the current turn (setImmediate) and is written as a group of one.
 *
 * Why the turn: a better-sqlite3 transaction runs start to end without giving the event loop a turn
 * (its statements are synchronous; Kysely's awaits are microtasks), so ingests never queue behind one
 * another at the writer, and grouping only "what waits" would find groups of one (measured: every
 * group of 5,000 STOW-RS instances had one member; with the turn, groups of 1–6 for one client sending
 * 50-instance requests and 1–14 for four). Paired before/after on this 2-core machine (docs/
 * benchmarks.md, "Group commit of ingests"): +5–9 % instances/s where parts or clients overlap, no
 * change for one client sending one instance per request.
 *
 * Why: per transaction SQLite pays BEGIN, COMMIT and the WAL frames of every page the transaction
 * touched (the study and series rows, the upper pages of each index); instances of one series touch the
 * same pages, so a group writes them once instead of once per instance. The issue 22 design names it:
 * "one writer owning the index with group commit of concurrent requests".
 *
 * Written by hand (40 lines): dataloader with `batchScheduleFn: setImmediate` and no cache would
 * gather the same groups, but it is built for batched reads (a value or an Error per key, batches
 * dispatched side by side); this keeps one group in flight and settles a member only after its
 * group's commit, as ingest needs (an instance is acknowledged only once its row is committed: PS3.4
 * §B.2.3 for C-STORE, PS3.18 §10.5 for STOW-RS).
 */

/** What the group writer says about one member: its value, or the error it alone failed with. */
export type MemberOutcome<O> = { value: O } | { error: unknown };

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class GroupCommit<I, O> {
  private readonly waiting: Array<Waiting<I, O>> = [];
  private writing = false;

  /**
   * @param writeGroup writes the items in one transaction and returns one outcome per item, in order;
   *   a throw fails every member of the group with that error.
   * @param maxGroup most items in one group (the transaction holds the writer while it runs).
   */
  constructor(
    private readonly writeGroup: (items: readonly I[]) => Promise<ReadonlyArray<MemberOutcome<O>>>,
    private readonly maxGroup: number,
  ) {
    if (!Number.isInteger(maxGroup) || maxGroup < 1) throw new RangeError('maxGroup must be a whole number ≥ 1');
  }

  /** Resolves once the item's group is committed (or rejects with the item's own error or the group's). */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.writing || this.waiting.length === 0) return;
    this.writing = true;
    // The group is formed on the next turn of the event loop: the writes whose inputs became ready in
    // this turn (blobs made durable, parts parsed) join it instead of each waiting for a turn of its own.
    setImmediate(() => {
      const group = this.waiting.splice(0, this.maxGroup);
      void this.write(group).finally(() => {
        this.writing = false;
        this.next();
      });
    });
  }

  private async write(group: Array<Waiting<I, O>>): Promise<void> {
    let outcomes: ReadonlyArray<MemberOutcome<O>>;
    try {
      outcomes = await this.writeGroup(group.map((member) => member.item));
      if (outcomes.length !== group.length) throw new Error(`group writer returned ${outcomes.length} outcomes for ${group.length} items`);
    } catch (error) {
      for (const member of group) member.reject(error);
      return;
    }
    group.forEach((member, i) => {
      const outcome = outcomes[i]!;
      if ('value' in outcome) member.resolve(outcome.value);
      else member.reject(outcome.error);
    });
  }
}
