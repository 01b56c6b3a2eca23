/**
 * The side stores of one process (audit, jobs, hospital link, reports, FHIR, sharing, backups, AI usage)
 * share one PostgreSQL pool: however many are open and however busy, the process holds at most
 * SIDE_POOL_SIZE connections for them, so several servers stay within PostgreSQL's max_connections.
 */
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL, type TestSchema } from '../test-support/postgres-test-schema.js';
import { openSideDatabase, SIDE_POOL_APPLICATION_NAME, SIDE_POOL_SIZE } from './open-side-database.js';

const available = await isPostgresAvailable();
if (!available) console.warn('open-side-database tests skipped: PostgreSQL at 127.0.0.1:5432 not available');

describe.skipIf(!available)('side stores on PostgreSQL', () => {
  let schema: TestSchema;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });

  beforeAll(async () => {
    schema = createTestSchema('pacs_side');
    await admin.connect();
    await admin.query(`create schema ${schema.schema}`);
  });
  afterAll(async () => {
    await admin.end();
    await schema.drop();
  });

  /**
   * Open backends of the side pool that ran this test's queries (each names the schema in a comment, and
   * pg_stat_activity keeps an idle backend's last query): other test files may use side pools meanwhile.
   */
  const marker = () => sql.raw(`/* ${schema.schema} */`);
  const sideConnections = async (): Promise<number> => {
    const { rows } = await admin.query(
      `select count(*)::int as n from pg_stat_activity where application_name = $1 and query like $2`,
      [SIDE_POOL_APPLICATION_NAME, `%/* ${schema.schema} */%`],
    );
    return (rows[0] as { n: number }).n;
  };
  const one = async (db: Kysely<Record<string, never>>) => (await sql<{ one: number }>`select 1 as one ${marker()}`.execute(db)).rows[0]?.one;

  it('hold at most the shared pool of connections however many stores are busy, and close one by one', async () => {
    const index = { kind: 'postgres' as const, connectionString: schema.connectionString, schema: schema.schema, poolSize: 10 };
    const stores = Array.from({ length: 6 }, () => openSideDatabase<Record<string, never>>(index));
    let peak = 0;
    let done = false;
    const watch = (async () => {
      while (!done) {
        peak = Math.max(peak, await sideConnections());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    // 6 stores × 4 concurrent transactions of 150 ms each: 24 would want a connection at once.
    const started = Date.now();
    await Promise.all(
      stores.flatMap((store) =>
        Array.from({ length: 4 }, () => store.transaction(async (trx) => sql`select pg_sleep(0.15) ${marker()}`.execute(trx))),
      ),
    );
    const elapsed = Date.now() - started;
    done = true;
    await watch;
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(SIDE_POOL_SIZE);
    // They waited for each other's connection rather than failing: 24 × 150 ms over 4 connections.
    expect(elapsed).toBeGreaterThanOrEqual(Math.floor((24 / SIDE_POOL_SIZE) * 150) - 50);

    // Closing one store leaves the others working; the pool ends with the last.
    await stores[0]!.db.destroy();
    expect(await one(stores[1]!.db)).toBe(1);
    for (const store of stores.slice(1)) await store.db.destroy();
    await expect.poll(sideConnections, { timeout: 5000 }).toBe(0);

    // A store opened afterwards gets a fresh pool.
    const later = openSideDatabase<Record<string, never>>(index);
    expect(await one(later.db)).toBe(1);
    await later.db.destroy();
  });
});
