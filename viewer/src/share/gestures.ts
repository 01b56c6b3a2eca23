/**
 * The touch gestures of the phone page's image view, as pure functions (no DOM): pinch-zoom around the
 * fingers' midpoint, pan within the zoomed image, a horizontal swipe to the next or previous image, a
 * double tap. The view applies the result as a CSS transform (`translate(x, y) scale(s)`, origin top
 * left) on an element the size of the stage, so everything here is in stage pixels.
 */

export interface Transform {
  scale: number;
  x: number;
  y: number;
}

export interface Size {
  width: number;
  height: number;
}

export interface Point {
  x: number;
  y: number;
}

export const IDENTITY: Transform = Object.freeze({ scale: 1, x: 0, y: 0 });
export const MIN_SCALE = 1;
export const MAX_SCALE = 8;
/** A swipe: at least this far sideways (px), or this fast (px/ms) over at least SWIPE_MIN_PX. */
export const SWIPE_PX = 60;
export const SWIPE_MIN_PX = 24;
export const SWIPE_VELOCITY = 0.35;
/** A double tap: two taps this close in time (ms) and space (px). */
export const DOUBLE_TAP_MS = 320;
export const DOUBLE_TAP_PX = 30;
/** A tap moves less than this (px). */
export const TAP_PX = 10;

const distance = (a: Point, b: Point): number => Math.hypot(a.x - b.x, a.y - b.y);
const midpoint = (a: Point, b: Point): Point => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });

/** Keeps the scaled content covering the stage: no empty band opens at an edge while zoomed in. */
export function clamp(t: Transform, stage: Size): Transform {
  const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, t.scale));
  const minX = stage.width * (1 - scale);
  const minY = stage.height * (1 - scale);
  return { scale, x: Math.min(0, Math.max(minX, t.x)), y: Math.min(0, Math.max(minY, t.y)) };
}

/**
 * Pinch: the transform that keeps the content point under the fingers' first midpoint under their
 * current midpoint, scaled by how much the fingers spread apart (so zoom follows the fingers, and
 * moving both pans).
 */
export function pinch(start: Transform, from: [Point, Point], to: [Point, Point], stage: Size): Transform {
  const d0 = distance(from[0], from[1]);
  const d1 = distance(to[0], to[1]);
  if (d0 < 1) return start;
  const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, start.scale * (d1 / d0)));
  const m0 = midpoint(from[0], from[1]);
  const m1 = midpoint(to[0], to[1]);
  // Content coordinates under m0 before the gesture: (m0 - t) / s.
  const cx = (m0.x - start.x) / start.scale;
  const cy = (m0.y - start.y) / start.scale;
  return clamp({ scale, x: m1.x - cx * scale, y: m1.y - cy * scale }, stage);
}

/** Pan a zoomed image by the finger's move. */
export function pan(start: Transform, from: Point, to: Point, stage: Size): Transform {
  return clamp({ scale: start.scale, x: start.x + (to.x - from.x), y: start.y + (to.y - from.y) }, stage);
}

/** Zoom by `factor` around a point of the stage (double tap, mouse wheel). */
export function zoomAt(start: Transform, at: Point, factor: number, stage: Size): Transform {
  const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, start.scale * factor));
  const cx = (at.x - start.x) / start.scale;
  const cy = (at.y - start.y) / start.scale;
  return clamp({ scale, x: at.x - cx * scale, y: at.y - cy * scale }, stage);
}

/**
 * What a one-finger stroke at scale 1 means when the finger lifts: `next` (swiped left), `previous`
 * (swiped right) or nothing (too short, too slow, or more vertical than sideways).
 */
export function swipeOf(from: Point, to: Point, ms: number): 'next' | 'previous' | undefined {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  if (Math.abs(dx) < SWIPE_MIN_PX || Math.abs(dx) < Math.abs(dy) * 1.2) return undefined;
  const fast = Math.abs(dx) / Math.max(1, ms) >= SWIPE_VELOCITY;
  if (Math.abs(dx) < SWIPE_PX && !fast) return undefined;
  return dx < 0 ? 'next' : 'previous';
}

/** Whether a tap is the second of a double tap. */
export function isDoubleTap(previous: { at: Point; time: number } | undefined, at: Point, time: number): boolean {
  return previous !== undefined && time - previous.time <= DOUBLE_TAP_MS && distance(previous.at, at) <= DOUBLE_TAP_PX;
}

export const isZoomed = (t: Transform): boolean => t.scale > 1.01;

export const cssOf = (t: Transform): string => `translate(${t.x.toFixed(1)}px, ${t.y.toFixed(1)}px) scale(${t.scale.toFixed(4)})`;
