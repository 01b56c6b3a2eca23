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

/**
 * The polyp-free HyperKvasir frames of a fixed split (../shared/data/endoscopy-normal-hyperkvasir), in the
 * split file's order (`splits/<split>.txt`, the list the training scripts read too), sizes from `index.csv`;
 * no truth boxes.
 */
export async function polypFreeSplit(split: 'train' | 'test'): Promise<LabelledImage[]> {
  const [header, ...rows] = (await readFile(path.join(polypFreeDir, 'index.csv'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const columns = header!.split(',');
  const sizes = new Map(rows.map((row) => row.split(',')).map((cells) => [cells[columns.indexOf('file')]!, { width: Number(cells[columns.indexOf('width')]), height: Number(cells[columns.indexOf('height')]) }]));
  const list = (await readFile(path.join(polypFreeDir, 'splits', `${split}.txt`), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return list.map((rel) => {
    const size = sizes.get(rel);
    if (size === undefined) throw new Error(`${rel} of splits/${split}.txt is not in index.csv`);
    return { id: rel, file: path.join(polypFreeDir, rel), ...size, truth: [] };
  });
}

/**
 * The polyp detector's validation split (scripts/polyp/validation-split.json, written from train.py's seeded
 * permutations): 80 Kvasir-SEG train images and 60 polyp-free TRAIN frames held out from training, in the
 * order of their splits, for choices made before the test split is read.
 */
export async function validationSplit(): Promise<{ kvasir: KvasirImage[]; polypFree: LabelledImage[] }> {
  const file = path.join(repoRoot, 'scripts/polyp/validation-split.json');
  const chosen = JSON.parse(await readFile(file, 'utf8')) as { kvasirTrainIds: string[]; polypFreeTrainFiles: string[] };
  const kvasirIds = new Set(chosen.kvasirTrainIds);
  const polypFreeFiles = new Set(chosen.polypFreeTrainFiles);
  const kvasir = (await kvasirSplit('train')).filter((image) => kvasirIds.has(image.id));
  const polypFree = (await polypFreeSplit('train')).filter((frame) => polypFreeFiles.has(frame.id));
  if (kvasir.length !== kvasirIds.size || polypFree.length !== polypFreeFiles.size) {
    throw new Error(`${file} names images that are not in the train splits (found ${kvasir.length} of ${kvasirIds.size} and ${polypFree.length} of ${polypFreeFiles.size})`);
  }
  return { kvasir, polypFree };
}
