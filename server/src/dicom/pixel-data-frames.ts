/**
 * Where each frame of the top-level Pixel Data lies in the stored file, so retrieval can read a frame
 * with ranged reads: native Pixel Data is cut into equal frames (PS3.5 §8.1.1, §8.2); encapsulated Pixel
 * Data (PS3.5 §A.4) is read item by item and its fragments grouped into frames by the Extended or Basic
 * Offset Table, by counting, or by the codec's start-of-frame markers; a video's fragments form one
 * bitstream (PS3.5 §8.2.5–8.2.8). Only offsets are recorded, never pixel bytes.
 */
import { type ByteReader, truncated } from './byte-reader.js';
import type { PixelStart } from './dataset-walker.js';
import type { DicomJsonDataset } from './dicom-json.js';
import { firstNumber, firstString } from './dicom-json.js';
import { tagKey, tagText, UNDEFINED_LENGTH } from './element-encoding.js';
import type { ByteSpan, PixelDataLocation } from './instance-header.js';
import { invalid } from './scan-errors.js';
import { isJpeg2000Family, isJpegFamily, isRle, isVideo } from './transfer-syntax.js';

/**
 * The frame and fragment index is bounded by the same budget as the header, at this many bytes per entry
 * (so maxHeaderBytes 64 MiB allows 4 Mi frames or fragments): a hostile NumberOfFrames or a flood of empty
 * fragments cannot make the index outgrow memory.
 */
const INDEX_BYTES_PER_ENTRY = 16;

const IN_PIXEL_DATA = 'encapsulated Pixel Data';

/** The Image Pixel attributes (PS3.3 C.7.6.3) that say how big a frame is, and how many there are. */
export interface ImageInfo {
  rows: number | undefined;
  columns: number | undefined;
  bitsAllocated: number | undefined;
  samplesPerPixel: number | undefined;
  photometric: string | undefined;
  numberOfFrames: number;
}

/** What locating the frames needs to know beyond the Pixel Data element itself. */
export interface PixelDataContext {
  transferSyntaxUid: string;
  /** The data set is deflated (PS3.5 §A.5): offsets are in the inflated stream, not the file. */
  deflated: boolean;
  info: ImageInfo;
  /** Value of the top-level Extended Offset Table (7FE0,0001), if the header has one. */
  extendedOffsetTable: Buffer | undefined;
  maxHeaderBytes: number;
}

/** Frame geometry from the header; Number of Frames defaults to 1 with Pixel Data, 0 without. */
export function imageInfo(dataset: DicomJsonDataset, hasPixelData: boolean): ImageInfo {
  const numberOfFrames = positive(firstNumber(dataset, '00280008'));
  return {
    rows: positive(firstNumber(dataset, '00280010')),
    columns: positive(firstNumber(dataset, '00280011')),
    bitsAllocated: positive(firstNumber(dataset, '00280100')),
    samplesPerPixel: positive(firstNumber(dataset, '00280002')),
    photometric: firstString(dataset, '00280004')?.trim(),
    numberOfFrames: hasPixelData ? (numberOfFrames ?? 1) : (numberOfFrames ?? 0),
  };
}

const positive = (v: number | undefined): number | undefined => (v !== undefined && v > 0 ? Math.floor(v) : undefined);

/**
 * Locates the frames of the Pixel Data element whose header the walk stopped after, reading its value
 * (the reader is then just past it; for a deflated data set, which the reader does not walk, nothing is
 * read).
 */
