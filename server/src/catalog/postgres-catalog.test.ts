import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { runCatalogContract } from './catalog.contract.js';
import { createCatalog } from './create-catalog.js';
import { PostgresCatalog, warningsOfSettings } from './postgres-catalog.js';

const available = await isPostgresAvailable();

if (available) {
  // A fresh schema per test (created by migrate, dropped with CASCADE afterwards).
  runCatalogContract('PostgreSQL', async () => {
    const testSchema = createTestSchema();
    const catalog = await createCatalog({
      kind: 'postgres',
      connectionString: testSchema.connectionString,
      schema: testSchema.schema,
      poolSize: 5,
    });
    return {
      catalog,
      async teardown() {
        await catalog.close();
        await testSchema.drop();
      },
    };
  });
} else if (process.env.PACS_TEST_SKIP_POSTGRES === '1') {
  describe('PostgreSQL catalog', () => {
    it.skip('skipped on request (PACS_TEST_SKIP_POSTGRES=1)', () => {});
  });
} else {
  // The production index must really be exercised: a missing server is a failure, not a silent skip.
  describe('PostgreSQL catalog', () => {
    it('needs the PostgreSQL test server', () => {
      throw new Error(
        `No PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')}: start it (.ci/run does) or set PACS_TEST_POSTGRES_URL; PACS_TEST_SKIP_POSTGRES=1 skips explicitly`,
      );
    });
  });
}

describe('PostgreSQL settings the operator is warned about at start-up', () => {
  it('warns when autovacuum is off and says what to do', () => {
    const [warning, ...rest] = warningsOfSettings({ autovacuum: 'off', trackCounts: 'on' });
    expect(rest).toEqual([]);
    expect(warning).toMatch(/autovacuum is off/);
    expect(warning).toMatch(/VACUUM ANALYZE/);
  });

  it('says nothing with the defaults', () => {
    expect(warningsOfSettings({ autovacuum: 'on', trackCounts: 'on' })).toEqual([]);
  });

  it.runIf(available)('reads the settings of the server it is connected to', async () => {
    const testSchema = createTestSchema();
    const catalog = new PostgresCatalog({ connectionString: testSchema.connectionString, schema: testSchema.schema, poolSize: 1 });
    try {
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      const { rows } = await client.query<{ autovacuum: string }>('show autovacuum');
      await client.end();
      const warnings = await catalog.engineWarnings();
      expect(warnings.length).toBe(rows[0]!.autovacuum === 'on' ? 0 : 1);
    } finally {
      await catalog.close();
      await testSchema.drop();
    }
  });
});
