/**
 * Video detection metrics as commercial polyp-detection (CADe) studies report them: per-frame
 * sensitivity (polyp frames with a correct box), false-positive boxes per frame, specificity (frames
 * without a polyp and without any box; only measurable when the video has such frames), and for each
 * polyp appearance the delay from its first frame to its first correct detection.
 */
import { iou, type Box } from '../eval/average-precision.js';
import type { VideoTruth } from './ground-truth.js';

export interface FrameResult {
  /** 0-based video frame index. */
  frame: number;
  boxes: Box[];
  /** When the answer arrived, relative to the frame's capture (ms); undefined for offline runs. */
  latencyMs?: number;
}

export interface VideoMetrics {
  analysedFrames: number;
  polypFrames: number;
  sensitivity: number;
  negativeFrames: number;
  specificity: number | undefined;
  falsePositivesPerFrame: number;
  /** Per polyp appearance: frames from its first frame to the first analysed frame with a correct box (undefined: never). */
  delays: Array<{ segment: number; frames: number | undefined; ms: number | undefined }>;
}

const correct = (boxes: Box[], truth: Box[], threshold: number) => boxes.some((b) => truth.some((t) => iou(b, t) >= threshold));

export function videoMetrics(results: FrameResult[], truth: VideoTruth, iouThreshold = 0.5): VideoMetrics {
  let polypFrames = 0;
  let hits = 0;
  let negativeFrames = 0;
  let trueNegatives = 0;
  let falsePositives = 0;
  for (const r of results) {
    const gt = truth.truthOf(r.frame);
    falsePositives += r.boxes.filter((b) => !gt.some((t) => iou(b, t) >= iouThreshold)).length;
    if (gt.length > 0) {
      polypFrames += 1;
      if (correct(r.boxes, gt, iouThreshold)) hits += 1;
    } else {
      negativeFrames += 1;
      if (r.boxes.length === 0) trueNegatives += 1;
    }
  }
  const period = 1000 / truth.fps;
  const delays = truth.segments.map((segment, index) => {
    const first = results
      .filter((r) => r.frame >= segment.firstFrame && r.frame <= segment.lastFrame)
      .sort((a, b) => a.frame - b.frame)
      .find((r) => correct(r.boxes, segment.truth, iouThreshold));
    if (first === undefined) return { segment: index, frames: undefined, ms: undefined };
    const frames = first.frame - segment.firstFrame;
    return { segment: index, frames, ms: frames * period + (first.latencyMs ?? 0) };
  });
  return {
    analysedFrames: results.length,
    polypFrames,
    sensitivity: polypFrames === 0 ? 0 : hits / polypFrames,
    negativeFrames,
    specificity: negativeFrames === 0 ? undefined : trueNegatives / negativeFrames,
    falsePositivesPerFrame: results.length === 0 ? 0 : falsePositives / results.length,
    delays,
  };
}
