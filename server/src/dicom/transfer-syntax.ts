/**
 * Transfer Syntax UIDs (PS3.5 §10 and Annex A, PS3.6 Annex A) and the few predicates ingest needs to
 * walk a Part-10 file: how the data set is encoded (implicit/explicit VR, byte order, deflate) and how
 * Pixel Data is laid out (native, encapsulated in fragments, or one video bitstream).
 *
 * Every transfer syntax not listed as native below is "Explicit VR Little Endian with encapsulated Pixel
 * Data" (PS3.5 §A.4): that includes private and future UIDs, which is why the predicates work on sets of
 * the exceptions rather than on a list of every codec.
 */

// Native (uncompressed) encodings, PS3.5 §A.1–A.3, A.5.
export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** Each frame in its own fragment, uncompressed (PS3.5 §A.4.11). Encapsulated. */
export const ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.98';
/** The whole data set after the File Meta group is deflated (RFC 1951, no zlib header), PS3.5 §A.5. */
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';
/** Retired, but still found in old files (PS3.5 §A.3). */
export const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';

// JPEG family (ISO 10918-1, ISO 14495-1): every frame starts with SOI FFD8.
export const JPEG_BASELINE_8BIT = '1.2.840.10008.1.2.4.50';
export const JPEG_EXTENDED_12BIT = '1.2.840.10008.1.2.4.51';
export const JPEG_LOSSLESS = '1.2.840.10008.1.2.4.57';
export const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';
export const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
export const JPEG_LS_NEAR_LOSSLESS = '1.2.840.10008.1.2.4.81';

// JPEG 2000 family (ISO 15444-1/-2/-15): a frame starts with SOC+SIZ (FF4F FF51) or a JP2 signature box.
export const JPEG_2000_LOSSLESS = '1.2.840.10008.1.2.4.90';
export const JPEG_2000 = '1.2.840.10008.1.2.4.91';
export const JPEG_2000_MC_LOSSLESS = '1.2.840.10008.1.2.4.92';
export const JPEG_2000_MC = '1.2.840.10008.1.2.4.93';
export const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
export const HTJ2K_LOSSLESS_RPCL = '1.2.840.10008.1.2.4.202';
export const HTJ2K = '1.2.840.10008.1.2.4.203';

// JPIP: Pixel Data is not in the file but referenced by a URL (PS3.5 §A.4.6); .95/.205 also deflate.
export const JPIP_REFERENCED = '1.2.840.10008.1.2.4.94';
export const JPIP_REFERENCED_DEFLATE = '1.2.840.10008.1.2.4.95';
export const JPIP_HTJ2K_REFERENCED = '1.2.840.10008.1.2.4.204';
export const JPIP_HTJ2K_REFERENCED_DEFLATE = '1.2.840.10008.1.2.4.205';

// JPEG XL (PS3.5 §A.4.12).
export const JPEG_XL_LOSSLESS = '1.2.840.10008.1.2.4.110';
export const JPEG_XL_JPEG_RECOMPRESSION = '1.2.840.10008.1.2.4.111';
export const JPEG_XL = '1.2.840.10008.1.2.4.112';

// Video (PS3.5 §8.2.5–8.2.8): all frames form ONE bitstream, split over fragments arbitrarily.
export const MPEG2_MPML = '1.2.840.10008.1.2.4.100';
export const MPEG2_MPML_FRAGMENTABLE = '1.2.840.10008.1.2.4.100.1';
export const MPEG2_MPHL = '1.2.840.10008.1.2.4.101';
export const MPEG2_MPHL_FRAGMENTABLE = '1.2.840.10008.1.2.4.101.1';
export const MPEG4_HP41 = '1.2.840.10008.1.2.4.102';
export const MPEG4_HP41_FRAGMENTABLE = '1.2.840.10008.1.2.4.102.1';
export const MPEG4_HP41_BD = '1.2.840.10008.1.2.4.103';
export const MPEG4_HP41_BD_FRAGMENTABLE = '1.2.840.10008.1.2.4.103.1';
export const MPEG4_HP42_2D = '1.2.840.10008.1.2.4.104';
export const MPEG4_HP42_2D_FRAGMENTABLE = '1.2.840.10008.1.2.4.104.1';
export const MPEG4_HP42_3D = '1.2.840.10008.1.2.4.105';
export const MPEG4_HP42_3D_FRAGMENTABLE = '1.2.840.10008.1.2.4.105.1';
export const MPEG4_HP42_STEREO = '1.2.840.10008.1.2.4.106';
export const MPEG4_HP42_STEREO_FRAGMENTABLE = '1.2.840.10008.1.2.4.106.1';
export const HEVC_MP51 = '1.2.840.10008.1.2.4.107';
export const HEVC_M10P51 = '1.2.840.10008.1.2.4.108';

