/**
 * A direct reader of the kept header bytes (little endian, explicit or implicit VR, PS3.5 §7.1) into the same DICOM
 * JSON (PS3.18 §F.2) that header-json.ts makes through dcmjs, for the headers ingest sees every time.
 *
 * Why by hand: dcmjs builds a Tag object, a Proxy, a copied sub-stream per item and a copied buffer per
 * encoded string for every element (~5 µs each, measured), which made header → JSON the largest single
 * cost of storing a small instance (~0.5 ms of ~2.5 ms, docs/benchmarks.md). No maintained library reads
 * DICOM into DICOM JSON faster and identically (dicom-parser, Cornerstone's, finds elements fast but
 * leaves every value rule below to the caller; our walker already finds them), so this one only reads
 * what dcmjs would read the same way,
 * and *declines* (returns undefined, and header-json.ts uses dcmjs) on anything else: big endian, a VR
 * outside those below, UN (dcmjs re-reads it by the dictionary), an undefined-length
 * value other than a sequence or item, a zero-length item (dcmjs drops it), a ragged binary number
 * (dcmjs reads past the value), several character sets or one dcmjs does not map.
 * `fast-header-json.test.ts` checks it gives exactly dcmjs's JSON on every file of the shared corpus it
 * accepts, and how many it accepts.
 *
 * The value rules copy dcmjs 0.51's (ValueRepresentation classes) followed by header-json.ts's
 * elementToJson: per VR a decoding (bytes as Latin-1 code points for the ASCII VRs; the data set's
 * Specific Character Set, PS3.5 §6.1, for the encoded ones), a whole-value trim, the split on backslash
 * (PS3.5 §6.4) and the per-value clean-up of header-json.ts (padding dropped, '' → null, no Value when
 * all are null).
 */
