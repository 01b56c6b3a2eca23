/**
 * FHIR R4 search parameters (https://hl7.org/fhir/R4/search.html) as this server reads them: token
 * (`[system]|[code]`), reference (`Patient/{id}` or `{id}`), date with prefixes (eq, ne, gt, lt, ge, le,
 * sa, eb, ap) at the precision given, `_count` and `_offset` paging. Parameters a resource type does not
 * support are ignored and left out of the Bundle's self link (lenient handling), or refused with
 * `Prefer: handling=strict` (400 OperationOutcome). Every mistake is a BadQueryError naming the
 * parameter, never quoting a patient value.
 */
import { BadQueryError } from '../errors.js';

export type DatePrefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

/** A date parameter at day precision: the inclusive range of days it names ('YYYYMMDD'). */
export interface DayRange {
  prefix: DatePrefix;
  from: string;
  to: string;
}

/** A date parameter as instants: [from, to) in UTC ISO-8601 with milliseconds (timestamps of the index). */
export interface InstantRange {
  prefix: DatePrefix;
  from: string;
  to: string;
}

export interface Token {
  /** undefined: any system (`value`); '': no system (`|value`). */
  system: string | undefined;
  value: string;
}

/** The query string as Fastify parsed it: repeated parameters are arrays. */
export type RawQuery = Record<string, string | string[] | undefined>;

/** Parameters every search takes, besides the resource's own. */
export const COMMON_PARAMS = ['_count', '_offset', '_format', '_lastUpdated', '_id'] as const;