/** RLE Lossless (PS3.5 Annex G): exactly one fragment per frame. */
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
/** Each frame deflated on its own, in fragments (PS3.5 §A.4.13); the data set itself is not deflated. */
export const DEFLATED_IMAGE_FRAME_COMPRESSION = '1.2.840.10008.1.2.8.1';

// SMPTE ST 2110 (PS3.5 §A.4.x): real-time video/audio transport, no Pixel Data in the data set.
export const SMPTE_ST_2110_20_UNCOMPRESSED_PROGRESSIVE = '1.2.840.10008.1.2.7.1';
export const SMPTE_ST_2110_20_UNCOMPRESSED_INTERLACED = '1.2.840.10008.1.2.7.2';
export const SMPTE_ST_2110_30_PCM = '1.2.840.10008.1.2.7.3';

/** Transfer syntaxes whose Pixel Data (if any) is NOT encapsulated. */
const NOT_ENCAPSULATED: ReadonlySet<string> = new Set([
  IMPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
  JPIP_REFERENCED,
  JPIP_REFERENCED_DEFLATE,
  JPIP_HTJ2K_REFERENCED,
  JPIP_HTJ2K_REFERENCED_DEFLATE,
  SMPTE_ST_2110_20_UNCOMPRESSED_PROGRESSIVE,
  SMPTE_ST_2110_20_UNCOMPRESSED_INTERLACED,
  SMPTE_ST_2110_30_PCM,
]);

const VIDEO: ReadonlySet<string> = new Set([
  MPEG2_MPML,
  MPEG2_MPML_FRAGMENTABLE,
  MPEG2_MPHL,
  MPEG2_MPHL_FRAGMENTABLE,
  MPEG4_HP41,
  MPEG4_HP41_FRAGMENTABLE,
  MPEG4_HP41_BD,
  MPEG4_HP41_BD_FRAGMENTABLE,
  MPEG4_HP42_2D,
  MPEG4_HP42_2D_FRAGMENTABLE,
  MPEG4_HP42_3D,
  MPEG4_HP42_3D_FRAGMENTABLE,
  MPEG4_HP42_STEREO,
  MPEG4_HP42_STEREO_FRAGMENTABLE,
  HEVC_MP51,
  HEVC_M10P51,
]);

/** The MPEG-2, MPEG-4 AVC/H.264 and HEVC/H.265 video transfer syntaxes (PS3.5 §8.2.5–8.2.8, Table A-4). */
export const VIDEO_TRANSFER_SYNTAXES: readonly string[] = [...VIDEO];

const DEFLATED: ReadonlySet<string> = new Set([
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  JPIP_REFERENCED_DEFLATE,
  JPIP_HTJ2K_REFERENCED_DEFLATE,
]);

const JPEG_FAMILY: ReadonlySet<string> = new Set([
  JPEG_BASELINE_8BIT,
  JPEG_EXTENDED_12BIT,
  JPEG_LOSSLESS,
  JPEG_LOSSLESS_SV1,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  // Retired JPEG processes 3–29 (…4.52 – …4.66) share the SOI marker.
  ...Array.from({ length: 66 - 52 + 1 }, (_, i) => `1.2.840.10008.1.2.4.${52 + i}`),
]);

const JPEG_2000_FAMILY: ReadonlySet<string> = new Set([
  JPEG_2000_LOSSLESS,
  JPEG_2000,
  JPEG_2000_MC_LOSSLESS,
  JPEG_2000_MC,
  HTJ2K_LOSSLESS,
  HTJ2K_LOSSLESS_RPCL,
  HTJ2K,
]);

/** Implicit VR Little Endian: elements carry no VR (PS3.5 §7.1.3). */
export function isImplicitVR(uid: string): boolean {
  return uid === IMPLICIT_VR_LITTLE_ENDIAN;
}

/** Explicit VR Big Endian (retired): every multi-byte number is big-endian, including tags (PS3.5 §7.3). */
export function isBigEndian(uid: string): boolean {
  return uid === EXPLICIT_VR_BIG_ENDIAN;
}

/** The data set after the File Meta group is one raw-deflate stream (PS3.5 §A.5). */
export function isDeflated(uid: string): boolean {
  return DEFLATED.has(uid);
}

/** Pixel Data is a sequence of fragments (Basic Offset Table item first), PS3.5 §A.4. */
export function isEncapsulated(uid: string): boolean {
  return !NOT_ENCAPSULATED.has(uid);
}

/** All frames form one video bitstream (PS3.5 §8.2.5–8.2.8): frames cannot be located by fragment. */
export function isVideo(uid: string): boolean {
  return VIDEO.has(uid);
}

export function isRle(uid: string): boolean {
  return uid === RLE_LOSSLESS;
}

export function isJpegFamily(uid: string): boolean {
  return JPEG_FAMILY.has(uid);
}

export function isJpeg2000Family(uid: string): boolean {
  return JPEG_2000_FAMILY.has(uid);
}
