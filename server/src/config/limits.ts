/**
 * Hostile-input limits section (PACS_HTTP_*, PACS_RATE_LIMIT_*, and the per-request bounds of STOW-RS,
 * WADO-RS, DICOM nesting, decoding, rendering and the metadata cache); docs/architecture.md,
 * "Hostile input limits".
 */
import { GiB, MiB, type EnvReader } from './env-reader.js';

/** Bounds against hostile or broken clients and files; each has a default that real traffic never meets. */
export interface LimitsConfig {
  http: {
    /** Largest request line + headers (Node's maxHeaderSize); beyond: 431. */
    maxHeaderBytes: number;
    /** Total time a client may take to send the request line and headers (slow-loris); 0: none. */
    headersTimeoutMs: number;
    /**
     * A connection on which no byte moves either way for this long is closed (an idle timeout, reset by
     * every chunk, so a long upload that keeps sending is never cut; there is no total request deadline).
     */
    idleTimeoutMs: number;
  };
  rateLimit: {
    /** Requests per client address per window; 0: rate limiting off. Beyond: 429 + Retry-After. */
    max: number;
    windowSeconds: number;
    /** Loopback clients (the embedded viewer, local tools, a reverse proxy on the same host) are not limited. */
    exemptLoopback: boolean;
  };
  /** Parts of one STOW-RS request (the whole request is refused beyond: 413). */
  stowMaxParts: number;
  /** Frame numbers in one WADO-RS frame list (400 beyond). */
  wadoMaxFrames: number;
  /** Sequences nested deeper than this in a DICOM data set are refused at ingest. */
  dicomMaxNesting: number;
  /** Decoded pixel bytes one request may hold in memory (decoded frames, transcoding, decoded bulk data): 406 beyond. */
  decodeMaxBytes: number;
  /** Largest frame (Rows × Columns) rendered to JPEG/PNG, thumbnails and AI detections on stored frames: 406 beyond. */
  renderMaxPixels: number;
  /** Memory for finished WADO-RS metadata responses, reused while the study / series is unchanged; 0: off. */
  metadataCacheBytes: number;
}

export function readLimitsConfig(read: EnvReader): LimitsConfig {
  return {
    http: {
      maxHeaderBytes: read.integer('PACS_HTTP_MAX_HEADER_BYTES', 16 * 1024, 1024, MiB),
      headersTimeoutMs: read.integer('PACS_HTTP_HEADERS_TIMEOUT_MS', 20_000, 0, 600_000),
      idleTimeoutMs: read.integer('PACS_HTTP_IDLE_TIMEOUT_MS', 120_000, 0, 3_600_000),
    },
    rateLimit: {
      max: read.integer('PACS_RATE_LIMIT_MAX', 6000, 0, 10_000_000),
      windowSeconds: read.integer('PACS_RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
      exemptLoopback: read.boolean('PACS_RATE_LIMIT_EXEMPT_LOOPBACK', true),
    },
    stowMaxParts: read.integer('PACS_STOW_MAX_PARTS', 10_000, 1, 10_000_000),
    wadoMaxFrames: read.integer('PACS_WADO_MAX_FRAMES', 1000, 1, 100_000),
    dicomMaxNesting: read.integer('PACS_DICOM_MAX_NESTING', 64, 1, 1000),
    decodeMaxBytes: read.integer('PACS_DECODE_MAX_BYTES', 512 * MiB, MiB, 8 * GiB),
    renderMaxPixels: read.integer('PACS_RENDER_MAX_PIXELS', 8192 * 8192, 1024, 1024 * 1024 * 1024),
    metadataCacheBytes: read.integer('PACS_METADATA_CACHE_MB', 64, 0, 64 * 1024) * MiB,
  };
}
