/**
 * A stored instance read with its patient's corrected identity (docs/architecture.md, "Hospital link"):
 * the stored file stays as it was received; what is sent is a copy whose Patient module identity
 * elements are those of the identity of record (dicom/patient-identity.ts). Two forms:
 *
 *  - DICOM JSON (WADO-RS metadata): `withIdentityJson` overlays the elements on the indexed header;
 *  - Part-10 bytes (WADO-RS retrieve, C-MOVE / C-GET): `withIdentityHead` rewrites the head of the file,
 *    everything before the top-level pixel data element's value, and the caller sends the rest of the
 *    stored file after it unchanged (pixel data copied byte for byte, streamed). Only the identity
 *    elements change: every other element keeps its bytes (a group length of group 0010 is recomputed).
 *    A name the file's character set cannot carry makes the data set UTF-8: without a Specific
 *    Character Set it gains ISO_IR 192 (the default repertoire is ASCII, a subset), otherwise the head
 *    is re-encoded by dcmjs, which writes all text as UTF-8 (ISO_IR 192). A deflated data set is
 *    inflated, rewritten and deflated again (the caller passes the whole file).
 *
 * Elements written: Patient's Name, Patient ID, Patient's Birth Date and Patient's Sex (Type 2: empty
 * when unknown); Issuer of Patient ID and Other Patient IDs Sequence (Type 3: left out when the
 * identity has none).
 *
 * The same mechanism carries a moved instance's new place (curation: move, split, merge;
 * dicom/study-identity.ts): `readChanges` adds the General Study identity of its study of record
 * (Study Instance UID, Study Date and Time, Accession Number, Study ID, Referring Physician's Name,
 * Study Description) and its Series Instance UID to the patient's identity; `withChangesJson` and
 * `withChangesHead` apply any such changes. Pure: no I/O.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import './dcmjs-fixes.js';
import dcmjs, { type DcmjsDict } from 'dcmjs';
import type { DicomJsonDataset, DicomJsonElement } from './dicom-json.js';
import { part10ForDcmjs } from './header-json.js';
import { IDENTITY_TAGS, identityElements, type PatientIdentity } from './patient-identity.js';
import { OPTIONAL_STUDY_TAGS, placementElements, type StudyPlacement } from './study-identity.js';
import { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from './transfer-syntax.js';
import { InvalidDicomError } from '../errors.js';

const SPECIFIC_CHARACTER_SET = '00080005';
/** Type 3 identity elements: left out rather than written empty when the identity has no value. */
const OPTIONAL = new Set<string>([IDENTITY_TAGS.IssuerOfPatientID, IDENTITY_TAGS.OtherPatientIDsSequence]);
/** The top-level elements an identity decides (Type of Patient ID only appears inside the sequence). */
const WRITTEN = [
  IDENTITY_TAGS.PatientName,
  IDENTITY_TAGS.PatientID,
  IDENTITY_TAGS.IssuerOfPatientID,
  IDENTITY_TAGS.PatientBirthDate,
  IDENTITY_TAGS.PatientSex,
  IDENTITY_TAGS.OtherPatientIDsSequence,
];

/** The identity as elements to set (tag → element) and tags to remove. */
export function identityChanges(identity: PatientIdentity): { set: DicomJsonDataset; remove: string[] } {
  const elements = identityElements(identity);
  const set: DicomJsonDataset = {};
  const remove: string[] = [];
  for (const tag of WRITTEN) {
    const element = elements[tag]!;
    if (OPTIONAL.has(tag) && (element.Value === undefined || element.Value.length === 0)) remove.push(tag);
    else set[tag] = element;
  }
  return { set, remove };
}

/** Top-level elements to set (tag → element) and to remove: what a read applies to a stored header. */
export interface HeaderChanges {
  set: DicomJsonDataset;
  remove: string[];
}

/**
 * A moved instance's study and series (curation: move, split, merge) as elements to set and remove:
 * the study's identity of record (dicom/study-identity.ts) and its Series Instance UID.
 */
