import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, type Generated } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { StatementTemplates } from './statement-templates.js';

interface Db {
  items: { id: Generated<number>; name: string; size: number | null };
}

const database = new Database(':memory:');
database.exec('create table items (id integer primary key, name text not null, size integer)');
const db = new Kysely<Db>({ dialect: new SqliteDialect({ database }) });
afterAll(() => db.destroy());

describe('statements compiled once, executed with new values', () => {
  it('gives the same rows as the statement built anew, for every set of values', async () => {
    const t = new StatementTemplates();
    for (const [name, size] of [['a', 1], ['b', null], ['c', 3]] as const) {
      await t.execute(db, 'insert', [name, size], (slot) => db.insertInto('items').values({ name: slot(0), size: slot(1) }));
    }
    for (const name of ['a', 'b', 'c', 'missing']) {
      const viaTemplate = await t.execute(db, 'byName', [name], (slot) => db.selectFrom('items').select(['name', 'size']).where('name', '=', slot(0)));
      const built = await db.selectFrom('items').select(['name', 'size']).where('name', '=', name).execute();
      expect(viaTemplate.rows).toEqual(built);
    }
    const updated = await t.execute(db, 'grow', [10, 'a'], (slot) =>
      db.updateTable('items').set((eb) => ({ size: eb('size', '+', slot(0)) })).where('name', '=', slot(1)).returning('size'),
    );
    expect(updated.rows).toEqual([{ size: 11 }]);
    // Three templates (insert, byName, grow), each compiled once however often it ran.
    expect(t.size).toBe(3);
  });

  it('puts each value where its slot is, whatever the order of the slots in the statement', async () => {
    const t = new StatementTemplates();
    const rows = await t.execute(db, 'between', ['c', 'a'], (slot) =>
      db.selectFrom('items').select('name').where('name', '>=', slot(1)).where('name', '<=', slot(0)).orderBy('name'),
    );
    expect(rows.rows.map((r) => r.name)).toEqual(['a', 'b', 'c']);
  });

  it('refuses a template with a value frozen into it instead of a slot', async () => {
    const t = new StatementTemplates();
    await expect(t.execute(db, 'frozen', ['a'], () => db.selectFrom('items').select('name').where('name', '=', 'a'))).rejects.toThrow(/"frozen": parameter 1 is a value, not a slot/);
  });
});
