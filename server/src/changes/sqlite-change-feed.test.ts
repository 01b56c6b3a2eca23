import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { eventually, quietLogger, runChangeFeedContract } from './change-feed.contract.js';
import { SqliteChangeFeed } from './sqlite-change-feed.js';

async function twoFeeds(pollMs = 20) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'change-feed-sqlite-'));
  const file = path.join(dir, 'index.sqlite');
  const a = await SqliteChangeFeed.open({ file, pollMs }, quietLogger());
  const b = await SqliteChangeFeed.open({ file, pollMs }, quietLogger());
  return {
    file,
    a,
    b,
    teardown: async () => {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

runChangeFeedContract(
  'SQLite change table',
  async () => {
    const feeds = await twoFeeds();
    return {
      ...feeds,
      // b misses rows: they are gone from the table before it reads them (pruned), a gap in seq.
      interrupt: async () => {
        const db = new Database(feeds.file);
        try {
          const { seq } = db.prepare('SELECT max(seq) AS seq FROM change_feed').get() as { seq: number };
          db.prepare('INSERT INTO change_feed (seq, at, payload) VALUES (?, ?, ?)').run(seq + 5, Date.now(), '{"o":"gone","c":{"kind":"link-revoked","linkId":"x"}}');
          db.prepare('DELETE FROM change_feed WHERE seq = ?').run(seq + 5);
        } finally {
          db.close();
        }
      },
    };
  },
  { crossProcess: true },
);

describe('SqliteChangeFeed', () => {
  it('flushes and bypasses caches while the table cannot be read, then flushes again', async () => {
    const feeds = await twoFeeds(20);
    try {
      const heard: string[] = [];
      feeds.b.subscribe((change) => heard.push(change.kind === 'flush' ? `flush:${change.reason}` : change.kind));
      const db = new Database(feeds.file);
      db.exec('ALTER TABLE change_feed RENAME TO change_feed_away');
      await eventually(() => expect(feeds.b.live).toBe(false));
      expect(heard).toContain('flush:lost');
      db.exec('ALTER TABLE change_feed_away RENAME TO change_feed');
      db.close();
      await eventually(() => expect(feeds.b.live).toBe(true));
      expect(heard.at(-1)).toBe('flush:regained');
    } finally {
      await feeds.teardown();
    }
  });

  it('costs a poll little: data_version unchanged reads nothing (measured, printed)', async () => {
    const feeds = await twoFeeds(10_000);
    try {
      const rounds = 20_000;
      const start = process.hrtime.bigint();
      for (let i = 0; i < rounds; i += 1) feeds.b.poll();
      const idle = Number(process.hrtime.bigint() - start) / rounds / 1000;
      await feeds.a.publish({ kind: 'link-revoked', linkId: 'x' });
      const startChanged = process.hrtime.bigint();
      feeds.b.poll();
      const changed = Number(process.hrtime.bigint() - startChanged) / 1000;
      console.log(`SQLite change feed poll: ${idle.toFixed(2)} µs when nothing changed, ${changed.toFixed(1)} µs reading one change`);
      expect(idle).toBeLessThan(200);
    } finally {
      await feeds.teardown();
    }
  });
});
