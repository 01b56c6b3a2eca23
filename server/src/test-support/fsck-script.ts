/** Runs `npm run fsck` (scripts/fsck.ts) as a child process on a data folder, as an administrator would. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './shared-data.js';

export interface FsckRun {
  code: number | null;
  output: string;
}

export function runFsckScript(env: Record<string, string>, args: string[] = []): Promise<FsckRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts/fsck.ts'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, PACS_LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** The number at the end of the fsck report line starting with `label`. */
export function reportedCount(output: string, label: string): number {
  const line = output.split('\n').find((l) => l.startsWith(label));
  if (line === undefined) throw new Error(`"${label}" not in fsck output:\n${output}`);
  return Number(/(\d+)\s*$/.exec(line)![1]);
}
