/**
 * Steady live alerts: the detections of successive analysed frames of one stream become tracks, and
 * only tracks are shown. A stray one-frame box never shows, a jittering box stays one steady box, and a
 * polyp that the model misses for a frame or two keeps its box and its id.
 *
 * - Association, per label: candidate pairs (track, detection) with IoU ≥ `minIou` are taken greedily,
 *   highest IoU first; tracks and detections left over are then paired by centre distance (at most
 *   `maxCentreDistance` × the track box's diagonal), nearest first. Greedy rather than Hungarian: a frame
 *   holds a handful of boxes, and the two differ only when boxes of one label overlap crosswise, which
 *   the detector's non-overlapping components (mask components) hardly produce; greedy is O(n² log n)
 *   on tiny n and its choice is easy to explain.
 * - Showing: a new track is tentative. It is shown once it has `confirmHits` hits within its last
 *   `confirmWindow` analysed frames (N of M), or at once when one detection scores `instant` or more,
 *   so a clear polyp shows on its first frame: no added latency. Only detections at or above the model's
 *   operating threshold (`show`) start a track or count towards showing it.
 * - Hysteresis: once shown, a track is kept by detections scoring `keep` (< `show`) or more, and through
 *   up to `maxMisses` analysed frames without one; then it ends. A tentative track whose window holds no
 *   hit any more is forgotten, never shown.
 * - Smoothing: the shown box is an exponential moving average of the matched boxes (weight `smoothing`
 *   for the newest, raised to 1 − IoU(shown, new) when that is more), so a box that jitters by a few
 *   pixels stays put while a polyp that moves by much of its size is followed with little lag.
 * - Ids: a track gets its id when it is first shown: 1, 2, 3, … per stream, never reused.
 *
 * Memory is bounded: at most MAX_TRACKS live tracks (the weakest tentative one gives way), and each
 * track's frame history (for the recording's SR) is one box per frame it was seen on.
 */
import type { Detection } from '../inference/inference-engine.js';
import { DEFAULT_TRACKING, validateTracking, type TrackingConfig } from '../config.js';

// The tuning lives with the configuration (config/tracking.ts); re-exported for the live session and tests.
export { DEFAULT_TRACKING, validateTracking, type TrackingConfig };

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Score thresholds for one model. */
export interface TrackThresholds {
  /** Starts a track and counts towards showing it: the model's operating threshold. */
  show: number;
  /** Keeps a shown track (hysteresis: below `show`). */
  keep: number;
  /** Shows a track on its first frame. */
  instant: number;
}

export function trackThresholds(operatingThreshold: number, config: TrackingConfig): TrackThresholds {
  return {
    show: operatingThreshold,
    keep: Math.min(operatingThreshold, operatingThreshold * config.keepRatio),
    // 1 (100 %): never at once, every track waits for N of M.
    instant: config.instantShare >= 1 ? Infinity : operatingThreshold + (1 - operatingThreshold) * config.instantShare,
  };
}

/** A shown track on the current frame. */
export interface ShownTrack {
  id: number;
  label: string;
  /** Score of the latest matched detection. */
  score: number;
  /** The smoothed box, in source-image pixels. */
  box: Box;
  /** First shown on this frame (the viewer's cue for a new finding). */
  isNew: boolean;
  /** Analysed frames since the last matching detection (0: matched on this frame). */
  missed: number;
}

/** A shown track's history, for the recording's SR (one finding per track). */
export interface TrackRecord {
  id: number;
  label: string;
  peakScore: number;
  /** Frames the track was matched on (recorded frames only), in order, with the box shown for each. */
  regions: Array<{ frame: number; box: Box }>;
}

export interface TrackUpdate {
  /** Tracks shown on this frame, by id. */
  shown: ShownTrack[];
  /** Per input detection, the id of the shown track it belongs to (undefined: not shown). */
  trackIds: Array<number | undefined>;
  /** Tracks that ended on this frame. */
  ended: TrackRecord[];
}

interface Track {
  key: number;
  id: number | undefined;
  label: string;
  box: Box;
  score: number;
  peakScore: number;
  /** Bit i: a hit i analysed frames ago (bit 0: this frame). */
  window: number;
  misses: number;
  regions: Array<{ frame: number; box: Box }>;
}

const MAX_TRACKS = 32;

