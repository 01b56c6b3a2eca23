/**
 * The audit store on both index databases (SQLite file; PostgreSQL in a throw-away schema of the
 * machine's server): records come back as written, newest first, filtered and paged; and no one can
 * change or remove a record, even with SQL straight to the database (triggers refuse it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { IndexConfig } from '../config.js';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import type { AuditRecord } from './audit-record.js';
import { KyselyAuditStore } from './audit-store.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const postgres = await isPostgresAvailable();
if (!postgres) console.warn('PostgreSQL test server not reachable: audit store tests run on SQLite only');

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: Date.UTC(2026, 10, 25, 10, 0, 0),
    action: 'retrieve',
    outcome: 0,
    status: 200,
    who: { subject: 'user-1', name: 'Dr Reader', kind: 'token', roles: ['reader'] },
    clientAddress: '10.0.0.7',
    interface: 'dicomweb',
    route: 'GET /dicomweb/studies/:study',
    objects: [{ study: '1.2.3' }],
    ...overrides,
  };
}

/** Raw SQL to the same database, as an intruder with the application's credentials would send it. */
interface RawSql {
  run(statement: string): Promise<void>;
  close(): Promise<void>;
}

async function openIndex(kind: 'sqlite' | 'postgres'): Promise<{ index: IndexConfig; raw: () => Promise<RawSql> }> {
  if (kind === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'audit-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'index.sqlite');
    return {
      index: { kind: 'sqlite', file },
      raw: async () => {
        const db = new Database(file);
        return { run: async (statement) => void db.exec(statement), close: async () => void db.close() };
      },
    };
  }
  const schema = createTestSchema('pacs_audit');
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  await admin.query(`create schema if not exists ${schema.schema}`);
  await admin.end();
  cleanups.push(() => schema.drop());
  return {
    index: { kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 2 },
    raw: async () => {
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, options: `-c search_path=${schema.schema}` });
      await client.connect();
      return { run: async (statement) => void (await client.query(statement)), close: () => client.end() };
    },
  };
}

describe.each([
  ['sqlite', true],
  ['postgres', postgres],
] as const)('the audit store on %s', (kind, available) => {
  it.skipIf(!available)('returns what was appended, newest first, filtered by time, user, action and study, page by page', async () => {
    const { index } = await openIndex(kind);
    const store = await KyselyAuditStore.open(index);
    const again = await KyselyAuditStore.open(index); // a second process (or a restart): migration is idempotent
    try {
      const t0 = Date.UTC(2026, 10, 25, 10, 0, 0);
      const written = await store.append([
        record({ time: t0, action: 'query', objects: [], query: { level: 'study', keys: { PatientName: 'Doe^Jane*' } } }),
        record({ time: t0 + 1000, action: 'store', objects: [{ study: '1.2.3', series: '1.2.3.1', instance: '1.2.3.1.1', sopClass: '1.2.840.10008.5.1.4.1.1.7' }, { study: '1.2.4', series: '1.2.4.1', instance: '1.2.4.1.1' }] }),
        record({ time: t0 + 2000, who: { subject: 'user-2', kind: 'token' }, objects: [{ study: '1.2.4' }] }),
      ]);
      expect(written.map((r) => r.id)).toEqual([...written.map((r) => r.id)].sort((a, b) => a! - b!));
      const more = await again.append([record({ time: t0 + 3000, outcome: 4, status: 403, who: { subject: 'unauthenticated', kind: 'unauthenticated' }, objects: [] })]);
      expect(more[0]!.id).toBeGreaterThan(written[2]!.id!);

      const all = await store.list({ limit: 10 });
      expect(all.map((r) => r.time)).toEqual([t0 + 3000, t0 + 2000, t0 + 1000, t0]);
      expect(all[3]).toEqual(written[0]); // the whole record round-trips, the query included
      expect(await store.get(written[1]!.id!)).toEqual(written[1]);
      expect(await store.get(999_999)).toBeUndefined();

      expect((await store.list({ limit: 10, subject: 'user-2' })).map((r) => r.time)).toEqual([t0 + 2000]);
      expect((await store.list({ limit: 10, action: 'store' })).map((r) => r.time)).toEqual([t0 + 1000]);
      expect((await store.list({ limit: 10, study: '1.2.4' })).map((r) => r.time)).toEqual([t0 + 2000, t0 + 1000]);
      expect((await store.list({ limit: 10, from: t0 + 1000, to: t0 + 3000 })).map((r) => r.time)).toEqual([t0 + 2000, t0 + 1000]);

      const page1 = await store.list({ limit: 2 });
      const page2 = await store.list({ limit: 2, beforeId: page1.at(-1)!.id! });
      expect([...page1, ...page2].map((r) => r.time)).toEqual([t0 + 3000, t0 + 2000, t0 + 1000, t0]);
    } finally {
      await store.close();
      await again.close();
    }
  });

  it.skipIf(!available)('refuses UPDATE and DELETE sent straight to the database, so records stay as written', async () => {
    const { index, raw } = await openIndex(kind);
    const store = await KyselyAuditStore.open(index);
    const sql = await raw();
    try {
      const [written] = await store.append([record({ objects: [{ study: '1.2.9' }] })]);
      const attempts = [
        `UPDATE audit_event SET subject = 'someone-else' WHERE id = ${written!.id}`,
        `UPDATE audit_event SET record = '{}'`,
        `DELETE FROM audit_event WHERE id = ${written!.id}`,
        `DELETE FROM audit_event`,
        `UPDATE audit_event_study SET study_uid = '9.9.9'`,
        `DELETE FROM audit_event_study`,
        ...(kind === 'postgres' ? ['TRUNCATE audit_event', 'TRUNCATE audit_event_study'] : []),
      ];
      for (const statement of attempts) await expect(sql.run(statement), statement).rejects.toThrow(/append-only/);
      expect(await store.get(written!.id!)).toEqual(written);
      expect((await store.list({ limit: 10, study: '1.2.9' })).map((r) => r.id)).toEqual([written!.id]);
      // Appending still works after the refusals.
      await store.append([record()]);
      expect(await store.list({ limit: 10 })).toHaveLength(2);
    } finally {
      await sql.close();
      await store.close();
    }
  });
});
