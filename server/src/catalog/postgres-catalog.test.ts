import { describe, it } from 'vitest';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { runCatalogContract } from './catalog.contract.js';
import { createCatalog } from './create-catalog.js';

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