export function placementChanges(placement: StudyPlacement): HeaderChanges {
  const set: DicomJsonDataset = {};
  const remove: string[] = [];
  for (const [tag, element] of Object.entries(placementElements(placement))) {
    if (OPTIONAL_STUDY_TAGS.has(tag) && (element.Value === undefined || element.Value.length === 0)) remove.push(tag);
    else set[tag] = element;
  }
  return { set, remove };
}

/** What a read applies: the patient's identity of record and/or a moved instance's study; undefined parts are left as stored. */
export function readChanges(identity: PatientIdentity | undefined, placement: StudyPlacement | undefined): HeaderChanges {
  const parts = [...(identity === undefined ? [] : [identityChanges(identity)]), ...(placement === undefined ? [] : [placementChanges(placement)])];
  return { set: Object.assign({}, ...parts.map((p) => p.set)) as DicomJsonDataset, remove: parts.flatMap((p) => p.remove) };
}

/** An indexed header (DICOM JSON) with `changes` applied; the input is not modified. */
export function withChangesJson(dataset: DicomJsonDataset, changes: HeaderChanges): DicomJsonDataset {
  const out: DicomJsonDataset = { ...dataset, ...changes.set };
  for (const tag of changes.remove) delete out[tag];
  return out;
}

/** An indexed header (DICOM JSON) as the instance reads with `identity`; the input is not modified. */
export function withIdentityJson(dataset: DicomJsonDataset, identity: PatientIdentity): DicomJsonDataset {
  return withChangesJson(dataset, identityChanges(identity));
}

// ---------------------------------------------------------------------------------------------------
// Part-10 bytes

interface Encoding {
  implicit: boolean;
  little: boolean;
}

/** Where the data set starts (after File Meta, PS3.10 §7.1) and its transfer syntax. */
export function fileMetaOf(file: Buffer): { datasetStart: number; transferSyntaxUid: string } {
  if (file.length < 132 || file.toString('latin1', 128, 132) !== 'DICM') throw new InvalidDicomError('the stored file has no Part-10 header');
  let at = 132;
  let transferSyntaxUid = '';
  while (at + 8 <= file.length && file.readUInt16LE(at) === 0x0002) {
    const element = file.readUInt16LE(at + 2);
    const vr = file.toString('latin1', at + 4, at + 6);
    let valueAt: number;
    let length: number;
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) {
      if (at + 12 > file.length) break;
      valueAt = at + 12;
      length = file.readUInt32LE(at + 8);
    } else {
      valueAt = at + 8;
      length = file.readUInt16LE(at + 6);
    }
    if (element === 0x0010) transferSyntaxUid = file.toString('latin1', valueAt, valueAt + length).replace(/[\0 ]+$/, '');
    at = valueAt + length;
  }
  if (at > file.length) throw new InvalidDicomError('the stored file has a truncated File Meta group');
  return { datasetStart: at, transferSyntaxUid };
}

function encodingOf(syntax: string): Encoding {
  if (syntax === IMPLICIT_VR_LITTLE_ENDIAN) return { implicit: true, little: true };
  if (syntax === EXPLICIT_VR_BIG_ENDIAN) return { implicit: false, little: false };
  return { implicit: false, little: true };
}

/**
 * The head of a stored Part-10 file (its bytes up to the top-level pixel data element's value, or the
 * whole file when it has none or its data set is deflated) as it reads with `identity`: File Meta
 * unchanged, the data set's identity elements replaced. The rest of the file follows unchanged.
 */
export function withIdentityHead(head: Buffer, identity: PatientIdentity): Buffer {
  return withChangesHead(head, identityChanges(identity));
}

/**
 * withIdentityHead for any read changes (readChanges: the patient's identity of record, a moved
 * instance's study and series): only the changed elements' bytes differ, group lengths recomputed.
 */
export function withChangesHead(head: Buffer, changes: HeaderChanges): Buffer {
  const { datasetStart, transferSyntaxUid } = fileMetaOf(head);
  const meta = head.subarray(0, datasetStart);
  if (transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) {
    const inflated = inflateRawSync(head.subarray(datasetStart));
    const rewritten = rewriteDataset(inflated, EXPLICIT_VR_LITTLE_ENDIAN, changes);
    return Buffer.concat([meta, deflateRawSync(rewritten)]);
  }
  return Buffer.concat([meta, rewriteDataset(head.subarray(datasetStart), transferSyntaxUid, changes)]);
}

