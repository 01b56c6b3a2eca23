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
} else {
  describe('PostgreSQL catalog', () => {
    it.skip(`skipped: no PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')} (set PACS_TEST_POSTGRES_URL)`, () => {});
  });
}
