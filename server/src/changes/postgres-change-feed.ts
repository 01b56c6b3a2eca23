/**
 * Change feed over PostgreSQL LISTEN/NOTIFY, for server processes sharing one PostgreSQL index. Each
 * process keeps one connection LISTENing on the channel of its index schema and sends with
 * `pg_notify` on a second one, right after the change's own transaction committed. PostgreSQL delivers
 * notifications in commit order to every listening session, including the sender's (skipped by origin).
 *
 * The listening connection is watched: an error, its end, or a heartbeat (`SELECT 1` every
 * `heartbeatMs`) that fails marks the feed lost (caches flushed and bypassed); it reconnects with
 * back-off and, once LISTENing again, flushes once more.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { BaseChangeFeed } from './change-feed.js';

export interface PostgresChangeFeedOptions {
  connectionString: string;
  schema: string;
  heartbeatMs?: number;
}

/** The channel of one index: one per schema (test suites and hospitals may share a server). */
export function channelOf(schema: string): string {
  return `pacs_changes_${createHash('sha1').update(schema).digest('hex').slice(0, 16)}`;
}

export class PostgresChangeFeed extends BaseChangeFeed {
  readonly backend = 'postgres' as const;
  readonly channel: string;
  private listener: pg.Client | undefined;
  private readonly sender: pg.Pool;
  private retryMs = 250;
  private reconnecting: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    private readonly options: PostgresChangeFeedOptions,
    log: Logger,
  ) {
    super(log);
    this.channel = channelOf(options.schema);
    this.sender = new pg.Pool({ connectionString: options.connectionString, max: 1, idleTimeoutMillis: 30_000, application_name: 'filmless-pacs change feed' });
    this.sender.on('error', () => undefined);
    this.heartbeat = setInterval(() => void this.beat(), options.heartbeatMs ?? 5000);
    this.heartbeat.unref();
  }

  /** Resolves once LISTENing (the first connection must work: the index is on the same server). */
  static async open(options: PostgresChangeFeedOptions, log: Logger): Promise<PostgresChangeFeed> {
    const feed = new PostgresChangeFeed(options, log);
    try {
      await feed.listen();
    } catch (err) {
      await feed.close();
      throw err;
    }
    return feed;
  }

  /** The backend pid of the LISTENing session (tests end it to imitate a lost connection). */
  get listenerPid(): number | undefined {
    return (this.listener as unknown as { processID?: number } | undefined)?.processID;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString, keepAlive: true, connectionTimeoutMillis: 5000, application_name: 'filmless-pacs change feed' });
    const broken = (err: unknown) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      this.lost(err ?? new Error('connection ended'));
      this.scheduleReconnect();
    };
    client.on('error', broken);
    client.on('end', () => broken(new Error('connection ended')));
    client.on('notification', (message) => {
      if (message.channel === this.channel && message.payload !== undefined) this.received(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
    } catch (err) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.retryMs = 250;
    this.regained();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnecting !== undefined) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5000);
    this.reconnecting = setTimeout(() => {
      this.reconnecting = undefined;
      this.listen().catch((err: unknown) => {
        this.lost(err);
        this.scheduleReconnect();
      });
    }, wait);
    this.reconnecting.unref();
  }

  /** A session that died silently (network gone without a reset) is found within a heartbeat. */
  private async beat(): Promise<void> {
    const client = this.listener;
    if (client === undefined || this.closed) return;
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('heartbeat timed out')), 3000).unref());
    try {
      await Promise.race([client.query('SELECT 1'), timeout]);
    } catch (err) {
      if (this.listener === client) client.emit('error', err);
    }
  }

  protected async send(messages: string[]): Promise<void> {
    for (const payload of messages) await this.sender.query('SELECT pg_notify($1, $2)', [this.channel, payload]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    if (this.reconnecting !== undefined) clearTimeout(this.reconnecting);
    const client = this.listener;
    this.listener = undefined;
    if (client !== undefined) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
    await this.sender.end().catch(() => undefined);
  }
}