function rewriteDataset(dataset: Buffer, syntax: string, changes: HeaderChanges): Buffer {
  return spliceChanges(dataset, encodingOf(syntax), changes) ?? reencodeWithDcmjs(dataset, syntax, changes);
}

// ---------------------------------------------------------------------------------------------------
// Splicing: every element but the identity ones keeps its bytes

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;

interface ElementAt {
  tag: number;
  group: number;
  vr: string;
  headerLength: number;
  length: number;
}

class Reader {
  constructor(
    readonly buf: Buffer,
    readonly little: boolean,
  ) {}

  u16(at: number): number {
    return this.little ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.little ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }

  /** The element header at `at` (undefined if it does not fit). */
  header(at: number, implicit: boolean): ElementAt | undefined {
    const buf = this.buf;
    if (at + 8 > buf.length) return undefined;
    const group = this.u16(at);
    const tag = ((group << 16) | this.u16(at + 2)) >>> 0;
    if (group === 0xfffe || implicit) return { tag, group, vr: '', headerLength: 8, length: this.u32(at + 4) };
    const vr = buf.toString('latin1', at + 4, at + 6);
    if (!/^[A-Z]{2}$/.test(vr)) return undefined;
    if (!LONG_VRS.has(vr)) return { tag, group, vr, headerLength: 8, length: this.u16(at + 6) };
    if (at + 12 > buf.length) return undefined;
    return { tag, group, vr, headerLength: 12, length: this.u32(at + 8) };
  }

  /** Offset just past the element at `at` (sequences and encapsulated values of undefined length walked). */
  end(at: number, implicit: boolean, depth = 0): number | undefined {
    const el = this.header(at, implicit);
    if (el === undefined || depth > 128) return undefined;
    const valueAt = at + el.headerLength;
    if (el.length !== UNDEFINED) return valueAt + el.length <= this.buf.length ? valueAt + el.length : undefined;
    // Undefined length: items up to the sequence delimitation; UN holds Implicit VR Little Endian (PS3.5 §6.2.2).
    const inner = new Reader(this.buf, el.vr === 'UN' ? true : this.little);
    const innerImplicit = implicit || el.vr === 'UN';
    let p = valueAt;
    for (;;) {
      const item = inner.header(p, true);
      if (item === undefined) return undefined;
      if (item.tag === 0xfffee0dd) return p + 8;
      if (item.tag !== 0xfffee000) return undefined;
      if (item.length !== UNDEFINED) {
        p += 8 + item.length;
        continue;
      }
      p += 8;
      for (;;) {
        const next = inner.header(p, true);
        if (next === undefined) return undefined;
        if (next.tag === 0xfffee00d) {
          p += 8;
          break;
        }
        const after = inner.end(p, innerImplicit, depth + 1);
        if (after === undefined) return undefined;
        p = after;
      }
    }
  }
}

/** Every text value the changes write (sequence items included). */
function changeTexts(changes: HeaderChanges): string[] {
  const texts: string[] = [];
  const walk = (dataset: DicomJsonDataset) => {
    for (const element of Object.values(dataset)) {
      for (const value of element.Value ?? []) {
        if (typeof value === 'string') texts.push(value);
        else if (value !== null && typeof value === 'object') {
          if ('Alphabetic' in value || 'Ideographic' in value || 'Phonetic' in value) texts.push(personNameString(value as Record<string, string>));
          else walk(value as DicomJsonDataset);
        }
      }
    }
  };
  walk(changes.set);
  return texts;
}

/** A DICOM JSON PN object in its encoded string form ('Alphabetic=Ideographic=Phonetic'). */
function personNameString(value: { Alphabetic?: string; Ideographic?: string; Phonetic?: string }): string {
  return [value.Alphabetic ?? '', value.Ideographic ?? '', value.Phonetic ?? ''].join('=').replace(/=+$/, '');
}

