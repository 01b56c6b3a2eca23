/**
 * What ingest learns about one stored Part-10 file: its identifying UIDs, its header as DICOM JSON, and
 * where every frame's bytes lie inside the file, so retrieval can read a frame with one ranged read.
 */
import type { DicomJsonDataset } from './dicom-json.js';

/** One contiguous run of bytes inside the stored file: [byte offset from start of file, length]. */
export type ByteSpan = readonly [offset: number, length: number];

export interface PixelDataLocation {
  /** Tag of the pixel data element: 7FE00010 (Pixel Data), 7FE00008 (Float), 7FE00009 (Double Float). */
  tag: string;
  /** Offset of the element's value (after tag/VR/length) from the start of the file. */
  valueOffset: number;
  /** Value length in bytes; undefined for encapsulated (undefined-length) pixel data. */
  valueLength: number | undefined;
  encapsulated: boolean;
  /**
   * Byte spans of each frame, frame 1 first. Native: one span per frame. Encapsulated: the fragments
   * (item values, without item headers) that make up the frame, in order. Video transfer syntaxes
   * (MPEG-2/4, HEVC) hold one bitstream for all frames: then `frames` has a single entry with every
   * fragment, and `isVideo` is true. Empty when the layout cannot be determined (e.g. deflated files).
   */
  frames: ByteSpan[][];
  isVideo: boolean;
  /** Native pixel data with BitsAllocated 1: frames are bit-packed and may start mid-byte. */
  bitPacked?: boolean;
}

export interface InstanceHeader {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** The whole dataset before pixel data (and the file meta group excluded), as DICOM JSON. */
  dataset: DicomJsonDataset;
  numberOfFrames: number;
  rows: number | undefined;
  columns: number | undefined;
  bitsAllocated: number | undefined;
  samplesPerPixel: number | undefined;
  pixelData: PixelDataLocation | undefined;
}
