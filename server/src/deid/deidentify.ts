/**
 * A de-identified copy of one Part-10 instance after PS3.15 Annex E, the Basic Application Level
 * Confidentiality Profile (E.2): every attribute of Table E.1-1 (basic-profile-table.ts) gets the
 * profile's action, at any depth of sequences; private attributes are removed; UIDs are replaced
 * consistently within a set of instances (a consult) by an HMAC of a secret of that set; the patient's
 * name and ID become the set's pseudonym and the birth date is emptied; Patient Identity Removed (0012,0062)
 * is YES with De-identification Method (0012,0063) and its Code Sequence (0012,0064: DCM 113100 "Basic
 * Application Confidentiality Profile"). The input buffer (the stored original) is never changed.
 *
 * Why not dcmjs's anonymizer (`dcmjs.anonymizer.cleanTags`): it empties a fixed list of about 250
 * keywords derived from the CTP's defaults, at the top level only; it has no remove (X), dummy (D) or
 * UID replacement (U) actions, does not touch sequences or private attributes, and several of its names
 * ("RefStudySeq", "ReferringPhysiciansIDSeq") are not dictionary keywords and are silently skipped. It
 * does not cover the Basic Profile's table, so the table is encoded here as data from the standard and
 * dcmjs only parses and writes.
 *
 * How the table's choices are resolved. The combined actions pick by the attribute's Type in the IOD
 * ("X/Z: X unless Z is required to maintain IOD conformance"); this module has no per-IOD Type tables,
 * so for an attribute present in the original it applies the alternative that conforms whatever the
 * Type: X/Z → Z, X/D and X/Z/D → D, Z/D → D, X/Z/U* → the sequence kept with its UIDs replaced (U). A
 * kept value is empty or a dummy and carries nothing of the original. Sequences are the exception for
 * X/D and X/Z/D (removed: a dummy item would have to invent a structure) and for X/Z (removed, since a
 * present Type 3 sequence needs an item, except the Type 2 Acquisition Context Sequence, kept empty;
 * dciodvfy checks this on the test corpus). D on a sequence keeps its
 * items with every value in them a dummy (UIDs replaced). Dummies by VR: text "ANONYMIZED", DA 19000101,
 * TM 000000, DT 19000101000000, numbers 0, AS 000Y.
 *
 * Also removed (Table E.1-1 rows that are patterns): curve data (50xx groups) and overlays (60xx: the
 * table removes Overlay Data and Overlay Comments; the rest of the Overlay Plane module cannot stand
 * without its data, and the module is optional in every IOD, so the group goes whole); and, as retired
 * and unreliable once values change, group lengths (gggg,0000) of the data set.
 *
 * Refused (DeidentificationRefusedError): an instance whose Burned In Annotation (0028,0301) is YES (the
 * Basic Profile leaves pixels alone: identifying text in them would go out; the Clean Pixel Data Option is
 * not implemented); SR documents, encapsulated documents and presentation states, whose free text and
 * content trees the table replaces whole (Content Sequence D, Encapsulated Document D); deflated and
 * big-endian data sets. An instance without (0028,0301) is copied and reported as `burnedIn: 'unknown'`.
 *
 * Bytes: the data set's elements before the top-level pixel data are parsed and written by dcmjs
 * (UTF-8, Specific Character Set ISO_IR 192); the pixel data element is copied byte for byte from the
 * original; elements after it (Data Set Trailing Padding, Digital Signatures Sequence, private groups:
 * all X) are dropped.
 */
import { createHmac } from 'node:crypto';
import '../dicom/dcmjs-fixes.js';
import dcmjs, { type DcmjsDict, type DcmjsElement } from 'dcmjs';
import { part10ForDcmjs } from '../dicom/header-json.js';
import { fileMetaOf, topLevelElements, topLevelPixelData } from '../dicom/identity-rewrite.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/write-part10.js';
import { BASIC_PROFILE, type BasicProfileAction } from './basic-profile-table.js';

const DEFLATED = '1.2.840.10008.1.2.1.99';
const EXPLICIT_BIG_ENDIAN = '1.2.840.10008.1.2.2';

/** An instance the Basic Profile cannot make safe here (see the module comment). */
export class DeidentificationRefusedError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'DeidentificationRefusedError';
  }
}

