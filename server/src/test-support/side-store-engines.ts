/**
 * Runs a side store's contract suite on both index databases: an SQLite file, and PostgreSQL in a
 * throw-away schema of the machine's server (127.0.0.1:5432, database `test`). A missing PostgreSQL is a
 * failure (the production index must really be exercised), unless PACS_TEST_SKIP_POSTGRES=1 says to skip.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';
import type { IndexConfig } from '../config.js';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from './postgres-test-schema.js';

export interface SideStoreUnderTest<S> {
  store: S;
  /** The same database opened again (a restart, or a second server). */
  openAgain: () => Promise<S>;
  teardown(): Promise<void>;
}

export interface SideStoreEngines<S> {
  /** For test names: 'the report store'. */
  what: string;
  /** Temp folder and PostgreSQL schema name prefixes: 'report-store-', 'pacs_reports'. */
  tempPrefix: string;
  schemaPrefix: string;
  open: (index: IndexConfig) => Promise<S>;
  contract: (engine: string, setUp: () => Promise<SideStoreUnderTest<S>>) => void;
}

export async function runOnBothIndexes<S extends { close(): Promise<void> }>(suite: SideStoreEngines<S>): Promise<void> {
  const underTest = async (index: IndexConfig, cleanup: () => Promise<void>): Promise<SideStoreUnderTest<S>> => {
    const store = await suite.open(index);
    return {
      store,
      openAgain: () => suite.open(index),
      async teardown() {
        await store.close();
        await cleanup();
      },
    };
  };
  suite.contract('SQLite', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), suite.tempPrefix));
    return underTest({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') }, () => rm(dir, { recursive: true, force: true }));
  });
  if (await isPostgresAvailable()) {
    suite.contract('PostgreSQL', async () => {
      // The catalog creates the schema in production (it opens first); here the test does.
      const schema = createTestSchema(suite.schemaPrefix);
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      await client.query(`create schema if not exists ${schema.schema}`);
      await client.end();
      return underTest({ kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 2 }, () => schema.drop());
    });
  } else if (process.env.PACS_TEST_SKIP_POSTGRES === '1') {
    describe(`${suite.what} on PostgreSQL`, () => {
      it.skip('skipped on request (PACS_TEST_SKIP_POSTGRES=1)', () => {});
    });
  } else {
    describe(`${suite.what} on PostgreSQL`, () => {
      it('needs the PostgreSQL test server', () => {
        throw new Error(`No PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')}: start it (.ci/run does) or set PACS_TEST_POSTGRES_URL; PACS_TEST_SKIP_POSTGRES=1 skips explicitly`);
      });
    });
  }
}