/** What the changes' text needs from the character set, or undefined when only dcmjs can help. */
function textEncoding(changes: HeaderChanges, charsetTerms: string[] | undefined): { encode: (s: string) => Buffer; declareUtf8: boolean } | undefined {
  const texts = changeTexts(changes);
  const latin1 = (s: string) => Buffer.from(s, 'latin1');
  const utf8 = (s: string) => Buffer.from(s, 'utf8');
  if (texts.every((t) => /^[\x20-\x7e]*$/.test(t))) return { encode: latin1, declareUtf8: false };
  const terms = charsetTerms ?? [];
  if (terms.length === 0 || (terms.length === 1 && terms[0] === '')) return { encode: utf8, declareUtf8: true };
  if (terms.length === 1 && terms[0] === 'ISO_IR 192') return { encode: utf8, declareUtf8: false };
  if (terms.length === 1 && terms[0] === 'ISO_IR 100' && texts.every((t) => /^[\x20-\x7e\xa0-\xff]*$/.test(t))) return { encode: latin1, declareUtf8: false };
  return undefined;
}

class Writer {
  constructor(
    private readonly enc: Encoding,
    private readonly text: (s: string) => Buffer,
  ) {}

  private tagBytes(tag: number, length: number, vr: string): Buffer {
    const long = this.enc.implicit || LONG_VRS.has(vr) || (tag >>> 16) === 0xfffe;
    const out = Buffer.alloc(this.enc.implicit || (tag >>> 16) === 0xfffe ? 8 : long ? 12 : 8);
    const w16 = (v: number, at: number) => (this.enc.little ? out.writeUInt16LE(v, at) : out.writeUInt16BE(v, at));
    const w32 = (v: number, at: number) => (this.enc.little ? out.writeUInt32LE(v, at) : out.writeUInt32BE(v, at));
    w16(tag >>> 16, 0);
    w16(tag & 0xffff, 2);
    if (this.enc.implicit || (tag >>> 16) === 0xfffe) w32(length, 4);
    else if (long) {
      out.write(vr, 4, 'latin1');
      w32(length, 8);
    } else {
      out.write(vr, 4, 'latin1');
      w16(length, 6);
    }
    return out;
  }

  /** A text element, padded with a space (a UID with NUL) to even length (PS3.5 §6.2, §9.1). */
  textElement(tag: number, vr: string, value: string): Buffer {
    let bytes = this.text(value);
    if (bytes.length % 2 === 1) bytes = Buffer.concat([bytes, Buffer.from(vr === 'UI' ? '\0' : ' ', 'latin1')]);
    if (bytes.length > 0xffff && !this.enc.implicit) throw new InvalidDicomError('an identity value is too long to encode');
    return Buffer.concat([this.tagBytes(tag, bytes.length, vr), bytes]);
  }

  /** A sequence of defined length whose items are the given encoded elements. */
  sequence(tag: number, items: Buffer[][]): Buffer {
    const encodedItems = items.map((elements) => {
      const body = Buffer.concat(elements);
      return Buffer.concat([this.tagBytes(0xfffee000, body.length, ''), body]);
    });
    const body = Buffer.concat(encodedItems);
    return Buffer.concat([this.tagBytes(tag, body.length, 'SQ'), body]);
  }

  /** A group length element (gggg,0000) UL. */
  groupLength(group: number, length: number): Buffer {
    const value = Buffer.alloc(4);
    if (this.enc.little) value.writeUInt32LE(length);
    else value.writeUInt32BE(length);
    return Buffer.concat([this.tagBytes(((group << 16) >>> 0) | 0, 4, 'UL'), value]);
  }
}

const tagNumber = (key: string): number => Number.parseInt(key, 16) >>> 0;

