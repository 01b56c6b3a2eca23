/**
 * Kysely's SQLite driver prepares every statement anew. Ingest runs the same few statements for each
 * instance, in the catalog and in the stores beside it (audit trail, hospital link, change feed), and
 * preparing them was a fifth of the catalog's ingest CPU and most of the rest's. better-sqlite3
 * statements are reusable, and Kysely runs one statement at a time on a single connection (nothing here
 * streams with `.stream()`, which would hold a statement open), so a cache keyed by the SQL is safe.
 */
import type Database from 'better-sqlite3';

const MAX_CACHED = 500;

/** The connection, with `prepare` answered from a per-connection cache keyed by SQL text. */
export function withStatementCache(database: Database.Database): Database.Database {
  const cache = new Map<string, Database.Statement>();
  return new Proxy(database, {
    get(target, property, receiver) {
      if (property !== 'prepare') {
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (source: string) => {
        let statement = cache.get(source);
        if (!statement) {
          statement = target.prepare(source);
          // Ad hoc statements (QIDO with its many shapes) must not grow the cache without bound.
          if (cache.size >= MAX_CACHED) cache.clear();
          cache.set(source, statement);
        }
        return statement;
      };
    },
  });
}
