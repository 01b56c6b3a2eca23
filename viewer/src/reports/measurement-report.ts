/**
 * Measurements drawn in the stack viewer (a length, an area) → measurements of the study's radiology
 * report: what needs neither the DOM nor the network (unit-tested in measurement-report.test.ts). The
 * network part, which picks or creates the draft and saves it, is add-to-report.ts.
 *
 * A drawn measurement is its points in image pixels (PS3.3 C.18.6.1.1: 0,0 is the top-left corner of
 * the top-left pixel, as the report's SR writes them in its SCOORD); its value is computed here from
 * those points and the image's pixel spacing (dicomweb/dicom-json.ts `pixelSpacing`), so the value a
 * report holds is always that of the points it holds. Without a pixel spacing a size stays in pixels,
 * which the report cannot hold (its values are mm and mm²): such a measurement is refused, with why.
 */
import type { ImageRef, Measurement, RadiologyContent, ReportContent, ReportJson } from '../../../server/src/contracts/reports.js';
import type { PixelSpacing } from '../dicomweb/dicom-json.js';
import { t } from '../i18n/i18n.js';
import { stack } from '../i18n/locales/stack.js';

export type MeasurementType = Measurement['type'];

/** A measurement as the stack viewer draws it (imaging/cornerstone.ts `StackView.measurements()`). */
export interface DrawnMeasurement {
  /** The drawing's id (Cornerstone's annotation UID). */
  readonly uid: string;
  readonly type: MeasurementType;
  readonly sop: string;
  /** 1-based frame of the instance. */
  readonly frame: number;
  /** x1,y1,x2,y2,… in image pixels: two points for a length, a polygon (first point not repeated) for an area. */
  readonly points: readonly number[];
}

export type MeasuredUnit = 'mm' | 'mm²' | 'px' | 'px²';

export interface Measured {
  value: number;
  unit: MeasuredUnit;
}

/** The contract's limit on the numbers of `points` (x,y pairs): an area keeps at most half of it. */
export const MAX_POLYGON_POINTS = 1000;

const round2 = (v: number) => Math.round(v * 100) / 100;
/** Values to 0.1 mm / mm², as the measurement tools show them and the report form enters them. */
const round1 = (v: number) => Math.round(v * 10) / 10;

/**
 * A length (the distance of the two points) or an area (the polygon's, by the shoelace formula), in
 * mm / mm² with a pixel spacing (row spacing is vertical, column spacing horizontal), else in pixels.
 */
export function measure(type: MeasurementType, points: readonly number[], spacing: PixelSpacing | undefined): Measured {
  const sx = spacing?.column ?? 1;
  const sy = spacing?.row ?? 1;
  if (type === 'length') {
    const [x1 = 0, y1 = 0, x2 = 0, y2 = 0] = points;
    return { value: Math.hypot((x2 - x1) * sx, (y2 - y1) * sy), unit: spacing === undefined ? 'px' : 'mm' };
  }
  let twice = 0;
  const n = Math.floor(points.length / 2);
  for (let i = 0; i < n; i += 1) {
    const j = (i + 1) % n;
    twice += points[2 * i]! * points[2 * j + 1]! - points[2 * j]! * points[2 * i + 1]!;
  }
  return { value: (Math.abs(twice) / 2) * sx * sy, unit: spacing === undefined ? 'px²' : 'mm²' };
}

/** "12.3 mm", "56.8 px (no pixel spacing)". */
export function formatMeasured(m: Measured): string {
  return `${m.value.toFixed(1)} ${m.unit}${m.unit.startsWith('px') ? t('stack:measure.noSpacing') : ''}`;
}

/** At most `max` points of a polygon, evenly picked along it (a freehand outline can have thousands). */
export function limitPolygon(points: readonly number[], max = MAX_POLYGON_POINTS): number[] {
  const n = Math.floor(points.length / 2);
  if (n <= max) return points.slice(0, n * 2);
  const out: number[] = [];
  for (let k = 0; k < max; k += 1) {
    const i = Math.floor((k * n) / max);
    out.push(points[2 * i]!, points[2 * i + 1]!);
  }
  return out;
}

/** What the report needs of the image a measurement was drawn on. */
export interface MeasuredImage {
  series: string;
  /** Frames of the instance: the image reference names the frame only of a multi-frame one. */
  frames: number;
  spacing: PixelSpacing | undefined;
}

export type Conversion = { ok: true; measurement: Measurement } | { ok: false; reason: string };

/** Why an image without a pixel spacing cannot give the report a size (English; the page shows it in its language). */
export const NO_SPACING: string = stack.en.measure.noSpacingReason;

/** A drawn measurement as the report's contract holds it: type, value in mm / mm² (to 0.1), image, points (to 0.01 pixel). */
export function toReportMeasurement(m: DrawnMeasurement, image: MeasuredImage): Conversion {
  if (image.spacing === undefined) return { ok: false, reason: t('stack:measure.noSpacingReason') };
  const outline = m.points.length >= 4 && m.points[0] === m.points.at(-2) && m.points[1] === m.points.at(-1) ? m.points.slice(0, -2) : m.points;
  const points = (m.type === 'area' ? limitPolygon(outline) : m.points.slice(0, 4)).map(round2);
  const enough = m.type === 'length' ? points.length === 4 : points.length >= 6;
  if (!enough || points.some((p) => !Number.isFinite(p)))
    return { ok: false, reason: m.type === 'length' ? t('stack:measure.lengthPoints') : t('stack:measure.areaPoints') };
  const ref: ImageRef = { seriesInstanceUid: image.series, sopInstanceUid: m.sop, ...(image.frames > 1 ? { frame: m.frame } : {}) };
  return { ok: true, measurement: { type: m.type, value: round1(measure(m.type, points, image.spacing).value), image: ref, points } };
}

const sameMeasurement = (a: Measurement, b: Measurement): boolean =>
  a.type === b.type &&
  a.image.sopInstanceUid === b.image.sopInstanceUid &&
  (a.image.frame ?? 1) === (b.image.frame ?? 1) &&
  a.points.length === b.points.length &&
  a.points.every((p, i) => Math.abs(p - b.points[i]!) < 0.01);

/**
 * The radiology content with `adding` appended after its measurements, leaving out those it already
 * holds (the same type, image and points: a measurement added twice is there once). `content` is not
 * changed; undefined stands for a new report's empty content.
 */
export function withMeasurements(content: ReportContent | undefined, adding: readonly Measurement[]): { content: RadiologyContent; added: number; already: number } {
  if (content !== undefined && content.kind !== 'radiology') throw new Error(`not a radiology report (${content.kind})`);
  const copy: RadiologyContent = content === undefined ? { kind: 'radiology', measurements: [], keyImages: [] } : structuredClone(content);
  const list = (copy.measurements ??= []);
  let added = 0;
  let already = 0;
  for (const m of adding) {
    if (list.some((held) => sameMeasurement(held, m))) already += 1;
    else {
      list.push(structuredClone(m));
      added += 1;
    }
  }
  return { content: copy, added, already };
}

/** The study's radiology report whose latest version is a draft (a new one or an amendment), the last changed first. */
export function openRadiologyDraft(reports: readonly ReportJson[]): ReportJson | undefined {
  return reports
    .filter((r) => r.kind === 'radiology' && r.version.status === 'draft')
    .sort((a, b) => b.version.updatedAt.localeCompare(a.version.updatedAt))[0];
}
