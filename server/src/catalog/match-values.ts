/**
 * Syntax of QIDO-RS matching values (PS3.18 §8.3.4.1, PS3.4 §C.2.2.2), independent of SQL so the query
 * parser can reject malformed values early and the SQL translation can rely on them.
 */
import { BadQueryError } from '../errors.js';

/** Universal matching (PS3.4 §C.2.2.2.3): an empty value, or one made only of '*'. */
export function isUniversal(value: string): boolean {
  return /^\**$/.test(value.trim());
}

/** '*' or '?' present: wildcard matching (PS3.4 §C.2.2.2.4). */
export function hasWildcard(value: string): boolean {
  return /[*?]/.test(value);
}

/**
 * Value list (PS3.4 §C.2.2.2.2 for UIDs, §C.2.2.2.8 for other VRs): '\' separates values; UIDs may
 * also be separated by ',' (PS3.18 §8.3.4.1), and so may CS values, which cannot contain a comma and
 * which some viewers send comma-separated (e.g. ModalitiesInStudy=CT,MR).
 */
export function splitValueList(value: string, vr: string): string[] {
  return value
    .split(vr === 'UI' || vr === 'CS' ? /[,\\]/ : /\\/)
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Inclusive bounds of a range; a missing bound is open (PS3.4 §C.2.2.2.5). */
export interface RangeMatch {
  lower?: string;
  upper?: string;
}

export type PointOrRange = { single: string } | { range: RangeMatch };

const DATE = String.raw`\d{8}|\d{4}-\d{2}-\d{2}`;
const TIME = String.raw`\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?`;

function parsePointOrRange(value: string, token: string, normalise: (v: string) => string): PointOrRange | undefined {
  const single = new RegExp(`^(${token})$`).exec(value);
  if (single) return { single: normalise(single[1]!) };
  const range = new RegExp(`^(${token})?-(${token})?$`).exec(value);
  if (!range) return undefined;
  return {
    range: {
      ...(range[1] !== undefined && { lower: normalise(range[1]) }),
      ...(range[2] !== undefined && { upper: normalise(range[2]) }),
    },
  };
}

/**
 * DA matching value: 'YYYYMMDD', or a range 'A-B', '-B', 'A-'. ISO 'YYYY-MM-DD' is accepted too, as
 * DICOMweb clients send it; it cannot be confused with a range since DICOM dates have no dashes.
 */
export function parseDateMatch(value: string, parameter: string): PointOrRange {
  const parsed = parsePointOrRange(value.trim(), DATE, (v) => v.replace(/-/g, ''));
  if (!parsed) throw new BadQueryError(parameter, 'expected a date YYYYMMDD or a range like 20200101-20201231');
  return parsed;
}

/** TM matching value: 'HH[MM[SS[.F]]]' (colons tolerated), or a range of those. */
export function parseTimeMatch(value: string, parameter: string): PointOrRange {
  const parsed = parsePointOrRange(value.trim(), TIME, (v) => v.replace(/:/g, ''));
  if (!parsed) throw new BadQueryError(parameter, 'expected a time HHMMSS or a range like 0800-1200');
  return parsed;
}

/**
 * An upper TM bound covers its whole last unit: '1015' includes 10:15:59.999999. Stored times are
 * digits without colons, so padding the bound makes the lexicographic comparison do that.
 */
export function inclusiveUpperTime(bound: string): string {
  const [hhmmss = '', fraction = ''] = bound.split('.');
  const wholeSeconds = hhmmss + '5959'.slice(hhmmss.length - 2); // 'HH' → 'HH5959', 'HHMM' → 'HHMM59'
  return `${wholeSeconds}.${fraction.padEnd(6, '9')}`;
}

/** IS / US matching value: a whole number. */
export function parseIntegerMatch(value: string, parameter: string): number {
  const trimmed = value.trim();
  if (!/^[+-]?\d{1,10}$/.test(trimmed)) throw new BadQueryError(parameter, 'expected a whole number');
  return Number(trimmed);
}

/** Validates a matching value against its VR, so mistakes surface as 400s naming the parameter. */
export function validateMatchValue(vr: string, value: string, parameter: string): void {
  if (isUniversal(value)) return;
  for (const item of splitValueList(value, vr)) {
    if (vr === 'DA') parseDateMatch(item, parameter);
    else if (vr === 'TM') parseTimeMatch(item, parameter);
    else if (vr === 'IS' || vr === 'US' || vr === 'SS' || vr === 'UL' || vr === 'SL') parseIntegerMatch(item, parameter);
    else if (vr === 'UI' && !/^[0-9.]+$/.test(item)) {
      throw new BadQueryError(parameter, 'expected UIDs (digits and dots), separated by "," or "\\"');
    }
  }
}
