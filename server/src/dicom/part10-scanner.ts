/**
 * Streaming scan of one DICOM Part-10 file (PS3.10 §7): every byte goes on to a sink (blob storage) while
 * the element structure is walked; only the header (everything before the top-level Pixel Data) is kept in
 * memory, and for Pixel Data only where each frame's bytes lie in the file is recorded. The header bytes
 * are then parsed by dcmjs into DICOM JSON.
 *
 * Why not dcmjs alone: it parses whole buffers only, and STOW-RS parts can be gigabytes.
 *
 * Structure walked (PS3.5 §7):
 *  - 128-byte preamble + "DICM", then the File Meta Information group 0002, always Explicit VR Little
 *    Endian (PS3.10 §7.1), which names the Transfer Syntax of the rest;
 *  - data elements (§7.1): tag, VR (explicit syntaxes only), length; 2-byte lengths for the short VRs,
 *    2 reserved bytes + 4-byte length for OB/OD/OF/OL/OV/OW/SQ/SV/UC/UN/UR/UT/UV (§7.1.2);
 *  - sequences (§7.5): walked item by item, whether their lengths are defined (each element must then fit
 *    inside its item and sequence) or undefined (to the delimitation items FFFE,E00D / FFFE,E0DD); UN of
 *    undefined length holds an Implicit VR Little Endian sequence (§6.2.2);
 *  - encapsulated Pixel Data (§A.4): items whose first is the Basic Offset Table, then the fragments.
 *
 * The walk is iterative (an explicit stack with a depth limit), so hostile nesting cannot overflow the JS
 * stack here nor in dcmjs (which recurses, and took minutes on the 3.6 MB deeply nested test file), and it
 * never buffers a value it does not need.
 */
import dcmjs, { type DcmjsDict } from 'dcmjs';
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { InvalidDicomError } from '../errors.js';
import { ByteReader, isTruncation, truncated, type ChunkSink } from './byte-reader.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonPersonName } from './dicom-json.js';
import { firstNumber, firstString } from './dicom-json.js';
import type { ByteSpan, InstanceHeader, PixelDataLocation } from './instance-header.js';
import {
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  isBigEndian,
  isDeflated,
  isImplicitVR,
  isJpeg2000Family,
  isJpegFamily,
  isRle,
  isVideo,
} from './transfer-syntax.js';

export type { ChunkSink } from './byte-reader.js';

export interface ScanPart10Options {
  /**
   * Largest header accepted: the bytes before the top-level Pixel Data (or the whole file when it has
   * none), File Meta included; for a deflated data set, the inflated size. Larger → InvalidDicomError.
   */
  maxHeaderBytes: number;
}

/**
 * The frame and fragment index is bounded by the same budget as the header, at this many bytes per entry
 * (so maxHeaderBytes 64 MiB allows 4 Mi frames or fragments): a hostile NumberOfFrames or a flood of empty
 * fragments cannot make the index outgrow memory.
 */
const INDEX_BYTES_PER_ENTRY = 16;

/** Binary values up to this size are kept as InlineBinary; larger ones are left for bulk data. */
export const MAX_INLINE_BINARY_BYTES = 4096;

/** Deepest nesting of undefined-length sequences + items walked (each level is one stack entry). */
const MAX_STACK_DEPTH = 128;

const UNDEFINED_LENGTH = 0xffffffff;

/** 2-character VR codes packed as (c0 << 8) | c1. */
const vrCode = (vr: string): number => (vr.charCodeAt(0) << 8) | vr.charCodeAt(1);
const VR_SQ = vrCode('SQ');
const VR_UN = vrCode('UN');
const VR_OB = vrCode('OB');
const VR_OW = vrCode('OW');
/** VRs with the 2-byte length form (PS3.5 §7.1.2); every other VR, known or not, has the 4-byte form. */
const SHORT_VRS = new Set(
  ['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'].map(vrCode),
);
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'].map(vrCode));
/** VRs whose DICOM JSON form is InlineBinary / BulkDataURI (PS3.18 §F.2.7). */
const BINARY_JSON_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;

const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
const tagText = (group: number, element: number): string => `(${hex4(group)},${hex4(element)})`;

function invalid(message: string): InvalidDicomError {
  return new InvalidDicomError(message);
}

function tooLarge(limit: number): InvalidDicomError {
  return invalid(`DICOM header larger than ${limit} bytes (the elements before Pixel Data)`);
}

// ---------------------------------------------------------------------------------------------------
// dcmjs (types in server/src/types/vendor.d.ts)



// ---------------------------------------------------------------------------------------------------
// The data-set walker

const enum Kind {
  /** Sequence: expects items (and, if undefined-length, a sequence delimiter). */
  Seq,
  /** Item: expects data elements (and, if undefined-length, an item delimiter). */
  Item,
  /** Encapsulated (undefined-length OB/OW) value, e.g. an icon's Pixel Data: raw items. */
  Frags,
}

/** One sequence value whose content is Implicit VR LE inside an explicit data set (UN, PS3.5 §6.2.2). */
interface UnRegion {
  /** Offsets (reader positions) of the element's tag, its value, and the end of its value. */
  tagPos: number;
  valuePos: number;
  end: number;
  undefinedLength: boolean;
  /** Byte order of the enclosing data set (for rewriting the element header). */
  little: boolean;
  /** 8-digit tag key. */
  tag: string;
  /** Where it sits: [sequence tag key, item index] from the top-level data set down. */
  path: Array<[string, number]>;
}

