/**
 * Argument checks shared by every BlobStore, so all implementations accept and refuse the same keys
 * and ranges. Messages never echo the key: keys are built from UIDs and must not reach logs verbatim.
 */
import { AppError } from '../errors.js';
import type { ByteRange } from './blob-store.js';

/** S3's own limit on object names; far above any key the archive builds. */
export const MAX_KEY_LENGTH = 1024;

const KEY_PATTERN = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

/**
 * Keys are `/`-separated segments of [A-Za-z0-9._-]. No segment may be empty or start with a dot:
 * that forbids `.` and `..` (path traversal on disk), leading/trailing/double slashes (two keys
 * naming one file) and the file store's reserved `.tmp` folder.
 */
export function assertValidKey(key: string): void {
  const valid =
    typeof key === 'string' &&
    key.length <= MAX_KEY_LENGTH &&
    KEY_PATTERN.test(key) &&
    key.split('/').every((segment) => !segment.startsWith('.'));
  if (!valid) {
    throw new AppError(
      'BAD_REQUEST',
      'Invalid blob key: expected "/"-separated segments of [A-Za-z0-9._-], none empty or starting with "."',
    );
  }
}

/** A range must be whole numbers with 0 <= start <= end (inclusive, HTTP style). */
export function assertValidRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new AppError('BAD_REQUEST', `Invalid byte range ${start}-${end}: need whole numbers 0 <= start <= end`);
  }
}

/** The error for a well-formed range that does not lie inside the blob. */
export function rangeOutsideBlob(range: ByteRange, size?: number): AppError {
  const of = size === undefined ? 'the blob' : `the blob (${size} bytes)`;
  return new AppError('BAD_REQUEST', `Byte range ${range.start}-${range.end} is outside ${of}`);
}

export function rangeLength(range: ByteRange): number {
  return range.end - range.start + 1;
}
