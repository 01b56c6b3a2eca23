/**
 * Accept negotiation for WADO-RS (PS3.18 §8.7.3): stored bytes when the client accepts the stored
 * transfer syntax, otherwise decoding to the PS3.18 default (Explicit VR Little Endian instances, raw
 * little-endian frames) where the archive can decode the stored syntax (archive/transcode.ts).
 * Fastify-free; every refusal is an AppError NOT_ACCEPTABLE (406) naming the stored syntax.
 */
import type { StoredInstance } from '../catalog/catalog.js';
import { canDecodeFrames, canTranscodeToExplicitLittleEndian, MAX_TRANSCODE_BYTES } from '../archive/transcode.js';
import { canEncodeFramesOf, isFrameEncoding, type FrameEncodingSyntax } from '../archive/encode-frames.js';
import { AppError } from '../errors.js';
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { parseAccept, type MediaRange } from './negotiate.js';

const ANY = '*';

/** The `type` a multipart range asks for, or undefined for `*\/*`, `multipart/*`, `multipart/related` without type. */
function multipartType(range: MediaRange): string | undefined | null {
  if (range.type === '*' && range.subtype === '*') return undefined;
  if (range.type !== 'multipart' || (range.subtype !== 'related' && range.subtype !== '*')) return null;
  const type = range.params['type'];
  return type === undefined ? undefined : type.toLowerCase();
}

function byQuality(ranges: MediaRange[]): MediaRange[] {
  return ranges.map((range, index) => ({ range, index })).sort((a, b) => b.range.q - a.range.q || a.index - b.index).map(({ range }) => range);
}

/**
 * Instance retrieval (`multipart/related; type="application/dicom"`). Accepted: no Accept, `*\/*`,
 * `multipart/related` with no type or type application/dicom; `transfer-syntax=*` takes any stored
 * syntax, a UID takes instances stored in it, none means the PS3.18 default Explicit VR Little Endian.
 * An instance stored in another syntax is transcoded to Explicit VR LE when the client accepts that and
 * the stored syntax can be decoded; returns the SOP Instance UIDs to transcode. Throws 406 when an
 * instance can be served neither as stored nor transcoded, or is too large to transcode in memory.
 */
export function negotiateInstances(acceptHeader: string | undefined, instances: readonly StoredInstance[], maxTranscodeBytes: number = MAX_TRANSCODE_BYTES): Set<string> {
  const accepted = new Set<string>();
  for (const range of parseAccept(acceptHeader)) {
    const type = multipartType(range);
    if (type === null || (type !== undefined && type !== 'application/dicom')) continue;
    accepted.add(range.params['transfer-syntax'] ?? EXPLICIT_VR_LITTLE_ENDIAN);
  }
  if (accepted.size === 0) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      'Instances are available as multipart/related; type="application/dicom" or as one application/zip only (metadata, bulk data and rendered images have their own routes)',
    );
  }
  const transcode = new Set<string>();
  if (accepted.has(ANY)) return transcode;
  for (const instance of instances) {
    const stored = instance.transferSyntaxUid;
    if (accepted.has(stored)) continue;
    if (!accepted.has(EXPLICIT_VR_LITTLE_ENDIAN)) {
      throw new AppError(
        'NOT_ACCEPTABLE',
        `An instance is stored as ${stored}, not in the transfer syntax asked for (${[...accepted].join(', ')}); ` +
          `transcoding is only to Explicit VR Little Endian (${EXPLICIT_VR_LITTLE_ENDIAN}): ask for that, or with transfer-syntax=* (or the stored syntax) to receive it as stored`,
      );
    }
    if (!canTranscodeToExplicitLittleEndian(stored)) {
      throw new AppError(
        'NOT_ACCEPTABLE',
        `An instance is stored as ${stored}, which this server cannot decode for transcoding to Explicit VR Little Endian; ` +
          'ask with transfer-syntax=* (or the stored syntax) to receive it as stored',
      );
    }
    if (instance.blobSize > maxTranscodeBytes) {
      throw new AppError(
        'NOT_ACCEPTABLE',
        `An instance stored as ${stored} is ${instance.blobSize} bytes, over the ${maxTranscodeBytes}-byte limit for transcoding in memory; ` +
          'ask with transfer-syntax=* (or the stored syntax) to receive it as stored',
      );
    }
    transcode.add(instance.sopInstanceUid);
  }
  return transcode;
}

/**
 * Image media types of PS3.18 Table 8.7.3-5 for frames: the syntaxes each may carry, default first.
 */
const IMAGE_TYPES: Record<string, readonly string[]> = {
  'image/jpeg': ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70'],
  'image/jls': ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'],
  'image/jp2': ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  'image/jpx': ['1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93'],
  'image/jphc': ['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'],
  'image/jxl': ['1.2.840.10008.1.2.4.110', '1.2.840.10008.1.2.4.111', '1.2.840.10008.1.2.4.112'],
  'image/dicom-rle': ['1.2.840.10008.1.2.5'],
  'image/x-dicom-rle': ['1.2.840.10008.1.2.5'],
};

