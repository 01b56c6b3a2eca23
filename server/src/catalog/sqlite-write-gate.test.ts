/**
 * SQLite: one writer at a time (sqlite-write-gate.ts). Every store of the process on one index file
 * (catalog, job store, audit trail, hospital link, reports, FHIR outbox), each with its own connection:
 *
 * - a write transaction held across awaits by one of them (the hospital link linking a stored series to
 *   its order) while all the others write: before the gate, the first other writer slept in SQLite's busy
 *   handler on the event loop's thread, the holder could not finish, and after the busy timeout (5–10 s)
 *   the write failed "database is locked". Now they queue and finish at once, the loop never blocked;
 * - another process holding the write lock for a second: waited for on timers, the loop running;
 * - the gate itself: one file one gate (whatever path names it), in-memory databases apart, waits bounded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import { KyselyAuditStore } from '../audit/audit-store.js';
import type { IndexConfig } from '../config.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import { FhirStore } from '../fhir/fhir-store.js';
import { KyselyHisStore } from '../his/kysely-his-store.js';
import { JobStore } from '../pathology/job-store.js';
import { KyselyReportStore } from '../reports/kysely-report-store.js';
import { fakeInstance } from './catalog.contract.js';
import type { Catalog } from './catalog.js';
import { createCatalog } from './create-catalog.js';
import { sqliteWriteTransaction, useWriteGate } from './sqlite-write-gate.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The longest the event loop went without running a 5 ms interval timer, from start to stop. */
function watchEventLoop(): { stop(): number } {
  let last = performance.now();
  let longest = 0;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  };
  const timer = setInterval(tick, 5);
  return {
    stop() {
      tick();
      clearInterval(timer);
      return longest;
    },
  };
}

const patient = (patientId: string): PatientIdentity => ({ patientId, issuer: 'HOSP', name: 'TEST^PATIENT', birthDate: null, sex: null, otherIds: [] });

const auditRecord = (): AuditRecord => ({
  time: Date.now(),
  action: 'retrieve',
  outcome: 0,
  status: 200,
  who: { subject: 'user-1', kind: 'token' },
  clientAddress: '127.0.0.1',
  interface: 'dicomweb',
  route: 'GET /dicomweb/studies/:study',
  objects: [{ study: '1.2.3' }],
});

interface Stores {
  catalog: Catalog;
  his: KyselyHisStore;
  jobs: JobStore;
  audit: KyselyAuditStore;
  reports: KyselyReportStore;
  fhir: FhirStore;
  close(): Promise<void>;
}

async function openStores(index: IndexConfig): Promise<Stores> {
  const catalog = await createCatalog(index);
  const his = await KyselyHisStore.open(index);
  const jobs = await JobStore.open(index);
  const audit = await KyselyAuditStore.open(index);
  const reports = await KyselyReportStore.open(index);
  const fhir = await FhirStore.open(index);
  return {
    catalog, his, jobs, audit, reports, fhir,
    async close() {
      for (const store of [fhir, reports, audit, jobs, his, catalog]) await store.close();
    },
  };
}

/** One write through every store but the hospital link's; `n` keeps the rows apart. */
async function writeThroughEveryStore(stores: Stores, n: number): Promise<void> {
  const study = `1.2.826.0.1.${n}`;
  await Promise.all([
    stores.catalog.storeInstance(fakeInstance({ study, series: `${study}.1`, sop: `${study}.1.1` })),
    stores.jobs.create({ id: `job-${n}`, studyInstanceUid: study, seriesInstanceUid: `${study}.1`, modelId: 'm', modelVersion: '1', region: '', createdAt: Date.now() }),
    stores.audit.append([auditRecord()]),
    (async () => {
      const at = Date.now();
      await stores.reports.create({ id: `rep-${n}`, studyInstanceUid: study, kind: 'radiology', procedureDate: '20260101', content: { kind: 'radiology', findings: '', impression: '' } as never, by: { subject: 'u', name: null }, at });
      await stores.reports.markStored(`rep-${n}`, 1, at);
    })(),
    stores.fhir.enqueue({ id: `s-${n}`, kind: 'study', subject: study, studyInstanceUid: study }, Date.now()),
  ]);
}