export async function locatePixelData(r: ByteReader, px: PixelStart, ctx: PixelDataContext): Promise<PixelDataLocation> {
  const maxEntries = Math.floor(ctx.maxHeaderBytes / INDEX_BYTES_PER_ENTRY);
  if (ctx.info.numberOfFrames > maxEntries) {
    throw invalid(`Number of Frames ${ctx.info.numberOfFrames} is more than the ${maxEntries} this server indexes`);
  }
  const tag = tagKey(px.group, px.element);
  const video = isVideo(ctx.transferSyntaxUid);
  if (ctx.deflated) {
    // Offsets in the inflated stream say nothing about the stored file: frames can't be addressed.
    return { tag, valueOffset: -1, valueLength: px.length, encapsulated: px.length === undefined, frames: [], isVideo: video };
  }
  if (px.length !== undefined) {
    const { frames, bitPacked } = nativeFrames(px.valuePos, px.length, ctx.info);
    await r.skip(px.length, 'Pixel Data');
    const location: PixelDataLocation = { tag, valueOffset: px.valuePos, valueLength: px.length, encapsulated: false, frames, isVideo: video };
    if (bitPacked) location.bitPacked = true;
    return location;
  }
  const frames = await readEncapsulatedFrames(r, ctx, video, maxEntries);
  return { tag, valueOffset: px.valuePos, valueLength: undefined, encapsulated: true, frames, isVideo: video };
}

// ---------------------------------------------------------------------------------------------------
// Native Pixel Data

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

// ---------------------------------------------------------------------------------------------------
// Encapsulated Pixel Data: reading the items

/** The fragments of an encapsulated value, as parallel arrays (one small number each, no object per fragment). */
interface Fragments {
  /** Item tag offset relative to the first fragment's item tag (the BOT/EOT base, PS3.5 §A.4). */
  rel: number[];
  /** Value offset in the file, and value length. */
  offset: number[];
  length: number[];
  /** Fragment starts with a codec's start-of-frame marker (only when needed). */
  marker: boolean[];
}

/** Reads the value and groups its fragments into frames; a video's are one bitstream, so all one entry. */
async function readEncapsulatedFrames(r: ByteReader, ctx: PixelDataContext, video: boolean, maxEntries: number): Promise<ByteSpan[][]> {
  const { transferSyntaxUid: ts, info } = ctx;
  const eot = ctx.extendedOffsetTable === undefined ? undefined : readUint64s(ctx.extendedOffsetTable);
  // Markers are only looked at where no offset table will say which fragments make up which frame.
  const wantMarkers = (bot: Buffer | undefined): boolean => !video && eot === undefined && bot === undefined && info.numberOfFrames > 1;
  const { bot, fragments } = await readFragments(r, wantMarkers, ts, ctx.maxHeaderBytes, maxEntries);
  if (video) return fragments.rel.length > 0 ? [spans(fragments, 0, fragments.rel.length)] : [];
  return encapsulatedFrames(fragments, bot, eot, ts, info.numberOfFrames);
}

/**
 * Reads the items of encapsulated Pixel Data (PS3.5 §A.4): BOT first, then fragments, then E0DD. Only the
 * first bytes of a fragment are looked at, and only when `wantMarkers` says so given the BOT.
 */
export async function readFragments(
  r: ByteReader,
  wantMarkers: (bot: Buffer | undefined) => boolean,
  ts: string,
  maxTable: number,
  maxEntries: number,
): Promise<{ bot: Buffer | undefined; fragments: Fragments }> {
  const bot = await readBasicOffsetTable(r, maxTable);
  const markers = wantMarkers(bot);
  const fragments: Fragments = { rel: [], offset: [], length: [], marker: [] };
  const base = r.position;
  for (;;) {
    if (r.buf.length - r.pos < 8 && !(await r.ensure(8))) {
      // Input ending right after a complete fragment with only the sequence delimitation item missing is
      // a known writer defect (pydicom's *_too_short.dcm): nothing of the image is lost, so accept it.
      if (r.available === 0 && fragments.rel.length > 0) break;
      throw truncated(`${IN_PIXEL_DATA} (no sequence delimitation item)`);
    }
    const tagPos = r.position;
    const length = readFragmentHeader(r);
    if (length < 0) break;
    if (fragments.rel.length >= maxEntries) {
      throw invalid(`encapsulated Pixel Data has more than ${maxEntries} fragments`);
    }
    fragments.rel.push(tagPos - base);
    fragments.offset.push(tagPos + 8);
    fragments.length.push(length);
    let rest = length;
    if (markers) {
      const head = Math.min(length, 12);
      fragments.marker.push(startsWithMarker(await r.read(head, IN_PIXEL_DATA), ts));
      rest -= head;
    }
    if (r.buf.length - r.pos >= rest) r.pos += rest;
    else await r.skip(rest, IN_PIXEL_DATA);
  }
  return { bot, fragments };
}

