import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { quietLogger, runChangeFeedContract } from './change-feed.contract.js';
import { RedisChangeFeed } from './redis-change-feed.js';

const REDIS_URL = process.env.PACS_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

runChangeFeedContract(
  'Redis pub/sub',
  async () => {
    const prefix = `feed-test-${randomBytes(4).toString('hex')}`;
    const a = await RedisChangeFeed.open({ url: REDIS_URL, prefix, heartbeatMs: 500 }, quietLogger());
    const b = await RedisChangeFeed.open({ url: REDIS_URL, prefix, heartbeatMs: 500 }, quietLogger());
    return {
      a,
      b,
      // b's subscriber connection is killed by the server (CLIENT KILL), as a Redis restart would.
      interrupt: async () => {
        const admin = new Redis(REDIS_URL);
        try {
          const list = (await admin.client('LIST')) as string;
          const line = list.split('\n').find((entry) => entry.includes(`name=${b.connectionName} `));
          const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
          if (id === undefined) throw new Error('the subscriber connection was not found');
          await admin.client('KILL', 'ID', id);
        } finally {
          admin.disconnect();
        }
      },
      teardown: async () => void (await Promise.all([a.close(), b.close()])),
    };
  },
  { crossProcess: true },
);

describe('the Redis change feed with Redis down at start', () => {
  it('opens anyway, not live (caches bypassed), instead of stopping the server from starting', async () => {
    const feed = await RedisChangeFeed.open({ url: 'redis://127.0.0.1:1', prefix: 'feed-down', heartbeatMs: 500 }, quietLogger());
    try {
      expect(feed.live).toBe(false);
      // Announcing a change meanwhile is not an error either (it is logged).
      await expect(feed.publish({ kind: 'flush', reason: 'announced' })).resolves.toBeUndefined();
    } finally {
      await feed.close();
    }
  });
});
