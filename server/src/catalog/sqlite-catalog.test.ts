import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { runCatalogContract, fakeInstance } from './catalog.contract.js';
import { createCatalog } from './create-catalog.js';
import { SqliteCatalog } from './sqlite-catalog.js';
import type { CatalogDatabase } from './schema.js';

/** Counts the catalog's write transactions; `failCommits` makes each one fail after its work (a full disk at COMMIT). */
class ObservedCatalog extends SqliteCatalog {
  transactions = 0;
  failCommits = false;
  protected override inTransaction<T>(work: (trx: Kysely<CatalogDatabase>) => Promise<T>): Promise<T> {
    this.transactions += 1;
    return super.inTransaction(async (trx) => {
      const result = await work(trx);
      if (this.failCommits) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      return result;
    });
  }
}

runCatalogContract('SQLite (in memory)', async () => {
  const catalog = new SqliteCatalog(':memory:');
  await catalog.migrate();
  return { catalog, teardown: () => catalog.close() };
});

describe('SQLite catalog file', () => {
  it('creates its folder, keeps data across reopening and runs in WAL mode', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pacs-catalog-'));
    try {
      const file = path.join(dir, 'nested', 'index.sqlite');
      const first = await createCatalog({ kind: 'sqlite', file });
      await first.storeInstance(fakeInstance({ study: '1.1', series: '1.1.1', sop: '1.1.1.1' }));
      await first.close();
      const second = await createCatalog({ kind: 'sqlite', file });
      expect(await second.listInstances({ studyInstanceUid: '1.1' })).toHaveLength(1);
      await second.close();
      const Database = (await import('better-sqlite3')).default;
      const raw = new Database(file, { readonly: true });
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite catalog group commit', () => {
  it('stores instances arriving together in one transaction, and a lone one in a transaction of its own', async () => {
    const catalog = new ObservedCatalog(':memory:');
    await catalog.migrate();
    try {
      const together = Array.from({ length: 10 }, (_, i) => fakeInstance({ study: '70.1', series: '70.1.1', sop: `70.1.1.${i}` }));
      expect((await Promise.all(together.map((i) => catalog.storeInstance(i)))).every((o) => o.status === 'stored')).toBe(true);
      expect(catalog.transactions).toBe(1);
      expect(await catalog.storeInstance(fakeInstance({ study: '70.1', series: '70.1.1', sop: '70.1.1.99' }))).toEqual({ status: 'stored' });
      expect(catalog.transactions).toBe(2);
      expect(await catalog.listInstances({ studyInstanceUid: '70.1' })).toHaveLength(11);
    } finally {
      await catalog.close();
    }
  });

  it('keeps no row of a group whose commit failed, fails every member with INDEX_FAILURE, and stores the next group', async () => {
    const catalog = new ObservedCatalog(':memory:');
    await catalog.migrate();
    try {
      catalog.failCommits = true;
      const group = Array.from({ length: 4 }, (_, i) => fakeInstance({ study: '71.1', series: '71.1.1', sop: `71.1.1.${i}` }));
      const settled = await Promise.allSettled(group.map((i) => catalog.storeInstance(i)));
      expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : s.status))).toEqual(Array(4).fill('INDEX_FAILURE'));
      expect(await catalog.listInstances({ studyInstanceUid: '71.1' })).toEqual([]);
      catalog.failCommits = false;
      const again = await Promise.all(group.map((i) => catalog.storeInstance(i)));
      expect(again.every((o) => o.status === 'stored')).toBe(true);
      expect(await catalog.listInstances({ studyInstanceUid: '71.1' })).toHaveLength(4);
    } finally {
      await catalog.close();
    }
  });
});

describe('SQLite catalog speed', () => {
  it('answers typical study queries over 10,000 instances in well under 10 ms (p50)', async () => {
    const { parseQidoQuery } = await import('./parse-qido-query.js');
    const catalog = new SqliteCatalog(':memory:');
    await catalog.migrate();
    for (let s = 0; s < 200; s++) {
      for (let i = 0; i < 50; i++) {
        const series = `${s}.${i % 2}`;
        await catalog.storeInstance(
          fakeInstance({ study: `9.${s}`, series: `9.${series}`, sop: `9.${series}.${i}`, patientName: `NAME${s}^P`, patientId: `P${s}`, studyDate: `2023${String(1 + (s % 12)).padStart(2, '0')}15`, modality: i % 2 ? 'CT' : 'MR' }),
        );
      }
    }
    const queries = [{ PatientName: 'name1*' }, { PatientID: 'P7', StudyDate: '20230101-20230630' }, { ModalitiesInStudy: 'CT', limit: '50' }];
    const times: number[] = [];
    for (let k = 0; k < 60; k++) {
      const started = performance.now();
      await catalog.search(parseQidoQuery('study', {}, queries[k % queries.length]!, { defaultLimit: 100, maxLimit: 1000 }));
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    expect(times[times.length / 2]).toBeLessThan(10);
    await catalog.close();
  });
});
