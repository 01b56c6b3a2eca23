/**
 * Throw-away PostgreSQL schemas for tests: each call gets a unique schema in the test database and a
 * `drop()` that removes it with everything in it. The database comes from PACS_TEST_POSTGRES_URL,
 * defaulting to the local trust-auth server.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_POSTGRES_URL = process.env.PACS_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  connectionString: string;
  schema: string;
  drop(): Promise<void>;
}

async function withClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** True when the test database answers; lets suites skip (with a visible notice) where it does not. */
export async function isPostgresAvailable(): Promise<boolean> {
  try {
    await withClient((client) => client.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/** A fresh, not yet existing schema name (the code under test is expected to create it). */
export function createTestSchema(prefix = 'pacs_test'): TestSchema {
  const schema = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  return {
    connectionString: TEST_POSTGRES_URL,
    schema,
    drop: () => withClient(async (client) => void (await client.query(`drop schema if exists "${schema}" cascade`))),
  };
}