/** The changed elements encoded for this data set (tag → bytes; null: remove). */
function encodedChanges({ set, remove }: HeaderChanges, writer: Writer): Map<number, Buffer | null> {
  const out = new Map<number, Buffer | null>();
  for (const tag of remove) out.set(tagNumber(tag), null);
  const str = (element: DicomJsonElement | undefined): string => {
    const v = element?.Value?.[0];
    if (v === undefined || v === null) return '';
    if (typeof v === 'object') return personNameString(v as Record<string, string>);
    return String(v);
  };
  for (const [tag, element] of Object.entries(set)) {
    const number = tagNumber(tag);
    if (element.vr === 'SQ') {
      const items = (element.Value ?? []) as DicomJsonDataset[];
      out.set(
        number,
        writer.sequence(
          number,
          items.map((item) =>
            Object.keys(item)
              .sort()
              .filter((key) => item[key]!.Value !== undefined && item[key]!.Value!.length > 0)
              .map((key) => writer.textElement(tagNumber(key), item[key]!.vr, str(item[key]))),
          ),
        ),
      );
    } else {
      // PN groups: the string form ('Alphabetic=Ideographic=Phonetic') is the encoded form.
      out.set(number, writer.textElement(number, element.vr, str(element)));
    }
  }
  return out;
}

/**
 * The data set with the changed elements replaced, every other element's bytes kept; undefined when
 * the structure cannot be walked or the character set cannot carry the new text (dcmjs then re-encodes).
 */
function spliceChanges(dataset: Buffer, enc: Encoding, changes: HeaderChanges): Buffer | undefined {
  const reader = new Reader(dataset, enc.little);
  // The Specific Character Set comes before the identity (group 0008): find it first.
  let charsetTerms: string[] | undefined;
  for (let at = 0; at < dataset.length; ) {
    const el = reader.header(at, enc.implicit);
    if (el === undefined || el.tag > 0x00080005) break;
    if (el.tag === 0x00080005 && el.length !== UNDEFINED) {
      charsetTerms = dataset
        .toString('latin1', at + el.headerLength, at + el.headerLength + el.length)
        .replace(/[\0 ]+$/, '')
        .split('\\')
        .map((t) => t.trim());
      break;
    }
    const next = reader.end(at, enc.implicit);
    if (next === undefined) return undefined;
    at = next;
  }
  const text = textEncoding(changes, charsetTerms);
  if (text === undefined) return undefined;
  const writer = new Writer(enc, text.encode);
  const replacements = encodedChanges(changes, writer);
  if (text.declareUtf8) replacements.set(0x00080005, writer.textElement(0x00080005, 'CS', 'ISO_IR 192'));
  const pending = [...replacements.keys()].sort((a, b) => a - b);
  const last = pending[pending.length - 1]!;

  // Emitted elements with their tags, so a group length of a changed group can be recomputed.
  const emitted: Array<{ tag: number; bytes: Buffer }> = [];
  let at = 0;
  const emitPendingBelow = (tag: number) => {
    while (pending.length > 0 && pending[0]! < tag) {
      const bytes = replacements.get(pending.shift()!);
      if (bytes) emitted.push({ tag: 0, bytes });
    }
  };
  while (at < dataset.length && pending.length > 0) {
    const el = reader.header(at, enc.implicit);
    if (el === undefined) return undefined;
    emitPendingBelow(el.tag);
    if (el.tag > last) break;
    const next = reader.end(at, enc.implicit);
    if (next === undefined) return undefined;
    if (pending[0] === el.tag) {
      const bytes = replacements.get(pending.shift()!);
      if (bytes) emitted.push({ tag: el.tag, bytes });
    } else {
      emitted.push({ tag: el.tag, bytes: dataset.subarray(at, next) });
    }
    at = next;
  }
  emitPendingBelow(Number.POSITIVE_INFINITY);
  for (const entry of emitted) if (entry.tag === 0) entry.tag = tagOfEncoded(entry.bytes, enc);
  recomputeGroupLengths(emitted, writer, new Set([...replacements.keys()].map((tag) => tag >>> 16)));
  return Buffer.concat([...emitted.map((e) => e.bytes), dataset.subarray(at)]);
}

function tagOfEncoded(bytes: Buffer, enc: Encoding): number {
  const r = new Reader(bytes, enc.little);
  return ((r.u16(0) << 16) | r.u16(2)) >>> 0;
}

/** A (retired) group length element of a changed group gets the group's new length. */
function recomputeGroupLengths(emitted: Array<{ tag: number; bytes: Buffer }>, writer: Writer, groups: ReadonlySet<number>): void {
  for (const group of groups) {
    const index = emitted.findIndex((e) => e.tag === ((group << 16) >>> 0));
    if (index < 0) continue;
    const length = emitted.filter((e, i) => i !== index && e.tag >>> 16 === group).reduce((sum, e) => sum + e.bytes.length, 0);
    emitted[index] = { tag: emitted[index]!.tag, bytes: writer.groupLength(group, length) };
  }
}