interface Frame {
  kind: Kind;
  implicit: boolean;
  little: boolean;
  /** Reader offset where a defined-length container ends; -1 for undefined length. */
  end: number;
  /** Smallest end of this and every enclosing defined-length container (Infinity if none). */
  bound: number;
  /** Seq: its tag key and how many items were seen. Item: its index in the parent sequence. */
  tag: string;
  items: number;
  index: number;
  region: UnRegion | undefined;
}

interface PixelStart {
  group: number;
  element: number;
  /** Offset of the element's tag. */
  tagPos: number;
  /** Offset of the element's value. */
  valuePos: number;
  /** Undefined for undefined length (encapsulated). */
  length: number | undefined;
}

interface WalkResult {
  pixel: PixelStart | undefined;
  /** Top-level Extended Offset Table (7FE0,0001): [valuePos, length]. */
  extendedOffsets: [number, number] | undefined;
  regions: UnRegion[];
}

/** Public tags whose dictionary VR is SQ (dcmjs's dictionary), cached. */
const sqCache = new Map<number, boolean>();
function isDictionarySequence(group: number, element: number): boolean {
  if (group & 1) return false; // private: unknown to the dictionary, and dcmjs leaves it binary
  const key = ((group << 16) | element) >>> 0;
  let sq = sqCache.get(key);
  if (sq === undefined) {
    sq = dcmjs.data.DicomMetaDictionary.dictionary[`(${hex4(group)},${hex4(element)})`]?.vr === 'SQ';
    sqCache.set(key, sq);
  }
  return sq;
}

const tagKey = (group: number, element: number): string => `${hex4(group)}${hex4(element)}`;

/**
 * Walks data elements from the reader's position until the top-level Pixel Data element (whose header it
 * consumes, not its value) or the end of input. `limit` is the reader offset no header byte may pass.
 *
 * Every sequence that dcmjs will parse as one (VR SQ; in Implicit VR, a dictionary SQ tag or an undefined
 * length) is walked item by item, and every element is checked to fit inside its item and sequence, so
 * dcmjs is never handed a length that runs past its container (it would allocate that much).
 */
