/** Measurements drawn in the viewer → the radiology report's measurements (no DOM, no network). */
import { describe, expect, it } from 'vitest';
import type { Measurement, ReportJson } from '../../../server/src/contracts/reports.js';
import { pixelSpacing, type DicomJson } from '../dicomweb/dicom-json.js';
import { formatMeasured, limitPolygon, measure, NO_SPACING, openRadiologyDraft, toReportMeasurement, withMeasurements, type DrawnMeasurement } from './measurement-report.js';

const SERIES = '1.2.3.4';
const SOP = '1.2.3.4.5';
const ds = (o: Record<string, unknown[]>): DicomJson => Object.fromEntries(Object.entries(o).map(([tag, Value]) => [tag, { vr: 'DS', Value }]));
const CT_SPACING = { row: 0.661468, column: 0.661468, source: 'PixelSpacing' as const };
const length = (points: number[], over: Partial<DrawnMeasurement> = {}): DrawnMeasurement => ({ uid: 'a1', type: 'length', sop: SOP, frame: 1, points, ...over });

describe('pixel spacing of an image', () => {
  it('reads Pixel Spacing, then the frame’s Pixel Measures, then Imager Pixel Spacing; none: undefined', () => {
    expect(pixelSpacing(ds({ '00280030': [0.5, 0.25] }))).toEqual({ row: 0.5, column: 0.25, source: 'PixelSpacing' });
    expect(pixelSpacing(ds({ '00280030': ['0.7', '0.7'], '00181164': [1.2, 1.2] }))).toEqual({ row: 0.7, column: 0.7, source: 'PixelSpacing' });
    expect(pixelSpacing(ds({ '00181164': [1.2, 1.2012] }))).toEqual({ row: 1.2, column: 1.2012, source: 'ImagerPixelSpacing' });
    const measures = (row: number) => ({ '00289110': { vr: 'SQ', Value: [ds({ '00280030': [row, row] })] } });
    const multiframe: DicomJson = {
      '52009229': { vr: 'SQ', Value: [measures(0.9)] },
      '52009230': { vr: 'SQ', Value: [{}, measures(0.4)] },
    };
    expect(pixelSpacing(multiframe, 1)?.row).toBe(0.9);
    expect(pixelSpacing(multiframe, 2)?.row).toBe(0.4);
    expect(pixelSpacing(ds({}))).toBeUndefined();
    expect(pixelSpacing(ds({ '00280030': [0, 0] }))).toBeUndefined();
    expect(pixelSpacing(undefined)).toBeUndefined();
  });
});

