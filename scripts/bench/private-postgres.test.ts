/**
 * `bench:scale -- --private-postgres`: a PostgreSQL cluster of the benchmark's own, with the engine's
 * defaults (autovacuum on, unlike this machine's shared test server), started, used and stopped again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { startPrivatePostgres } from './private-postgres.js';
import { freePort } from './util.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'private-postgres-test-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function query(url: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(sql);
    return rows.length > 0 ? String(Object.values(rows[0] as object)[0]) : '';
  } finally {
    await client.end();
  }
}

it('runs with autovacuum on, keeps its data across a restart, and stops', async () => {
  const port = await freePort();
  const dir = path.join(work, 'postgres');
  const first = startPrivatePostgres(dir, port);
  try {
    expect(await query(first.url, 'show autovacuum')).toBe('on');
    await query(first.url, 'create table kept as select 7 as x');
  } finally {
    first.stop();
  }
  await expect(query(first.url, 'select 1')).rejects.toThrow();
  // `--resume`: the same folder starts again, without a new initdb.
  const again = startPrivatePostgres(dir, port);
  try {
    expect(await query(again.url, 'select x from kept')).toBe('7');
  } finally {
    again.stop();
  }
}, 60_000);
