/**
 * The index-growth benchmark (bench-scale.ts) at a small size: the same script the 1M-instance run
 * uses, loading through STOW-RS into a real server, must measure every checkpoint with every query
 * answered correctly (result counts match what was loaded), on SQLite (interrupted and resumed) and on
 * PostgreSQL.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { isPostgresAvailable, TEST_POSTGRES_URL } from '../server/src/test-support/postgres-test-schema.js';

const repoRoot = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scale-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SMALL = ['--series-per-study', '2', '--instances-per-series', '10', '--patients', '7', '--samples', '4', '--workers', '1'];
const QUERIES = ['patientId', 'patientName', 'studyDate', 'modalities', 'accession', 'seriesOfStudy', 'instancesOfSeries', 'seriesMetadata'];

function runScale(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts/bench-scale.ts'), ...SMALL, ...args], {
      cwd: repoRoot,
      env: { ...process.env, PACS_INDEX: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

interface ScaleJson {
  postgresSchema?: string;
  bytesPerInstance: number;
  problems: string[];
  results: Array<{
    target: number;
    instances: number;
    stowPerSecond: number;
    stowErrors: number;
    rssAfterLoad: number;
    indexBytes: number;
    queries: Record<string, { p50: number; p95: number; samples: number; errors: number }>;
  }>;
}

function expectSaneFigures(json: ScaleJson): void {
  expect(json.problems).toEqual([]);
  expect(json.bytesPerInstance).toBeGreaterThan(1000);
  expect(json.bytesPerInstance).toBeLessThan(2000);
  expect(json.results.map((r) => [r.target, r.instances])).toEqual([
    [200, 200],
    [600, 600],
  ]);
  for (const r of json.results) {
    expect(r.stowErrors).toBe(0);
    expect(r.stowPerSecond).toBeGreaterThan(0);
    expect(r.rssAfterLoad).toBeGreaterThan(10_000_000);
    expect(r.indexBytes).toBeGreaterThan(0);
    expect(Object.keys(r.queries).sort()).toEqual([...QUERIES].sort());
    for (const q of Object.values(r.queries)) {
      expect(q).toMatchObject({ samples: 4, errors: 0 });
      expect(q.p95).toBeGreaterThanOrEqual(q.p50);
    }
  }
}

describe('bench:scale at a small size', () => {
  it('SQLite: loads 600 instances through STOW-RS in two sittings (resumed) and every query answers what was loaded', async () => {
    const workDir = path.join(tmp, 'sqlite');
    const out = path.join(tmp, 'sqlite.md');
    const json = path.join(tmp, 'sqlite.json');
    const first = await runScale(['--checkpoints', '200', '--work-dir', workDir, '--keep', '--out', out]);
    expect(first.code, first.output).toBe(0);
    const second = await runScale(['--resume', workDir, '--checkpoints', '200,600', '--out', out, '--json', json]);
    expect(second.code, second.output).toBe(0);
    expectSaneFigures(JSON.parse(fs.readFileSync(json, 'utf8')) as ScaleJson);
    const table = fs.readFileSync(out, 'utf8');
    expect(table).toContain('# Index growth: SQLite');
    expect(table).toMatch(/^\| 600 \| 600 \| 30 \|/m);
    expect(table).toContain('`studies/{study}/series/{series}/metadata`');
    expect(fs.existsSync(workDir)).toBe(false); // removed once the run ended well without --keep
  }, 240_000);

  it('PostgreSQL: the same run in a schema of its own, dropped afterwards', async (ctx) => {
    if (!(await isPostgresAvailable())) {
      console.warn(`PostgreSQL not reachable at ${TEST_POSTGRES_URL}: skipped`);
      ctx.skip();
    }
    const json = path.join(tmp, 'postgres.json');
    const run = await runScale(['--index', 'postgres', '--postgres-url', TEST_POSTGRES_URL, '--checkpoints', '200,600', '--out', path.join(tmp, 'pg.md'), '--json', json]);
    expect(run.code, run.output).toBe(0);
    const figures = JSON.parse(fs.readFileSync(json, 'utf8')) as ScaleJson;
    expectSaneFigures(figures);
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    try {
      const { rowCount } = await client.query('select 1 from information_schema.schemata where schema_name = $1', [figures.postgresSchema]);
      expect(rowCount).toBe(0);
    } finally {
      await client.end();
    }
  }, 240_000);
});
