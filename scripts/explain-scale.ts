/**
 * Query plans of the index-growth benchmark's queries (issue 22): builds an index of the benchmark's
 * corpus by direct row inserts (SQLite file in a temp dir, or a PostgreSQL schema of its own that is
 * dropped afterwards), runs each query through the catalog code and prints how the engine runs every
 * statement, flagging full scans of the big tables.
 *
 *   npx tsx scripts/explain-scale.ts                        # SQLite, 100k instances
 *   npx tsx scripts/explain-scale.ts --index postgres --instances 100000
 *   options: --postgres-url postgres://postgres@127.0.0.1:5432/test  --out FILE (markdown)
 * Exit status 1 when a statement scans a whole big table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { newUidRoot } from './bench/scale-corpus.js';
import { explainQueries, fillIndex, openPlanTarget, plansMarkdown } from './bench/scale-plans.js';
import { log } from './bench/util.js';

function value(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

async function main(): Promise<number> {
  const engine = value('index') === 'postgres' ? 'postgres' : 'sqlite';
  const instances = Number(value('instances') ?? 100_000);
  const shape = { patients: 1000, seriesPerStudy: 4, instancesPerSeries: 25 };
  const studies = Math.ceil(instances / (shape.seriesPerStudy * shape.instancesPerSeries));
  const postgresUrl = value('postgres-url') ?? 'postgres://postgres@127.0.0.1:5432/test';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'explain-scale-'));
  const schema = `explain_scale_${process.pid}`;
  const target = await openPlanTarget(engine, { file: path.join(dir, 'index.sqlite'), postgresUrl, schema });
  try {
    const root = newUidRoot();
    const started = Date.now();
    await fillIndex(target, root, shape, studies);
    log(`${engine}: ${studies} studies, ${studies * 100} instances inserted in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const plans = await explainQueries(target, root, shape, studies);
    const markdown = plansMarkdown(engine, studies * 100, plans);
    process.stdout.write(markdown);
    const out = value('out');
    if (out) fs.writeFileSync(out, markdown);
    const scans = plans.flatMap((p) => p.statements.flatMap((s) => s.fullScans.map((line) => `${p.query}: ${line.trim()}`)));
    for (const scan of scans) log(`FULL SCAN ${scan}`);
    return scans.length > 0 ? 1 : 0;
  } finally {
    await target.close();
    fs.rmSync(dir, { recursive: true, force: true });
    if (engine === 'postgres') {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`drop schema if exists "${schema}" cascade`);
      await client.end();
    }
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
