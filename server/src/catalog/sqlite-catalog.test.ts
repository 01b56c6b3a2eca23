import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCatalogContract } from './catalog.contract.js';
import { createCatalog } from './create-catalog.js';
import { SqliteCatalog } from './sqlite-catalog.js';

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
      const { fakeInstance } = await import('./catalog.contract.js');
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

describe('SQLite catalog speed', () => {
  it('answers typical study queries over 10,000 instances in well under 10 ms (p50)', async () => {
    const { fakeInstance } = await import('./catalog.contract.js');
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
