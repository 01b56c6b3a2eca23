/**
 * Video figures of live polyp detection before and after tracking (npm run eval:live), pure: no model,
 * no server, no I/O, so scripts/live/tracking-metrics.test.ts checks them on sequences whose counts are
 * known.
 *
 * A stream is the list of frames sent (each with its ground truth and, while a polyp is in view, the
 * index of that polyp appearance) and the answers of the frames the server analysed. Each answer carries
 * the raw `detections` (before tracking) and the shown `tracks` (after tracking, with their ids). Both
 * sides are scored the same way, as "tracks" = boxes followed across analysed frames:
 *  - after tracking: a track is a shown track id (kept through short misses by the server);
 *  - before tracking: every raw box on the screen, with nothing to hold it: a box continues a fragment
 *    of the previous analysed frame when IoU ≥ `linkIou` (greedy, best overlap first); otherwise it
 *    starts a new one. A box that flickers off for one analysed frame is a new fragment when it returns.
 * A track (or fragment) is **on a polyp** when on at least one analysed frame its box matches a ground
 * truth box of that frame (IoU ≥ `iouThreshold`); else it is a **false alarm**.
 *
 * Figures per side:
 *  - per-frame sensitivity per analysed frame (analysed polyp frames with a matching box) and per sent
 *    frame (wall time: each sent frame shows the latest answer of a frame at or before it, as a screen
 *    holds the last overlay; a dropped frame counts by what was on screen);
 *  - frames without a polyp that show no box (per analysed frame);
 *  - false-alarm tracks, and per minute of sent video (sent frames / fps);
 *  - first-detection delay per polyp appearance: sent frames from its first frame to the first analysed
 *    frame with a matching box, in ms at `fps`, plus that answer's latency when measured (real time);
 *    median over the appearances detected (the undetected ones are counted apart);
 *  - flicker: per appearance detected, the tracks (fragments) that match it within it; 1 is steady.
 */
import { iou, type Box } from '../eval/average-precision.js';

export interface SentFrame {
  seq: number;
  /** Ground-truth polyp boxes on this frame (empty: polyp-free). */
  truth: Box[];
  /** The polyp appearance this frame belongs to (undefined on polyp-free frames). */
  appearance?: number;
}

export interface Answer {
  seq: number;
  /** Raw boxes (the answer's `detections`). */
  detections: Box[];
  /** Shown tracks (the answer's `tracks`). */
  tracks: Array<{ id: number; box: Box }>;
  /** Sent → answer received (ms), real-time runs; added to the delay. */
  latencyMs?: number;
}

export interface MetricsOptions {
  fps: number;
  /** IoU with a truth box for a box to be correct (default 0.5). */
  iouThreshold?: number;
  /** IoU linking raw boxes of successive analysed frames into one fragment (default 0.2, the tracker's minIou). */
  linkIou?: number;
}

export interface AppearanceDelay {
  appearance: number;
  /** Sent frames from the appearance's first frame to its first detection; null: never detected. */
  frames: number | null;
  ms: number | null;
  /** Tracks (fragments) on this polyp within the appearance. */
  fragments: number;
}

export interface SideMetrics {
  analysedPolypFrames: number;
  sensitivityPerAnalysedFrame: number | null;
  sentPolypFrames: number;
  sensitivityPerSentFrame: number | null;
  analysedPolypFreeFrames: number;
  /** Share of analysed polyp-free frames showing no box at all. */
  clearPolypFreeFrames: number | null;
  tracks: number;
  falseAlarmTracks: number;
  falseAlarmTracksPerMinute: number;
  appearancesDetected: number;
  delayMedianMs: number | null;
  delayMaxMs: number | null;
  /** Mean tracks per detected appearance (1: each polyp one steady box). */
  fragmentsPerAppearance: number | null;
  delays: AppearanceDelay[];
}

export interface StreamMetrics {
  sentFrames: number;
  analysedFrames: number;
  /** Sent frames / fps. */
  durationS: number;
  appearances: number;
  before: SideMetrics;
  after: SideMetrics;
}

type Tracked = Array<{ id: number; box: Box }>;

