/**
 * Storage lifecycle section (PACS_LIFECYCLE_*; server/src/lifecycle, docs/architecture.md "Storage
 * lifecycle"). Every rule is off by default: the archive keeps what it received byte for byte unless the
 * hospital turns a rule on. Rules select instances by modality, SOP class and the study's age (its Study
 * Date, or the day it was received when it has none).
 */
import type { EnvReader } from './env-reader.js';

/** Lossless syntaxes housekeeping recompresses into: JPEG-LS Lossless (PS3.5 A.4.3) or HTJ2K Lossless (A.4.4). */
export const LOSSLESS_TARGETS = ['jpeg-ls', 'htj2k'] as const;
export type LosslessTarget = (typeof LOSSLESS_TARGETS)[number];

/** Which instances a rule applies to. Empty lists: every modality / SOP class. */
export interface LifecycleSelection {
  modalities: string[];
  sopClasses: string[];
  /** Studies older than this many days (0: every study, whatever its age). */
  minAgeDays: number;
}

export interface CompressionRule extends LifecycleSelection {
  target: LosslessTarget;
}

export interface RetentionRule extends LifecycleSelection {
  /** Years a study is kept before its instances are rejected with 113039 (minAgeDays = years × 365.25). */
  years: number;
}

/**
 * The optional lossy policy (docs/architecture.md "Storage lifecycle", "Lossy policy"): uncompressed (or
 * losslessly recompressed) images a rule selects are replaced by a lossy compressed copy under a new SOP
 * Instance UID; the original is rejected with 113039 and purged.
 */
export interface LossyRule extends LifecycleSelection {
  /** JPEG Baseline quality 1–100 (libjpeg's quality scale) for 8-bit images. */
  jpegQuality: number;
  /** JPEG 2000 irreversible compression ratio (OpenJPEG's rate) for images of more than 8 bits. */
  j2kRatio: number;
  /** A conversion whose decoded frames fall below this PSNR (dB) against the original is not made. */
  minPsnr: number;
  /**
   * Video (lifecycle/lossy-video.ts): re-encoded to MPEG-4 AVC/H.264 High Profile / Level 4.1 by ffmpeg
   * (libx264) at this constant rate factor, preset, bit-rate cap (kbit/s, 0: the level's own) and thread
   * count; `ffmpeg` is a path or a name looked up on PATH (missing: videos are skipped, "ffmpeg not available").
   */
  video: { crf: number; preset: string; maxKbps: number; threads: number; ffmpeg: string };
}

export interface LifecycleConfig {
  /**
   * PACS_LIFECYCLE_COMPRESS (`off`, `jpeg-ls`, `htj2k`; default off): recompress uncompressed images
   * (native pixel data, 8 or 16 bits) losslessly, with PACS_LIFECYCLE_COMPRESS_MODALITIES,
   * PACS_LIFECYCLE_COMPRESS_SOP_CLASSES and PACS_LIFECYCLE_COMPRESS_AFTER_DAYS (0: right after ingest).
   */
  compression: CompressionRule | null;
  /**
   * PACS_LIFECYCLE_RETENTION_YEARS (0 or unset: off): instances of studies older than this are rejected
   * with 113039 "Data Retention Policy Expired" (then purged at the next purge sweep), with
   * PACS_LIFECYCLE_RETENTION_MODALITIES and PACS_LIFECYCLE_RETENTION_SOP_CLASSES.
   */
  retention: RetentionRule | null;
  /**
   * PACS_LIFECYCLE_LOSSY (`off`, `on`; default off): lossy compression of images (JPEG Baseline for 8
   * bits, JPEG 2000 irreversible above) with PACS_LIFECYCLE_LOSSY_MODALITIES, _SOP_CLASSES, _AFTER_DAYS,
   * _JPEG_QUALITY (90), _J2K_RATIO (10) and _MIN_PSNR (40 dB); video to H.264 by ffmpeg with
   * _VIDEO_CRF (23), _VIDEO_PRESET (medium), _VIDEO_MAX_KBPS (0), _VIDEO_THREADS (1), _FFMPEG (ffmpeg).
   * Each converted instance gets a new SOP Instance UID; the original is rejected with 113039.
   */
  lossy: LossyRule | null;
  /** PACS_LIFECYCLE_INTERVAL_SECONDS: how often a housekeeping run starts (default 86400; 0: only `POST /api/storage/housekeeping`). */
  intervalSeconds: number;
  /** PACS_LIFECYCLE_PAUSE_MS: pause after each recompressed instance, so reads go first (default 200). */
  pauseMs: number;
  /** PACS_LIFECYCLE_BATCH: instances per queued housekeeping unit (default 20). */
  batchSize: number;
  /**
   * PACS_LIFECYCLE_DELETE_GRACE_SECONDS: how long the file a recompression replaced stays before it is
   * deleted (default 120: longer than the 60 s another server process may keep an instance lookup).
   */
  deleteGraceSeconds: number;
}