// ---------------------------------------------------------------------------------------------------
// Re-encoding with dcmjs (a character set that cannot carry the name)

/** Offset of the top-level pixel data element in a data set (its length when there is none or it cannot be walked). */
function pixelDataStart(dataset: Buffer, enc: Encoding): number {
  const reader = new Reader(dataset, enc.little);
  for (let at = 0; at < dataset.length; ) {
    const el = reader.header(at, enc.implicit);
    if (el === undefined) break;
    if (el.tag === 0x7fe00010 || el.tag === 0x7fe00008 || el.tag === 0x7fe00009) return at;
    const next = reader.end(at, enc.implicit);
    if (next === undefined) break;
    at = next;
  }
  return dataset.length;
}

/** The top-level elements of a data set of `syntax` (up to the first that cannot be walked), with their byte spans. */
export function topLevelElements(dataset: Buffer, syntax: string): Array<{ tag: number; vr: string; start: number; headerLength: number; length: number; end: number }> {
  const enc = encodingOf(syntax);
  const reader = new Reader(dataset, enc.little);
  const out: Array<{ tag: number; vr: string; start: number; headerLength: number; length: number; end: number }> = [];
  for (let at = 0; at < dataset.length; ) {
    const el = reader.header(at, enc.implicit);
    const next = el === undefined ? undefined : reader.end(at, enc.implicit);
    if (el === undefined || next === undefined) break;
    out.push({ tag: el.tag, vr: el.vr, start: at, headerLength: el.headerLength, length: el.length, end: next });
    at = next;
  }
  return out;
}

/**
 * Where the top-level pixel data element (its header and value) lies in a data set of `syntax`, or
 * undefined when it has none or the data set cannot be walked to it (the de-identified copy of a
 * consult, deid/, keeps these bytes and rewrites what comes before).
 */
export function topLevelPixelData(dataset: Buffer, syntax: string): { start: number; end: number } | undefined {
  const enc = encodingOf(syntax);
  const start = pixelDataStart(dataset, enc);
  if (start >= dataset.length) return undefined;
  const end = new Reader(dataset, enc.little).end(start, enc.implicit);
  return end === undefined ? undefined : { start, end };
}

/**
 * dcmjs re-encodes the elements before the pixel data element; the pixel data element's header (and
 * whatever of it the head holds) follows unchanged.
 */
function reencodeWithDcmjs(dataset: Buffer, syntax: string, changes: HeaderChanges): Buffer {
  const cut = pixelDataStart(dataset, encodingOf(syntax));
  return Buffer.concat([reencodeElementsWithDcmjs(dataset.subarray(0, cut), syntax, changes), dataset.subarray(cut)]);
}

function reencodeElementsWithDcmjs(dataset: Buffer, syntax: string, { set, remove }: HeaderChanges): Buffer {
  const loggers = [dcmjs.log, dcmjs.log.getLogger('validation.dcmjs')];
  const levels = loggers.map((l) => l.getLevel());
  for (const l of loggers) l.setLevel('silent', false);
  try {
    const ab = part10ForDcmjs(Buffer.from(dataset), syntax);
    const dict: DcmjsDict = dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: true }).dict;
    for (const tag of remove) delete dict[tag];
    for (const [tag, element] of Object.entries(set)) dict[tag] = { vr: element.vr, Value: (element.Value ?? []) as unknown[] };
    // dcmjs decoded every text value from the file's character set and writes UTF-8.
    dict[SPECIFIC_CHARACTER_SET] = { vr: 'CS', Value: ['ISO_IR 192'] };
    const out = new dcmjs.data.DicomDict({ '00020010': { vr: 'UI', Value: [syntax] } });
    out.dict = dict;
    const file = Buffer.from(out.write({ allowInvalidVRLength: true }));
    return file.subarray(fileMetaOf(file).datasetStart);
  } finally {
    loggers.forEach((l, i) => l.setLevel(levels[i]!, false));
  }
}
