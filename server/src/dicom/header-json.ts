/**
 * The kept header bytes (the data set before Pixel Data, File Meta excluded) → DICOM JSON (PS3.18 §F.2):
 * read directly by fast-header-json.ts where it reads them exactly as dcmjs would (most headers), else
 * parsed by dcmjs (types in server/src/types/vendor.d.ts), the reference for both. The walker has already checked the structure,
 * so dcmjs only ever sees lengths that fit their containers. Two things dcmjs does not do as DICOMweb
 * needs are done here: sequences sent as UN are parsed as the Implicit VR sequences they are (PS3.5
 * §6.2.2), and binary values become InlineBinary only when small, the rest being left for bulk data.
 */
import './dcmjs-fixes.js';
import dcmjs, { type DcmjsDict, type DcmjsElement } from 'dcmjs';
import type { UnRegion, VrRelabel } from './dataset-walker.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonPersonName } from './dicom-json.js';
import { UNDEFINED_LENGTH } from './element-encoding.js';
import { fastHeaderToJson } from './fast-header-json.js';
import { IMPLICIT_VR_LITTLE_ENDIAN } from './transfer-syntax.js';

/** Binary values up to this size are kept as InlineBinary; larger ones are left for bulk data. */
export const MAX_INLINE_BINARY_BYTES = 4096;

/** VRs whose DICOM JSON form is InlineBinary / BulkDataURI (PS3.18 §F.2.7). */
const BINARY_JSON_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** Text VRs keep trailing spaces (only NUL padding is dropped); others drop NUL and space padding. */
const TEXT_VRS = new Set(['LT', 'ST', 'UT']);

/**
 * Header bytes → DICOM JSON. Sequences sent as UN (Implicit VR LE content inside an explicit data set,
 * PS3.5 §6.2.2) would be misread by dcmjs, which parses them as explicit: each is parsed on its own as
 * Implicit VR LE and put back in place, while the main parse sees it as an opaque OB of the same size (so
 * no enclosing length changes). `datasetBytes` is modified; `datasetStart` is the reader offset of its
 * first byte, which the regions' offsets are relative to.
 */
export function headerToJson(datasetBytes: Buffer, datasetStart: number, regions: UnRegion[], syntax: string, relabels: readonly VrRelabel[] = []): DicomJsonDataset {
  // The usual header (little endian, no UN sequence, no relabelled VR) is read directly: the same JSON,
  // several times faster (fast-header-json.ts); anything it does not read exactly as dcmjs goes on below.
  if (regions.length === 0 && relabels.length === 0) {
    const fast = fastHeaderToJson(datasetBytes, syntax);
    if (fast !== undefined) return fast;
  }
  return dcmjsHeaderToJson(datasetBytes, datasetStart, regions, syntax, relabels);
}

/** headerToJson through dcmjs alone (the reference fast-header-json.test.ts compares with). */
export function dcmjsHeaderToJson(datasetBytes: Buffer, datasetStart: number, regions: UnRegion[], syntax: string, relabels: readonly VrRelabel[] = []): DicomJsonDataset {
  // Every region is parsed before any is masked: a region may hold another.
  const parsed: Array<[UnRegion, DicomJsonElement | undefined]> = [];
  for (const region of regions) parsed.push([region, parseUnSequence(datasetBytes, datasetStart, region)]);
  for (const region of regions) maskAsOpaque(datasetBytes, datasetStart, region);
  const json = toDicomJson(parseWithDcmjs(datasetBytes, syntax), true);
  for (const [region, element] of parsed) {
    if (element !== undefined) putBack(json, region, element);
  }
  for (const relabel of relabels) relabelVr(json, relabel);
  return json;
}

/** dcmjs read an OL/OV/SV/UV value as UN (same bytes, 4-byte length): give the JSON its real VR. */
function relabelVr(json: DicomJsonDataset, relabel: VrRelabel): void {
  let ds: DicomJsonDataset | undefined = json;
  for (const [seqTag, index] of relabel.path) {
    const seq: DicomJsonElement | undefined = ds[seqTag];
    const item: unknown = seq?.vr === 'SQ' ? seq.Value?.[index] : undefined;
    ds = item !== null && typeof item === 'object' && !('Alphabetic' in item) ? (item as DicomJsonDataset) : undefined;
    if (ds === undefined) return;
  }
  const element = ds[relabel.tag];
  if (element !== undefined && element.vr === 'UN') element.vr = relabel.vr;
}

