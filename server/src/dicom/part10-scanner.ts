/**
 * Streaming scan of one DICOM Part-10 file (PS3.10 §7): every byte goes on to a sink (blob storage) while
 * the element structure is walked; only the header (everything before the top-level Pixel Data) is kept in
 * memory, and for Pixel Data only where each frame's bytes lie in the file is recorded. The header bytes
 * are then parsed by dcmjs into DICOM JSON.
 *
 * Why not dcmjs alone: it parses whole buffers only, and STOW-RS parts can be gigabytes.
 *
 * This module runs the steps in order; each lives in its own module:
 *  - file-meta.ts: preamble, "DICM" and the File Meta group (PS3.10 §7.1), and the data set's encoding;
 *  - dataset-walker.ts: the data elements and sequences up to Pixel Data (PS3.5 §7.1, §7.5); the elements
 *    after it are walked here (`walkTail`) with the same walker;
 *  - deflated-dataset.ts: the same walk over an inflated data set (PS3.5 §A.5);
 *  - header-json.ts: the kept header bytes → DICOM JSON (PS3.18 §F.2), via dcmjs;
 *  - pixel-data-frames.ts: where each frame lies, native (PS3.5 §8.2) or encapsulated (PS3.5 §A.4).
 */
import { InvalidDicomError } from '../errors.js';
import { ByteReader, type ChunkSink, isTruncation } from './byte-reader.js';
import { walkDataset, type WalkResult } from './dataset-walker.js';
import { readDeflatedHeader } from './deflated-dataset.js';
import type { DicomJsonDataset } from './dicom-json.js';
import { type DatasetEncoding, detectDatasetEncoding, type FileMeta, readFileMeta, readPreamble } from './file-meta.js';
import { headerToJson } from './header-json.js';
import type { InstanceHeader } from './instance-header.js';
import { imageInfo, locatePixelData, readFragments } from './pixel-data-frames.js';
import { invalid } from './scan-errors.js';

export type { ChunkSink } from './byte-reader.js';
export { MAX_INLINE_BINARY_BYTES } from './header-json.js';

export interface ScanPart10Options {
  /**
   * Largest header accepted: the bytes before the top-level Pixel Data (or the whole file when it has
   * none), File Meta included; for a deflated data set, the inflated size. Larger → InvalidDicomError.
   */
  maxHeaderBytes: number;
  /** Deepest sequence nesting accepted (default DEFAULT_MAX_NESTING); deeper → InvalidDicomError. */
  maxNesting?: number;
}

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
    return await scan(reader, options.maxHeaderBytes, options.maxNesting, cleanups);
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

/** The kept header: what the walk found, and the bytes it walked (the data set up to Pixel Data). */
interface Header {
  walk: WalkResult;
  bytes: Buffer;
  /** Offset of `bytes[0]` in what the walk read (the walk's offsets are in the same terms). */
  start: number;
  /** Deflated data set only: feeds the rest of the file to the sink; settles once the input ends. */
  pump: Promise<void> | undefined;
}

type InstanceUids = Pick<InstanceHeader, 'sopClassUid' | 'sopInstanceUid' | 'studyInstanceUid' | 'seriesInstanceUid'>;

async function scan(r: ByteReader, maxHeaderBytes: number, maxNesting: number | undefined, cleanups: Array<() => void>): Promise<InstanceHeader> {
  if (!(maxHeaderBytes > 0)) throw new RangeError('maxHeaderBytes must be positive');
  await readPreamble(r);
  const meta = await readFileMeta(r, maxHeaderBytes);
  const encoding = await detectDatasetEncoding(r, meta.transferSyntaxUid);
  const header = encoding.deflated
    ? await readDeflatedHeader(r, encoding.implicit, encoding.little, maxHeaderBytes, cleanups, maxNesting)
    : await readHeader(r, encoding, maxHeaderBytes, maxNesting);

  // Parse the header now, before streaming the pixel data: a bad header fails fast.
  const dataset = parseHeader(header, encoding);
  const uids = instanceUids(dataset, meta);
  const px = header.walk.pixel;
  const info = imageInfo(dataset, px !== undefined);
  const pixelData =
    px === undefined
      ? undefined
      : await locatePixelData(r, px, {
          transferSyntaxUid: encoding.transferSyntaxUid,
          deflated: encoding.deflated,
          info,
          extendedOffsetTable: extendedOffsetTable(header),
          maxHeaderBytes,
        });
  await readToEnd(r, header, encoding);

  return {
    ...uids,
    transferSyntaxUid: encoding.transferSyntaxUid,
    dataset,
    numberOfFrames: info.numberOfFrames,
    rows: info.rows,
    columns: info.columns,
    bitsAllocated: info.bitsAllocated,
    samplesPerPixel: info.samplesPerPixel,
    pixelData,
  };
}

