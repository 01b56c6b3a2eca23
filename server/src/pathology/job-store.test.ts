/**
 * The job store on both index databases (SQLite file; PostgreSQL in a throw-away schema when the test
 * server answers): a unit's completion is recorded once however often it is delivered, finalization is
 * claimed by one caller only, and an ended job stays ended.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { IndexConfig } from '../config.js';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { JobStore, type JobParams } from './job-store.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const params: JobParams = { levelIndex: 0, windowSize: 256, overlap: 32, modelInputSize: 256, levelSpacingMm: 0.0005, modelSpacingMm: 0.0005, region: { x0: 0, y0: 0, x1: 10, y1: 10 }, tissueLevelIndex: 2 };

const postgres = await isPostgresAvailable();
if (!postgres) console.warn('PostgreSQL test server not reachable: job store tests run on SQLite only');

describe.each([
  ['sqlite', true],
  ['postgres', postgres],
] as const)('the job store on %s', (kind, available) => {
  it.skipIf(!available)('records each unit once, claims finalization once, and keeps ended jobs ended', async () => {
    let index: IndexConfig;
    if (kind === 'sqlite') {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'jobs-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      index = { kind: 'sqlite', file: path.join(dir, 'index.sqlite') };
    } else {
      const schema = createTestSchema('pacs_jobs');
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      await client.query(`create schema if not exists ${schema.schema}`);
      await client.end();
      cleanups.push(() => schema.drop());
      index = { kind: 'postgres', connectionString: schema.connectionString, schema: schema.schema, poolSize: 2 };
    }
    const store = await JobStore.open(index);
    const other = await JobStore.open(index); // a second process, as a worker would be
    try {
      await store.create({ id: 'j1', studyInstanceUid: '1.2', seriesInstanceUid: '1.2.3', modelId: 'dark-spot', modelVersion: '1.0.0', region: '', createdAt: 1000 });
      expect((await store.get('j1'))!.state).toBe('queued');
      const units = [0, 1, 2].map((i) => ({ windows: JSON.stringify([{ i }]), windowCount: i + 1 }));
      expect(await store.savePlan('j1', params, units, 5, 2000)).toBe(true);
      expect(await other.savePlan('j1', params, units, 5, 2000)).toBe(false); // a plan delivered twice
      const job = (await store.get('j1'))!;
      expect(job).toMatchObject({ state: 'running', unitsTotal: 3, windowsTotal: 6, windowsSkipped: 5, startedAt: 2000, params });
      expect(await store.pendingUnits('j1')).toEqual([0, 1, 2]);

      const records = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 0.9, 0]).buffer);
      expect(await store.completeUnit('j1', 0, records, 1, 'w1', 3000)).toBe(true);
      expect(await other.completeUnit('j1', 0, records, 1, 'w2', 3001)).toBe(false);
      expect(await store.claimFinalization('j1')).toBe(false); // units pending
      expect(await store.completeUnit('j1', 1, records, 1, 'w2', 3002)).toBe(true);
      expect(await other.completeUnit('j1', 2, Buffer.alloc(0), 0, 'w2', 3003)).toBe(true);
      expect(await store.progress('j1')).toEqual({ unitsDone: 3, windowsDone: 6, annotations: 2 });
      expect((await store.get('j1'))!.duplicateCompletions).toBe(1);
      const unit = (await store.getUnit('j1', 0))!;
      expect(unit).toMatchObject({ state: 'done', completedBy: 'w1', completedAt: 3000, annotationCount: 1 });
      expect(unit.annotations!.equals(records)).toBe(true);

      const claims = await Promise.all([store.claimFinalization('j1'), other.claimFinalization('j1')]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.end('j1', 'cancelled', 'too late', 4000)).toBe(true); // finalizing is still active
      expect(await store.complete('j1', '2.25.1', '2.25.2', 5000)).toBe(false);
      expect(await store.end('j1', 'failed', 'again', 6000)).toBe(false);
      expect((await store.get('j1'))!).toMatchObject({ state: 'cancelled', reason: 'too late', finishedAt: 4000 });
      expect(await store.listActive()).toEqual([]);
      expect((await store.listForSeries('1.2.3', 'dark-spot')).map((j) => j.id)).toEqual(['j1']);
      const paged: number[] = [];
      for await (const u of store.units('j1', 2)) paged.push(u.unitIndex);
      expect(paged).toEqual([0, 1, 2]);
    } finally {
      await store.close();
      await other.close();
    }
  });
});