/** libx264's presets, fastest first. */
export const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'] as const;

function ffmpegPath(read: EnvReader): string {
  const value = read.string('PACS_LIFECYCLE_LOSSY_FFMPEG', 'ffmpeg');
  if (!/^[A-Za-z0-9._/+-]{1,512}$/.test(value)) read.problems.push(`PACS_LIFECYCLE_LOSSY_FFMPEG must be a path or a program name, got "${value}"`);
  return value;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const MODALITY = /^[A-Z0-9_]{1,16}$/;

function selection(read: EnvReader, prefix: string): Pick<LifecycleSelection, 'modalities' | 'sopClasses'> {
  const modalities = read.list(`${prefix}_MODALITIES`, []).map((m) => m.toUpperCase());
  const sopClasses = read.list(`${prefix}_SOP_CLASSES`, []);
  for (const m of modalities) if (!MODALITY.test(m)) read.problems.push(`${prefix}_MODALITIES must list modality codes (CT, MR, ES, …), got "${m}"`);
  for (const uid of sopClasses) if (!UID.test(uid) || uid.length > 64) read.problems.push(`${prefix}_SOP_CLASSES must list SOP Class UIDs, got "${uid}"`);
  return { modalities, sopClasses };
}

export function readLifecycleConfig(read: EnvReader): LifecycleConfig {
  const compress = read.oneOf('PACS_LIFECYCLE_COMPRESS', ['off', ...LOSSLESS_TARGETS] as const, 'off');
  const compressAfterDays = read.integer('PACS_LIFECYCLE_COMPRESS_AFTER_DAYS', 0, 0, 365 * 200);
  const compressSelection = selection(read, 'PACS_LIFECYCLE_COMPRESS');
  const years = read.integer('PACS_LIFECYCLE_RETENTION_YEARS', 0, 0, 200);
  const retentionSelection = selection(read, 'PACS_LIFECYCLE_RETENTION');
  const lossy = read.oneOf('PACS_LIFECYCLE_LOSSY', ['off', 'on'] as const, 'off');
  const lossyRule: LossyRule = {
    ...selection(read, 'PACS_LIFECYCLE_LOSSY'),
    minAgeDays: read.integer('PACS_LIFECYCLE_LOSSY_AFTER_DAYS', 0, 0, 365 * 200),
    jpegQuality: read.integer('PACS_LIFECYCLE_LOSSY_JPEG_QUALITY', 90, 1, 100),
    j2kRatio: read.integer('PACS_LIFECYCLE_LOSSY_J2K_RATIO', 10, 2, 200),
    minPsnr: read.integer('PACS_LIFECYCLE_LOSSY_MIN_PSNR', 40, 0, 100),
    video: {
      crf: read.integer('PACS_LIFECYCLE_LOSSY_VIDEO_CRF', 23, 0, 51),
      preset: read.oneOf('PACS_LIFECYCLE_LOSSY_VIDEO_PRESET', X264_PRESETS, 'medium'),
      maxKbps: read.integer('PACS_LIFECYCLE_LOSSY_VIDEO_MAX_KBPS', 0, 0, 50_000),
      threads: read.integer('PACS_LIFECYCLE_LOSSY_VIDEO_THREADS', 1, 1, 64),
      ffmpeg: ffmpegPath(read),
    },
  };
  return {
    lossy: lossy === 'off' ? null : lossyRule,
    compression: compress === 'off' ? null : { target: compress, minAgeDays: compressAfterDays, ...compressSelection },
    retention: years === 0 ? null : { years, minAgeDays: Math.round(years * 365.25), ...retentionSelection },
    intervalSeconds: read.integer('PACS_LIFECYCLE_INTERVAL_SECONDS', 86_400, 0, 365 * 86_400),
    pauseMs: read.integer('PACS_LIFECYCLE_PAUSE_MS', 200, 0, 60_000),
    batchSize: read.integer('PACS_LIFECYCLE_BATCH', 20, 1, 10_000),
    deleteGraceSeconds: read.integer('PACS_LIFECYCLE_DELETE_GRACE_SECONDS', 120, 0, 7 * 86_400),
  };
}