export function iou(a: Box, b: Box): number {
  const x1 = Math.max(a.x, b.x);
  const y1 = Math.max(a.y, b.y);
  const x2 = Math.min(a.x + a.width, b.x + b.width);
  const y2 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

function centreDistance(a: Box, b: Box): number {
  return Math.hypot(a.x + a.width / 2 - (b.x + b.width / 2), a.y + a.height / 2 - (b.y + b.height / 2));
}

const round2 = (v: number) => Math.round(v * 100) / 100;

function popcount(n: number): number {
  let count = 0;
  for (let v = n; v !== 0; v &= v - 1) count += 1;
  return count;
}

export class DetectionTracker {
  private tracks: Track[] = [];
  private nextKey = 1;
  private nextId = 1;
  private readonly mask: number;

  constructor(
    private readonly config: TrackingConfig,
    private readonly thresholds: TrackThresholds,
  ) {
    validateTracking(config);
    this.mask = config.confirmWindow >= 31 ? 0x7fffffff : (1 << config.confirmWindow) - 1;
  }

  /** The next analysed frame's detections (any score; those below `keep` are ignored). `frame`: its number in the recording. */
  update(detections: readonly Detection[], frame?: number): TrackUpdate {
    const { show, keep, instant } = this.thresholds;
    for (const t of this.tracks) t.window = (t.window << 1) & this.mask;
    const trackOf: Array<Track | undefined> = detections.map(() => undefined);
    const eligible = (t: Track, d: Detection) => d.label === t.label && d.score >= (t.id === undefined ? show : keep);

    // 1. IoU, greedy from the best overlap; 2. centre distance, greedy from the nearest.
    const taken = new Set<Track>();
    const pairs: Array<{ t: Track; i: number; cost: number }> = [];
    this.tracks.forEach((t) =>
      detections.forEach((d, i) => {
        if (!eligible(t, d)) return;
        const overlap = iou(t.box, d.box);
        if (overlap >= this.config.minIou && overlap > 0) pairs.push({ t, i, cost: -overlap });
      }),
    );
    this.assign(pairs, taken, trackOf);
    const fallback: typeof pairs = [];
    this.tracks.forEach((t) => {
      if (taken.has(t)) return;
      const reach = this.config.maxCentreDistance * Math.hypot(t.box.width, t.box.height);
      detections.forEach((d, i) => {
        if (trackOf[i] !== undefined || !eligible(t, d)) return;
        const distance = centreDistance(t.box, d.box);
        if (distance <= reach) fallback.push({ t, i, cost: distance });
      });
    });
    this.assign(fallback, taken, trackOf);

    // Matched tracks take the detection; others miss it.
    const newlyShown = new Set<Track>();
    detections.forEach((d, i) => {
      const t = trackOf[i];
      if (t === undefined) return;
      // A box that moved by much of its size is followed faster: weight up to 1 as the overlap falls.
      const a = Math.max(this.config.smoothing, 1 - iou(t.box, d.box));
      t.box = { x: a * d.box.x + (1 - a) * t.box.x, y: a * d.box.y + (1 - a) * t.box.y, width: a * d.box.width + (1 - a) * t.box.width, height: a * d.box.height + (1 - a) * t.box.height };
      t.score = d.score;
      t.peakScore = Math.max(t.peakScore, d.score);
      t.misses = 0;
      if (d.score >= show) t.window |= 1;
      if (frame !== undefined) t.regions.push({ frame, box: roundBox(t.box) });
    });
    for (const t of this.tracks) if (!taken.has(t)) t.misses += 1;

    // New tentative tracks from detections at or above the operating threshold that no track took.
    detections.forEach((d, i) => {
      if (trackOf[i] !== undefined || d.score < show) return;
      const t: Track = { key: this.nextKey++, id: undefined, label: d.label, box: { ...d.box }, score: d.score, peakScore: d.score, window: 1, misses: 0, regions: frame === undefined ? [] : [{ frame, box: roundBox(d.box) }] };
      this.tracks.push(t);
      trackOf[i] = t;
    });

    // Show (N of M, or at once on a high score); forget and end.
    const ended: TrackRecord[] = [];
    this.tracks = this.tracks.filter((t) => {
      if (t.id === undefined) {
        if (t.misses === 0 && (t.score >= instant || popcount(t.window) >= this.config.confirmHits)) {
          t.id = this.nextId++;
          newlyShown.add(t);
          return true;
        }
        return t.window !== 0;
      }
      if (t.misses > this.config.maxMisses) {
        ended.push(recordOf(t));
        return false;
      }
      return true;
    });
    this.bound(ended);

    const shown = this.tracks
      .filter((t) => t.id !== undefined)
      .sort((x, y) => x.id! - y.id!)
      .map((t) => ({ id: t.id!, label: t.label, score: t.score, box: roundBox(t.box), isNew: newlyShown.has(t), missed: t.misses }));
    return { shown, trackIds: trackOf.map((t) => t?.id), ended };
  }

  /** Ends every track (the stream stopped): the records of those that were shown. */
  finish(): TrackRecord[] {
    const records = this.tracks.filter((t) => t.id !== undefined).map(recordOf);
    this.tracks = [];
    return records;
  }

  private assign(pairs: Array<{ t: Track; i: number; cost: number }>, taken: Set<Track>, trackOf: Array<Track | undefined>): void {
    // Ties: the older track (lower key) first, so the result does not depend on sort stability.
    pairs.sort((p, q) => p.cost - q.cost || p.t.key - q.t.key || p.i - q.i);
    for (const { t, i } of pairs) {
      if (taken.has(t) || trackOf[i] !== undefined) continue;
      taken.add(t);
      trackOf[i] = t;
    }
  }

  /** Over MAX_TRACKS: the tentative tracks with the fewest hits go first, then the longest-missed shown ones (ended). */
  private bound(ended: TrackRecord[]): void {
    if (this.tracks.length <= MAX_TRACKS) return;
    const rank = (t: Track) => (t.id === undefined ? popcount(t.window) : 1000 - t.misses);
    const keep = new Set([...this.tracks].sort((x, y) => rank(y) - rank(x) || x.key - y.key).slice(0, MAX_TRACKS));
    this.tracks = this.tracks.filter((t) => {
      if (keep.has(t)) return true;
      if (t.id !== undefined) ended.push(recordOf(t));
      return false;
    });
  }
}

function roundBox(b: Box): Box {
  return { x: round2(b.x), y: round2(b.y), width: round2(b.width), height: round2(b.height) };
}

function recordOf(t: Track): TrackRecord {
  return { id: t.id!, label: t.label, peakScore: t.peakScore, regions: t.regions };
}
