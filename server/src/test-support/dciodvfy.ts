/**
 * Debian's dciodvfy (dicom3tools) on a DICOM object a test made: its error lines (warnings are not
 * failures). Missing tool: a clear message saying which package to install.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runTool } from './dimse-peer.js';

export const DCIODVFY = '/usr/bin/dciodvfy';

export function requireDciodvfy(): void {
  if (!existsSync(DCIODVFY)) throw new Error("dicom3tools' dciodvfy is not installed; install it with: apt-get install -y --no-install-recommends dicom3tools");
}

/**
 * The lines starting with "Error" that dciodvfy prints for `part10`. Debian 12's dciodvfy (dicom3tools
 * 2022) reports CommonZCoordinateValue as "only valid for 3D" in every 2D Microscopy Bulk Simple
 * Annotations instance although the attribute is absent (checked with dcdump): that false positive is
 * left out. `withoutValues`: each line without the values it quotes (from the first `<Name> = ` on), so
 * that the errors of an original and of a copy with other UIDs or names can be compared.
 */
export async function dciodvfyErrors(part10: Buffer, name = 'object.dcm', options: { withoutValues?: boolean } = {}): Promise<string[]> {
  requireDciodvfy();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dciodvfy-'));
  try {
    const at = path.join(dir, name);
    await writeFile(at, part10);
    const result = await runTool(DCIODVFY, [at]);
    const errors = (result.stdout + result.stderr).split('\n').filter((line) => line.startsWith('Error') && !line.includes('<CommonZCoordinateValue> = <>'));
    return options.withoutValues ? errors.map((line) => line.replace(/<[^>]*>\s*=\s*.*$/, '').trim()) : errors;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