/** The first item (PS3.5 §A.4): the Basic Offset Table, a copy of its value, or undefined when it is empty. */
async function readBasicOffsetTable(r: ByteReader, maxTable: number): Promise<Buffer | undefined> {
  if (!(await r.ensure(8))) throw truncated(IN_PIXEL_DATA);
  if (r.buf.readUInt16LE(r.pos) !== 0xfffe || r.buf.readUInt16LE(r.pos + 2) !== 0xe000) {
    throw invalid(`encapsulated Pixel Data does not start with an item (the Basic Offset Table) at offset ${r.position}`);
  }
  const length = r.buf.readUInt32LE(r.pos + 4);
  r.pos += 8;
  if (length === UNDEFINED_LENGTH || length % 4 !== 0 || length > maxTable) {
    throw invalid(`encapsulated Pixel Data has a Basic Offset Table of nonsensical length ${length}`);
  }
  return length > 0 ? Buffer.from(await r.read(length, IN_PIXEL_DATA)) : undefined;
}

/**
 * Consumes the item header at the reader (8 bytes buffered, always Little Endian, PS3.5 §A.4) and returns
 * the fragment's value length, or -1 for the sequence delimitation item that ends the value.
 */
function readFragmentHeader(r: ByteReader): number {
  const b = r.buf;
  const p = r.pos;
  const tagPos = r.position;
  const group = b.readUInt16LE(p);
  const element = b.readUInt16LE(p + 2);
  const length = b.readUInt32LE(p + 4);
  r.pos += 8;
  if (group === 0xfffe && element === 0xe0dd) return -1;
  if (group !== 0xfffe || element !== 0xe000) {
    throw invalid(`unexpected tag ${tagText(group, element)} in encapsulated Pixel Data at offset ${tagPos}`);
  }
  if (length === UNDEFINED_LENGTH) throw invalid(`Pixel Data fragment with undefined length at offset ${tagPos}`);
  return length;
}

/** Whether a fragment's first bytes are the start of a frame for the transfer syntax's codec. */
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

// ---------------------------------------------------------------------------------------------------
// Encapsulated Pixel Data: grouping fragments into frames

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
  if (isRle(ts)) return []; // one fragment per frame or nothing: RLE has no start marker to split at
  return framesAtMarkers(f, n);
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
  return framesStartingAt(starts, f);
}

/** A frame starts at each fragment with a start marker; there must be exactly `n`, the first fragment one. */
function framesAtMarkers(f: Fragments, n: number): ByteSpan[][] {
  const count = f.rel.length;
  if (f.marker.length !== count || !f.marker[0]) return [];
  const starts: number[] = [];
  for (let i = 0; i < count; i++) if (f.marker[i]) starts.push(i);
  if (starts.length !== n) return [];
  return framesStartingAt(starts, f);
}

/** Frame i is fragments starts[i] up to the next frame's first fragment (the last frame: to the end). */
function framesStartingAt(starts: number[], f: Fragments): ByteSpan[][] {
  return starts.map((s, i) => spans(f, s, i + 1 < starts.length ? starts[i + 1]! : f.rel.length));
}

function spans(f: Fragments, from: number, to: number): ByteSpan[] {
  const out: ByteSpan[] = [];
  for (let i = from; i < to; i++) out.push([f.offset[i]!, f.length[i]!]);
  return out;
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