async function walkDataset(r: ByteReader, implicit0: boolean, little0: boolean, limit: number, limitForMessage: number): Promise<WalkResult> {
  const stack: Frame[] = [];
  const regions: UnRegion[] = [];
  let implicit = implicit0;
  let little = little0;
  let bound = Number.POSITIVE_INFINITY;
  let extendedOffsets: [number, number] | undefined;

  const pop = (): void => {
    const f = stack.pop()!;
    if (f.region !== undefined) f.region.end = r.position;
    const top = stack[stack.length - 1];
    implicit = top ? top.implicit : implicit0;
    little = top ? top.little : little0;
    bound = top ? top.bound : Number.POSITIVE_INFINITY;
  };
  const push = (kind: Kind, imp: boolean, lit: boolean, end: number, tag: string, index: number, region?: UnRegion): void => {
    if (stack.length >= MAX_STACK_DEPTH) {
      throw invalid(`DICOM sequences nested deeper than ${MAX_STACK_DEPTH / 2} levels`);
    }
    if (end >= 0 && end < bound) bound = end;
    stack.push({ kind, implicit: imp, little: lit, end, bound, tag, items: 0, index, region });
    implicit = imp;
    little = lit;
  };
  const path = (): Array<[string, number]> => {
    const out: Array<[string, number]> = [];
    for (let i = 0; i + 1 < stack.length; i += 2) {
      const seq = stack[i]!;
      const item = stack[i + 1]!;
      if (seq.kind !== Kind.Seq || item.kind !== Kind.Item) break;
      out.push([seq.tag, item.index]);
    }
    return out;
  };

  for (;;) {
    // Close defined-length containers that end here (§7.5.1: their length, not a delimiter, ends them).
    while (stack.length > 0 && stack[stack.length - 1]!.end === r.position) pop();

    if (r.buf.length - r.pos < 8 && !(await r.ensure(8))) {
      if (r.available === 0) {
        if (stack.length === 0) return { pixel: undefined, extendedOffsets, regions };
        throw truncated(stack[stack.length - 1]!.kind === Kind.Item ? 'a sequence item' : 'a sequence');
      }
      throw truncated('a data element header');
    }
    const tagPos = r.position;
    if (tagPos >= limit) throw tooLarge(limitForMessage);
    if (tagPos + 8 > bound) throw invalid(`a sequence or item ending at offset ${bound} is cut inside a data element header`);
    let b = r.buf;
    let p = r.pos;
    const group = little ? b.readUInt16LE(p) : b.readUInt16BE(p);
    const element = little ? b.readUInt16LE(p + 2) : b.readUInt16BE(p + 2);
    const top = stack.length > 0 ? stack[stack.length - 1] : undefined;

    // Items and delimiters (PS3.5 §7.5): tag FFFE,xxxx and a 4-byte length, never a VR.
    if (group === 0xfffe) {
      const len = little ? b.readUInt32LE(p + 4) : b.readUInt32BE(p + 4);
      r.pos += 8;
      if (element === 0xe000) {
        if (top === undefined || top.kind === Kind.Item) {
          throw invalid(`item tag (FFFE,E000) outside a sequence at offset ${tagPos}`);
        }
        if (top.kind === Kind.Frags) {
          if (len === UNDEFINED_LENGTH) throw invalid(`fragment with undefined length at offset ${tagPos}`);
          if (tagPos + 8 + len > bound) throw invalid(`fragment at offset ${tagPos} is longer than its container`);
          if (tagPos + 8 + len > limit) throw tooLarge(limitForMessage);
          if (r.buf.length - r.pos >= len) r.pos += len;
          else await r.skip(len, 'an encapsulated value');
          continue;
        }
        const end = len === UNDEFINED_LENGTH ? -1 : tagPos + 8 + len;
        if (end > bound) throw invalid(`item at offset ${tagPos} is longer than its sequence`);
        push(Kind.Item, top.implicit, top.little, end, '', top.items++);
      } else if (element === 0xe00d) {
        // Item delimitation. Tolerated where redundant (in a defined-length item) or stray at top level.
        if (top?.kind === Kind.Item) {
          if (top.end < 0) pop();
        } else if (top !== undefined) {
          throw invalid(`item delimitation (FFFE,E00D) outside an item at offset ${tagPos}`);
        }
      } else if (element === 0xe0dd) {
        // Sequence delimitation. Tolerate a missing item delimitation before it (close both).
        if (top?.kind === Kind.Item && top.end < 0) pop();
        const seq = stack[stack.length - 1];
        if (seq !== undefined && seq.kind !== Kind.Item && seq.end < 0) pop();
      } else {
        throw invalid(`unexpected tag ${tagText(group, element)} at offset ${tagPos}`);
      }
      continue;
    }
    if (top !== undefined && top.kind !== Kind.Item) {
      throw invalid(`expected an item in a sequence, found ${tagText(group, element)} at offset ${tagPos}`);
    }

    let vr = 0;
    let len: number;
    let headerLength: number;
    if (implicit) {
      len = little ? b.readUInt32LE(p + 4) : b.readUInt32BE(p + 4);
      headerLength = 8;
    } else {
      const c0 = b[p + 4]!;
      const c1 = b[p + 5]!;
      if (!isUpper(c0) || !isUpper(c1)) {
        throw invalid(`data element ${tagText(group, element)} at offset ${tagPos} has no valid VR`);
      }
      vr = (c0 << 8) | c1;
      if (SHORT_VRS.has(vr)) {
        len = little ? b.readUInt16LE(p + 6) : b.readUInt16BE(p + 6);
        headerLength = 8;
      } else {
        if (b.length - p < 12) {
          if (!(await r.ensure(12))) throw truncated('a data element header');
          b = r.buf;
          p = r.pos;
        }
        len = little ? b.readUInt32LE(p + 8) : b.readUInt32BE(p + 8);
        headerLength = 12;
      }
    }
    r.pos += headerLength;
    const valuePos = tagPos + headerLength;

    if (stack.length === 0 && group === 0x7fe0) {
      if (element === 0x0010 || element === 0x0008 || element === 0x0009) {
        const length = len === UNDEFINED_LENGTH ? undefined : len;
        return { pixel: { group, element, tagPos, valuePos, length }, extendedOffsets, regions };
      }
      if (element === 0x0001 && len !== UNDEFINED_LENGTH) extendedOffsets = [valuePos, len];
    }

    if (len === UNDEFINED_LENGTH) {
      if (implicit) {
        // No VR: an undefined length is a sequence, except Pixel Data (an icon's, nested) which is encapsulated.
        if (group === 0x7fe0 && element === 0x0010) push(Kind.Frags, implicit, little, -1, '', -1);
        else push(Kind.Seq, implicit, little, -1, tagKey(group, element), -1);
      } else if (vr === VR_SQ) {
        push(Kind.Seq, implicit, little, -1, tagKey(group, element), -1);
      } else if (vr === VR_UN) {
        // PS3.5 §6.2.2 note: UN with undefined length is a sequence encoded in Implicit VR Little Endian.
        const region: UnRegion = { tagPos, valuePos, end: -1, undefinedLength: true, little, tag: tagKey(group, element), path: path() };
        regions.push(region);
        push(Kind.Seq, true, true, -1, region.tag, -1, region);
      } else if (vr === VR_OB || vr === VR_OW) {
        // Encapsulated value nested in an item (e.g. an Icon Image's Pixel Data, PS3.5 §A.4): raw items.
        push(Kind.Frags, implicit, little, -1, '', -1);
      } else {
        throw invalid(`data element ${tagText(group, element)} at offset ${tagPos} has an undefined length`);
      }
      continue;
    }
    const end = valuePos + len;
    if (end > bound) {
      throw invalid(`data element ${tagText(group, element)} at offset ${tagPos} is longer than its enclosing item or sequence`);
    }
    if (end > limit) throw tooLarge(limitForMessage);
    if (len > 0) {
      if (vr === VR_SQ || (implicit && isDictionarySequence(group, element))) {
        push(Kind.Seq, implicit, little, end, tagKey(group, element), -1);
        continue;
      }
      if (vr === VR_UN && isDictionarySequence(group, element)) {
        // A known sequence sent as UN (e.g. by a system that didn't know it): Implicit VR LE content.
        const region: UnRegion = { tagPos, valuePos, end, undefinedLength: false, little, tag: tagKey(group, element), path: path() };
        regions.push(region);
        push(Kind.Seq, true, true, end, region.tag, -1, region);
        continue;
      }
    }
    if (r.buf.length - r.pos >= len) r.pos += len;
    else await r.skip(len, `data element ${tagText(group, element)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// File Meta Information (PS3.10 §7.1)

interface FileMeta {
  transferSyntaxUid: string | undefined;
  mediaStorageSopClassUid: string | undefined;
  mediaStorageSopInstanceUid: string | undefined;
}

function uidText(value: Buffer): string {
  return value.toString('latin1').replace(/[\0\s]+$/, '').trim();
}

async function readFileMeta(r: ByteReader, maxHeaderBytes: number): Promise<FileMeta> {
  const meta: FileMeta = { transferSyntaxUid: undefined, mediaStorageSopClassUid: undefined, mediaStorageSopInstanceUid: undefined };
  let groupEnd: number | undefined;
  for (;;) {
    // The group ends where group 0002 ends. For a deflated data set the next bytes are deflate output and
    // could start with 02 00 by chance, so there the group length (0002,0000) is trusted instead.
    if (groupEnd !== undefined && r.position >= groupEnd && meta.transferSyntaxUid !== undefined && isDeflated(meta.transferSyntaxUid)) break;
    if (!(await r.ensure(8))) {
      if (r.available === 0) break; // nothing after the meta group
      throw truncated('the File Meta Information');
    }
    let b = r.buf;
    let p = r.pos;
    if (b.readUInt16LE(p) !== 0x0002) break;
    const tagPos = r.position;
    const element = b.readUInt16LE(p + 2);
    let len: number;
    let headerLength: number;
    const c0 = b[p + 4]!;
    const c1 = b[p + 5]!;
    if (isUpper(c0) && isUpper(c1)) {
      const vr = (c0 << 8) | c1;
      if (SHORT_VRS.has(vr)) {
        len = b.readUInt16LE(p + 6);
        headerLength = 8;
      } else {
        if (!(await r.ensure(12))) throw truncated('the File Meta Information');
        b = r.buf;
        p = r.pos;
        len = b.readUInt32LE(p + 8);
        headerLength = 12;
      }
    } else {
      // Some old writers put the meta group in Implicit VR: accept it.
      len = b.readUInt32LE(p + 4);
      headerLength = 8;
    }
    if (len === UNDEFINED_LENGTH) throw invalid(`File Meta element (0002,${hex4(element)}) has an undefined length`);
    if (tagPos + headerLength + len > maxHeaderBytes) throw tooLarge(maxHeaderBytes);
    r.pos += headerLength;
    if (element === 0x0000 || element === 0x0002 || element === 0x0003 || element === 0x0010) {
      const value = await r.read(len, 'the File Meta Information');
      if (element === 0x0000) {
        if (len === 4) groupEnd = r.position + value.readUInt32LE(0);
      } else if (element === 0x0002) meta.mediaStorageSopClassUid = uidText(value);
      else if (element === 0x0003) meta.mediaStorageSopInstanceUid = uidText(value);
      else meta.transferSyntaxUid = uidText(value);
    } else {
      await r.skip(len, 'the File Meta Information');
    }
  }
  return meta;
}

/** A known VR in bytes 4–5 of the first element means explicit VR (how pydicom and dcmtk guess too). */
async function looksExplicit(r: ByteReader): Promise<boolean | undefined> {
  if (!(await r.ensure(6))) return undefined;
  const vr = (r.buf[r.pos + 4]! << 8) | r.buf[r.pos + 5]!;
  return SHORT_VRS.has(vr) || LONG_VRS.has(vr);
}

// ---------------------------------------------------------------------------------------------------
// Pixel Data layout

interface ImageInfo {
  rows: number | undefined;
  columns: number | undefined;
  bitsAllocated: number | undefined;
  samplesPerPixel: number | undefined;
  photometric: string | undefined;
  numberOfFrames: number;
}

/**
 * Native Pixel Data (PS3.5 §8.1.1, §8.2): frames are contiguous and equal-sized. With BitsAllocated 1 the
 * bits run on across frame boundaries (PS3.5 §8.1.1, PS3.3 C.8.20.2.1 for SEG), so a frame's byte span
 * may share its first and last byte with its neighbours. YBR_FULL_422 / YBR_PARTIAL_422 hold 2 samples per
 * pixel, not 3 (PS3.3 C.7.6.3.1.2).
 */
function nativeFrames(valueOffset: number, valueLength: number, info: ImageInfo): { frames: ByteSpan[][]; bitPacked: boolean } {
  const { rows, columns, bitsAllocated } = info;
  const bitPacked = bitsAllocated === 1;
  if (!rows || !columns || !bitsAllocated) return { frames: [], bitPacked };
  let samples = info.samplesPerPixel ?? 1;
  if (samples === 3 && (info.photometric === 'YBR_FULL_422' || info.photometric === 'YBR_PARTIAL_422')) samples = 2;
  const n = info.numberOfFrames;
  const frameBits = rows * columns * samples * bitsAllocated;
  const needed = Math.ceil((frameBits * n) / 8);
  if (valueLength < needed) {
    throw invalid(
      `Pixel Data holds ${valueLength} bytes but ${n} frame(s) of ${rows}x${columns}, ${samples} sample(s), ` +
        `${bitsAllocated} bits allocated need ${needed}`,
    );
  }
  const frames: ByteSpan[][] = new Array(n);
  if (frameBits % 8 === 0) {
    const frameBytes = frameBits / 8;
    for (let i = 0; i < n; i++) frames[i] = [[valueOffset + i * frameBytes, frameBytes]];
  } else {
    for (let i = 0; i < n; i++) {
      const start = Math.floor((i * frameBits) / 8);
      const end = Math.ceil(((i + 1) * frameBits) / 8);
      frames[i] = [[valueOffset + start, end - start]];
    }
  }
  return { frames, bitPacked };
}

interface Fragments {
  /** Item tag offset relative to the first fragment's item tag (the BOT/EOT base, PS3.5 §A.4). */
  rel: number[];
  /** Value offset in the file, and value length. */
  offset: number[];
  length: number[];
  /** Fragment starts with a codec's start-of-frame marker (only when needed). */
  marker: boolean[];
}

function startsWithMarker(b: Buffer, ts: string): boolean {
  const jpeg = b.length >= 2 && b[0] === 0xff && b[1] === 0xd8; // SOI (ISO 10918-1, 14495-1)
  const j2k = b.length >= 4 && b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51; // SOC+SIZ
  const box = b.length >= 8 && b.readUInt32BE(0) === 12;
  const jp2 = box && b.toString('latin1', 4, 8) === 'jP  '; // JP2 signature box (ISO 15444-1 Annex I)
  const jxl = (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) || (box && b.toString('latin1', 4, 8) === 'JXL ');
  if (isJpegFamily(ts)) return jpeg;
  if (isJpeg2000Family(ts)) return j2k || jp2;
  return jpeg || j2k || jp2 || jxl;
}

/** Reads the items of encapsulated Pixel Data (PS3.5 §A.4): BOT first, then fragments, then E0DD. */
async function readFragments(
  r: ByteReader,
  wantMarkers: (bot: Buffer | undefined) => boolean,
  ts: string,
  maxTable: number,
  maxEntries: number,
): Promise<{ bot: Buffer | undefined; fragments: Fragments }> {
  const what = 'encapsulated Pixel Data';
  if (!(await r.ensure(8))) throw truncated(what);
  if (r.buf.readUInt16LE(r.pos) !== 0xfffe || r.buf.readUInt16LE(r.pos + 2) !== 0xe000) {
    throw invalid(`encapsulated Pixel Data does not start with an item (the Basic Offset Table) at offset ${r.position}`);
  }
  const botLength = r.buf.readUInt32LE(r.pos + 4);
  r.pos += 8;
  if (botLength === UNDEFINED_LENGTH || botLength % 4 !== 0 || botLength > maxTable) {
    throw invalid(`encapsulated Pixel Data has a Basic Offset Table of nonsensical length ${botLength}`);
  }
  const bot = botLength > 0 ? Buffer.from(await r.read(botLength, what)) : undefined;
  const markers = wantMarkers(bot);
  const fragments: Fragments = { rel: [], offset: [], length: [], marker: [] };
  const base = r.position;
  for (;;) {
    if (r.buf.length - r.pos < 8 && !(await r.ensure(8))) {
      // Input ending right after a complete fragment with only the sequence delimitation item missing is
      // a known writer defect (pydicom's *_too_short.dcm): nothing of the image is lost, so accept it.
      if (r.available === 0 && fragments.rel.length > 0) break;
      throw truncated(`${what} (no sequence delimitation item)`);
    }
    const b = r.buf;
    const p = r.pos;
    const tagPos = r.position;
    const group = b.readUInt16LE(p);
    const element = b.readUInt16LE(p + 2);
    const len = b.readUInt32LE(p + 4);
    r.pos += 8;
    if (group === 0xfffe && element === 0xe0dd) break;
    if (group !== 0xfffe || element !== 0xe000) {
      throw invalid(`unexpected tag ${tagText(group, element)} in encapsulated Pixel Data at offset ${tagPos}`);
    }
    if (len === UNDEFINED_LENGTH) throw invalid(`Pixel Data fragment with undefined length at offset ${tagPos}`);
    if (fragments.rel.length >= maxEntries) {
      throw invalid(`encapsulated Pixel Data has more than ${maxEntries} fragments`);
    }
    fragments.rel.push(tagPos - base);
    fragments.offset.push(tagPos + 8);
    fragments.length.push(len);
    if (markers) {
      const k = Math.min(len, 12);
      fragments.marker.push(startsWithMarker(await r.read(k, what), ts));
      if (r.buf.length - r.pos >= len - k) r.pos += len - k;
      else await r.skip(len - k, what);
    } else if (r.buf.length - r.pos >= len) {
      r.pos += len;
    } else {
      await r.skip(len, what);
    }
  }
  return { bot, fragments };
}

/** Frames from an offset table (BOT or EOT): each offset must be where a fragment's item starts. */
function framesFromTable(offsets: number[], f: Fragments): ByteSpan[][] | undefined {
  if (offsets.length === 0 || offsets[0] !== 0) return undefined;
  const index = new Map<number, number>();
  for (let i = 0; i < f.rel.length; i++) index.set(f.rel[i]!, i);
  const starts: number[] = [];
  for (let i = 0; i < offsets.length; i++) {
    const at = index.get(offsets[i]!);
    if (at === undefined || (i > 0 && at <= starts[i - 1]!)) return undefined;
    starts.push(at);
  }
  return starts.map((s, i) => spans(f, s, i + 1 < starts.length ? starts[i + 1]! : f.rel.length));
}

function spans(f: Fragments, from: number, to: number): ByteSpan[] {
  const out: ByteSpan[] = [];
  for (let i = from; i < to; i++) out.push([f.offset[i]!, f.length[i]!]);
  return out;
}

/**
 * Which fragments make up which frame (PS3.5 §A.4): the Extended Offset Table, else a non-empty Basic
 * Offset Table, else: one frame → all fragments; as many fragments as frames → one each (always so for
 * RLE, PS3.5 Annex G); otherwise a new frame starts at each fragment that begins with the codec's start
 * marker. Empty when none of that fits (the file is still accepted; its frames just can't be addressed).
 */
function encapsulatedFrames(f: Fragments, bot: Buffer | undefined, eot: number[] | undefined, ts: string, n: number): ByteSpan[][] {
  const count = f.rel.length;
  if (count === 0) return [];
  for (const table of [eot, bot ? readUint32s(bot) : undefined]) {
    if (table === undefined) continue;
    const frames = framesFromTable(table, f);
    if (frames !== undefined && frames.length === n) return frames;
  }
  if (n === 1) return [spans(f, 0, count)];
  if (count === n) return Array.from({ length: n }, (_, i) => spans(f, i, i + 1));
  if (isRle(ts) || f.marker.length !== count || !f.marker[0]) return [];
  const starts: number[] = [];
  for (let i = 0; i < count; i++) if (f.marker[i]) starts.push(i);
  if (starts.length !== n) return [];
  return starts.map((s, i) => spans(f, s, i + 1 < starts.length ? starts[i + 1]! : count));
}

function readUint32s(b: Buffer): number[] {
  const out: number[] = new Array(b.length >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt32LE(i * 4);
  return out;
}

function readUint64s(b: Buffer): number[] | undefined {
  if (b.length % 8 !== 0) return undefined;
  const out: number[] = new Array(b.length >>> 3);
  for (let i = 0; i < out.length; i++) out[i] = Number(b.readBigUInt64LE(i * 8));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Header → DICOM JSON (via dcmjs)

/** Builds a minimal Part-10 buffer (preamble, meta with only the transfer syntax, then the data set). */
function part10ForDcmjs(dataset: Buffer, syntax: string): ArrayBuffer {
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

/** Text VRs keep trailing spaces (only NUL padding is dropped); others drop NUL and space padding. */
const TEXT_VRS = new Set(['LT', 'ST', 'UT']);

function jsonValue(v: unknown, vr: string): string | number | DicomJsonPersonName | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') {
    if (vr === 'AT') return v.toString(16).toUpperCase().padStart(8, '0');
    return Number.isFinite(v) ? v : null;
  }
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'string') return TEXT_VRS.has(vr) ? v.replace(/\0+$/, '') : v.replace(/[\0 ]+$/, '');
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const pn: DicomJsonPersonName = {};
    for (const k of ['Alphabetic', 'Ideographic', 'Phonetic'] as const) {
      const c = o[k];
      const t = typeof c === 'string' ? c.replace(/[\0 ]+$/, '') : '';
      if (t !== '') pn[k] = t;
    }
    return Object.keys(pn).length > 0 ? pn : null;
  }
  return String(v);
}

/** dcmjs dict → clean DICOM JSON (PS3.18 §F.2): only vr/Value/InlineBinary, binary ≤ 4 KiB inline. */
function toDicomJson(dict: DcmjsDict, topLevel: boolean): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of Object.keys(dict).sort()) {
    if (topLevel && tag.startsWith('0002')) continue;
    const el = dict[tag]!;
    const vr = typeof el.vr === 'string' ? el.vr : 'UN';
    const values = Array.isArray(el.Value) ? el.Value : [];
    const json: DicomJsonElement = { vr };
    if (vr === 'SQ') {
      const items = values.filter((x): x is DcmjsDict => typeof x === 'object' && x !== null);
      if (items.length > 0) json.Value = items.map((item) => toDicomJson(item, false));
    } else {
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
    }
    out[tag] = json;
  }
  return out;
}

/**
 * Header bytes → DICOM JSON. Sequences sent as UN (Implicit VR LE content inside an explicit data set,
 * PS3.5 §6.2.2) would be misread by dcmjs, which parses them as explicit: each is parsed on its own as
 * Implicit VR LE and put back in place, while the main parse sees it as an opaque OB of the same size (so
 * no enclosing length changes).
 */
function headerToJson(datasetBytes: Buffer, datasetStart: number, regions: UnRegion[], syntax: string): DicomJsonDataset {
  const parsed: Array<[UnRegion, DicomJsonElement | undefined]> = [];
  for (const region of regions) {
    const from = region.valuePos - datasetStart;
    const to = region.end - datasetStart;
    const group = Number.parseInt(region.tag.slice(0, 4), 16);
    const element = Number.parseInt(region.tag.slice(4), 16);
    const wrapped = Buffer.alloc(8 + (to - from));
    wrapped.writeUInt16LE(group, 0);
    wrapped.writeUInt16LE(element, 2);
    wrapped.writeUInt32LE(region.undefinedLength ? UNDEFINED_LENGTH : to - from, 4);
    datasetBytes.copy(wrapped, 8, from, to);
    parsed.push([region, toDicomJson(parseWithDcmjs(wrapped, IMPLICIT_VR_LITTLE_ENDIAN), false)[region.tag]]);
  }
  for (const region of regions) {
    const h = region.tagPos - datasetStart;
    datasetBytes.write('OB', h + 4, 'latin1');
    datasetBytes.writeUInt16LE(0, h + 6);
    if (region.little) datasetBytes.writeUInt32LE(region.end - region.valuePos, h + 8);
    else datasetBytes.writeUInt32BE(region.end - region.valuePos, h + 8);
  }
  const json = toDicomJson(parseWithDcmjs(datasetBytes, syntax), true);
  for (const [region, el] of parsed) {
    if (el === undefined) continue;
    let ds: DicomJsonDataset | undefined = json;
    for (const [seqTag, index] of region.path) {
      const seq: DicomJsonElement | undefined = ds[seqTag];
      const item: unknown = seq?.vr === 'SQ' ? seq.Value?.[index] : undefined;
      ds = item !== null && typeof item === 'object' && !('Alphabetic' in item) ? (item as DicomJsonDataset) : undefined;
      if (ds === undefined) break;
    }
    if (ds !== undefined) ds[region.tag] = el;
  }
  return json;
}

// ---------------------------------------------------------------------------------------------------
// The scan

const NOT_PART10 =
  'not a DICOM Part-10 file: no "DICM" prefix after a 128-byte preamble (STOW-RS requires Part-10 files ' +
  'with File Meta Information, PS3.10 §7.1)';

/**
 * Scans one Part-10 file from `source`, passing every byte to `sink` in order, exactly once (the sink is
 * awaited: backpressure), and resolves once the whole source is consumed with what ingest needs to know.
 *
 * Source chunks are passed to the sink as they are (not copied) and some are retained until the header is
 * parsed: neither side may modify or reuse them.
 *
 * On error it stops pulling from the source and stops calling the sink, and rejects: with
 * InvalidDicomError for anything wrong with the file (message says what, never patient data), or with the
 * source's or the sink's own error untouched. It does not call `return()` on the source iterator and does
 * not wait for more input, so the caller decides whether to drain or destroy the source.
 */
export async function scanPart10(
  source: AsyncIterable<Buffer | Uint8Array>,
  sink: ChunkSink,
  options: ScanPart10Options,
): Promise<InstanceHeader> {
  const reader = new ByteReader(source[Symbol.asyncIterator](), sink);
  const cleanups: Array<() => void> = [];
  try {
    return await scan(reader, options.maxHeaderBytes, cleanups);
  } catch (err) {
    reader.abort();
    for (const c of cleanups) c();
    if (reader.failure !== undefined && err === reader.failure) throw err;
    if (err instanceof InvalidDicomError) throw err;
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new InvalidDicomError('the deflated data set could not be inflated (corrupt or truncated)', { cause: err });
    }
    throw new InvalidDicomError('the DICOM file could not be read', { cause: err });
  }
}

async function scan(r: ByteReader, maxHeaderBytes: number, cleanups: Array<() => void>): Promise<InstanceHeader> {
  if (!(maxHeaderBytes > 0)) throw new RangeError('maxHeaderBytes must be positive');
  // Preamble + "DICM" (PS3.10 §7.1). Files without them are raw data sets, refused.
  if (!(await r.ensure(132)) || r.buf.toString('latin1', r.pos + 128, r.pos + 132) !== 'DICM') throw invalid(NOT_PART10);
  r.pos += 132;
  const meta = await readFileMeta(r, maxHeaderBytes);
  const metaEnd = r.position;

  const declaredTs = meta.transferSyntaxUid;
  let implicit: boolean;
  let little: boolean;
  const deflated = declaredTs !== undefined && isDeflated(declaredTs);
  if (deflated) {
    implicit = false;
    little = true;
  } else {
    little = !(declaredTs !== undefined && isBigEndian(declaredTs));
    implicit = declaredTs !== undefined && isImplicitVR(declaredTs);
    if (little) {
      // Tolerate a meta group that names the wrong VR encoding (or none), as pydicom and dcmtk do.
      const explicit = await looksExplicit(r);
      if (explicit !== undefined) implicit = !explicit;
    }
  }
  // A file without a Transfer Syntax UID gets the one its data set turned out to be in.
  const ts = declaredTs ?? (implicit ? IMPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN);
  const dcmjsSyntax = implicit ? IMPLICIT_VR_LITTLE_ENDIAN : little ? EXPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_BIG_ENDIAN;

  let walk: WalkResult;
  let datasetBytes: Buffer;
  let pump: Promise<void> | undefined;
  let stopInflating: (() => void) | undefined;
  let datasetStart: number;
  if (!deflated) {
    datasetStart = metaEnd;
    walk = await walkDataset(r, implicit, little, maxHeaderBytes, maxHeaderBytes);
    const headerEnd = walk.pixel ? walk.pixel.tagPos : r.position;
    datasetBytes = r.extract(metaEnd, headerEnd);
    r.stopKeeping();
  } else {
    // Deflated (PS3.5 §A.5): the rest of the file is one raw deflate stream. Inflate it only as far as
    // the header reaches; the file's bytes keep flowing to the sink through `pump`.
    datasetStart = 0;
    r.stopKeeping();
    const inflater = createInflateRaw();
    let stopped = false;
    stopInflating = () => {
      stopped = true;
      inflater.destroy();
    };
    cleanups.push(stopInflating);
    pump = pumpInto(r, inflater, () => stopped);
    pump.catch((err: unknown) => inflater.destroy(err as Error));
    const inner = new ByteReader(inflater[Symbol.asyncIterator]());
    walk = await walkDataset(inner, implicit, little, maxHeaderBytes - metaEnd, maxHeaderBytes);
    const headerEnd = walk.pixel ? walk.pixel.tagPos : inner.position;
    datasetBytes = inner.extract(0, headerEnd);
    inner.stopKeeping();
    stopInflating();
  }

  // Parse the header now, before streaming the pixel data: a bad header fails fast.
  let dataset: DicomJsonDataset;
  try {
    dataset = headerToJson(datasetBytes, datasetStart, walk.regions, dcmjsSyntax);
  } catch (err) {
    throw new InvalidDicomError('the DICOM header could not be parsed', { cause: err });
  }
  const uid = (tag: string): string | undefined => {
    const v = firstString(dataset, tag);
    const t = v === undefined ? undefined : v.replace(/[\0\s]+$/, '').trim();
    return t === '' ? undefined : t;
  };
  const sopInstanceUid = uid('00080018') ?? meta.mediaStorageSopInstanceUid;
  const sopClassUid = uid('00080016') ?? meta.mediaStorageSopClassUid;
  const studyInstanceUid = uid('0020000D');
  const seriesInstanceUid = uid('0020000E');
  const missing = [
    ['Study Instance UID (0020,000D)', studyInstanceUid],
    ['Series Instance UID (0020,000E)', seriesInstanceUid],
    ['SOP Instance UID (0008,0018)', sopInstanceUid],
    ['SOP Class UID (0008,0016)', sopClassUid],
  ]
    .filter(([, v]) => !v)
    .map(([name]) => name);
  if (missing.length > 0) throw invalid(`DICOM data set has no ${missing.join(', ')}`);

  const positive = (v: number | undefined): number | undefined => (v !== undefined && v > 0 ? Math.floor(v) : undefined);
  const rawFrames = positive(firstNumber(dataset, '00280008'));
  const info: ImageInfo = {
    rows: positive(firstNumber(dataset, '00280010')),
    columns: positive(firstNumber(dataset, '00280011')),
    bitsAllocated: positive(firstNumber(dataset, '00280100')),
    samplesPerPixel: positive(firstNumber(dataset, '00280002')),
    photometric: firstString(dataset, '00280004')?.trim(),
    numberOfFrames: walk.pixel ? (rawFrames ?? 1) : (rawFrames ?? 0),
  };

  let pixelData: PixelDataLocation | undefined;
  const px = walk.pixel;
  const maxEntries = Math.floor(maxHeaderBytes / INDEX_BYTES_PER_ENTRY);
  if (px !== undefined && info.numberOfFrames > maxEntries) {
    throw invalid(`Number of Frames ${info.numberOfFrames} is more than the ${maxEntries} this server indexes`);
  }
  if (px !== undefined) {
    const tag = `${hex4(px.group)}${hex4(px.element)}`;
    const video = isVideo(ts);
    if (deflated) {
      // Offsets in the inflated stream say nothing about the stored file: frames can't be addressed.
      pixelData = { tag, valueOffset: -1, valueLength: px.length, encapsulated: px.length === undefined, frames: [], isVideo: video };
    } else if (px.length !== undefined) {
      const { frames, bitPacked } = nativeFrames(px.valuePos, px.length, info);
      await r.skip(px.length, 'Pixel Data');
      pixelData = { tag, valueOffset: px.valuePos, valueLength: px.length, encapsulated: false, frames, isVideo: video };
      if (bitPacked) pixelData.bitPacked = true;
    } else {
      let eot: number[] | undefined;
      if (walk.extendedOffsets !== undefined) {
        const [at, len] = walk.extendedOffsets;
        eot = readUint64s(datasetBytes.subarray(at - datasetStart, at - datasetStart + len));
      }
      const { bot, fragments } = await readFragments(
        r,
        (table) => !video && eot === undefined && table === undefined && info.numberOfFrames > 1,
        ts,
        maxHeaderBytes,
        maxEntries,
      );
      const frames = video
        ? fragments.rel.length > 0
          ? [spans(fragments, 0, fragments.rel.length)]
          : []
        : encapsulatedFrames(fragments, bot, eot, ts, info.numberOfFrames);
      pixelData = { tag, valueOffset: px.valuePos, valueLength: undefined, encapsulated: true, frames, isVideo: video };
    }
  }

  if (pump !== undefined) {
    await pump;
  } else {
    if (px !== undefined) await walkTail(r, implicit, little);
    await r.drain();
  }

  return {
    sopClassUid: sopClassUid!,
    sopInstanceUid: sopInstanceUid!,
    studyInstanceUid: studyInstanceUid!,
    seriesInstanceUid: seriesInstanceUid!,
    transferSyntaxUid: ts,
    dataset,
    numberOfFrames: info.numberOfFrames,
    rows: info.rows,
    columns: info.columns,
    bitsAllocated: info.bitsAllocated,
    samplesPerPixel: info.samplesPerPixel,
    pixelData,
  };
}

/**
 * Elements after Pixel Data (e.g. Data Set Trailing Padding, digital signatures) are stored but not
 * parsed; they are walked only so that a file cut inside one is refused as truncated. Anything else odd
 * there (garbage after the data set is common) is tolerated: the rest is just stored.
 */
async function walkTail(r: ByteReader, implicit: boolean, little: boolean): Promise<void> {
  try {
    for (;;) {
      const walk = await walkDataset(r, implicit, little, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
      const px = walk.pixel;
      if (px === undefined) return;
      // A second top-level Pixel Data element: skip it like any other value.
      if (px.length !== undefined) await r.skip(px.length, 'a data element');
      else await readFragments(r, () => false, '', Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    }
  } catch (err) {
    // Source and sink errors, and truncation, still fail the scan.
    if (isTruncation(err) || !(err instanceof InvalidDicomError)) throw err;
  }
}

/**
 * Feeds the rest of the outer reader (the file bytes, already sunk) into the inflater, honouring its
 * backpressure, until the input ends; once `stopped()`, it just drains the input so the sink still sees
 * every byte.
 */
async function pumpInto(r: ByteReader, inflater: InflateRaw, stopped: () => boolean): Promise<void> {
  for (;;) {
    const chunk = await r.nextRaw();
    if (chunk === undefined) break;
    if (stopped() || inflater.destroyed) continue;
    if (!inflater.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          inflater.off('drain', done);
          inflater.off('close', done);
          inflater.off('error', done);
          resolve();
        };
        inflater.on('drain', done);
        inflater.on('close', done);
        inflater.on('error', done);
      });
    }
  }
  if (!stopped() && !inflater.destroyed) inflater.end();
}