/** Before tracking: raw boxes linked into fragments across successive analysed frames. */
export function linkFragments(answers: readonly Answer[], linkIou = 0.2): Tracked[] {
  let next = 1;
  let previous: Tracked = [];
  return answers.map((a) => {
    const pairs: Array<{ p: number; d: number; overlap: number }> = [];
    previous.forEach((p, pi) =>
      a.detections.forEach((d, di) => {
        const overlap = iou(p.box, d);
        if (overlap >= linkIou && overlap > 0) pairs.push({ p: pi, d: di, overlap });
      }),
    );
    pairs.sort((x, y) => y.overlap - x.overlap || x.p - y.p || x.d - y.d);
    const ids: Array<number | undefined> = a.detections.map(() => undefined);
    const usedPrevious = new Set<number>();
    for (const { p, d } of pairs) {
      if (usedPrevious.has(p) || ids[d] !== undefined) continue;
      usedPrevious.add(p);
      ids[d] = previous[p]!.id;
    }
    const current = a.detections.map((box, i) => ({ id: ids[i] ?? next++, box }));
    previous = current;
    return current;
  });
}

const matches = (box: Box, truth: readonly Box[], threshold: number) => truth.some((t) => iou(box, t) >= threshold);

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function sideMetrics(frames: readonly SentFrame[], answers: readonly Answer[], tracked: readonly Tracked[], options: Required<MetricsOptions>): SideMetrics {
  const bySeq = new Map(frames.map((f) => [f.seq, f]));
  const period = 1000 / options.fps;
  const onPolyp = new Set<number>();
  const all = new Set<number>();
  let analysedPolypFrames = 0;
  let analysedHits = 0;
  let analysedPolypFreeFrames = 0;
  let clear = 0;
  const hitBySeq = new Map<number, boolean>();
  const firstHit = new Map<number, { seq: number; latencyMs: number }>();
  const fragments = new Map<number, Set<number>>();
  answers.forEach((a, i) => {
    const frame = bySeq.get(a.seq);
    const truth = frame?.truth ?? [];
    const boxes = tracked[i]!;
    for (const t of boxes) {
      all.add(t.id);
      if (matches(t.box, truth, options.iouThreshold)) onPolyp.add(t.id);
    }
    const hit = boxes.some((t) => matches(t.box, truth, options.iouThreshold));
    hitBySeq.set(a.seq, hit);
    if (truth.length > 0) {
      analysedPolypFrames += 1;
      if (hit) analysedHits += 1;
    } else {
      analysedPolypFreeFrames += 1;
      if (boxes.length === 0) clear += 1;
    }
    if (frame?.appearance !== undefined && hit) {
      if (!firstHit.has(frame.appearance)) firstHit.set(frame.appearance, { seq: a.seq, latencyMs: a.latencyMs ?? 0 });
      const set = fragments.get(frame.appearance) ?? new Set<number>();
      boxes.filter((t) => matches(t.box, truth, options.iouThreshold)).forEach((t) => set.add(t.id));
      fragments.set(frame.appearance, set);
    }
  });

  // Wall time: each sent frame shows the latest answer at or before it.
  const sorted = [...frames].sort((a, b) => a.seq - b.seq);
  const answeredSeqs = [...hitBySeq.keys()].sort((a, b) => a - b);
  const indexOf = new Map(answers.map((a, i) => [a.seq, i]));
  let k = -1;
  let sentPolypFrames = 0;
  let sentHits = 0;
  for (const f of sorted) {
    while (k + 1 < answeredSeqs.length && answeredSeqs[k + 1]! <= f.seq) k += 1;
    if (f.truth.length === 0) continue;
    sentPolypFrames += 1;
    if (k < 0) continue;
    if (tracked[indexOf.get(answeredSeqs[k]!)!]!.some((t) => matches(t.box, f.truth, options.iouThreshold))) sentHits += 1;
  }

  const appearanceIds = [...new Set(frames.flatMap((f) => (f.appearance === undefined ? [] : [f.appearance])))].sort((a, b) => a - b);
  const delays: AppearanceDelay[] = appearanceIds.map((appearance) => {
    const first = sorted.find((f) => f.appearance === appearance)!.seq;
    const hit = firstHit.get(appearance);
    if (hit === undefined) return { appearance, frames: null, ms: null, fragments: 0 };
    const n = hit.seq - first;
    return { appearance, frames: n, ms: n * period + hit.latencyMs, fragments: fragments.get(appearance)?.size ?? 0 };
  });
  const detected = delays.filter((d) => d.ms !== null);
  const falseAlarms = [...all].filter((id) => !onPolyp.has(id)).length;
  const minutes = frames.length / options.fps / 60;
  const ratio = (a: number, b: number) => (b === 0 ? null : a / b);
  return {
    analysedPolypFrames,
    sensitivityPerAnalysedFrame: ratio(analysedHits, analysedPolypFrames),
    sentPolypFrames,
    sensitivityPerSentFrame: ratio(sentHits, sentPolypFrames),
    analysedPolypFreeFrames,
    clearPolypFreeFrames: ratio(clear, analysedPolypFreeFrames),
    tracks: all.size,
    falseAlarmTracks: falseAlarms,
    falseAlarmTracksPerMinute: minutes === 0 ? 0 : falseAlarms / minutes,
    appearancesDetected: detected.length,
    delayMedianMs: median(detected.map((d) => d.ms!)),
    delayMaxMs: detected.length === 0 ? null : Math.max(...detected.map((d) => d.ms!)),
    fragmentsPerAppearance: ratio(
      detected.reduce((s, d) => s + d.fragments, 0),
      detected.length,
    ),
    delays,
  };
}