import dcmjs from 'dcmjs';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonPersonName } from './dicom-json.js';
import { EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from './transfer-syntax.js';

/**
 * Implicit VR (PS3.5 §7.1.3): the VR dcmjs gives a tag — its dictionary's (PS3.6), 'xs' read as US as dcmjs
 * does; a tag it does not know is a sequence when of undefined length, LO when a private creator, else UN
 * (which declines). Cached per tag: the dictionary is fixed.
 */
const implicitVrs = new Map<number, string>();
function implicitVr(group: number, element: number, length: number): string {
  const key = ((group << 16) | element) >>> 0;
  let vr = implicitVrs.get(key);
  if (vr === undefined) {
    const entry = dcmjs.data.DicomMetaDictionary.dictionary[`(${hex4(group)},${hex4(element)})`];
    if (entry !== undefined && typeof entry.vr === 'string') vr = entry.vr === 'xs' ? 'US' : entry.vr;
    else if (group % 2 === 1 && element > 0 && element < 0x100) vr = 'LO';
    else vr = 'UN';
    implicitVrs.set(key, vr);
  }
  // an unknown tag of undefined length is a sequence for dcmjs (not cached: it depends on the length)
  return vr === 'UN' && length === UNDEFINED ? 'SQ' : vr;
}

/** Thrown inside the reader when dcmjs must read this header instead; never escapes. */
class Decline extends Error {}
const DECLINE = new Decline('declined');

const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const SPECIFIC_CHARACTER_SET = '00080005';
const MAX_INLINE_BINARY_BYTES = 4096;

/** VRs with the 4-byte length form in dcmjs (its length32VRs) among those read here. */
const LONG_LENGTH = new Set(['OB', 'OD', 'OF', 'OW', 'SQ', 'UC', 'UR', 'UT']);

type Kind =
  | 'ascii-identity' // AS, DA, DT, UR: as read, split
  | 'ascii-trim' // AE: trim() of the whole value, split
  | 'ascii-rtrim' // TM: trailing white space removed, split
  | 'cs' // split, trim() each
  | 'number-string' // DS, IS: split, each trimmed and cleaned, Number or null
  | 'ui' // split (header-json.ts reads UIDs raw, not as dcmjs cleans them)
  | 'text-trim' // LO, SH: decoded, trim(), split
  | 'text-rtrim-split' // ST, UC, UT: decoded, trailing white space removed, split
  | 'text-rtrim' // LT: decoded, trailing white space removed, one value
  | 'pn' // decoded, values split (empty ones dropped), groups by '='
  | 'binary' // OB, OD, OF, OW: InlineBinary up to 4 KiB
  | 'number'; // FL, FD, SL, SS, UL, US, AT

const KIND: Record<string, Kind> = {
  AS: 'ascii-identity', DA: 'ascii-identity', DT: 'ascii-identity', UR: 'ascii-identity',
  AE: 'ascii-trim', TM: 'ascii-rtrim', CS: 'cs', DS: 'number-string', IS: 'number-string', UI: 'ui',
  LO: 'text-trim', SH: 'text-trim', ST: 'text-rtrim-split', UC: 'text-rtrim-split', UT: 'text-rtrim-split',
  LT: 'text-rtrim', PN: 'pn', OB: 'binary', OD: 'binary', OF: 'binary', OW: 'binary',
  FL: 'number', FD: 'number', SL: 'number', SS: 'number', UL: 'number', US: 'number', AT: 'number',
};
const NUMBER_SIZE: Record<string, number> = { FL: 4, FD: 8, SL: 4, SS: 2, UL: 4, US: 2, AT: 4 };
/** Text VRs keep trailing spaces in header-json.ts (only NUL padding is dropped). */
const TEXT_VRS = new Set(['LT', 'ST', 'UT']);

/** dcmjs's map of Specific Character Set defined terms (normalised) → TextDecoder labels (dcmjs 0.51). */
const ENCODINGS: Record<string, string> = {
  '': 'iso-8859-1', 'iso-ir-6': 'iso-8859-1', 'iso-ir-13': 'shift-jis', 'iso-ir-100': 'latin1',
  'iso-ir-101': 'iso-8859-2', 'iso-ir-109': 'iso-8859-3', 'iso-ir-110': 'iso-8859-4', 'iso-ir-126': 'iso-ir-126',
  'iso-ir-127': 'iso-ir-127', 'iso-ir-138': 'iso-ir-138', 'iso-ir-144': 'iso-ir-144', 'iso-ir-148': 'iso-ir-148',
  'iso-ir-166': 'tis-620', 'iso-ir-192': 'utf-8', gb18030: 'gb18030',
};
/** Labels whose decoding of bytes below 0x80 is those code points (so ASCII text skips TextDecoder). */
const ASCII_COMPATIBLE = new Set(['iso-8859-1', 'latin1', 'utf-8', 'iso-8859-2', 'iso-8859-3', 'iso-8859-4',
  'iso-ir-126', 'iso-ir-127', 'iso-ir-138', 'iso-ir-144', 'iso-ir-148', 'tis-620', 'gb18030']);

interface Charset {
  decoder: TextDecoder;
  asciiCompatible: boolean;
}
const charsets = new Map<string, Charset>();
function charset(label: string): Charset {
  let c = charsets.get(label);
  if (c === undefined) {
    let decoder: TextDecoder;
    try {
      decoder = new TextDecoder(label);
    } catch {
      throw DECLINE; // a Node built without full ICU lacks some legacy encodings: dcmjs decides then
    }
    c = { decoder, asciiCompatible: ASCII_COMPATIBLE.has(label) };
    charsets.set(label, c);
  }
  return c;
}
/** dcmjs's default decoder (no Specific Character Set): TextDecoder('latin1'), i.e. windows-1252. */
const DEFAULT_CHARSET = charset('latin1');

/**
 * Header bytes (data set before Pixel Data, no File Meta) → DICOM JSON, or undefined when dcmjs must read
 * them (see the module comment). `syntax` is the data set's transfer syntax.
 */
export function fastHeaderToJson(bytes: Buffer, syntax: string): DicomJsonDataset | undefined {
  // dcmjs reads every syntax but these two as explicit VR little endian (DicomMessage._normalizeSyntax).
  if (syntax === EXPLICIT_VR_BIG_ENDIAN) return undefined;
  try {
    return new Reader(bytes, syntax === IMPLICIT_VR_LITTLE_ENDIAN).dataset(0, bytes.length, DEFAULT_CHARSET, true)[0];
  } catch (err) {
    if (err instanceof Decline) return undefined;
    throw err;
  }
}

class Reader {
  constructor(
    private readonly b: Buffer,
    private readonly implicit: boolean,
  ) {}

  /**
   * Elements from `pos` → a JSON data set, and the offset after it: up to `end` (the header, a defined-length
   * item), or, with `delimited`, up to and past the Item Delimitation Item of an undefined-length item.
   */
  dataset(pos: number, end: number, inherited: Charset, topLevel: boolean, delimited = false): [DicomJsonDataset, number] {
    const b = this.b;
    let cs = inherited;
    const out: DicomJsonDataset = {};
    let sorted = true;
    let last = '';
    for (;;) {
      if (pos === end) {
        if (delimited) throw DECLINE;
        break;
      }
      if (pos + 8 > end) throw DECLINE;
      const group = b.readUInt16LE(pos);
      const element = b.readUInt16LE(pos + 2);
      if (delimited && group === 0xfffe && element === 0xe00d) {
        if (b.readUInt32LE(pos + 4) !== 0) throw DECLINE;
        pos += 8;
        break;
      }
      let vr: string;
      let length: number;
      let valuePos: number;
      if (this.implicit) {
        length = b.readUInt32LE(pos + 4);
        valuePos = pos + 8;
        vr = implicitVr(group, element, length);
      } else {
        vr = String.fromCharCode(b[pos + 4]!, b[pos + 5]!);
        if (LONG_LENGTH.has(vr)) {
          if (pos + 12 > end) throw DECLINE;
          length = b.readUInt32LE(pos + 8);
          valuePos = pos + 12;
        } else {
          length = b.readUInt16LE(pos + 6);
          valuePos = pos + 8;
        }
      }
      const kind = KIND[vr];
      if (kind === undefined && vr !== 'SQ') throw DECLINE;
      const tag = hex4(group) + hex4(element);
      if (tag <= last) sorted = false;
      last = tag;
      let json: DicomJsonElement;
      if (vr === 'SQ') {
        const [items, after] = this.sequence(valuePos, length, end, cs);
        json = items.length > 0 ? { vr, Value: items } : { vr };
        pos = after;
      } else {
        if (length === UNDEFINED || valuePos + length > end) throw DECLINE;
        if (tag === SPECIFIC_CHARACTER_SET) {
          cs = this.specificCharacterSet(valuePos, length);
          json = { vr, Value: ['ISO_IR 192'] }; // dcmjs decodes to Unicode and says so
        } else {
          json = this.value(vr, kind!, valuePos, length, cs);
        }
        pos = valuePos + length;
      }
      if (topLevel && group === 0x0002) continue;
      out[tag] = json;
    }
    return [sorted ? out : sortKeys(out), pos];
  }

  /** A sequence's items (PS3.5 §7.5); returns them and the offset after the sequence. */
  private sequence(valuePos: number, length: number, end: number, cs: Charset): [DicomJsonDataset[], number] {
    const b = this.b;
    const items: DicomJsonDataset[] = [];
    const undefinedLength = length === UNDEFINED;
    const seqEnd = undefinedLength ? end : valuePos + length;
    if (seqEnd > end) throw DECLINE;
    let pos = valuePos;
    for (;;) {
      if (!undefinedLength && pos === seqEnd) return [items, pos];
      if (pos + 8 > seqEnd) throw DECLINE;
      const tag = tagAt(b, pos);
      const itemLength = b.readUInt32LE(pos + 4);
      if (tag === SEQUENCE_DELIMITER) {
        if (!undefinedLength || itemLength !== 0) throw DECLINE;
        return [items, pos + 8];
      }
      if (tag !== ITEM || itemLength === 0) throw DECLINE;
      if (itemLength === UNDEFINED) {
        const [item, after] = this.dataset(pos + 8, seqEnd, cs, false, true);
        items.push(item);
        pos = after;
      } else {
        if (pos + 8 + itemLength > seqEnd) throw DECLINE;
        items.push(this.dataset(pos + 8, pos + 8 + itemLength, cs, false)[0]);
        pos += 8 + itemLength;
      }
    }
  }

  /** (0008,0005): the decoder dcmjs switches to; several values, or one it does not map, decline. */
  private specificCharacterSet(pos: number, length: number): Charset {
    const values = this.b.toString('latin1', pos, pos + length).split('\\');
    if (values.length > 1) throw DECLINE;
    const label = ENCODINGS[values[0]!.trim().replace(/[_ ]/g, '-').toLowerCase()];
    if (label === undefined) throw DECLINE;
    return charset(label);
  }

  private value(vr: string, kind: Kind, pos: number, length: number, cs: Charset): DicomJsonElement {
    const b = this.b;
    switch (kind) {
      case 'binary': {
        if (length === 0 || length > MAX_INLINE_BINARY_BYTES) return { vr };
        return { vr, InlineBinary: b.toString('base64', pos, pos + length) };
      }
      case 'number': {
        const size = NUMBER_SIZE[vr]!;
        // An empty value (length 0) has no Value (PS3.18 §F.2.5), as header-json.ts gives it since
        // dcmjs-empty-numbers.ts; a ragged one (not a whole number of values) is left to dcmjs.
        if (length === 0) return { vr };
        if (length % size !== 0) throw DECLINE;
        const values: Array<number | string | null> = [];
        for (let p = pos; p < pos + length; p += size) values.push(readNumber(b, vr, p));
        return values.some((v) => v !== null) ? { vr, Value: values } : { vr };
      }
      case 'pn': {
        // dcmjs drops one pad space first: personName() drops it anyway
        const values = this.text(pos, length, cs).split('\\').filter(Boolean).map(personName);
        return values.some((v) => v !== null) ? { vr, Value: values } : { vr };
      }
      case 'number-string': {
        const values = b.toString('latin1', pos, pos + length).split('\\').map(numberString);
        return values.some((v) => v !== null) ? { vr, Value: values } : { vr };
      }
      case 'cs':
        return strings(vr, b.toString('latin1', pos, pos + length).split('\\').map((v) => v.trim()));
      case 'ui': // dcmjs drops one NUL pad first: strings() drops it anyway
        return strings(vr, b.toString('latin1', pos, pos + length).split('\\'));
      case 'ascii-identity':
        return strings(vr, b.toString('latin1', pos, pos + length).split('\\'));
      case 'ascii-trim':
        return strings(vr, b.toString('latin1', pos, pos + length).trim().split('\\'));
      case 'ascii-rtrim':
        return strings(vr, rtrim(b.toString('latin1', pos, pos + length)).split('\\'));
      case 'text-trim':
        return strings(vr, this.text(pos, length, cs).trim().split('\\'));
      case 'text-rtrim-split':
        return strings(vr, rtrim(this.text(pos, length, cs)).split('\\'));
      case 'text-rtrim':
        return strings(vr, [rtrim(this.text(pos, length, cs))]);
    }
  }

  /** An encoded string (PS3.5 §6.1.2): ASCII bytes under an ASCII-compatible set need no decoder. */
  private text(pos: number, length: number, cs: Charset): string {
    const b = this.b;
    if (cs.asciiCompatible) {
      let ascii = true;
      for (let i = pos; i < pos + length; i++) {
        if (b[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) return b.toString('latin1', pos, pos + length);
    }
    return cs.decoder.decode(b.subarray(pos, pos + length));
  }
}

/** header-json.ts's per-value rule: padding dropped (NUL only for text VRs), '' → null, no Value if all null. */
function strings(vr: string, values: string[]): DicomJsonElement {
  const text = TEXT_VRS.has(vr);
  let any = false;
  const out = values.map((v) => {
    const t = text ? v.replace(/\0+$/, '') : v.replace(/[\0 ]+$/, '');
    if (t === '') return null;
    any = true;
    return t;
  });
  return any ? { vr, Value: out } : { vr };
}

/** dcmjs's DS/IS formatNumber, then header-json.ts: a non-finite number is null. */
function numberString(v: string): number | null {
  const cleaned = v.trim().replace(/[^0-9.\\\-+e]/gi, '');
  if (cleaned === '') return null;
  const n = Number(cleaned);
  return Number.isFinite(n) ? n : null;
}

/** dcmjs's pnStringToObject for one value, then header-json.ts's personName. */
function personName(v: string): DicomJsonPersonName | null {
  const groups = v.split('=');
  const pn: DicomJsonPersonName = {};
  const keys = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;
  for (let i = 0; i < 3; i++) {
    const g = groups[i];
    if (!g) continue;
    const t = g.replace(/[\0 ]+$/, '');
    if (t !== '') pn[keys[i]!] = t;
  }
  return pn.Alphabetic !== undefined || pn.Ideographic !== undefined || pn.Phonetic !== undefined ? pn : null;
}

function readNumber(b: Buffer, vr: string, p: number): number | string | null {
  let n: number;
  switch (vr) {
    case 'FL': n = b.readFloatLE(p); break;
    case 'FD': n = b.readDoubleLE(p); break;
    case 'SL': n = b.readInt32LE(p); break;
    case 'SS': n = b.readInt16LE(p); break;
    case 'UL': n = b.readUInt32LE(p); break;
    case 'US': n = b.readUInt16LE(p); break;
    default: // AT: group then element, as hex (PS3.18 §F.2.7.1)
      return (hex4(b.readUInt16LE(p)) + hex4(b.readUInt16LE(p + 2)));
  }
  return Number.isFinite(n) ? n : null;
}

function rtrim(s: string): string {
  return s.replace(/\s*$/, '');
}

function tagAt(b: Buffer, pos: number): number {
  return ((b.readUInt16LE(pos) << 16) | b.readUInt16LE(pos + 2)) >>> 0;
}

const HEX4: string[] = [];
function hex4(n: number): string {
  if (n < 0x100) {
    let s = HEX4[n];
    if (s === undefined) HEX4[n] = s = n.toString(16).toUpperCase().padStart(4, '0');
    return s;
  }
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function sortKeys(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const k of Object.keys(ds).sort()) out[k] = ds[k]!;
  return out;
}