/** Parses one UN region's value on its own, as an Implicit VR LE element of the same tag. */
function parseUnSequence(datasetBytes: Buffer, datasetStart: number, region: UnRegion): DicomJsonElement | undefined {
  const from = region.valuePos - datasetStart;
  const to = region.end - datasetStart;
  const group = Number.parseInt(region.tag.slice(0, 4), 16);
  const element = Number.parseInt(region.tag.slice(4), 16);
  const wrapped = Buffer.alloc(8 + (to - from));
  wrapped.writeUInt16LE(group, 0);
  wrapped.writeUInt16LE(element, 2);
  wrapped.writeUInt32LE(region.undefinedLength ? UNDEFINED_LENGTH : to - from, 4);
  datasetBytes.copy(wrapped, 8, from, to);
  return toDicomJson(parseWithDcmjs(wrapped, IMPLICIT_VR_LITTLE_ENDIAN), false)[region.tag];
}

/**
 * Rewrites a UN region's element header (always the explicit 12-byte form, as UN has the 4-byte length)
 * as OB with its actual value length, so the main parse skips it as one opaque value.
 */
function maskAsOpaque(datasetBytes: Buffer, datasetStart: number, region: UnRegion): void {
  const h = region.tagPos - datasetStart;
  datasetBytes.write('OB', h + 4, 'latin1');
  datasetBytes.writeUInt16LE(0, h + 6);
  if (region.little) datasetBytes.writeUInt32LE(region.end - region.valuePos, h + 8);
  else datasetBytes.writeUInt32BE(region.end - region.valuePos, h + 8);
}

/** Puts a separately parsed sequence where its region sits; dropped if that item isn't in the JSON. */
function putBack(json: DicomJsonDataset, region: UnRegion, element: DicomJsonElement): void {
  let ds: DicomJsonDataset | undefined = json;
  for (const [seqTag, index] of region.path) {
    const seq: DicomJsonElement | undefined = ds[seqTag];
    const item: unknown = seq?.vr === 'SQ' ? seq.Value?.[index] : undefined;
    ds = item !== null && typeof item === 'object' && !('Alphabetic' in item) ? (item as DicomJsonDataset) : undefined;
    if (ds === undefined) return;
  }
  ds[region.tag] = element;
}

// ---------------------------------------------------------------------------------------------------
// dcmjs

function parseWithDcmjs(dataset: Buffer, syntax: string): DcmjsDict {
  const ab = part10ForDcmjs(dataset, syntax);
  // dcmjs logs (console) every tolerated defect when ignoreErrors is set; the parse is synchronous, so
  // muting its loggers around it affects nobody else.
  const loggers = [dcmjs.log, dcmjs.log.getLogger('validation.dcmjs')];
  const levels = loggers.map((l) => l.getLevel());
  for (const l of loggers) l.setLevel('silent', false);
  try {
    return dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: true }).dict;
  } finally {
    loggers.forEach((l, i) => l.setLevel(levels[i]!, false));
  }
}

/**
 * Builds a minimal Part-10 buffer, as dcmjs parses nothing else (PS3.10 §7.1): preamble, "DICM", a meta
 * group with only its length and the transfer syntax, then the data set.
 */
export function part10ForDcmjs(dataset: Buffer, syntax: string): ArrayBuffer {
  const ts = Buffer.from(syntax.length % 2 === 0 ? syntax : `${syntax}\0`, 'latin1');
  const tsElement = 8 + ts.length;
  const total = 128 + 4 + 12 + tsElement + dataset.length;
  const ab = new ArrayBuffer(total);
  const out = Buffer.from(ab);
  out.fill(0, 0, 128);
  out.write('DICM', 128, 'latin1');
  let p = 132;
  out.writeUInt16LE(0x0002, p);
  out.writeUInt16LE(0x0000, p + 2);
  out.write('UL', p + 4, 'latin1');
  out.writeUInt16LE(4, p + 6);
  out.writeUInt32LE(tsElement, p + 8);
  p += 12;
  out.writeUInt16LE(0x0002, p);
  out.writeUInt16LE(0x0010, p + 2);
  out.write('UI', p + 4, 'latin1');
  out.writeUInt16LE(ts.length, p + 6);
  ts.copy(out, p + 8);
  p += tsElement;
  dataset.copy(out, p);
  return ab;
}