export interface FrameRepresentation {
  /** The `type` of the multipart response and the media type of each part. */
  mediaType: string;
  /** Content-Type of each part. */
  partContentType: string;
  /** Frames must be decoded (compressed) or byte-swapped (big endian) to raw little-endian pixels. */
  decode: boolean;
  /** Frames are encoded to this syntax (JPEG Baseline, JPEG-LS or HTJ2K lossless) from whatever is stored. */
  encode?: FrameEncodingSyntax;
}

/** Native frames in little-endian byte order (Implicit and Explicit VR LE frames are the same bytes). */
function isLittleEndianNative(uid: string): boolean {
  return uid === EXPLICIT_VR_LITTLE_ENDIAN || uid === IMPLICIT_VR_LITTLE_ENDIAN;
}

/**
 * Frame retrieval (PS3.18 §8.7.3.5, Table 8.7.3-5), ranges taken by q-value, then in header order. Native
 * little-endian frames: `application/octet-stream` (no transfer syntax or `*`, the default Explicit VR
 * LE, or the stored UID). Encapsulated (compressed) frames and big-endian native frames are served as
 * stored when the client accepts that syntax: `transfer-syntax=*` or the stored UID on
 * application/octet-stream, or an image type of Table 8.7.3-5 that carries it; with no transfer syntax
 * (or Explicit VR LE) on application/octet-stream they are decoded to raw little-endian pixels when the
 * stored syntax can be decoded. Frames of any decodable source are encoded (archive/encode-frames.ts)
 * when the client asks for JPEG Baseline (`image/jpeg`, its default syntax), JPEG-LS lossless
 * (`image/jls`) or HTJ2K lossless (`image/jphc`), by the type (with no transfer syntax, that syntax, or
 * `*` when the stored syntax is not one the type carries) or by that UID on application/octet-stream.
 * Otherwise 406.
 */
export function negotiateFrames(acceptHeader: string | undefined, instance: StoredInstance): FrameRepresentation {
  const stored = instance.transferSyntaxUid;
  const encapsulated = instance.pixelData?.encapsulated === true;
  for (const range of byQuality(parseAccept(acceptHeader))) {
    const type = multipartType(range);
    if (type === null) continue;
    const asked = range.params['transfer-syntax'];
    if (type === undefined || type === 'application/octet-stream') {
      if (!encapsulated && isLittleEndianNative(stored) && (asked === undefined || asked === ANY || asked === EXPLICIT_VR_LITTLE_ENDIAN || asked === stored)) {
        return { mediaType: 'application/octet-stream', partContentType: 'application/octet-stream', decode: false };
      }
      if (asked === ANY || asked === stored) {
        return { mediaType: 'application/octet-stream', partContentType: `application/octet-stream; transfer-syntax=${stored}`, decode: false };
      }
      if ((asked === undefined || asked === EXPLICIT_VR_LITTLE_ENDIAN) && ((encapsulated && canDecodeFrames(stored)) || (!encapsulated && stored === EXPLICIT_VR_BIG_ENDIAN))) {
        return { mediaType: 'application/octet-stream', partContentType: 'application/octet-stream', decode: true };
      }
      if (isFrameEncoding(asked) && canEncodeFramesOf(instance)) {
        return { mediaType: 'application/octet-stream', partContentType: `application/octet-stream; transfer-syntax=${asked}`, decode: false, encode: asked };
      }
      continue;
    }
    const carries = IMAGE_TYPES[type];
    if (carries === undefined) continue;
    if (encapsulated && carries.includes(stored) && (asked === ANY || asked === stored || (asked === undefined && carries[0] === stored))) {
      return { mediaType: type, partContentType: `${type}; transfer-syntax=${stored}`, decode: false };
    }
    // Encoded from any decodable source: the type's default syntax (no transfer syntax, or `*`), or the one named.
    const target = asked === undefined || asked === ANY ? carries[0] : asked;
    if (isFrameEncoding(target) && carries.includes(target) && canEncodeFramesOf(instance)) {
      return { mediaType: type, partContentType: `${type}; transfer-syntax=${target}`, decode: false, encode: target };
    }
  }
  const kind = encapsulated ? 'compressed' : stored === EXPLICIT_VR_BIG_ENDIAN ? 'big-endian' : 'stored';
  throw new AppError(
    'NOT_ACCEPTABLE',
    `Frames of this instance are ${kind} (${stored}) and cannot be served in the form asked for` +
      (encapsulated && !canDecodeFrames(stored)
        ? ` (this server cannot decode ${stored})`
        : ' (frames are decoded to raw little-endian application/octet-stream, or encoded to image/jpeg (JPEG Baseline), image/jls (JPEG-LS lossless) or image/jphc (HTJ2K lossless) only)') +
      ': ask for one of those, or for ' +
      `multipart/related; type="application/octet-stream"; transfer-syntax=* (or transfer-syntax=${stored}) to receive them as stored`,
  );
}
