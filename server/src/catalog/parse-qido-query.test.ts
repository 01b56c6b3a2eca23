import { describe, expect, it } from 'vitest';
import { BadQueryError } from '../errors.js';
import { parseQidoQuery, type QidoParams } from './parse-qido-query.js';

const LIMITS = { defaultLimit: 100, maxLimit: 500 };
const parse = (params: QidoParams, level: 'study' | 'series' | 'instance' = 'study') => parseQidoQuery(level, {}, params, LIMITS);

function badParameter(params: QidoParams): string {
  try {
    parse(params);
  } catch (error) {
    expect(error).toBeInstanceOf(BadQueryError);
    return (error as BadQueryError).parameter;
  }
  throw new Error('expected a BadQueryError');
}

describe('parseQidoQuery', () => {
  it('gives defaults for an empty query', () => {
    expect(parse({})).toEqual({ level: 'study', matches: [], includeFields: [], limit: 100, offset: 0, fuzzyMatching: false });
  });

  it('accepts keywords and tags (any case) as matching keys', () => {
    expect(parse({ PatientName: 'DOE*', '0020000d': '1.2.3', '00080050': 'A1' }).matches).toEqual([
      { tag: '00100010', value: 'DOE*' },
      { tag: '0020000D', value: '1.2.3' },
      { tag: '00080050', value: 'A1' },
    ]);
  });

  it('keeps every value of a repeated key, and empty values for universal matching', () => {
    expect(parse({ Modality: ['CT', 'MR'], StudyDescription: '' }).matches).toEqual([
      { tag: '00080060', value: 'CT' },
      { tag: '00080060', value: 'MR' },
      { tag: '00081030', value: '' },
    ]);
  });

  it('reads includefield as comma-separated and repeated tags or keywords', () => {
    expect(parse({ includefield: ['00081030,PatientAge', 'Manufacturer'] }).includeFields).toEqual(['00081030', '00101010', '00080070']);
    expect(parse({ includefield: ['PatientAge', 'all'] }).includeFields).toBe('all');
  });

  it('reads limit and offset, capping limit at the maximum', () => {
    expect(parse({ limit: '10', offset: '20' })).toMatchObject({ limit: 10, offset: 20 });
    expect(parse({ limit: '100000' }).limit).toBe(500);
  });

  it('reads fuzzymatching', () => {
    expect(parse({ fuzzymatching: 'true' }).fuzzyMatching).toBe(true);
    expect(parse({ fuzzymatching: 'FALSE' }).fuzzyMatching).toBe(false);
  });

  it('takes the scope from the path; the series only for instance searches', () => {
    const scope = { studyInstanceUid: '1.2', seriesInstanceUid: '1.2.3' };
    expect(parseQidoQuery('instance', scope, {}, LIMITS)).toMatchObject(scope);
    expect(parseQidoQuery('series', scope, {}, LIMITS)).not.toHaveProperty('seriesInstanceUid');
  });

  it('ignores undefined values and the HTTP-level accept/charset parameters', () => {
    expect(parse({ PatientID: undefined, accept: 'application/dicom+json', charset: 'utf-8' }).matches).toEqual([]);
  });

  it('rejects bad limit, offset and fuzzymatching values, naming the parameter', () => {
    expect(badParameter({ limit: '-1' })).toBe('limit');
    expect(badParameter({ limit: 'ten' })).toBe('limit');
    expect(badParameter({ offset: '1.5' })).toBe('offset');
    expect(badParameter({ limit: ['1', '2'] })).toBe('limit');
    expect(badParameter({ fuzzymatching: 'yes' })).toBe('fuzzymatching');
  });

  it('rejects unknown keywords, malformed tags and sequence paths, naming the parameter', () => {
    expect(badParameter({ PatientNme: 'x' })).toBe('PatientNme');
    expect(badParameter({ '0010001': 'x' })).toBe('0010001');
    expect(badParameter({ '(0010,0010)': 'x' })).toBe('(0010,0010)');
    expect(badParameter({ 'RequestAttributesSequence.RequestedProcedureID': 'x' })).toBe('RequestAttributesSequence.RequestedProcedureID');
    expect(badParameter({ includefield: 'NoSuchThing' })).toBe('includefield');
  });

  it('rejects malformed dates, times, numbers and UIDs', () => {
    expect(badParameter({ StudyDate: '2024-1-1' })).toBe('StudyDate');
    expect(badParameter({ StudyDate: '20240101--20240102' })).toBe('StudyDate');
    expect(badParameter({ StudyTime: '25h' })).toBe('StudyTime');
    expect(badParameter({ SeriesNumber: 'one' })).toBe('SeriesNumber');
    expect(badParameter({ StudyInstanceUID: '1.2.abc' })).toBe('StudyInstanceUID');
  });

  it('accepts the date, time and UID forms of PS3.18', () => {
    expect(() =>
      parse({
        StudyDate: ['20240101', '20240101-20241231', '-20241231', '20240101-', '2024-01-01'],
        StudyTime: ['1015', '10:15:30', '080000.5-1200'],
        StudyInstanceUID: '1.2.3,1.2.4\\1.2.5',
      }),
    ).not.toThrow();
  });
});