export interface DeidentifyOptions {
  /** The secret of the set (a consult): the same UID maps to the same new UID within the set, and nowhere else. */
  uidSecret: Buffer;
  /** Patient's Name of the copy (a pseudonym, DICOM PN). */
  patientName: string;
  /** Patient ID of the copy (a pseudonym). */
  patientId: string;
}

export interface DeidentifiedInstance {
  /** The Part-10 file of the copy. */
  bytes: Buffer;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  /** Every UID replaced in this instance: original → replacement (the re-identification map). */
  uids: Map<string, string>;
  /** Burned In Annotation (0028,0301) of the original: NO, or unknown when absent. */
  burnedIn: 'NO' | 'unknown';
}

/** SOP classes refused: SR documents (88.x), encapsulated documents (104.x), presentation states (11.x). */
function refusedClass(sopClassUid: string): string | undefined {
  if (sopClassUid.startsWith('1.2.840.10008.5.1.4.1.1.88.')) return 'a structured report: its content tree is replaced whole by the profile (Content Sequence D)';
  if (sopClassUid.startsWith('1.2.840.10008.5.1.4.1.1.104.')) return 'an encapsulated document: its content is replaced whole by the profile (Encapsulated Document D)';
  if (sopClassUid.startsWith('1.2.840.10008.5.1.4.1.1.11.')) return 'a presentation state: its text annotations are not covered by the profile';
  return undefined;
}

/**
 * The replacement of `uid` within the set of `secret`: 2.25 + the decimal of 128 bits of
 * HMAC-SHA256(secret, uid), laid out as a UUID version 8 (PS3.5 B.2), so it is a valid UID of at most
 * 44 characters, the same for the same input, and reveals nothing of it without the secret.
 */
