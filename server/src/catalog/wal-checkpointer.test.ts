import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { FALLBACK_AUTOCHECKPOINT_PAGES, startWalCheckpointer, useBackgroundCheckpoints, type WalCheckpointer } from './wal-checkpointer.js';

const dirs: string[] = [];
const running: WalCheckpointer[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function openIndex(): { file: string; db: Database.Database } {
  const dir = mkdtempSync(path.join(tmpdir(), 'wal-ckpt-'));
  dirs.push(dir);
  const file = path.join(dir, 'index.sqlite');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  useBackgroundCheckpoints(db);
  db.exec('create table t (id integer primary key, a text, b text, payload blob); create index t_a on t(a); create index t_b on t(b)');
  return { file, db };
}

/** ~20 MB of commits (~5,000 log pages), one small transaction at a time, the event loop turning between them as in the server. */
async function ingest(db: Database.Database): Promise<void> {
  const insert = db.prepare('insert into t (a, b, payload) values (?, ?, ?)');
  const one = db.transaction((i: number) => {
    for (let k = 0; k < 4; k++) insert.run(`a-${i}-${k}-${'x'.repeat(40)}`, `b-${k}-${i}`, Buffer.alloc(1200, k));
  });
  for (let i = 0; i < 4000; i++) {
    one(i);
    if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('SQLite WAL checkpoints run in a worker thread, not in the commits', () => {
  it('every connection leaves checkpoints to the worker up to the fallback threshold', () => {
    const { db } = openIndex();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(FALLBACK_AUTOCHECKPOINT_PAGES);
    db.close();
  });

  it('the worker copies the log back as the server commits, so a commit reaching the threshold finds almost nothing left to copy', async () => {
    const { file, db } = openIndex();
    const reports: Array<{ log: number; checkpointed: number }> = [];
    const checkpointer = startWalCheckpointer(file, { intervalMs: 20, onCheckpoint: (r) => reports.push(r) });
    running.push(checkpointer);
    await ingest(db);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(checkpointer.count).toBeGreaterThan(10);
    expect(checkpointer.last?.busy).toBe(0);
    // While the commits went on, each checkpoint copied all but what was appended during it ...
    const during = reports.filter((r) => r.log > 0);
    const copied = during.reduce((sum, r) => sum + r.checkpointed / r.log, 0) / during.length;
    expect(copied).toBeGreaterThan(0.9);
    // ... and once they stopped, everything: the next commit restarts the log from its beginning.
    expect(checkpointer.last!.checkpointed).toBe(checkpointer.last!.log);
    expect(db.prepare('select count(*) as n from t').get()).toEqual({ n: 16_000 });
    db.close();
  }, 60_000);

  it('reports a failure instead of throwing, and stops cleanly', async () => {
    const errors: string[] = [];
    const checkpointer = startWalCheckpointer(path.join(tmpdir(), 'no-such-dir-wal-ckpt', 'index.sqlite'), { onError: (m) => errors.push(m) });
    await checkpointer.stop();
    expect(errors.length).toBe(1);
    expect(checkpointer.count).toBe(0);
  });
});
