/**
 * Walks the data elements of a data set (PS3.5 §7) as they stream past, without keeping any value: it
 * finds where the header ends (the top-level Pixel Data element), the Extended Offset Table, and the
 * sequences sent as UN that the JSON conversion must parse apart, and refuses structures that would make
 * dcmjs misbehave.
 *
 *  - data elements (§7.1): tag, VR (explicit syntaxes only), length (element-encoding.ts);
 *  - sequences (§7.5): walked item by item, whether their lengths are defined (each element must then fit
 *    inside its item and sequence) or undefined (to the delimitation items FFFE,E00D / FFFE,E0DD); UN of
 *    undefined length holds an Implicit VR Little Endian sequence (§6.2.2);
 *  - encapsulated values nested in items (§A.4, e.g. an icon's Pixel Data): raw items, skipped.
 *
 * The walk is iterative (an explicit stack with a depth limit), so hostile nesting cannot overflow the JS
 * stack here nor in dcmjs (which recurses, and took minutes on the 3.6 MB deeply nested test file).
 *
 * This is the hot path of ingest. While the next element's bytes are buffered nothing is awaited, and
 * nothing is allocated per element: the element being read lives in fields of the walker, and the
 * per-element steps are synchronous methods; only the loop in `walkDataset` awaits, and only when the
 * reader has to pull more input.
 */
import dcmjs from 'dcmjs';
import { type ByteReader, truncated } from './byte-reader.js';
import { isVrByte, SHORT_VRS, tagKey, tagText, UNDEFINED_LENGTH, VR_OB, VR_OW, VR_SQ, VR_UN, VRS_DCMJS_LACKS } from './element-encoding.js';
import { headerTooLarge, invalid } from './scan-errors.js';

/** One sequence value whose content is Implicit VR LE inside an explicit data set (UN, PS3.5 §6.2.2). */
export interface UnRegion {
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

/** The top-level Pixel Data element (7FE0,0010 / 0008 / 0009), where the header ends. */
export interface PixelStart {
  group: number;
  element: number;
  /** Offset of the element's tag. */
  tagPos: number;
  /** Offset of the element's value. */
  valuePos: number;
  /** Undefined for undefined length (encapsulated). */
  length: number | undefined;
}

/** An element whose explicit VR dcmjs does not know (OL, OV, SV, UV): its JSON must say that VR, not UN. */
export interface VrRelabel {
  tag: string;
  vr: string;
  path: Array<[string, number]>;
}

export interface WalkResult {
  pixel: PixelStart | undefined;
  /** Top-level Extended Offset Table (7FE0,0001): [valuePos, length]. */
  extendedOffsets: [number, number] | undefined;
  regions: UnRegion[];
  relabels: VrRelabel[];
}

/**
 * Deepest sequence nesting accepted by default (PACS_DICOM_MAX_NESTING). Each level is two stack entries
 * (the sequence and its item). Real objects nest a handful of levels (SR content trees a dozen or so);
 * the deeply nested attack file of the Orthanc tests nests thousands.
 */
export const DEFAULT_MAX_NESTING = 64;

const enum Kind {
  /** Sequence: expects items (and, if undefined-length, a sequence delimiter). */
  Seq,
  /** Item: expects data elements (and, if undefined-length, an item delimiter). */
  Item,
  /** Encapsulated (undefined-length OB/OW) value, e.g. an icon's Pixel Data: raw items. */
  Frags,
}

/** An open sequence, item or encapsulated value. */
interface Container {
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

/**
 * Walks data elements from the reader's position until the top-level Pixel Data element (whose header it
 * consumes, not its value) or the end of input. `limit` is the reader offset no header byte may pass.
 *
 * Every sequence that dcmjs will parse as one (VR SQ; in Implicit VR, a dictionary SQ tag or an undefined
 * length) is walked item by item, and every element is checked to fit inside its item and sequence, so
 * dcmjs is never handed a length that runs past its container (it would allocate that much).
 */
export async function walkDataset(
  r: ByteReader,
  implicit: boolean,
  little: boolean,
  limit: number,
  limitForMessage: number,
  maxNesting: number = DEFAULT_MAX_NESTING,
): Promise<WalkResult> {
  const w = new DatasetWalker(r, implicit, little, limit, limitForMessage, maxNesting);
  for (;;) {
    w.closeEndedContainers();
    if (r.buf.length - r.pos < 8 && !(await r.ensure(8))) return w.endOfInput();
    w.readTag();
    if (w.group === 0xfffe) {
      const fragmentLength = w.readItemOrDelimiter();
      if (r.buf.length - r.pos >= fragmentLength) r.pos += fragmentLength;
      else await r.skip(fragmentLength, 'an encapsulated value');
      continue;
    }
    w.expectInsideItem();
    if (!w.readVrAndLength()) {
      if (!(await r.ensure(12))) throw truncated('a data element header');
      w.readVrAndLength();
    }
    const pixel = w.topLevelPixelData();
    if (pixel !== undefined) return w.result(pixel);
    if (w.length === UNDEFINED_LENGTH) {
      w.openUndefinedLength();
      continue;
    }
    w.checkValueFits();
    if (w.opensSequence()) continue;
    if (r.buf.length - r.pos >= w.length) r.pos += w.length;
    else await r.skip(w.length, `data element ${tagText(w.group, w.element)}`);
  }
}

/** Public tags whose dictionary VR is SQ (dcmjs's dictionary), cached. */
const sqCache = new Map<number, boolean>();
function isDictionarySequence(group: number, element: number): boolean {
  if (group & 1) return false; // private: unknown to the dictionary, and dcmjs leaves it binary
  const key = ((group << 16) | element) >>> 0;
  let sq = sqCache.get(key);
  if (sq === undefined) {
    sq = dcmjs.data.DicomMetaDictionary.dictionary[tagText(group, element)]?.vr === 'SQ';
    sqCache.set(key, sq);
  }
  return sq;
}

/**
 * The state of one walk: the stack of open containers, what was found so far, and the element being
 * read. Each method is one step of reading an element, and runs on bytes `walkDataset` made sure are
 * buffered.
 */
class DatasetWalker {
  private readonly stack: Container[] = [];
  private readonly regions: UnRegion[] = [];
  private readonly relabels: VrRelabel[] = [];
  private extendedOffsets: [number, number] | undefined = undefined;

