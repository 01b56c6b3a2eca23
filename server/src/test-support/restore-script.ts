/** Runs `npm run restore` (scripts/restore.ts) as a child process, as an administrator would after a disaster. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './shared-data.js';

export function runRestoreScript(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts/restore.ts'), ...args], {
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
