/**
 * The capacity benchmark (bench-capacity.ts) at its --quick size: against a real server process, every
 * operation's answers check out and each table row carries a count, a wall time and a server CPU cost.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-capacity-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function runCapacity(args: string[]): Promise<{ code: number | null; stdout: string; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts/bench-capacity.ts'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, PACS_INDEX: undefined, PACS_BLOB_STORE: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => ((stdout += chunk.toString()), (output += chunk.toString())));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, output }));
  });
}

describe('bench:capacity --quick', () => {
  it('measures every operation on one server process and writes the table', async () => {
    const out = path.join(tmp, 'capacity.md');
    const run = await runCapacity(['--quick', '--concurrency', '2', '--out', out]);
    expect(run.code, run.output).toBe(0);
    const report = fs.readFileSync(out, 'utf8');
    expect(run.stdout).toContain(report.trim());
    expect(report).toContain('PACS_WORKERS=1');
    const rows = report.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| operation'));
    const labels = rows.map((r) => r.split(' | ')[0]!.slice(2));
    const expected = ['STOW-RS instance, 50 per request', 'STOW-RS instance, 1 per request', 'WADO-RS frame as stored', 'WADO-RS frame rendered', 'WADO-RS CT instance rendered', 'QIDO-RS', 'series metadata'];
    if (fs.existsSync('/usr/bin/storescu')) expected.push('DIMSE C-STORE');
    else expect(report).toContain('DIMSE C-STORE: skipped');
    for (const label of expected) expect(labels.some((l) => l.startsWith(label)), `${label} in ${labels.join('; ')}`).toBe(true);
    expect(rows).toHaveLength(expected.length);
    for (const row of rows) {
      const cells = row.split(' | ');
      expect(Number(cells[1])).toBeGreaterThan(0); // count
      expect(cells[2]).toMatch(/^\d[\d,.]* s$/); // wall time
      expect(cells[6]).toBe('2 |'); // client concurrency
    }
  }, 180_000);
});
