/**
 * Tuning of the live tracker (live/tracker.ts: steady live alerts), read by config/ai.ts from
 * PACS_LIVE_TRACK_*; the defaults are documented in README.md and docs/api.md.
 */

/** Tuning (config/ai.ts `tracking`, PACS_LIVE_TRACK_*): defaults in DEFAULT_TRACKING. */
export interface TrackingConfig {
  /** N: hits needed within the window for a tentative track to show. */
  confirmHits: number;
  /** M: the window, in analysed frames. */
  confirmWindow: number;
  /** K: analysed frames without a matching detection that a shown track survives. */
  maxMisses: number;
  /** Share (0–1) of the way from the operating threshold to 1 at which a detection shows on its first frame; 1: never. */
  instantShare: number;
  /** A shown track is kept by detections scoring at least this share (0–1) of the operating threshold. */
  keepRatio: number;
  /** Least IoU for a detection to continue a track. */
  minIou: number;
  /** Largest centre distance, in diagonals of the track's box, for the fallback association. */
  maxCentreDistance: number;
  /** Weight (0–1] of the newest box in the smoothed box; 1 = no smoothing. */
  smoothing: number;
}

export const DEFAULT_TRACKING: TrackingConfig = {
  confirmHits: 2,
  confirmWindow: 3,
  maxMisses: 12,
  instantShare: 0.5,
  keepRatio: 0.8,
  minIou: 0.2,
  maxCentreDistance: 0.75,
  smoothing: 0.5,
};

/** Checks a configuration; throws a message naming the bad value. */
export function validateTracking(config: TrackingConfig): TrackingConfig {
  const bad = (what: string) => {
    throw new Error(`Live tracking: ${what}`);
  };
  if (!(config.confirmWindow >= 1 && config.confirmWindow <= 30)) bad('the confirm window must be 1…30 frames');
  if (!(config.confirmHits >= 1 && config.confirmHits <= config.confirmWindow)) bad('the confirm hits must be 1…the confirm window');
  if (!(config.maxMisses >= 0)) bad('max misses must be ≥ 0');
  if (!(config.smoothing > 0 && config.smoothing <= 1)) bad('smoothing must be in (0, 1]');
  for (const [name, v] of [['instantShare', config.instantShare], ['keepRatio', config.keepRatio], ['minIou', config.minIou]] as const) {
    if (!(v >= 0 && v <= 1)) bad(`${name} must be in [0, 1]`);
  }
  return config;
}

