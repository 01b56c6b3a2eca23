/**
 * Fixed-shape statements built and compiled by Kysely once, then executed with new parameters.
 *
 * Why: Kysely builds an immutable operation tree and compiles it to SQL on every execution (~25 µs per
 * statement here), and ingest runs the same handful of statements for every instance: that was a quarter
 * of the catalog transaction's CPU in a profile of one-instance STOW-RS requests (docs/benchmarks.md,
 * "Where one C-STORE's time goes"). Kysely has no prepared-query API; better-sqlite3's `prepare` is already
 * cached (sqlite-statement-cache.ts), so the building is all that is left to save. Written by hand: the
 * statement is built once with placeholders (`slot(i)`) in place of its values, and its compiled parameter
 * list records which argument goes where.
 *
 * Rules for a template: its SQL must depend only on its key, never on the values (a row whose set of
 * columns can change must put the columns into the key), and every value must come from a slot. A
 * parameter that is not a slot makes the first compilation throw, so a constant hidden in a template
 * cannot be frozen into it by mistake. One set of templates per Kysely instance (per dialect).
 */
import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';

class Slot {
  constructor(readonly index: number) {}
}

interface Template {
  sql: string;
  /** For each parameter of `sql`, in order, the index of the argument it takes. */
  slots: number[];
}

/** Most templates a catalog keeps (instance inserts are keyed by their column set, which varies little). */
const MAX_TEMPLATES = 200;

export class StatementTemplates {
  private readonly templates = new Map<string, Template>();

  /**
   * Executes the statement `key` with `args` on `db` (a connection or a transaction of the Kysely instance
   * the templates belong to); `build` makes it, with `slot(i)` standing for `args[i]`, only the first time.
   */
  // A slot stands for a value of any column type in the builder: typed `any` for that reason only.
  async execute<R>(db: Kysely<any>, key: string, args: readonly unknown[], build: (slot: (index: number) => any) => Compilable<R>): Promise<QueryResult<R>> {
    let template = this.templates.get(key);
    if (template === undefined) {
      const compiled = build((index) => new Slot(index)).compile();
      const slots = compiled.parameters.map((parameter, at) => {
        if (!(parameter instanceof Slot)) throw new Error(`statement template "${key}": parameter ${at + 1} is a value, not a slot`);
        return parameter.index;
      });
      template = { sql: compiled.sql, slots };
      if (this.templates.size >= MAX_TEMPLATES) this.templates.clear();
      this.templates.set(key, template);
    }
    return db.executeQuery<R>(CompiledQuery.raw(template.sql, template.slots.map((index) => args[index])));
  }

  get size(): number {
    return this.templates.size;
  }
}
