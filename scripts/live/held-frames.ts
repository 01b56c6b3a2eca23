/**
 * Stills streamed as video (npm run eval:live): each still is letterboxed into the camera's frame
 * (720×576, like the generated Kvasir video) and held for `n` frames, as a slow withdrawal shows one
 * scene for about a second. `drift` (the default of eval:live) re-renders every repeat with a slow zoom and
 * slide of a few pixels (tracking-metrics.ts `heldPlacement`) and encodes it anew, so successive frames
 * differ like a real camera's; without it the n repeats are one JPEG sent n times.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { Box } from '../eval/average-precision.js';
import { heldPlacement, placeBox } from './tracking-metrics.js';

export interface Still {
  file: string;
  /** Ground-truth boxes in the still's pixels (empty: polyp-free). */
  truth: Box[];
  /** The polyp appearance it is (undefined: polyp-free). */
  appearance?: number;
}

export interface HeldFrame {
  jpeg: Buffer;
  /** Truth in the streamed frame's pixels. */
  truth: Box[];
  appearance?: number;
}

export const CANVAS = { width: 720, height: 576 } as const;

export async function holdStill(still: Still, n: number, drift: boolean, quality = 90): Promise<HeldFrame[]> {
  const { data, info } = await sharp(still.file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const frames: HeldFrame[] = [];
  for (let r = 0; r < n; r += 1) {
    const p = heldPlacement(info.width, info.height, CANVAS.width, CANVAS.height, r, n, drift);
    const truth = still.truth.map((b) => placeBox(b, info.width, info.height, p));
    const jpeg =
      !drift && r > 0
        ? frames[0]!.jpeg
        : await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
            .resize(p.width, p.height, { fit: 'fill' })
            .extend({ left: p.left, top: p.top, right: CANVAS.width - p.left - p.width, bottom: CANVAS.height - p.top - p.height, background: { r: 0, g: 0, b: 0 } })
            .jpeg({ quality })
            .toBuffer();
    frames.push({ jpeg, truth, ...(still.appearance === undefined ? {} : { appearance: still.appearance }) });
  }
  return frames;
}

/** One still's frames, rendered to files: the stream reads them back instead of rendering while it runs. */
export interface RenderedHold {
  files: string[];
  truth: Box[][];
  appearance?: number;
}

/**
 * Renders every still's hold into `dir` before streaming (so rendering takes no CPU from the server
 * while frames stream); a still held again (the polyp-free frames before each polyp) is rendered once.
 */
export async function renderHolds(stills: Still[], n: number, drift: boolean, dir: string, cache = new Map<string, RenderedHold>()): Promise<RenderedHold[]> {
  const out: RenderedHold[] = [];
  for (const still of stills) {
    const key = `${still.file}|${still.appearance ?? ''}`;
    let rendered = cache.get(key);
    if (rendered === undefined) {
      const frames = await holdStill(still, n, drift);
      const files: string[] = [];
      for (const [r, f] of frames.entries()) {
        const file = path.join(dir, `${cache.size}-${drift ? r : 0}.jpg`);
        if (drift || r === 0) await writeFile(file, f.jpeg);
        files.push(file);
      }
      rendered = { files, truth: frames.map((f) => f.truth), ...(still.appearance === undefined ? {} : { appearance: still.appearance }) };
      cache.set(key, rendered);
    }
    out.push(rendered);
  }
  return out;
}