// ---------------------------------------------------------------------------------------------------
// dcmjs dict → DICOM JSON

/** dcmjs dict → clean DICOM JSON (PS3.18 §F.2): only vr/Value/InlineBinary, binary ≤ 4 KiB inline. */
function toDicomJson(dict: DcmjsDict, topLevel: boolean): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of Object.keys(dict).sort()) {
    if (topLevel && tag.startsWith('0002')) continue;
    out[tag] = elementToJson(dict[tag]!);
  }
  return out;
}

function elementToJson(el: DcmjsElement): DicomJsonElement {
  const vr = typeof el.vr === 'string' ? el.vr : 'UN';
  const values = vr === 'UI' ? uidValues(el) : Array.isArray(el.Value) ? el.Value : [];
  const json: DicomJsonElement = { vr };
  if (vr === 'SQ') {
    const items = values.filter((x): x is DcmjsDict => typeof x === 'object' && x !== null);
    if (items.length > 0) json.Value = items.map((item) => toDicomJson(item, false));
    return json;
  }
  const binary = BINARY_JSON_VRS.has(vr) || values.some((x) => x instanceof ArrayBuffer || ArrayBuffer.isView(x));
  const bytes = binary ? binaryBytes(values, MAX_INLINE_BINARY_BYTES) : undefined;
  if (bytes !== undefined) {
    // Larger values (null) keep only their VR: WADO-RS metadata will point at them as bulk data.
    if (bytes !== null && bytes.length > 0) json.InlineBinary = bytes.toString('base64');
  } else if (values.length > 0) {
    // PS3.18 §F.2.5: an empty value is null, and an element with no value at all has no Value.
    const mapped = values.map((v) => {
      const j = jsonValue(v, vr);
      return j === '' ? null : j;
    });
    if (mapped.some((v) => v !== null)) json.Value = mapped;
  }
  return json;
}

/**
 * UI values as they are in the file. dcmjs deletes every character other than digits and dots from a
 * UID it reads (`../../tmp/x` becomes `....`, `1.2.3x` becomes `1.2.3`), which would let ingest store an
 * invalid UID under another one; its `_rawValue` keeps what was sent (padding removed), so ingest can
 * refuse it (part10-scanner.ts) and metadata shows what the file says.
 */
function uidValues(el: DcmjsElement): unknown[] {
  const raw = (el as { _rawValue?: unknown })._rawValue;
  if (Array.isArray(raw)) return raw;
  if (typeof raw === 'string') return [raw];
  return Array.isArray(el.Value) ? el.Value : [];
}

/** Concatenated bytes of a binary value; `null` when larger than `max` (not copied); undefined if not binary. */
function binaryBytes(values: unknown[], max: number): Buffer | null | undefined {
  let total = 0;
  for (const v of values) {
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) total += v.byteLength;
  }
  if (total > max) return null;
  const parts: Buffer[] = [];
  for (const v of values) {
    if (v instanceof ArrayBuffer) parts.push(Buffer.from(v));
    else if (ArrayBuffer.isView(v)) parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    else if (v === null || v === undefined) continue;
    else return undefined;
  }
  return Buffer.concat(parts);
}

/** One value as DICOM JSON (PS3.18 §F.2.3–F.2.6): AT as hex, padding dropped, person names by group. */
function jsonValue(v: unknown, vr: string): string | number | DicomJsonPersonName | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') {
    if (vr === 'AT') return v.toString(16).toUpperCase().padStart(8, '0');
    return Number.isFinite(v) ? v : null;
  }
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'string') return TEXT_VRS.has(vr) ? v.replace(/\0+$/, '') : v.replace(/[\0 ]+$/, '');
  if (typeof v === 'object') return personName(v as Record<string, unknown>);
  return String(v);
}

/** dcmjs's person name object, with padding dropped and empty groups left out; null when all are empty. */
function personName(o: Record<string, unknown>): DicomJsonPersonName | null {
  const pn: DicomJsonPersonName = {};
  for (const k of ['Alphabetic', 'Ideographic', 'Phonetic'] as const) {
    const c = o[k];
    const t = typeof c === 'string' ? c.replace(/[\0 ]+$/, '') : '';
    if (t !== '') pn[k] = t;
  }
  return Object.keys(pn).length > 0 ? pn : null;
}
