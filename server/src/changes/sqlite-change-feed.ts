/**
 * Change feed of several server processes sharing one SQLite index file on one machine (WAL): a table
 * of changes in the index file, `change_feed (seq, at, payload)`, written right after the change's own
 * transaction committed (one `INSERT` through the process's write gate), read by every process every
 * `pollMs` (100 ms by default).
 *
 * A poll costs one `PRAGMA data_version` (a counter SQLite bumps when another connection committed:
 * nothing to read otherwise), then one indexed `SELECT … WHERE seq > ?` on this feed's own read
 * connection; see docs/architecture.md "Change feed" for the measured cost. The table keeps the last
 * `KEEP_ROWS` changes (pruned by the writer): a process that missed more than that (stopped in a
 * debugger) sees a gap in `seq` and flushes. A failing poll flushes and bypasses caches until one works.
 */
import Database from 'better-sqlite3';
import { sql, type Generated } from 'kysely';
import type { Logger } from 'pino';
import { openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import { BaseChangeFeed } from './change-feed.js';

/** Changes kept in the table: ample for processes that poll every 100 ms. */
export const KEEP_ROWS = 10_000;
/** Rows read per poll at most (the next poll reads on). */
const PAGE = 500;

interface ChangeFeedTable {
  change_feed: { seq: Generated<number>; at: number; payload: string };
}

export interface SqliteChangeFeedOptions {
  file: string;
  pollMs: number;
}

export class SqliteChangeFeed extends BaseChangeFeed {
  readonly backend = 'sqlite' as const;
  private lastSeq = 0;
  private dataVersion = -1;
  private readonly timer: NodeJS.Timeout;
  private readonly readRows: Database.Statement<[number, number], { seq: number; payload: string }>;
  private readonly readVersion: Database.Statement<[], { data_version: number }>;

  private constructor(
    private readonly writer: SideDatabase<ChangeFeedTable>,
    private readonly reader: Database.Database,
    log: Logger,
    pollMs: number,
  ) {
    super(log);
    this.readRows = reader.prepare('SELECT seq, payload FROM change_feed WHERE seq > ? ORDER BY seq LIMIT ?');
    this.readVersion = reader.prepare('PRAGMA data_version');
    const last = reader.prepare('SELECT max(seq) AS seq FROM change_feed').get() as { seq: number | null };
    this.lastSeq = last.seq ?? 0;
    this.timer = setInterval(() => this.poll(), pollMs);
    this.timer.unref();
  }

  static async open(options: SqliteChangeFeedOptions, log: Logger): Promise<SqliteChangeFeed> {
    const writer = openSideDatabase<ChangeFeedTable>({ kind: 'sqlite', file: options.file });
    let reader: Database.Database | undefined;
    try {
      await writer.write((db) =>
        sql`CREATE TABLE IF NOT EXISTS change_feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, payload TEXT NOT NULL)`.execute(db),
      );
      reader = new Database(options.file, { fileMustExist: true });
      // Reads only; never wait in the busy handler (it would sleep on the event loop): a poll that
      // finds the file busy fails, flushes, and the next one goes on.
      reader.pragma('busy_timeout = 0');
      return new SqliteChangeFeed(writer, reader, log, options.pollMs);
    } catch (err) {
      reader?.close();
      await writer.db.destroy();
      throw err;
    }
  }

  /** Reads what other processes announced since the last poll (also called by tests to skip the wait). */
  poll(): void {
    if (this.closed) return;
    try {
      const version = this.readVersion.get()!.data_version;
      if (version === this.dataVersion) {
        this.regained();
        return;
      }
      for (;;) {
        const rows = this.readRows.all(this.lastSeq, PAGE);
        if (rows.length > 0 && rows[0]!.seq !== this.lastSeq + 1) {
          this.deliver({ kind: 'flush', reason: 'gap' });
        }
        for (const row of rows) {
          this.lastSeq = row.seq;
          this.received(row.payload);
        }
        if (rows.length < PAGE) break;
      }
      // Only now: a commit between the version read and the rows is seen by the next poll.
      this.dataVersion = version;
      this.regained();
    } catch (err) {
      this.lost(err);
    }
  }

  protected async send(messages: string[]): Promise<void> {
    await this.writer.write(async (db) => {
      let seq = 0;
      for (const payload of messages) {
        const inserted = await db.insertInto('change_feed').values({ at: Date.now(), payload }).returning('seq').executeTakeFirstOrThrow();
        seq = inserted.seq;
      }
      await db.deleteFrom('change_feed').where('seq', '<=', seq - KEEP_ROWS).execute();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.reader.close();
    await this.writer.db.destroy();
  }
}
