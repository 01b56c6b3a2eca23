/** The generated endoscopy video's ground truth (../shared/data/endoscopy-dicom-kvasir/ground-truth.json). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Box } from '../eval/average-precision.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const endoscopyDir = path.join(process.env['PACS_SHARED_DATA'] ?? path.resolve(repoRoot, '../shared/data'), 'endoscopy-dicom-kvasir');

export interface VideoSegment {
  firstFrame: number;
  lastFrame: number;
  truth: Box[];
}

export interface VideoTruth {
  mp4: string;
  fps: number;
  frames: number;
  segments: VideoSegment[];
  /** Ground-truth boxes of a 0-based frame index. */
  truthOf(frame: number): Box[];
}

export async function videoGroundTruth(): Promise<VideoTruth> {
  const json = JSON.parse(await readFile(path.join(endoscopyDir, 'ground-truth.json'), 'utf8'));
  const video = json.video;
  const segments: VideoSegment[] = video.segments.map((s: any) => ({
    firstFrame: s.first_frame,
    lastFrame: s.last_frame,
    truth: s.bboxes.map((b: any) => ({ x: b.xmin, y: b.ymin, width: b.xmax - b.xmin + 1, height: b.ymax - b.ymin + 1 })),
  }));
  return {
    mp4: path.join(endoscopyDir, video.mp4_sidecar),
    fps: video.fps,
    frames: video.frames,
    segments,
    truthOf: (frame) => segments.find((s) => frame >= s.firstFrame && frame <= s.lastFrame)?.truth ?? [],
  };
}
