/**
 * Change feed section (PACS_CHANGE_FEED*): how the server processes sharing one index tell each other
 * what changed, so that no cache answers from before a change made elsewhere (server/src/changes,
 * docs/architecture.md "Change feed").
 */
import type { EnvReader } from './env-reader.js';

export const CHANGE_FEED_KINDS = ['auto', 'memory', 'sqlite', 'postgres', 'redis'] as const;
export type ChangeFeedKind = (typeof CHANGE_FEED_KINDS)[number];

export interface ChangeFeedConfig {
  /**
   * PACS_CHANGE_FEED: `auto` (default) picks PostgreSQL LISTEN/NOTIFY when the index is PostgreSQL,
   * else Redis pub/sub when Redis is configured (PACS_JOBS_QUEUE=bullmq, PACS_REDIS_URL), else the
   * polled change table of a SQLite index file, else (an in-memory index) in-process only. `memory`:
   * in-process only (one server process on the index). `sqlite`, `postgres`, `redis`: that backend.
   */
  kind: ChangeFeedKind;
  /** PACS_CHANGE_FEED_POLL_MS: how often the SQLite change table is looked at (default 100 ms). */
  pollMs: number;
}

export function readChangeFeedConfig(read: EnvReader): ChangeFeedConfig {
  return {
    kind: read.oneOf('PACS_CHANGE_FEED', CHANGE_FEED_KINDS, 'auto'),
    pollMs: read.integer('PACS_CHANGE_FEED_POLL_MS', 100, 10, 10_000),
  };
}
