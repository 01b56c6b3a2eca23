import { afterAll, describe, expect, it } from 'vitest';
import { setLanguage } from '../i18n/i18n.js';
import { formatDuration, MAX_REGION_NUMBERS, toRegion, type Drawn } from './consult-format.js';

const drawn = (points: number[], frame = 1): Drawn => ({ uid: 'a1', type: 'area', sop: '1.2.3', frame, points, series: '1.2' });

describe("a specialist's drawing as an answer's region", () => {
  it('keeps image pixels to 0.01, none below 0, and names the frame only after the first', () => {
    expect(toRegion(drawn([10.123, 20.456, -0.4, 30, 40, 50.5]), ' Nốt mờ ')).toEqual({ seriesInstanceUid: '1.2', sopInstanceUid: '1.2.3', points: [10.12, 20.46, 0, 30, 40, 50.5], label: 'Nốt mờ' });
    expect(toRegion(drawn([1, 2, 3, 4], 3), '')).toEqual({ seriesInstanceUid: '1.2', sopInstanceUid: '1.2.3', frame: 3, points: [1, 2, 3, 4] });
  });

  it('thins a long freehand outline to the API limit, keeping whole points from the first', () => {
    const points = Array.from({ length: 2500 }, (_, k) => [k, 1000 + k]).flat();
    const region = toRegion(drawn(points), undefined);
    expect(region.points.length).toBeLessThanOrEqual(MAX_REGION_NUMBERS);
    expect(region.points.length % 2).toBe(0);
    expect(region.points.slice(0, 4)).toEqual([0, 1000, 3, 1003]);
  });
});

describe('the turnaround time', () => {
  it('reads in seconds, minutes, hours and days, in English and Vietnamese', async () => {
    await setLanguage('en');
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(12 * 60 + 5)).toBe('12 min');
    expect(formatDuration(3 * 3600 + 20 * 60)).toBe('3 h 20 min');
    expect(formatDuration(86400)).toBe('1 day');
    expect(formatDuration(2 * 86400 + 4 * 3600)).toBe('2 days 4 h');
    await setLanguage('vi');
    expect(formatDuration(2 * 86400 + 4 * 3600)).toBe('2 ngày 4 giờ');
    expect(formatDuration(45)).toBe('45 giây');
  });

  afterAll(async () => {
    await setLanguage('en');
  });
});