/** Walks the (not deflated) data set up to Pixel Data, and keeps its bytes from just after File Meta. */
async function readHeader(r: ByteReader, encoding: DatasetEncoding, maxHeaderBytes: number, maxNesting: number | undefined): Promise<Header> {
  const start = r.position;
  const walk = await walkDataset(r, encoding.implicit, encoding.little, maxHeaderBytes, maxHeaderBytes, maxNesting);
  const headerEnd = walk.pixel ? walk.pixel.tagPos : r.position;
  const bytes = r.extract(start, headerEnd);
  r.stopKeeping();
  return { walk, bytes, start, pump: undefined };
}

function parseHeader(header: Header, encoding: DatasetEncoding): DicomJsonDataset {
  try {
    return headerToJson(header.bytes, header.start, header.walk.regions, encoding.elementSyntax, header.walk.relabels);
  } catch (err) {
    throw new InvalidDicomError('the DICOM header could not be parsed', { cause: err });
  }
}

/**
 * The four UIDs every stored instance needs, as the data set carries them; refused without. The SOP
 * Instance UID must be the data set's own (0008,0018): the File Meta group's Media Storage SOP Instance
 * UID describes the file, and an instance served back without its own UID is not a valid instance. The
 * SOP Class UID may come from File Meta (the SOP class is also what the C-STORE command names). A UID
 * that is not a valid UID (isValidUid) is refused, never rewritten: the index, the blob key and every URL
 * use these values.
 */
function instanceUids(dataset: DicomJsonDataset, meta: FileMeta): InstanceUids {
  const sopInstanceUid = uidValue(dataset, '00080018');
  const sopClassUid = uidValue(dataset, '00080016') ?? meta.mediaStorageSopClassUid;
  const studyInstanceUid = uidValue(dataset, '0020000D');
  const seriesInstanceUid = uidValue(dataset, '0020000E');
  const named: Array<[string, string | undefined]> = [
    ['Study Instance UID (0020,000D)', studyInstanceUid],
    ['Series Instance UID (0020,000E)', seriesInstanceUid],
    ['SOP Instance UID (0008,0018)', sopInstanceUid],
    ['SOP Class UID (0008,0016)', sopClassUid],
  ];
  const missing = named.filter(([, v]) => !v).map(([name]) => name);
  if (missing.length > 0) throw invalid(`DICOM data set has no ${missing.join(', ')}`);
  const malformed = named.filter(([, v]) => !isValidUid(v!)).map(([name]) => name);
  if (malformed.length > 0) {
    throw invalid(`DICOM data set has an invalid ${malformed.join(', ')}: a UID is digits and dots, at most 64 characters (PS3.5 §9.1)`);
  }
  return {
    sopClassUid: sopClassUid!,
    sopInstanceUid: sopInstanceUid!,
    studyInstanceUid: studyInstanceUid!,
    seriesInstanceUid: seriesInstanceUid!,
  };
}

/**
 * PS3.5 §9.1: components of digits separated by dots, at most 64 characters. Components with a leading
 * zero are not allowed by the standard but are sent by older modalities, and rewriting a UID would break
 * every reference to it: they are accepted and kept as sent. Anything else (letters, slashes, spaces,
 * empty components, a second value) is refused.
 */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(uid);
}

/**
 * A UID value as sent, without its padding (PS3.5 §9.1: a trailing NUL; some writers pad with a space);
 * undefined if empty. Several values (VM > 1) come back joined with '\\', which isValidUid refuses.
 */
function uidValue(dataset: DicomJsonDataset, tag: string): string | undefined {
  const values = dataset[tag]?.Value;
  if (values === undefined || values.length === 0) return undefined;
  const text = values.map((v) => (typeof v === 'string' ? v : v === null ? '' : JSON.stringify(v))).join('\\');
  const t = text.replace(/[\0 ]+$/, '');
  return t === '' ? undefined : t;
}

/** The value of the top-level Extended Offset Table (7FE0,0001), a view into the kept header bytes. */
function extendedOffsetTable(header: Header): Buffer | undefined {
  if (header.walk.extendedOffsets === undefined) return undefined;
  const [at, length] = header.walk.extendedOffsets;
  return header.bytes.subarray(at - header.start, at - header.start + length);
}

/** Consumes the rest of the file, so the sink gets every byte (for a deflated data set, the pump does). */
async function readToEnd(r: ByteReader, header: Header, encoding: DatasetEncoding): Promise<void> {
  if (header.pump !== undefined) {
    await header.pump;
    return;
  }
  if (header.walk.pixel !== undefined) await walkTail(r, encoding.implicit, encoding.little);
  await r.drain();
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
