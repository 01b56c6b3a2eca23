/**
 * Metrics of a tile classifier's per-image answers (the same definitions as scripts/lesion/common.py, so
 * the HTTP evaluation reproduces the model card): rank-based ROC AUC with ties averaged, sensitivity and
 * specificity at a cut, the confusion matrix (rows = truth, columns = argmax prediction).
 */

/** ROC AUC by ranks (Mann–Whitney U), tied scores sharing their average rank; NaN without both classes. */
export function rocAuc(scores: readonly number[], positive: readonly boolean[]): number {
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
  const ranks = new Array<number>(scores.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j += 1;
    for (let k = i; k <= j; k += 1) ranks[order[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  const nPos = positive.filter(Boolean).length;
  const nNeg = positive.length - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  const rankSum = ranks.reduce((sum, r, i) => sum + (positive[i] ? r : 0), 0);
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export interface BinaryReport {
  threshold: number;
  sensitivity: number;
  specificity: number;
  auc: number;
  tp: number;
  fn: number;
  tn: number;
  fp: number;
}

/** Positive when score ≥ threshold. */
export function binaryReport(scores: readonly number[], positive: readonly boolean[], threshold: number): BinaryReport {
  let tp = 0;
  let fn = 0;
  let tn = 0;
  let fp = 0;
  scores.forEach((s, i) => {
    const called = s >= threshold;
    if (positive[i]) called ? (tp += 1) : (fn += 1);
    else called ? (fp += 1) : (tn += 1);
  });
  return { threshold, sensitivity: tp / Math.max(tp + fn, 1), specificity: tn / Math.max(tn + fp, 1), auc: rocAuc(scores, positive), tp, fn, tn, fp };
}

/** Index of the largest probability (the first on ties, like numpy's argmax). */
export function argmax(p: readonly number[]): number {
  let best = 0;
  for (let c = 1; c < p.length; c += 1) if (p[c]! > p[best]!) best = c;
  return best;
}

/** rows = true class, columns = predicted (argmax) class. */
export function confusionMatrix(probabilities: readonly (readonly number[])[], truth: readonly number[], classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  probabilities.forEach((p, i) => (m[truth[i]!]![argmax(p)]! += 1));
  return m;
}