export function replacementUid(secret: Buffer, uid: string): string {
  const bytes = createHmac('sha256', secret).update(uid, 'latin1').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

const DUMMY_TEXT = 'ANONYMIZED';
const TEXT_VRS = new Set(['LO', 'LT', 'SH', 'ST', 'UC', 'UT', 'CS', 'AE']);
const NUMBER_VRS = new Set(['FL', 'FD', 'SL', 'SS', 'UL', 'US', 'SV', 'UV']);
const BINARY_VRS = new Set(['OB', 'OW', 'OD', 'OF', 'OL', 'OV', 'UN']);

/**
 * Sequences of X/Z rows that are Type 2 where they appear (Acquisition Context Sequence, in the
 * Acquisition Context Module): kept empty. Other X/Z sequences (Referenced Study Sequence, Type 3 in
 * the General Study Module) are removed: a present Type 3 sequence needs an item.
 */
const TYPE2_SEQUENCES = new Set(['00400555']);

/** Resolves a combined action for an attribute present in the original (see the module comment). */
function resolve(action: BasicProfileAction, vr: string, tag: string): 'X' | 'Z' | 'D' | 'U' | 'keep-sequence' {
  switch (action) {
    case 'X':
    case 'Z':
    case 'D':
    case 'U':
      return action;
    case 'X/Z':
      return vr === 'SQ' && !TYPE2_SEQUENCES.has(tag) ? 'X' : 'Z';
    case 'X/D':
    case 'X/Z/D':
      return vr === 'SQ' ? 'X' : 'D';
    case 'Z/D':
      return 'D';
    case 'X/Z/U*':
      return vr === 'SQ' ? 'keep-sequence' : 'U';
  }
}

class Walker {
  readonly uids = new Map<string, string>();

  constructor(private readonly secret: Buffer) {}

  uid(value: string): string {
    const original = value.replace(/[\0 ]+$/, '');
    if (original === '') return original;
    let replaced = this.uids.get(original);
    if (replaced === undefined) {
      replaced = replacementUid(this.secret, original);
      this.uids.set(original, replaced);
    }
    return replaced;
  }

  /** Applies the table to every element of `dict` (and of its sequences); `dummyAll`: inside a D sequence. */
  clean(dict: DcmjsDict, dummyAll: boolean, depth: number): void {
    if (depth > 64) throw new DeidentificationRefusedError('sequences are nested too deeply');
    for (const tag of Object.keys(dict)) {
      const element = dict[tag]!;
      const group = parseInt(tag.slice(0, 4), 16);
      const elementNumber = parseInt(tag.slice(4), 16);
      // Private attributes and their creators (odd groups), curves, overlays, group lengths.
      if (group % 2 === 1 || (group >= 0x5000 && group <= 0x50ff) || (group >= 0x6000 && group <= 0x60ff) || elementNumber === 0) {
        delete dict[tag];
        continue;
      }
      const action = BASIC_PROFILE.get(tag.toUpperCase());
      // A value whose VR nobody knows (UN left inside a sequence) cannot be judged: removed.
      if (action === undefined && element.vr === 'UN') {
        delete dict[tag];
        continue;
      }
      if (action === undefined) {
        if (element.vr === 'SQ') this.items(element, dummyAll, depth);
        else if (dummyAll) this.dummy(element);
        continue;
      }
      switch (resolve(action, element.vr, tag.toUpperCase())) {
        case 'X':
          delete dict[tag];
          break;
        case 'Z':
          element.Value = [];
          break;
        case 'U':
          if (element.vr === 'SQ') this.items(element, dummyAll, depth);
          else element.Value = (element.Value ?? []).map((value) => (typeof value === 'string' ? this.uid(value) : value));
          break;
        case 'D':
          if (element.vr === 'SQ') this.items(element, true, depth);
          else this.dummy(element);
          break;
        case 'keep-sequence':
          this.items(element, dummyAll, depth);
          break;
      }
    }
  }

  private items(element: DcmjsElement, dummyAll: boolean, depth: number): void {
    for (const item of (element.Value ?? []) as DcmjsDict[]) {
      if (item !== null && typeof item === 'object') this.clean(item, dummyAll, depth + 1);
    }
  }

  /** D: a dummy value consistent with the VR (UIDs replaced consistently). */
  private dummy(element: DcmjsElement): void {
    const vr = element.vr;
    const had = (element.Value ?? []).length > 0;
    if (vr === 'UI') element.Value = (element.Value ?? []).map((value) => (typeof value === 'string' ? this.uid(value) : value));
    else if (vr === 'PN') element.Value = [{ Alphabetic: DUMMY_TEXT }];
    else if (vr === 'DA') element.Value = ['19000101'];
    else if (vr === 'TM') element.Value = ['000000'];
    else if (vr === 'DT') element.Value = ['19000101000000'];
    else if (vr === 'AS') element.Value = ['000Y'];
    else if (vr === 'DS' || vr === 'IS') element.Value = [0];
    else if (vr === 'UR') element.Value = ['urn:anonymized'];
    else if (TEXT_VRS.has(vr)) element.Value = [DUMMY_TEXT];
    else if (NUMBER_VRS.has(vr)) element.Value = had ? [0] : [];
    else if (BINARY_VRS.has(vr)) element.Value = [new Uint8Array(2).buffer];
    // AT and anything else: kept (tags and unknown VRs identify no one).
  }
}

const code = (value: string, scheme: string, meaning: string): DcmjsDict => ({
  '00080100': { vr: 'SH', Value: [value] },
  '00080102': { vr: 'SH', Value: [scheme] },
  '00080104': { vr: 'LO', Value: [meaning] },
});

const firstString = (dict: DcmjsDict, tag: string): string | undefined => {
  const value = dict[tag]?.Value?.[0];
  return typeof value === 'string' ? value.replace(/[\0 ]+$/, '') : undefined;
};

const IMPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2';

/**
 * The head parsed by dcmjs. Top-level elements sent as UN in an explicit data set (a sequence encoded
 * as Implicit VR Little Endian inside it, PS3.5 §6.2.2, which dcmjs would misread as explicit) are cut
 * out of the main parse and each parsed on its own as Implicit VR Little Endian, which gives them
 * their dictionary VR; private ones are dropped (they would be removed anyway).
 */
function parseHead(head: Buffer, syntax: string): DcmjsDict {
  const read = (bytes: Buffer, ts: string): DcmjsDict => dcmjs.data.DicomMessage.readFile(part10ForDcmjs(bytes, ts), { ignoreErrors: true }).dict;
  if (syntax === IMPLICIT_LITTLE_ENDIAN) return read(head, syntax);
  const unknown = topLevelElements(head, syntax).filter((element) => element.vr === 'UN');
  if (unknown.length === 0) return read(head, syntax);
  const kept: Buffer[] = [];
  let at = 0;
  for (const element of unknown) {
    kept.push(head.subarray(at, element.start));
    at = element.end;
  }
  kept.push(head.subarray(at));
  const dict = read(Buffer.concat(kept), syntax);
  for (const element of unknown) {
    if ((element.tag >>> 16) % 2 === 1) continue;
    // The same element as Implicit VR Little Endian: tag, 32-bit length, value.
    const implicit = Buffer.alloc(8);
    implicit.writeUInt16LE(element.tag >>> 16, 0);
    implicit.writeUInt16LE(element.tag & 0xffff, 2);
    implicit.writeUInt32LE(element.length, 4);
    const parsed = read(Buffer.concat([implicit, head.subarray(element.start + element.headerLength, element.end)]), IMPLICIT_LITTLE_ENDIAN);
    Object.assign(dict, parsed);
  }
  return dict;
}

/** The de-identified copy of the Part-10 file `file` (see the module comment); `file` is not modified. */
export function deidentifyPart10(file: Buffer, options: DeidentifyOptions): DeidentifiedInstance {
  const { datasetStart, transferSyntaxUid } = fileMetaOf(file);
  if (transferSyntaxUid === DEFLATED) throw new DeidentificationRefusedError('a deflated data set');
  if (transferSyntaxUid === EXPLICIT_BIG_ENDIAN) throw new DeidentificationRefusedError('a big-endian data set (retired transfer syntax)');
  const dataset = file.subarray(datasetStart);
  const pixel = topLevelPixelData(dataset, transferSyntaxUid);
  const head = Buffer.from(dataset.subarray(0, pixel?.start ?? dataset.length));

  const loggers = [dcmjs.log, dcmjs.log.getLogger('validation.dcmjs')];
  const levels = loggers.map((l) => l.getLevel());
  for (const l of loggers) l.setLevel('silent', false);
  try {
    const dict = parseHead(head, transferSyntaxUid);
    const sopClassUid = firstString(dict, '00080016') ?? '';
    const refused = refusedClass(sopClassUid);
    if (refused !== undefined) throw new DeidentificationRefusedError(refused);
    const burnedIn = (firstString(dict, '00280301') ?? '').toUpperCase();
    if (burnedIn === 'YES') throw new DeidentificationRefusedError('Burned In Annotation (0028,0301) is YES: identifying text may be in the pixels');
    for (const tag of ['0020000D', '0020000E', '00080018']) {
      if (firstString(dict, tag) === undefined) throw new DeidentificationRefusedError(`the instance has no ${tag}`);
    }

    const walker = new Walker(options.uidSecret);
    walker.clean(dict, false, 0);
    dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: options.patientName }] };
    dict['00100020'] = { vr: 'LO', Value: [options.patientId] };
    dict['00100030'] = { vr: 'DA', Value: [] };
    dict['00120062'] = { vr: 'CS', Value: ['YES'] };
    dict['00120063'] = { vr: 'LO', Value: ['PS3.15 E Basic Application Confidentiality Profile'] };
    dict['00120064'] = { vr: 'SQ', Value: [code('113100', 'DCM', 'Basic Application Confidentiality Profile')] };
    // Dates are removed or dummies (no Retain Longitudinal Temporal Information option).
    dict['00280303'] = { vr: 'CS', Value: ['REMOVED'] };
    // dcmjs decoded every text value from the file's character set and writes UTF-8.
    dict['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'] };

    const studyInstanceUid = firstString(dict, '0020000D')!;
    const seriesInstanceUid = firstString(dict, '0020000E')!;
    const sopInstanceUid = firstString(dict, '00080018')!;
    const meta = dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      MediaStorageSOPClassUID: sopClassUid,
      MediaStorageSOPInstanceUID: sopInstanceUid,
      TransferSyntaxUID: transferSyntaxUid,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    });
    const out = new dcmjs.data.DicomDict(meta);
    out.dict = dict;
    const written = Buffer.from(out.write({ allowInvalidVRLength: true }));
    const bytes = pixel === undefined ? written : Buffer.concat([written, dataset.subarray(pixel.start, pixel.end)]);
    return { bytes, studyInstanceUid, seriesInstanceUid, sopInstanceUid, sopClassUid, uids: walker.uids, burnedIn: burnedIn === 'NO' ? 'NO' : 'unknown' };
  } finally {
    loggers.forEach((l, i) => l.setLevel(levels[i]!, false));
  }
}