export function valuesOf(query: RawQuery, name: string): string[] {
  const value = query[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Unsupported parameters under `Prefer: handling=strict` are an error; otherwise ignored (FHIR R4 §3.1.1.4). */
export function checkParameters(query: RawQuery, supported: readonly string[], strict: boolean): void {
  if (!strict) return;
  for (const name of Object.keys(query)) {
    if (!supported.includes(name) && !(COMMON_PARAMS as readonly string[]).includes(name)) {
      throw new BadQueryError(name, 'this search parameter is not supported for this resource type');
    }
  }
}

/** A token parameter's values; commas inside one value are alternatives (OR). */
export function tokensOf(query: RawQuery, name: string): Token[][] {
  return valuesOf(query, name).map((raw) => {
    if (raw === '') throw new BadQueryError(name, 'must not be empty');
    return splitOr(raw).map((item) => {
      const bar = item.indexOf('|');
      if (bar < 0) return { system: undefined, value: unescape(item) };
      const value = unescape(item.slice(bar + 1));
      if (value === '') throw new BadQueryError(name, 'a value after "|" is required (searching by system alone is not supported)');
      return { system: unescape(item.slice(0, bar)), value };
    });
  });
}

/** Values separated by unescaped commas (FHIR search escaping: `\,` `\|` `\$` `\\`). */
function splitOr(raw: string): string[] {
  const items: string[] = [];
  let current = '';
  for (let i = 0; i < raw.length; i += 1) {
    const char = raw[i]!;
    if (char === '\\' && i + 1 < raw.length) {
      current += char + raw[i + 1];
      i += 1;
    } else if (char === ',') {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  items.push(current);
  return items;
}

function unescape(value: string): string {
  return value.replace(/\\([,|$\\])/g, '$1');
}

/** A reference parameter (`patient=Patient/p…`, `subject=p…`): the ids of `type` it names, OR-ed by commas. */
export function referencesOf(query: RawQuery, name: string, type: string): string[][] {
  return valuesOf(query, name).map((raw) =>
    splitOr(raw).map((item) => {
      let id = unescape(item);
      // An absolute URL of this server's resource, a relative reference, or a bare id.
      const slash = id.lastIndexOf('/');
      if (slash >= 0) {
        const before = id.slice(0, slash);
        if (before !== type && !before.endsWith(`/${type}`)) throw new BadQueryError(name, `must reference a ${type} (${type}/{id})`);
        id = id.slice(slash + 1);
      }
      if (!/^[A-Za-z0-9.-]{1,64}$/.test(id)) throw new BadQueryError(name, `must be a ${type} id (letters, digits, "-" and ".", at most 64)`);
      return id;
    }),
  );
}

const DATE = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

interface ParsedDate {
  prefix: DatePrefix;
  year: number;
  month?: number;
  day?: number;
  time?: { hour: number; minute: number; second: number; ms: number; zone: string | undefined };
}

function parseDate(name: string, raw: string): ParsedDate {
  const m = DATE.exec(raw);
  if (m === null) throw new BadQueryError(name, 'must be a FHIR date such as ge2024-01-31 (prefix eq, ne, gt, lt, ge, le, sa, eb or ap, then YYYY, YYYY-MM, YYYY-MM-DD or a date-time)');
  const prefix = (m[1] ?? 'eq') as DatePrefix;
  const year = Number(m[2]);
  const month = m[3] === undefined ? undefined : Number(m[3]);
  const day = m[4] === undefined ? undefined : Number(m[4]);
  if (month !== undefined && (month < 1 || month > 12)) throw new BadQueryError(name, 'has a month outside 01-12');
  if (day !== undefined && (day < 1 || day > daysIn(year, month!))) throw new BadQueryError(name, 'has a day that month does not have');
  const parsed: ParsedDate = { prefix, year, ...(month === undefined ? {} : { month }), ...(day === undefined ? {} : { day }) };
  if (m[5] !== undefined) {
    const hour = Number(m[5]);
    const minute = Number(m[6]);
    const second = m[7] === undefined ? 0 : Number(m[7]);
    if (hour > 23 || minute > 59 || second > 59) throw new BadQueryError(name, 'has a time outside 00:00:00-23:59:59');
    parsed.time = { hour, minute, second, ms: m[8] === undefined ? 0 : Math.floor(Number(m[8]) * 1000), zone: m[9] };
  }
  return parsed;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Day-precision ranges (a study's date): the days the parameter covers, its time of day ignored. */
export function dayRangesOf(query: RawQuery, name: string): DayRange[] {
  return valuesOf(query, name).map((raw) => {
    const d = parseDate(name, raw);
    const fromMonth = d.month ?? 1;
    const toMonth = d.month ?? 12;
    const from = `${pad(d.year, 4)}${pad(fromMonth)}${pad(d.day ?? 1)}`;
    const to = `${pad(d.year, 4)}${pad(toMonth)}${pad(d.day ?? daysIn(d.year, toMonth))}`;
    return { prefix: d.prefix, from, to };
  });
}

/**
 * Instant ranges (`_lastUpdated`, a report's date-time): [from, to) of the precision given. A date
 * without time zone is taken in UTC.
 */
export function instantRangesOf(query: RawQuery, name: string): InstantRange[] {
  return valuesOf(query, name).map((raw) => {
    const d = parseDate(name, raw);
    let from: number;
    let to: number;
    if (d.time === undefined) {
      if (d.day !== undefined) {
        from = Date.UTC(d.year, d.month! - 1, d.day);
        to = Date.UTC(d.year, d.month! - 1, d.day + 1);
      } else if (d.month !== undefined) {
        from = Date.UTC(d.year, d.month - 1, 1);
        to = Date.UTC(d.year, d.month, 1);
      } else {
        from = Date.UTC(d.year, 0, 1);
        to = Date.UTC(d.year + 1, 0, 1);
      }
    } else {
      if (d.day === undefined) throw new BadQueryError(name, 'a time needs a full date (YYYY-MM-DDThh:mm[:ss]±zz:zz)');
      const t = d.time;
      const zone = t.zone ?? 'Z';
      const offsetMinutes = zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
      from = Date.UTC(d.year, d.month! - 1, d.day, t.hour, t.minute, t.second, t.ms) - offsetMinutes * 60_000;
      // Precision of what was written: to the minute, the second, or the fraction.
      to = from + (raw.includes('.') ? 1 : /T\d{2}:\d{2}:\d{2}/.test(raw) ? 1000 : 60_000);
    }
    return { prefix: d.prefix, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  });
}

/** `_count` (0 = only the total, FHIR's count-only search) bounded by the maximum, and `_offset`. */
export function pageOf(query: RawQuery, defaultCount: number, maxCount: number): { count: number; offset: number } {
  const one = (name: string): string | undefined => {
    const values = valuesOf(query, name);
    if (values.length > 1) throw new BadQueryError(name, 'may be given once');
    return values[0];
  };
  const countRaw = one('_count');
  const offsetRaw = one('_offset');
  if (countRaw !== undefined && !/^\d{1,9}$/.test(countRaw)) throw new BadQueryError('_count', 'must be a whole number');
  if (offsetRaw !== undefined && !/^\d{1,9}$/.test(offsetRaw)) throw new BadQueryError('_offset', 'must be a whole number');
  return { count: countRaw === undefined ? defaultCount : Math.min(Number(countRaw), maxCount), offset: offsetRaw === undefined ? 0 : Number(offsetRaw) };
}

/** FHIR date-time of a DICOM DA/TM pair ('YYYYMMDD', 'HHMMSS[.F]'), with the DICOM timezone offset or the server's. */
export function dicomDateTime(date: string | null, time: string | null, timezoneOffset: string | null): string | undefined {
  if (date === null || !/^\d{8}$/.test(date)) return undefined;
  const day = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}`;
  if (time === null || !/^\d{2}/.test(time)) return day;
  const hh = time.slice(0, 2);
  const mm = /^\d{4}/.test(time) ? time.slice(2, 4) : '00';
  const ss = /^\d{6}/.test(time) ? time.slice(4, 6) : '00';
  if (Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 59) return day;
  // FHIR: a time SHALL have a time zone. Timezone Offset From UTC (0008,0201) when the study has one,
  // else the archive's own (DICOM times are local to the modality, which shares the hospital's zone).
  let zone: string;
  if (timezoneOffset !== null && /^[+-]\d{4}$/.test(timezoneOffset)) {
    zone = `${timezoneOffset.slice(0, 3)}:${timezoneOffset.slice(3)}`;
  } else {
    const local = new Date(Number(date.slice(0, 4)), Number(date.slice(4, 6)) - 1, Number(date.slice(6, 8)), Number(hh), Number(mm));
    const offset = -local.getTimezoneOffset();
    zone = `${offset < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  }
  return `${day}T${hh}:${mm}:${ss}${zone}`;
}

/** FHIR date of a DICOM DA, undefined when it is not a valid date. */
export function dicomDate(date: string | null): string | undefined {
  if (date === null || !/^\d{8}$/.test(date)) return undefined;
  const year = Number(date.slice(0, 4));
  const month = Number(date.slice(4, 6));
  const day = Number(date.slice(6, 8));
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  return `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}`;
}
