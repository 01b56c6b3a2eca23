import { describe, expect, it } from 'vitest';
import type { OfferedAiFinding, RateMeasure } from '../../../server/src/contracts/reports.js';
import { bbpsTotal, cleanContent, defaultPeriod, dicomDateOf, formatDuration, label, medianText, mergeAiFindings, parseDuration, parsePoints, problemsOf, rateText } from './report-model.js';

const offered = (frame: number, index: number, report = '1.2.3'): OfferedAiFinding => ({
  report: { seriesInstanceUid: '1.2', sopInstanceUid: report, contentDate: '20260105', contentTime: '093000' },
  model: { id: 'm', version: '1' },
  source: { seriesInstanceUid: '1.9', sopInstanceUid: '1.9.1', frame },
  frame,
  index,
  label: 'polyp',
  score: 0.9,
  box: { x: 1, y: 2, width: 3, height: 4 },
  timeOffsetMs: 1000,
});

describe('report model', () => {
  it('sums the Boston scale only when all three segments are scored', () => {
    expect(bbpsTotal({ right: 3, transverse: 2, left: 3 })).toBe(8);
    expect(bbpsTotal({ right: 3, left: 3 })).toBeUndefined();
    expect(bbpsTotal(undefined)).toBeUndefined();
  });

  it('reads and writes withdrawal times as m:ss', () => {
    expect(formatDuration(430)).toBe('7:10');
    expect(formatDuration(7)).toBe('0:07');
    expect(formatDuration(null)).toBe('');
    expect(parseDuration('7:10')).toBe(430);
    expect(parseDuration('7m 10s')).toBe(430);
    expect(parseDuration('430')).toBe(430);
    expect(parseDuration('')).toBeNull();
    expect(parseDuration('seven')).toBeUndefined();
    expect(parseDuration('7:75')).toBeUndefined();
  });

  it('offers every AI finding of the study with the decisions the draft holds', () => {
    const rows = mergeAiFindings([offered(2, 1), offered(2, 2), offered(5, 1)], [
      { report: '1.2.3', frame: 2, index: 2, decision: 'rejected' },
      { report: '9.9', frame: 1, index: 1, decision: 'accepted' },
    ]);
    expect(rows.map((r) => [r.decision.frame, r.decision.index, r.decision.decision, r.offered !== undefined])).toEqual([
      [2, 1, 'pending', true],
      [2, 2, 'rejected', true],
      [5, 1, 'pending', true],
      [1, 1, 'accepted', false],
    ]);
  });

  it('drops blank text but keeps Vietnamese text exactly as typed', () => {
    const text = 'Polyp đại tràng sigma 6 mm, đã cắt bằng thòng lọng lạnh.';
    const cleaned = cleanContent({ kind: 'endoscopy', indication: { text: '  ' }, conclusion: text, recommendation: '', keyImages: [{ seriesInstanceUid: '1', sopInstanceUid: '2', caption: '' }] });
    expect(cleaned).toEqual({ kind: 'endoscopy', conclusion: text, keyImages: [{ seriesInstanceUid: '1', sopInstanceUid: '2' }] });
    const nfd = 'Nguyê\u0303n';
    expect((cleanContent({ kind: 'radiology', impression: nfd }) as { impression: string }).impression).toBe(nfd);
  });

  it('names what must be fixed before saving', () => {
    expect(problemsOf({ kind: 'endoscopy', bowelPreparation: { right: 2 } as never })).toEqual(['Boston scale: score all three segments (or none)']);
    const image = { seriesInstanceUid: '1', sopInstanceUid: '2' };
    expect(problemsOf({ kind: 'radiology', measurements: [{ type: 'length', value: 12, image, points: [1, 2, 3] }, { type: 'area', value: Number.NaN, image, points: [0, 0, 1, 0, 1, 1] }] })).toEqual([
      'Measurement 1: a length needs two points (x1,y1,x2,y2)',
      'Measurement 2: the value must be a number ≥ 0',
    ]);
    expect(parsePoints('1, 2;3 4')).toEqual([1, 2, 3, 4]);
    expect(parsePoints('1,a')).toBeUndefined();
  });

  it('shows quality figures against their targets', () => {
    const target = { minimum: 0.25, source: 'ESGE' };
    const rate = (value: number | null, numerator: number, denominator: number, met: boolean | null): RateMeasure => ({ value, numerator, denominator, target, met });
    expect(rateText(rate(1 / 3, 1, 3, true))).toEqual({ value: '33.3 %', detail: '1/3', target: '≥ 25 %', state: 'met' });
    expect(rateText(rate(0, 0, 2, false)).state).toBe('not-met');
    expect(rateText(rate(null, 0, 0, null)).state).toBe('no-data');
    expect(rateText({ ...rate(0.5, 1, 2, null), target: { minimum: null, source: 'none' } })).toMatchObject({ target: 'no target', state: 'no-target' });
    expect(medianText({ value: 415, count: 3, target: { minimum: 360, source: 'ESGE' }, met: true })).toEqual({ value: '6:55', detail: 'n = 3', target: '≥ 6:00', state: 'met' });
  });

  it('labels values and reads dates', () => {
    expect(label('hepatic-flexure')).toBe('Hepatic flexure');
    expect(label('0-IIa+IIc')).toBe('0-IIa+IIc');
    expect(label('emr')).toBe('EMR');
    expect(dicomDateOf('2026-01-05')).toBe('20260105');
    expect(dicomDateOf('05/01/2026')).toBeUndefined();
    expect(defaultPeriod(new Date(2026, 0, 15))).toEqual({ from: '2025-01-16', to: '2026-01-15' });
  });
});
