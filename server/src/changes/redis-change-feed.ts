/**
 * Change feed over Redis pub/sub, for server processes that share an index and a Redis (the BullMQ
 * queue's, PACS_REDIS_URL): one subscriber connection on `<prefix>:changes`, one publisher.
 *
 * Pub/sub delivers nothing sent while a subscriber is disconnected, so a closed subscriber connection
 * marks the feed lost (caches flushed and bypassed) and the feed is regained only once SUBSCRIBEd
 * again on a new connection (then flushed once more). A PING every `heartbeatMs` finds a connection
 * that died silently. The publisher does not queue while Redis is away: a publish then fails at once
 * and is logged (the others' subscriptions broke too, and they flush when back).
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { BaseChangeFeed } from './change-feed.js';

export interface RedisChangeFeedOptions {
  url: string;
  /** Key prefix of this deployment (PACS_REDIS_PREFIX); the channel is `<prefix>:changes`. */
  prefix: string;
  heartbeatMs?: number;
}

export class RedisChangeFeed extends BaseChangeFeed {
  readonly backend = 'redis' as const;
  readonly channel: string;
  /** The subscriber connection's CLIENT SETNAME (tests find it in CLIENT LIST). */
  readonly connectionName: string;
  private readonly subscriber: Redis;
  private readonly publisher: Redis;
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(options: RedisChangeFeedOptions, log: Logger) {
    super(log);
    this.channel = `${options.prefix}:changes`;
    this.connectionName = `pacs-change-feed-${this.origin.slice(0, 8)}`;
    const retryStrategy = (times: number) => Math.min(250 * 2 ** Math.min(times, 5), 5000);
    this.subscriber = new Redis(options.url, { lazyConnect: true, autoResubscribe: false, maxRetriesPerRequest: null, retryStrategy, connectionName: this.connectionName });
    this.publisher = new Redis(options.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy });
    this.subscriber.on('error', () => undefined);
    this.publisher.on('error', () => undefined);
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.received(message);
    });
    this.subscriber.on('close', () => this.lost(new Error('Redis subscriber connection closed')));
    // Every connection after the first: subscribe again, then flush (what was sent meanwhile is lost).
    this.subscriber.on('ready', () => {
      if (this.live) return;
      this.subscriber.subscribe(this.channel).then(
        () => this.regained(),
        (err: unknown) => {
          this.log.warn({ backend: 'redis', message: err instanceof Error ? err.message : 'unknown' }, 'change feed: subscribing again failed');
          this.subscriber.disconnect(true);
        },
      );
    });
    this.heartbeat = setInterval(() => void this.beat(), options.heartbeatMs ?? 5000);
    this.heartbeat.unref();
  }

  static async open(options: RedisChangeFeedOptions, log: Logger): Promise<RedisChangeFeed> {
    const feed = new RedisChangeFeed(options, log);
    try {
      await feed.subscriber.connect();
      await feed.subscriber.subscribe(feed.channel);
    } catch (err) {
      // Redis down at start: the server still starts (as the BullMQ queue does), with its caches bypassed
      // until the subscriber connects; ioredis keeps retrying and the `ready` handler subscribes then.
      feed.lost(err);
    }
    // Publishing needs no connection at start: a change announced while Redis is down is logged
    // (publish), and every other process flushes when its own subscription comes back.
    feed.publisher.connect().catch(() => undefined);
    return feed;
  }

  private async beat(): Promise<void> {
    if (this.closed || this.subscriber.status !== 'ready') return;
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('heartbeat timed out')), 3000).unref());
    try {
      await Promise.race([this.subscriber.ping(), timeout]);
    } catch {
      if (!this.closed) this.subscriber.disconnect(true);
    }
  }

  protected async send(messages: string[]): Promise<void> {
    for (const message of messages) await this.publisher.publish(this.channel, message);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}