  /** Encoding and bound of the innermost open container (of the data set itself when none is open). */
  private implicit: boolean;
  private little: boolean;
  private bound = Number.POSITIVE_INFINITY;

  /** The element being read: its tag's offset, tag, VR (0 in Implicit VR), value length and value offset. */
  tagPos = 0;
  group = 0;
  element = 0;
  vr = 0;
  length = 0;
  valuePos = 0;

  constructor(
    private readonly r: ByteReader,
    private readonly datasetImplicit: boolean,
    private readonly datasetLittle: boolean,
    private readonly limit: number,
    private readonly limitForMessage: number,
    private readonly maxNesting: number,
  ) {
    this.implicit = datasetImplicit;
    this.little = datasetLittle;
  }

  result(pixel: PixelStart | undefined): WalkResult {
    return { pixel, extendedOffsets: this.extendedOffsets, regions: this.regions, relabels: this.relabels };
  }

  /** Closes the defined-length containers that end here (§7.5.1: their length, not a delimiter, ends them). */
  closeEndedContainers(): void {
    const { stack, r } = this;
    while (stack.length > 0 && stack[stack.length - 1]!.end === r.position) this.pop();
  }

  /** The input ended where an element would start: fine at top level, not inside a container or a header. */
  endOfInput(): WalkResult {
    if (this.r.available !== 0) throw truncated('a data element header');
    const top = this.top();
    if (top === undefined) return this.result(undefined);
    throw truncated(top.kind === Kind.Item ? 'a sequence item' : 'a sequence');
  }

  /** Reads the tag at the reader, after checking that it starts below the header limit and inside its container. */
  readTag(): void {
    const { r, little } = this;
    const tagPos = r.position;
    if (tagPos >= this.limit) throw headerTooLarge(this.limitForMessage);
    if (tagPos + 8 > this.bound) throw invalid(`a sequence or item ending at offset ${this.bound} is cut inside a data element header`);
    this.tagPos = tagPos;
    this.group = little ? r.buf.readUInt16LE(r.pos) : r.buf.readUInt16BE(r.pos);
    this.element = little ? r.buf.readUInt16LE(r.pos + 2) : r.buf.readUInt16BE(r.pos + 2);
  }

  /**
   * Items and delimiters (PS3.5 §7.5): tag FFFE,xxxx and a 4-byte length, never a VR. Consumes the item
   * header and returns how many bytes of value follow that the caller must skip (a fragment's), else 0.
   */
  readItemOrDelimiter(): number {
    const { r, element } = this;
    const length = this.little ? r.buf.readUInt32LE(r.pos + 4) : r.buf.readUInt32BE(r.pos + 4);
    r.pos += 8;
    if (element === 0xe000) return this.openItem(length);
    if (element === 0xe00d) this.closeItem();
    else if (element === 0xe0dd) this.closeSequence();
    else throw invalid(`unexpected tag ${tagText(this.group, element)} at offset ${this.tagPos}`);
    return 0;
  }