/** The figures of one stream, before tracking (raw detections) and after (shown tracks) of the same answers. */
export function streamMetrics(frames: readonly SentFrame[], answers: readonly Answer[], options: MetricsOptions): StreamMetrics {
  const full: Required<MetricsOptions> = { iouThreshold: 0.5, linkIou: 0.2, ...options };
  const ordered = [...answers].sort((a, b) => a.seq - b.seq);
  const appearances = new Set(frames.flatMap((f) => (f.appearance === undefined ? [] : [f.appearance]))).size;
  return {
    sentFrames: frames.length,
    analysedFrames: ordered.length,
    durationS: frames.length / full.fps,
    appearances,
    before: sideMetrics(frames, ordered, linkFragments(ordered, full.linkIou), full),
    after: sideMetrics(frames, ordered, ordered.map((a) => a.tracks), full),
  };
}

// ---------------------------------------------------------------------------------------------------
// Where a still lands in a streamed frame: letterboxed (centred, aspect kept) into the camera's frame,
// and, for a "slow withdrawal", drifting over the frames of its hold.

export interface Placement {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * The placement of a `width`×`height` still in a `canvasWidth`×`canvasHeight` frame, repeat `r` of `n`:
 * `drift` = false gives the same centred placement every time (identical frames); true zooms out from
 * 1.02 to 1.00 and slides the still by up to ±4 px horizontally and ±3 px vertically over the hold, at
 * 96 % of the letterbox size so it always fits.
 */
export function heldPlacement(width: number, height: number, canvasWidth: number, canvasHeight: number, r: number, n: number, drift: boolean): Placement {
  const t = drift && n > 1 ? r / (n - 1) : 0.5;
  const zoom = drift ? 1.02 - 0.02 * t : 1;
  const scale = Math.min(canvasWidth / width, canvasHeight / height) * (drift ? 0.96 : 1) * zoom;
  const w = Math.min(canvasWidth, Math.round(width * scale));
  const h = Math.min(canvasHeight, Math.round(height * scale));
  const dx = drift ? (t - 0.5) * 8 : 0;
  const dy = drift ? (0.5 - t) * 6 : 0;
  const left = Math.max(0, Math.min(canvasWidth - w, Math.round((canvasWidth - w) / 2 + dx)));
  const top = Math.max(0, Math.min(canvasHeight - h, Math.round((canvasHeight - h) / 2 + dy)));
  return { left, top, width: w, height: h };
}

/** A box of the `width`×`height` still, in the frame's pixels after `placement`. */
export function placeBox(box: Box, width: number, height: number, placement: Placement): Box {
  const sx = placement.width / width;
  const sy = placement.height / height;
  return { x: placement.left + box.x * sx, y: placement.top + box.y * sy, width: box.width * sx, height: box.height * sy };
}
