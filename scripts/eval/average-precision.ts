/**
 * Detection metrics as the model card reports them (and as scripts/polyp/common.py computes them while
 * training): detections of all images ranked by score; a detection is a true positive when its IoU with
 * a not-yet-matched ground-truth box of the same image reaches the threshold (best IoU first); AP is the
 * area under the all-point interpolated precision envelope (PASCAL VOC 2010+ / COCO style, continuous).
 */

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ImageResult {
  id: string;
  truth: Box[];
  detections: Array<{ score: number; box: Box }>;
}

export function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

interface Ranked {
  score: number;
  truePositive: boolean;
}

function rank(images: ImageResult[], threshold: number): Ranked[] {
  const all = images.flatMap((image) => image.detections.map((d) => ({ image, d })));
  all.sort((a, b) => b.d.score - a.d.score);
  const matched = new Map<string, Set<number>>();
  return all.map(({ image, d }) => {
    const used = matched.get(image.id) ?? new Set<number>();
    matched.set(image.id, used);
    let best = -1;
    let bestIou = threshold;
    image.truth.forEach((t, i) => {
      if (used.has(i)) return;
      const overlap = iou(d.box, t);
      if (overlap >= bestIou) {
        bestIou = overlap;
        best = i;
      }
    });
    if (best >= 0) used.add(best);
    return { score: d.score, truePositive: best >= 0 };
  });
}

export function averagePrecision(images: ImageResult[], threshold: number): number {
  const totalTruth = images.reduce((n, i) => n + i.truth.length, 0);
  if (totalTruth === 0) return 0;
  const ranked = rank(images, threshold);
  const recall: number[] = [0];
  const precision: number[] = [1];
  let tp = 0;
  ranked.forEach((r, i) => {
    if (r.truePositive) tp += 1;
    recall.push(tp / totalTruth);
    precision.push(tp / (i + 1));
  });
  // Precision envelope: the best precision at any recall at least this high.
  for (let i = precision.length - 2; i >= 0; i -= 1) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let ap = 0;
  for (let i = 1; i < recall.length; i += 1) ap += (recall[i]! - recall[i - 1]!) * precision[i]!;
  return ap;
}

/** Mean AP over IoU 0.50, 0.55, …, 0.95 (COCO's AP). */
export function averagePrecision50to95(images: ImageResult[]): number {
  const thresholds = Array.from({ length: 10 }, (_, i) => 0.5 + i * 0.05);
  return thresholds.reduce((sum, t) => sum + averagePrecision(images, t), 0) / thresholds.length;
}

/** True/false positives and misses of the detections scoring at least `minScore`, at IoU 0.5. */
export function countsAt(images: ImageResult[], minScore: number): { tp: number; fp: number; fn: number; precision: number; recall: number } {
  const kept = images.map((i) => ({ ...i, detections: i.detections.filter((d) => d.score >= minScore) }));
  const ranked = rank(kept, 0.5);
  const tp = ranked.filter((r) => r.truePositive).length;
  const fp = ranked.length - tp;
  const totalTruth = images.reduce((n, i) => n + i.truth.length, 0);
  return { tp, fp, fn: totalTruth - tp, precision: ranked.length === 0 ? 1 : tp / ranked.length, recall: totalTruth === 0 ? 0 : tp / totalTruth };
}
