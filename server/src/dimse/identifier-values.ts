/**
 * Reading the values of a naturalized DIMSE data set (dcmjs-dimse's `getElements()`: keywords → strings,
 * arrays, person-name objects, sequences as arrays of objects), and the matching rules of PS3.4 §C.2.2.2
 * on single values, for the worklist and MPPS, whose answers are built in memory rather than in SQL.
 */
import { hasWildcard, inclusiveUpperTime, isUniversal, parseDateMatch, parseTimeMatch, splitValueList } from '../catalog/match-values.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonPersonName } from '../dicom/dicom-json.js';

/** A naturalized value as its DICOM string form ('' when empty); PN objects give `Alphabetic=Ideographic=Phonetic`. */
export function textOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(textOf).join('\\');
  if (typeof value === 'object') {
    const pn = value as DicomJsonPersonName;
    if ('Alphabetic' in pn || 'Ideographic' in pn || 'Phonetic' in pn) {
      return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
    }
    return '';
  }
  return String(value).trim();
}

/** The items of a naturalized sequence (an array of objects), or undefined when the element is absent. */
export function itemsOf(value: unknown): Array<Record<string, unknown>> | undefined {
  if (value === undefined) return undefined;
  if (value === null) return [];
  if (!Array.isArray(value)) return [];
  return value.filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null && !('Alphabetic' in item || 'Ideographic' in item || 'Phonetic' in item));
}

/** PS3.5 §9.1: digits and dots, at most 64 characters, no empty component. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(uid);
}

/** The value of a DICOM JSON element as text: strings joined by '\', PN in their string form. */
export function elementText(element: DicomJsonElement | undefined): string {
  if (element?.Value === undefined) return '';
  return element.Value.map((v) => (v === null ? '' : typeof v === 'object' ? textOf(v) : String(v))).join('\\');
}

/** Text compared as Unicode: NFC, so a decomposed 'ễ' from one system equals the composed one of another. */
function normalise(text: string): string {
  return text.normalize('NFC');
}

/** `*` any run, `?` one character (a code point); everything else literal. */
function wildcardRegex(pattern: string, caseInsensitive: boolean): RegExp {
  const body = [...normalise(pattern)].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, caseInsensitive ? 'sui' : 'su');
}

/** Whether `text` matches a single-value / wildcard key (PN: case-insensitive, per component group). */
export function matchesString(key: string, text: string, vr: string): boolean {
  if (isUniversal(key)) return true;
  const pn = vr === 'PN';
  const candidates = pn && !key.includes('=') ? text.split('=') : [text];
  const regex = hasWildcard(key) ? wildcardRegex(key, pn) : undefined;
  const wanted = pn ? normalise(key).toLowerCase() : normalise(key);
  return candidates.some((candidate) => {
    const value = normalise(candidate);
    if (regex) return regex.test(value);
    return pn ? value.toLowerCase() === wanted : value === wanted;
  });
}

/** Inclusive DA / TM bounds of a matching value (single value = the range of its precision). */
export function dateTimeBounds(key: string, vr: 'DA' | 'TM'): { lower?: string; upper?: string } {
  if (vr === 'DA') {
    const parsed = parseDateMatch(key, 'date');
    return 'single' in parsed ? { lower: parsed.single, upper: parsed.single } : parsed.range;
  }
  const parsed = parseTimeMatch(key, 'time');
  const range = 'single' in parsed ? { lower: parsed.single, upper: parsed.single } : parsed.range;
  return {
    ...(range.lower !== undefined && { lower: range.lower }),
    ...(range.upper !== undefined && { upper: inclusiveUpperTime(range.upper) }),
  };
}

/** Whether a stored DA / TM value lies in the key's range (a stored empty value never matches a range). */
export function matchesDateTime(key: string, text: string, vr: 'DA' | 'TM'): boolean {
  if (isUniversal(key)) return true;
  if (text === '') return false;
  const { lower, upper } = dateTimeBounds(key, vr);
  const value = vr === 'TM' ? text.replace(/:/g, '') : text.replace(/-/g, '');
  return (lower === undefined || value >= lower) && (upper === undefined || value <= upper);
}

/** PS3.4 §C.2.2.2 matching of one key value against a stored element. */
export function matchesValue(key: string, element: DicomJsonElement | undefined, vr: string): boolean {
  if (isUniversal(key)) return true;
  const values = element?.Value ?? [];
  const texts = values.map((v) => (v === null ? '' : typeof v === 'object' ? textOf(v) : String(v)));
  if (vr === 'UI') {
    const wanted = splitValueList(key, 'UI');
    return texts.some((t) => wanted.includes(t));
  }
  // A value list (PS3.4 §C.2.2.2.8): any of the values.
  const wanted = vr === 'PN' ? [key] : key.split('\\').map((v) => v.trim());
  if (vr === 'DA' || vr === 'TM') return texts.some((t) => wanted.some((w) => matchesDateTime(w, t, vr)));
  return texts.some((t) => wanted.some((w) => matchesString(w, t, vr)));
}

/** The ASCII test for Specific Character Set: every string of the data set, at any depth. */
export function isAscii(dataset: DicomJsonDataset): boolean {
  for (const element of Object.values(dataset)) {
    for (const value of element.Value ?? []) {
      if (typeof value === 'string' && /[^\x00-\x7f]/.test(value)) return false;
      if (typeof value === 'object' && value !== null) {
        if ('Alphabetic' in value || 'Ideographic' in value || 'Phonetic' in value) {
          if (/[^\x00-\x7f]/.test(textOf(value))) return false;
        } else if (!isAscii(value as DicomJsonDataset)) return false;
      }
    }
  }
  return true;
}
