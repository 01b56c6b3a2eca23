/**
 * Pure pieces of the consult pages, tested in Node (consult-format.test.ts): a drawn measurement as an
 * answer's region within the API's limits, and a turnaround time as people read it.
 */
import type { StackMeasurement } from '../imaging/cornerstone.js';
import { t } from '../i18n/i18n.js';
import type { ConsultRegion } from './consults-client.js';

/**
 * A region drawn for the answer: a measurement on a stack image (imaging/cornerstone.ts `drawnOnStacks`),
 * with its series, or a polygon on a slide (`type` `slide`, wsi/slide-regions.ts: points in the total
 * pixel matrix of the base level's instance, no frame).
 */
export type Drawn = (StackMeasurement & { series: string }) | { uid: string; type: 'slide'; sop: string; series: string; points: number[] };

/** The API's limit on a region's numbers (server/src/contracts/sharing.ts ConsultRegion): 1000 points. */
export const MAX_REGION_NUMBERS = 2000;

/**
 * A drawn measurement as an answer's region: image pixels (0,0 the top-left corner of the top-left
 * pixel, PS3.3 C.18.6.1.1) rounded to 0.01, none below 0 (a drag may leave the image), a long freehand
 * outline thinned to every k-th point to stay within the limit; `frame` only after the first frame (and
 * never for a slide region: its points are in the total pixel matrix, not a tile).
 */
export function toRegion(m: Drawn, label: string | undefined): ConsultRegion {
  let points = m.points.map((p) => Math.round(Math.max(0, p) * 100) / 100);
  if (points.length > MAX_REGION_NUMBERS) {
    const step = Math.ceil(points.length / 2 / (MAX_REGION_NUMBERS / 2));
    points = points.filter((_, i) => Math.floor(i / 2) % step === 0);
  }
  return {
    seriesInstanceUid: m.series,
    sopInstanceUid: m.sop,
    ...(m.type !== 'slide' && m.frame > 1 ? { frame: m.frame } : {}),
    points,
    ...(label === undefined || label.trim() === '' ? {} : { label: label.trim().slice(0, 64) }),
  };
}

/** A duration in seconds as `45 s`, `12 min`, `3 h 20 min`, `2 days 4 h` (or in Vietnamese). */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const join = (...parts: string[]) => parts.filter((p) => p !== '').join(' ');
  if (d > 0) return join(t('consult:days', { count: d }), hours > 0 ? t('consult:hours', { count: hours }) : '');
  if (hours > 0) return join(t('consult:hours', { count: hours }), m > 0 ? t('consult:minutes', { count: m }) : '');
  if (m > 0) return t('consult:minutes', { count: m });
  return t('consult:seconds', { count: s });
}
