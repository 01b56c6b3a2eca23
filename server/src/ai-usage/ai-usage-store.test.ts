/**
 * The AI usage store contract (ai-usage-store.contract.ts) on both index databases: an SQLite file, and
 * PostgreSQL in a throw-away schema of the machine's server (127.0.0.1:5432, database `test`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';
import type { IndexConfig } from '../config.js';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { runAiUsageStoreContract } from './ai-usage-store.contract.js';
import { AiUsageStore } from './ai-usage-store.js';

async function underTest(index: IndexConfig, cleanup: () => Promise<void>) {
  const store = await AiUsageStore.open(index);
  return {
    store,
    openAgain: () => AiUsageStore.open(index),
    async teardown() {
      await store.close();
      await cleanup();
    },
  };
}

runAiUsageStoreContract('SQLite', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ai-usage-store-'));
  return underTest({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') }, () => rm(dir, { recursive: true, force: true }));
});

const postgres = await isPostgresAvailable();
if (postgres) {
  runAiUsageStoreContract('PostgreSQL', async () => {
    // The catalog creates the schema in production (it opens first); here the test does.
    const schema = createTestSchema('pacs_ai_usage');
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    await client.query(`create schema if not exists ${schema.schema}`);
    await client.end();
    return underTest({ kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 2 }, () => schema.drop());
  });
} else if (process.env.PACS_TEST_SKIP_POSTGRES === '1') {
  describe('the AI usage store on PostgreSQL', () => {
    it.skip('skipped on request (PACS_TEST_SKIP_POSTGRES=1)', () => {});
  });
} else {
  describe('the AI usage store on PostgreSQL', () => {
    it('needs the PostgreSQL test server', () => {
      throw new Error(`No PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')}: start it (.ci/run does) or set PACS_TEST_POSTGRES_URL; PACS_TEST_SKIP_POSTGRES=1 skips explicitly`);
    });
  });
}
