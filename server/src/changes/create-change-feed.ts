/**
 * Builds the configured change feed (PACS_CHANGE_FEED, default `auto`): PostgreSQL LISTEN/NOTIFY when
 * the index is PostgreSQL, else Redis pub/sub when Redis is configured (PACS_JOBS_QUEUE=bullmq), else
 * the polled change table of a SQLite index file, else in-process only (an in-memory index).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { InProcessChangeFeed, type ChangeFeed, type ChangeFeedBackend } from './change-feed.js';
import { PostgresChangeFeed } from './postgres-change-feed.js';
import { RedisChangeFeed } from './redis-change-feed.js';
import { SqliteChangeFeed } from './sqlite-change-feed.js';

type FeedConfig = Pick<Config, 'changes' | 'index' | 'jobs'>;

/** The backend `auto` (or the explicit choice) resolves to for this configuration. */
export function changeFeedBackend(config: FeedConfig): ChangeFeedBackend {
  const { kind } = config.changes;
  if (kind !== 'auto') return kind;
  if (config.index.kind === 'postgres') return 'postgres';
  if (config.jobs.queue === 'bullmq') return 'redis';
  return config.index.file === ':memory:' ? 'memory' : 'sqlite';
}

export async function createChangeFeed(config: FeedConfig, log: Logger): Promise<ChangeFeed> {
  const backend = changeFeedBackend(config);
  const { index } = config;
  switch (backend) {
    case 'memory':
      return new InProcessChangeFeed(log);
    case 'sqlite':
      if (index.kind !== 'sqlite' || index.file === ':memory:') throw new AppError('CONFIG_INVALID', 'PACS_CHANGE_FEED=sqlite needs a SQLite index file (PACS_INDEX=sqlite)');
      return SqliteChangeFeed.open({ file: index.file, pollMs: config.changes.pollMs }, log);
    case 'postgres':
      if (index.kind !== 'postgres') throw new AppError('CONFIG_INVALID', 'PACS_CHANGE_FEED=postgres needs a PostgreSQL index (PACS_INDEX=postgres)');
      return PostgresChangeFeed.open({ connectionString: index.connectionString, schema: index.schema }, log);
    case 'redis':
      return RedisChangeFeed.open({ url: config.jobs.redisUrl, prefix: config.jobs.redisPrefix }, log);
  }
}
