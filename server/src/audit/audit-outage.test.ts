/**
 * When the audit store cannot be written: patient data is not served (503 AUDIT_UNAVAILABLE, failing
 * closed by default) while public routes still answer; the error is logged without patient data; the
 * records queued meanwhile are written once the store recovers, each exactly once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { loggerOptions } from '../http/logger.js';
import type { AuditRecord } from './audit-record.js';
import { KyselyAuditStore, type AuditStore } from './audit-store.js';
import { AuditTrail } from './audit-trail.js';
import { createServices } from '../services.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** The real store, made to fail on demand the way a database does (an error whose message names values). */
class FlakyStore implements AuditStore {
  failing = false;
  constructor(private readonly inner: AuditStore) {}
  append(records: readonly AuditRecord[]) {
    if (this.failing) {
      const err = Object.assign(new Error(`disk I/O error while inserting ${JSON.stringify(records)}`), { code: 'SQLITE_IOERR' });
      return Promise.reject(err);
    }
    return this.inner.append(records);
  }
  list(...args: Parameters<AuditStore['list']>) {
    return this.inner.list(...args);
  }
  get(id: number) {
    return this.inner.get(id);
  }
  close() {
    return this.inner.close();
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('while the audit store cannot be written', () => {
  it('refuses patient data (503) until the store recovers, logs no patient data, and loses no record', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-audit-outage-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_AI_ENABLED: 'false' });
    const logLines: string[] = [];
    const logger = pino(loggerOptions(config), new Writable({ write: (chunk: Buffer, _e, done) => void (logLines.push(chunk.toString()), done()) }));
    const store = new FlakyStore(await KyselyAuditStore.open(config.index));
    const trail = new AuditTrail(store, logger);
    const app = await buildApp(config, await createServices(config, { logger, audit: trail }));
    await app.ready();
    cleanups.push(() => app.close());

    expect((await app.inject('/dicomweb/studies?PatientName=OUTAGE^BEFORE')).statusCode).toBe(200);
    await trail.flush();

    store.failing = true;
    // This request is served (the store's failure is not known yet); writing its record fails.
    expect((await app.inject('/dicomweb/studies?PatientName=OUTAGE^DURING')).statusCode).toBe(200);
    await until(() => !trail.available(), 'the failed write');
    const refused = await app.inject('/dicomweb/studies?PatientName=OUTAGE^REFUSED');
    expect(refused.statusCode).toBe(503);
    expect(refused.json().error.code).toBe('AUDIT_UNAVAILABLE');
    expect((await app.inject('/healthz')).statusCode).toBe(200); // public routes hold no patient data

    const log = logLines.join('');
    expect(log).toContain('audit records could not be written');
    expect(log).toContain('SQLITE_IOERR');
    expect(log).not.toContain('OUTAGE'); // neither the query nor the database's message with the record

    store.failing = false;
    await until(() => trail.available(), 'the retried write', 20_000);
    expect((await app.inject('/dicomweb/studies?PatientName=OUTAGE^AFTER')).statusCode).toBe(200);
    await trail.flush();
    const records = (await store.list({ limit: 100 })).reverse();
    expect(records.map((r) => [r.query?.keys['PatientName'], r.status])).toEqual([
      ['OUTAGE^BEFORE', 200],
      ['OUTAGE^DURING', 200],
      ['OUTAGE^REFUSED', 503],
      ['OUTAGE^AFTER', 200],
    ]);
  }, 60_000);
});
