/** The Kvasir-SEG split as evaluation reads it: image files and ground-truth boxes (../shared/data/kvasir-seg). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Box } from './average-precision.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const kvasirDir = path.join(process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data'), 'kvasir-seg');

/** An image file with its ground-truth boxes (any data set evaluated over HTTP). */
export interface LabelledImage {
  id: string;
  file: string;
  width: number;
  height: number;
  truth: Box[];
}

/** bboxes.json holds inclusive pixel indices: a truth box is xmax - xmin + 1 pixels wide. */
export type KvasirImage = LabelledImage;

interface BboxEntry {
  width: number;
  height: number;
  bbox: Array<{ xmin: number; ymin: number; xmax: number; ymax: number }>;
}

export async function kvasirSplit(split: 'train' | 'test'): Promise<KvasirImage[]> {
  const dir = path.join(kvasirDir, split);
  const boxes = JSON.parse(await readFile(path.join(dir, 'bboxes.json'), 'utf8')) as Record<string, BboxEntry>;
  return Object.entries(boxes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, entry]) => ({
      id,
      file: path.join(dir, 'images', `${id}.jpg`),
      width: entry.width,
      height: entry.height,
      truth: entry.bbox.map((b) => ({ x: b.xmin, y: b.ymin, width: b.xmax - b.xmin + 1, height: b.ymax - b.ymin + 1 })),
    }));
}

export const polypFreeDir = path.join(path.dirname(kvasirDir), 'endoscopy-normal-hyperkvasir');

/** The polyp-free HyperKvasir frames of a fixed split (../shared/data/endoscopy-normal-hyperkvasir): no truth boxes. */
export async function polypFreeSplit(split: 'train' | 'test'): Promise<LabelledImage[]> {
  const [header, ...rows] = (await readFile(path.join(polypFreeDir, 'index.csv'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const columns = header!.split(',');
  const at = (name: string) => columns.indexOf(name);
  return rows
    .map((row) => row.split(','))
    .filter((cells) => cells[at('split')] === split)
    .map((cells) => ({ id: cells[at('file')]!, file: path.join(polypFreeDir, cells[at('file')]!), width: Number(cells[at('width')]), height: Number(cells[at('height')]), truth: [] }))
    .sort((a, b) => a.id.localeCompare(b.id));
}