describe('measuring', () => {
  it('a length in mm from the points and the spacing (rows vertical, columns horizontal), else in pixels', () => {
    expect(measure('length', [10, 10, 40, 50], undefined)).toEqual({ value: 50, unit: 'px' });
    const anisotropic = measure('length', [0, 0, 30, 40], { row: 0.5, column: 2, source: 'PixelSpacing' });
    expect(anisotropic.unit).toBe('mm');
    expect(anisotropic.value).toBeCloseTo(Math.hypot(30 * 2, 40 * 0.5), 10);
  });

  it('an area in mm² by the shoelace formula, either way round, else in px²', () => {
    const square = [2, 2, 12, 2, 12, 9, 2, 9];
    expect(measure('area', square, undefined)).toEqual({ value: 70, unit: 'px²' });
    const reversed = [2, 9, 12, 9, 12, 2, 2, 2];
    expect(measure('area', reversed, { row: 0.5, column: 2, source: 'PixelSpacing' })).toEqual({ value: 70, unit: 'mm²' });
    expect(measure('area', [0, 0, 10, 0, 0, 10], CT_SPACING).value).toBeCloseTo(50 * 0.661468 ** 2, 10);
  });

  it('says when a value is in pixels', () => {
    expect(formatMeasured({ value: 12.345, unit: 'mm' })).toBe('12.3 mm');
    expect(formatMeasured({ value: 4, unit: 'px²' })).toBe('4.0 px² (no pixel spacing)');
  });

  it('keeps at most 1000 points of an outline, evenly along it', () => {
    const circle = Array.from({ length: 2500 }, (_, i) => [50 + 40 * Math.cos((2 * Math.PI * i) / 2500), 50 + 40 * Math.sin((2 * Math.PI * i) / 2500)]).flat();
    const limited = limitPolygon(circle);
    expect(limited).toHaveLength(2000);
    expect(limited.slice(0, 2)).toEqual(circle.slice(0, 2));
    expect(measure('area', limited, undefined).value).toBeCloseTo(Math.PI * 40 * 40, -1);
    expect(limitPolygon([1, 2, 3, 4, 5, 6])).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('a drawn measurement → the report’s', () => {
  it('a length: type, value in mm (to 0.1 mm), the image, the points in image pixels (to 0.01)', () => {
    const converted = toReportMeasurement(length([20.123, 30, 100.456, 64.5]), { series: SERIES, frames: 1, spacing: CT_SPACING });
    expect(converted).toEqual({
      ok: true,
      measurement: {
        type: 'length',
        value: 57.8, // √(80.34² + 34.5²) px × 0.661468 mm = 57.83 mm
        image: { seriesInstanceUid: SERIES, sopInstanceUid: SOP },
        points: [20.12, 30, 100.46, 64.5],
      },
    });
  });

  it('names the frame of a multi-frame image only', () => {
    const converted = toReportMeasurement(length([0, 0, 10, 0], { frame: 3 }), { series: SERIES, frames: 6, spacing: CT_SPACING });
    expect(converted.ok && converted.measurement.image).toEqual({ seriesInstanceUid: SERIES, sopInstanceUid: SOP, frame: 3 });
  });

  it('an area: the outline as a polygon (a closing point repeated is dropped), its area in mm²', () => {
    const converted = toReportMeasurement({ uid: 'b', type: 'area', sop: SOP, frame: 1, points: [2, 2, 12, 2, 12, 9, 2, 9, 2, 2] }, { series: SERIES, frames: 1, spacing: { row: 0.5, column: 0.5, source: 'PixelSpacing' } });
    expect(converted).toEqual({ ok: true, measurement: { type: 'area', value: 17.5, image: { seriesInstanceUid: SERIES, sopInstanceUid: SOP }, points: [2, 2, 12, 2, 12, 9, 2, 9] } });
  });

  it('refuses a size in pixels (the report holds mm and mm²) and a shape without enough points', () => {
    expect(toReportMeasurement(length([0, 0, 10, 10]), { series: SERIES, frames: 1, spacing: undefined })).toEqual({ ok: false, reason: NO_SPACING });
    expect(toReportMeasurement(length([0, 0]), { series: SERIES, frames: 1, spacing: CT_SPACING }).ok).toBe(false);
    expect(toReportMeasurement({ uid: 'c', type: 'area', sop: SOP, frame: 1, points: [0, 0, 5, 5] }, { series: SERIES, frames: 1, spacing: CT_SPACING }).ok).toBe(false);
  });
});

describe('the radiology draft', () => {
  const m = (value: number, points: number[]): Measurement => ({ type: 'length', value, image: { seriesInstanceUid: SERIES, sopInstanceUid: SOP }, points });

  it('appends the measurements to the content, once each, leaving the content given as it was', () => {
    const content = { kind: 'radiology' as const, impression: 'Nốt phổi', measurements: [m(5, [0, 0, 10, 0])], keyImages: [] };
    const result = withMeasurements(content, [m(5, [0, 0, 10, 0.001]), m(7, [1, 1, 11, 1])]);
    expect(result.added).toBe(1);
    expect(result.already).toBe(1);
    expect(result.content.impression).toBe('Nốt phổi');
    expect(result.content.measurements!.map((x) => x.value)).toEqual([5, 7]);
    expect(content.measurements).toHaveLength(1);
    // The same points on another frame are another measurement.
    expect(withMeasurements(content, [{ ...m(5, [0, 0, 10, 0]), image: { seriesInstanceUid: SERIES, sopInstanceUid: SOP, frame: 2 } }]).added).toBe(1);
  });

  it('starts a new report’s content with them, and refuses another kind’s content', () => {
    expect(withMeasurements(undefined, [m(3, [0, 0, 3, 0])])).toEqual({ content: { kind: 'radiology', measurements: [m(3, [0, 0, 3, 0])], keyImages: [] }, added: 1, already: 0 });
    expect(() => withMeasurements({ kind: 'pathology', findings: [], keyImages: [] }, [])).toThrow(/not a radiology report/);
  });

  it('picks the study’s radiology report whose latest version is a draft, the last changed', () => {
    const report = (id: string, kind: string, status: string, updatedAt: string) => ({ id, kind, version: { status, updatedAt } }) as unknown as ReportJson;
    const reports = [
      report('endo', 'endoscopy', 'draft', '2026-01-05T10:00:00Z'),
      report('signed', 'radiology', 'final', '2026-01-05T11:00:00Z'),
      report('older', 'radiology', 'draft', '2026-01-05T08:00:00Z'),
      report('amending', 'radiology', 'draft', '2026-01-05T09:00:00Z'),
    ];
    expect(openRadiologyDraft(reports)?.id).toBe('amending');
    expect(openRadiologyDraft(reports.slice(0, 2))).toBeUndefined();
  });
});