  /** An item opens inside a sequence; inside an encapsulated value it is a fragment, returned to be skipped. */
  private openItem(length: number): number {
    const top = this.top();
    if (top === undefined || top.kind === Kind.Item) {
      throw invalid(`item tag (FFFE,E000) outside a sequence at offset ${this.tagPos}`);
    }
    if (top.kind === Kind.Frags) return this.checkFragment(length);
    const end = length === UNDEFINED_LENGTH ? -1 : this.tagPos + 8 + length;
    if (end > this.bound) throw invalid(`item at offset ${this.tagPos} is longer than its sequence`);
    this.push(Kind.Item, top.implicit, top.little, end, '', top.items++);
    return 0;
  }

  private checkFragment(length: number): number {
    const { tagPos } = this;
    if (length === UNDEFINED_LENGTH) throw invalid(`fragment with undefined length at offset ${tagPos}`);
    if (tagPos + 8 + length > this.bound) throw invalid(`fragment at offset ${tagPos} is longer than its container`);
    if (tagPos + 8 + length > this.limit) throw headerTooLarge(this.limitForMessage);
    return length;
  }

  /** Item delimitation. Tolerated where redundant (in a defined-length item) or stray at top level. */
  private closeItem(): void {
    const top = this.top();
    if (top?.kind === Kind.Item) {
      if (top.end < 0) this.pop();
    } else if (top !== undefined) {
      throw invalid(`item delimitation (FFFE,E00D) outside an item at offset ${this.tagPos}`);
    }
  }

  /** Sequence delimitation. Tolerate a missing item delimitation before it (close both). */
  private closeSequence(): void {
    const item = this.top();
    if (item?.kind === Kind.Item && item.end < 0) this.pop();
    const seq = this.top();
    if (seq !== undefined && seq.kind !== Kind.Item && seq.end < 0) this.pop();
  }

  /** Anything but an item or a delimiter must be an element of an item (or of the data set itself). */
  expectInsideItem(): void {
    const top = this.top();
    if (top !== undefined && top.kind !== Kind.Item) {
      throw invalid(`expected an item in a sequence, found ${tagText(this.group, this.element)} at offset ${this.tagPos}`);
    }
  }

  /**
   * Reads the VR (explicit syntaxes) and value length, and moves the reader to the value (PS3.5 §7.1).
   * Returns false, having moved nothing, when the header has the 4-byte length form and its 12 bytes are
   * not all buffered yet: the caller then makes them so and calls again.
   */
  readVrAndLength(): boolean {
    const { r, little } = this;
    const b = r.buf;
    const p = r.pos;
    let headerLength = 8;
    if (this.implicit) {
      this.vr = 0;
      this.length = little ? b.readUInt32LE(p + 4) : b.readUInt32BE(p + 4);
    } else {
      const c0 = b[p + 4]!;
      const c1 = b[p + 5]!;
      if (!isVrByte(c0) || !isVrByte(c1)) {
        throw invalid(`data element ${tagText(this.group, this.element)} at offset ${this.tagPos} has no valid VR`);
      }
      const vr = (c0 << 8) | c1;
      if (SHORT_VRS.has(vr)) {
        this.length = little ? b.readUInt16LE(p + 6) : b.readUInt16BE(p + 6);
      } else {
        if (b.length - p < 12) return false;
        this.length = little ? b.readUInt32LE(p + 8) : b.readUInt32BE(p + 8);
        headerLength = 12;
      }
      this.vr = vr;
    }
    r.pos += headerLength;
    this.valuePos = this.tagPos + headerLength;
    return true;
  }

  /**
   * At top level, Pixel Data (7FE0,0010), Float or Double Float Pixel Data (0008, 0009) ends the header:
   * returned so the walk stops there. The Extended Offset Table (7FE0,0001) before it is noted.
   */
  topLevelPixelData(): PixelStart | undefined {
    if (this.stack.length !== 0 || this.group !== 0x7fe0) return undefined;
    const { group, element, tagPos, valuePos, length } = this;
    if (element === 0x0010 || element === 0x0008 || element === 0x0009) {
      return { group, element, tagPos, valuePos, length: length === UNDEFINED_LENGTH ? undefined : length };
    }
    if (element === 0x0001 && length !== UNDEFINED_LENGTH) this.extendedOffsets = [valuePos, length];
    return undefined;
  }