async function expectWritten(stores: Stores, n: number): Promise<void> {
  const study = `1.2.826.0.1.${n}`;
  expect(await stores.catalog.listInstances({ studyInstanceUid: study })).toHaveLength(1);
  expect(await stores.jobs.get(`job-${n}`)).toBeDefined();
  expect(await stores.reports.get(`rep-${n}`)).toBeDefined();
  expect(await stores.fhir.get(`s-${n}`)).toBeDefined();
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'write-gate-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('SQLite stores of one process on one index file', () => {
  it('write while another holds a write transaction across awaits: at once, the event loop never blocked', async () => {
    const stores = await openStores({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') });
    try {
      const loop = watchEventLoop();
      const started = performance.now();
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      // As HisService.linkSeries does for every stored instance with an accession number.
      const holder = stores.his.transaction(async (tx) => {
        await tx.upsertPatient(patient('P1'));
        entered();
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setTimeout(resolve, 50));
        await tx.upsertPatient(patient('P2'));
      });
      await inside;
      await Promise.all([holder, writeThroughEveryStore(stores, 1), writeThroughEveryStore(stores, 2)]);
      const elapsed = performance.now() - started;
      const blocked = loop.stop();

      expect(blocked).toBeLessThan(250); // before: the busy timeout, 5 000 ms and more
      expect(elapsed).toBeLessThan(3000);
      expect(await stores.his.getPatient({ patientId: 'P2', issuer: 'HOSP' })).toBeDefined();
      await expectWritten(stores, 1);
      await expectWritten(stores, 2);
    } finally {
      await stores.close();
    }
  });

  it('a write lock held by another process is waited for on timers, the event loop running', async () => {
    const file = path.join(dir, 'index.sqlite');
    const stores = await openStores({ kind: 'sqlite', file });
    try {
      const holdMs = 1000;
      const child = spawn(
        process.execPath,
        [
          '-e',
          `const db = new (require('better-sqlite3'))(process.env.DB);
           db.exec('BEGIN IMMEDIATE');
           db.exec('CREATE TABLE IF NOT EXISTS other_process (x)');
           db.exec('INSERT INTO other_process VALUES (1)');
           process.stdout.write('locked\\n');
           setTimeout(() => { db.exec('COMMIT'); db.close(); }, Number(process.env.HOLD_MS));`,
        ],
        { cwd: REPO_ROOT, env: { ...process.env, DB: file, HOLD_MS: String(holdMs) }, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = once(child, 'exit');
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve());
        child.on('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
      });
      const loop = watchEventLoop();
      const started = performance.now();
      await Promise.all([
        writeThroughEveryStore(stores, 3),
        stores.his.transaction((tx) => tx.upsertPatient(patient('P3'))),
      ]);
      const elapsed = performance.now() - started;
      const blocked = loop.stop();
      expect((await exited)[0]).toBe(0);

      expect(blocked).toBeLessThan(250); // before: the whole second, slept in SQLite's busy handler
      expect(elapsed).toBeGreaterThan(holdMs - 200); // they did wait for the other process's commit
      expect(elapsed).toBeLessThan(holdMs + 3000);
      await expectWritten(stores, 3);
      expect(await stores.his.getPatient({ patientId: 'P3', issuer: 'HOSP' })).toBeDefined();
    } finally {
      await stores.close();
    }
  });
});

describe('the write gate', () => {
  function open(file: string) {
    const database = new Database(file);
    if (!database.memory) database.pragma('journal_mode = WAL');
    const key = useWriteGate(database);
    const db = new Kysely<{ t: { n: number } }>({ dialect: new SqliteDialect({ database }) });
    return { db, key, database };
  }

  it('is one per file, whatever path names it; writers run one at a time, in order', async () => {
    const file = path.join(dir, 'a.sqlite');
    await symlink(dir, path.join(dir, 'link'));
    const a = open(file);
    const b = open(path.join(dir, 'link', 'a.sqlite'));
    const c = open(path.relative(process.cwd(), file));
    try {
      expect(a.key).toBe(b.key);
      expect(a.key).toBe(c.key);
      await sql`create table t (n integer)`.execute(a.db);
      const order: string[] = [];
      const writer = (name: string, conn: typeof a) =>
        sqliteWriteTransaction(conn.db, conn.key, async (trx) => {
          order.push(`${name} begins`);
          await trx.insertInto('t').values({ n: order.length }).execute();
          await new Promise((resolve) => setTimeout(resolve, 20));
          order.push(`${name} ends`);
        });
      await Promise.all([writer('a', a), writer('b', b), writer('c', c)]);
      expect(order).toEqual(['a begins', 'a ends', 'b begins', 'b ends', 'c begins', 'c ends']);
      expect(a.database.pragma('busy_timeout', { simple: true })).toBe(0);
    } finally {
      for (const conn of [a, b, c]) await conn.db.destroy();
    }
  });

  it('keeps in-memory databases apart', async () => {
    const a = open(':memory:');
    const b = open(':memory:');
    try {
      expect(a.key).not.toBe(b.key);
      let release!: () => void;
      const held = sqliteWriteTransaction(a.db, a.key, () => new Promise<void>((resolve) => (release = resolve)));
      await sql`create table t (n integer)`.execute(b.db);
      await sqliteWriteTransaction(b.db, b.key, (trx) => trx.insertInto('t').values({ n: 1 }).execute());
      release();
      await held;
    } finally {
      await a.db.destroy();
      await b.db.destroy();
    }
  });

  it('bounds the wait: a write still locked out at the end of its budget fails SQLITE_BUSY, rolled back', async () => {
    const file = path.join(dir, 'b.sqlite');
    const a = open(file);
    const b = open(file);
    try {
      await sql`create table t (n integer)`.execute(a.db);
      // Another process's lock (a raw connection outside the gate), then one of this process's writers.
      const raw = new Database(file);
      raw.exec('BEGIN IMMEDIATE');
      const loop = watchEventLoop();
      const started = performance.now();
      await expect(sqliteWriteTransaction(a.db, a.key, (trx) => trx.insertInto('t').values({ n: 1 }).execute(), { waitMs: 300 })).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
      raw.exec('ROLLBACK');
      raw.close();
      // Waiting in the gate is bounded too.
      let release!: () => void;
      const held = sqliteWriteTransaction(a.db, a.key, () => new Promise<void>((resolve) => (release = resolve)));
      await expect(sqliteWriteTransaction(b.db, b.key, (trx) => trx.insertInto('t').values({ n: 2 }).execute(), { waitMs: 100 })).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      release();
      await held;
      expect(loop.stop()).toBeLessThan(250);
      // A failing work rolls back and leaves the connection usable.
      await expect(sqliteWriteTransaction(b.db, b.key, async (trx) => {
        await trx.insertInto('t').values({ n: 3 }).execute();
        throw new Error('no');
      })).rejects.toThrow('no');
      await sqliteWriteTransaction(b.db, b.key, (trx) => trx.insertInto('t').values({ n: 4 }).execute());
      expect((await a.db.selectFrom('t').select('n').execute()).map((r) => r.n)).toEqual([4]);
    } finally {
      await a.db.destroy();
      await b.db.destroy();
    }
  });
});
