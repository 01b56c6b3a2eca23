import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { eventually, quietLogger, runChangeFeedContract } from './change-feed.contract.js';
import { PostgresChangeFeed } from './postgres-change-feed.js';

async function asAdmin(statement: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(statement, values);
  } finally {
    await client.end();
  }
}

async function twoFeeds() {
  // The channel is per index schema: a fresh name keeps parallel test files apart (the schema need not exist).
  const schema = `feed_test_${randomBytes(4).toString('hex')}`;
  const a = await PostgresChangeFeed.open({ connectionString: TEST_POSTGRES_URL, schema, heartbeatMs: 500 }, quietLogger());
  const b = await PostgresChangeFeed.open({ connectionString: TEST_POSTGRES_URL, schema, heartbeatMs: 500 }, quietLogger());
  return { a, b, teardown: async () => void (await Promise.all([a.close(), b.close()])) };
}

runChangeFeedContract(
  'PostgreSQL LISTEN/NOTIFY',
  async () => {
    const feeds = await twoFeeds();
    // b's LISTENing session is ended by the server (as a restart or a network cut would).
    return { ...feeds, interrupt: () => asAdmin('SELECT pg_terminate_backend($1)', [feeds.b.listenerPid]) };
  },
  { crossProcess: true },
);

describe('PostgresChangeFeed', () => {
  it('uses one channel per index schema: another schema hears nothing', async () => {
    const feeds = await twoFeeds();
    const other = await PostgresChangeFeed.open({ connectionString: TEST_POSTGRES_URL, schema: `feed_other_${randomBytes(4).toString('hex')}` }, quietLogger());
    try {
      const heard: string[] = [];
      other.subscribe((change) => heard.push(change.kind));
      const onB: string[] = [];
      feeds.b.subscribe((change) => onB.push(change.kind));
      await feeds.a.publish({ kind: 'link-revoked', linkId: 'x' });
      await eventually(() => expect(onB).toEqual(['link-revoked']));
      expect(heard).toEqual([]);
    } finally {
      await other.close();
      await feeds.teardown();
    }
  });
});
