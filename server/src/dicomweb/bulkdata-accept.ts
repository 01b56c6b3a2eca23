/**
 * Accept negotiation and HTTP Range parsing for WADO-RS bulk data (PS3.18 §8.7.3, §10.4.1.1.5),
 * Fastify-free. Native little-endian values are served as stored under the default transfer syntax;
 * encapsulated or big-endian values as stored when the client accepts the stored syntax. Otherwise
 * encapsulated values in a decodable syntax are decoded (no transfer syntax, or Explicit VR LE).
 */
import { canDecodeFrames } from '../archive/transcode.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import { parseAccept, type MediaRange } from './negotiate.js';

const OCTET_STREAM = 'application/octet-stream';

export interface BulkDataRepresentation {
  /** true: `multipart/related; type="application/octet-stream"` with one part; false: the bare value. */
  multipart: boolean;
  /** Content-Type of the value (the part, or the whole response). */
  contentType: string;
  /** true: the encapsulated value decoded, every frame's raw little-endian pixels in frame order. */
  decode: boolean;
}

/** Whether a range asks for the multipart form (true), the single-part form (false), or neither (null). */
function formOf(range: MediaRange): boolean | null {
  if (range.type === '*' && range.subtype === '*') return true;
  if (range.type === 'multipart' && (range.subtype === 'related' || range.subtype === '*')) {
    const type = range.params['type']?.toLowerCase();
    return type === undefined || type === OCTET_STREAM ? true : null;
  }
  if (range.type === 'application' && range.subtype === 'octet-stream') return false;
  return null;
}

/**
 * Multipart by default (no Accept, `*\/*`, `multipart/related` with no type or type
 * application/octet-stream); the single-part form for `application/octet-stream`. Ranges are tried
 * in quality order. An encapsulated value whose stored syntax is not accepted is decoded when a range
 * asks for no transfer syntax or Explicit VR LE and the syntax is decodable (not video, etc.). 406 when
 * the value is big-endian, or encapsulated and not decodable, and the stored syntax is not accepted.
 */
export function negotiateBulkData(acceptHeader: string | undefined, instance: StoredInstance, encapsulated: boolean): BulkDataRepresentation {
  const stored = instance.transferSyntaxUid;
  const littleEndianNative = !encapsulated && (stored === EXPLICIT_VR_LITTLE_ENDIAN || stored === IMPLICIT_VR_LITTLE_ENDIAN);
  const decodable = encapsulated && instance.pixelData?.isVideo !== true && canDecodeFrames(stored);
  const ranges = parseAccept(acceptHeader)
    .map((range, index) => ({ range, index }))
    .sort((a, b) => b.range.q - a.range.q || a.index - b.index)
    .map(({ range }) => range);
  for (const range of ranges) {
    const multipart = formOf(range);
    if (multipart === null) continue;
    const asked = range.params['transfer-syntax'];
    if (littleEndianNative && (asked === undefined || asked === '*' || asked === EXPLICIT_VR_LITTLE_ENDIAN || asked === stored)) {
      return { multipart, contentType: OCTET_STREAM, decode: false };
    }
    if (asked === '*' || asked === stored) return { multipart, contentType: `${OCTET_STREAM}; transfer-syntax=${stored}`, decode: false };
    if (decodable && (asked === undefined || asked === EXPLICIT_VR_LITTLE_ENDIAN)) return { multipart, contentType: OCTET_STREAM, decode: true };
  }
  if (!littleEndianNative && ranges.some((range) => formOf(range) !== null)) {
    const why = !encapsulated
      ? 'big-endian, and bulk data is not byte-swapped'
      : decodable
        ? 'encapsulated (compressed), and decoding is to Explicit VR Little Endian (no transfer-syntax) only'
        : 'encapsulated (compressed) in a syntax this server cannot decode';
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The pixel data of this instance is ${why} (${stored}): ` +
        `ask for multipart/related; type="application/octet-stream"; transfer-syntax=* (or application/octet-stream; transfer-syntax=*) to receive it as stored`,
    );
  }
  throw new AppError(
    'NOT_ACCEPTABLE',
    'Bulk data is available as multipart/related; type="application/octet-stream" or application/octet-stream only',
  );
}

/** A satisfiable byte range of a value (inclusive bounds), or why none is served. */
export type RangeRequest = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * One `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` (RFC 9110 §14.1.2) against a value of `length`
 * bytes. Anything else (other units, several ranges, malformed) is ignored: undefined, the whole
 * value is sent (RFC 9110 §14.2 allows ignoring Range). A range that starts past the end is unsatisfiable.
 */
export function parseRange(header: string | undefined, length: number): RangeRequest {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || length === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - suffix), end: length - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (end < start) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end: Math.min(end, length - 1) };
}