  /** An element of undefined length (PS3.5 §7.5.2) opens a sequence or an encapsulated value, or is refused. */
  openUndefinedLength(): void {
    const { group, element, vr, implicit, little } = this;
    if (implicit) {
      // No VR: an undefined length is a sequence, except Pixel Data (an icon's, nested) which is encapsulated.
      if (group === 0x7fe0 && element === 0x0010) this.push(Kind.Frags, implicit, little, -1, '', -1);
      else this.push(Kind.Seq, implicit, little, -1, tagKey(group, element), -1);
    } else if (vr === VR_SQ) {
      this.push(Kind.Seq, implicit, little, -1, tagKey(group, element), -1);
    } else if (vr === VR_UN) {
      // PS3.5 §6.2.2 note: UN with undefined length is a sequence encoded in Implicit VR Little Endian.
      this.openUnSequence(-1);
    } else if (vr === VR_OB || vr === VR_OW) {
      // Encapsulated value nested in an item (e.g. an Icon Image's Pixel Data, PS3.5 §A.4): raw items.
      this.push(Kind.Frags, implicit, little, -1, '', -1);
    } else {
      throw invalid(`data element ${tagText(group, element)} at offset ${this.tagPos} has an undefined length`);
    }
  }

  /** A defined-length value must end inside its item and sequence, and inside the header limit. */
  checkValueFits(): void {
    const end = this.valuePos + this.length;
    if (end > this.bound) {
      throw invalid(`data element ${tagText(this.group, this.element)} at offset ${this.tagPos} is longer than its enclosing item or sequence`);
    }
    if (end > this.limit) throw headerTooLarge(this.limitForMessage);
  }

  /**
   * Opens a non-empty defined-length value that dcmjs will parse as a sequence, so it is walked item by
   * item; false for any other value (to be skipped).
   */
  opensSequence(): boolean {
    const { group, element, vr, length } = this;
    if (!this.implicit && VRS_DCMJS_LACKS.has(vr)) this.relabels.push({ tag: tagKey(group, element), vr: VRS_DCMJS_LACKS.get(vr)!, path: this.path() });
    if (length === 0) return false;
    const end = this.valuePos + length;
    if (vr === VR_SQ || (this.implicit && isDictionarySequence(group, element))) {
      this.push(Kind.Seq, this.implicit, this.little, end, tagKey(group, element), -1);
      return true;
    }
    if (vr === VR_UN && isDictionarySequence(group, element)) {
      // A known sequence sent as UN (e.g. by a system that didn't know it): Implicit VR LE content.
      this.openUnSequence(end);
      return true;
    }
    return false;
  }

  /** A sequence sent as UN (PS3.5 §6.2.2): walked as Implicit VR LE, and noted for the JSON conversion. */
  private openUnSequence(end: number): void {
    const region: UnRegion = {
      tagPos: this.tagPos,
      valuePos: this.valuePos,
      end,
      undefinedLength: end < 0,
      little: this.little,
      tag: tagKey(this.group, this.element),
      path: this.path(),
    };
    this.regions.push(region);
    this.push(Kind.Seq, true, true, end, region.tag, -1, region);
  }

  private top(): Container | undefined {
    const { stack } = this;
    return stack.length > 0 ? stack[stack.length - 1] : undefined;
  }

  private push(kind: Kind, implicit: boolean, little: boolean, end: number, tag: string, index: number, region?: UnRegion): void {
    if (this.stack.length >= 2 * this.maxNesting) {
      throw invalid(`DICOM sequences nested deeper than ${this.maxNesting} levels`);
    }
    if (end >= 0 && end < this.bound) this.bound = end;
    this.stack.push({ kind, implicit, little, end, bound: this.bound, tag, items: 0, index, region });
    this.implicit = implicit;
    this.little = little;
  }

  private pop(): void {
    const closed = this.stack.pop()!;
    if (closed.region !== undefined) closed.region.end = this.r.position;
    const top = this.top();
    this.implicit = top ? top.implicit : this.datasetImplicit;
    this.little = top ? top.little : this.datasetLittle;
    this.bound = top ? top.bound : Number.POSITIVE_INFINITY;
  }

  /** Where the element being read sits: [sequence tag key, item index] from the top-level data set down. */
  private path(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    const { stack } = this;
    for (let i = 0; i + 1 < stack.length; i += 2) {
      const seq = stack[i]!;
      const item = stack[i + 1]!;
      if (seq.kind !== Kind.Seq || item.kind !== Kind.Item) break;
      out.push([seq.tag, item.index]);
    }
    return out;
  }
}
