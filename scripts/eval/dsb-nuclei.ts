/**
 * The DSB 2018 H&E nuclei split as evaluation reads it (../shared/data/histo-dsb2018-he-nuclei): tile files
 * and one ground-truth box per annotated nucleus (annotations.json, inclusive pixel indices), as
 * scripts/nuclei/common.py scores them.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabelledImage } from './kvasir.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const nucleiDir = path.join(process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data'), 'histo-dsb2018-he-nuclei');

interface TileEntry {
  width: number;
  height: number;
  nuclei: Array<{ bbox: [number, number, number, number] }>;
}

export async function nucleiSplit(split: 'train' | 'test'): Promise<LabelledImage[]> {
  const annotations = JSON.parse(await readFile(path.join(nucleiDir, 'annotations.json'), 'utf8')) as Record<string, TileEntry>;
  const ids = (await readFile(path.join(nucleiDir, 'splits', `${split}.txt`), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return ids.sort().map((id) => {
    const entry = annotations[id];
    if (entry === undefined) throw new Error(`${id} of splits/${split}.txt is not in annotations.json`);
    return {
      id,
      file: path.join(nucleiDir, 'images', `${id}.png`),
      width: entry.width,
      height: entry.height,
      truth: entry.nuclei.map(({ bbox: [x0, y0, x1, y1] }) => ({ x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 })),
    };
  });
}
