/** Locates the workplace's shared public data sets (../shared/data beside the checkout; PACS_SHARED_DATA overrides). */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export const sharedDataDir = process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data');

export function requireSharedData(): string {
  if (!existsSync(sharedDataDir)) {
    throw new Error(`Shared test data not found at ${sharedDataDir} (set PACS_SHARED_DATA)`);
  }
  return sharedDataDir;
}

/** Every regular file below the given shared-data folders (text files included: they must be refused cleanly). */
export async function sharedFiles(folders: string[]): Promise<string[]> {
  const root = requireSharedData();
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) files.push(full);
    }
  };
  for (const folder of folders) await walk(path.join(root, folder));
  return files.sort();
}

export { repoRoot };
