/**
 * STOW-RS request handling (PS3.18 §10.5), kept free of Fastify so it can be tested with plain streams:
 * check the media type, stream each multipart part through the archive, collect the outcome.
 */
import type { Archive, ScannedPart, StoreResult } from '../archive/archive.js';
import { StowOutcome, FailureReason } from '../archive/stow-outcome.js';
import { parseContentType, readMultipart } from '../dicom/multipart-related.js';
import { AppError, MalformedMultipartError, PayloadTooLargeError } from '../errors.js';

/** Parts whose blob and index row are finished in the background while the next part streams in.
 * Bounded because each may still hold an S3 part buffer (PACS_S3_PART_SIZE) until its upload ends. */
const MAX_PARTS_IN_FLIGHT = 8;

/** Default most parts in one STOW-RS request (PACS_STOW_MAX_PARTS). */
export const DEFAULT_STOW_MAX_PARTS = 10_000;

export interface StowLimits {
  maxBodyBytes: number;
  /** Most parts in one request (default DEFAULT_STOW_MAX_PARTS); the request is refused with 413 beyond. */
  maxParts?: number | undefined;
}

/** Validates the request's Content-Type and returns the multipart boundary (PS3.18 §10.5.1.1). */
export function stowBoundary(contentType: string | undefined): string {
  if (!contentType) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'STOW-RS requires Content-Type: multipart/related; type="application/dicom"');
  }
  const parsed = parseContentType(contentType);
  if (parsed.mediaType !== 'multipart/related') {
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      `STOW-RS requires Content-Type: multipart/related; type="application/dicom", got ${parsed.mediaType}`,
    );
  }
  const type = parsed.params['type']?.toLowerCase();
  if (type !== undefined && type !== 'application/dicom') {
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      `This server accepts only Part-10 instances (type="application/dicom"), not type="${type}"`,
    );
  }
  const boundary = parsed.params['boundary'];
  if (!boundary) throw new MalformedMultipartError('The multipart/related Content-Type has no boundary parameter');
  return boundary;
}

export function checkDeclaredLength(contentLength: string | undefined, limits: StowLimits): void {
  if (contentLength !== undefined && Number(contentLength) > limits.maxBodyBytes) {
    throw new PayloadTooLargeError(`The request body (${contentLength} bytes) exceeds the limit of ${limits.maxBodyBytes} bytes`);
  }
}

/**
 * Stores every part of a multipart/related body. One bad part fails alone; a malformed or oversized
 * body rejects the request (parts completed before the problem stay stored: they are whole instances).
 */
export async function storeMultipart(
  archive: Archive,
  body: AsyncIterable<Buffer>,
  boundary: string,
  limits: StowLimits,
  expectedStudyUid?: string,
): Promise<StowOutcome> {
  // Parts finish out of order (up to MAX_PARTS_IN_FLIGHT at once); results are reported in part order.
  const results: Array<StoreResult | undefined> = [];
  const inFlight = new Set<Promise<void>>();
  const maxParts = limits.maxParts ?? DEFAULT_STOW_MAX_PARTS;
  try {
    for await (const part of readMultipart(limitedBody(body, limits.maxBodyBytes), boundary, {})) {
      if (part.index >= maxParts) {
        // A request-level limit, unlike a bad part (which fails alone): the parts after the limit are
        // never read, so the PS3.18 §10.5.3 response could not describe them. 413 (RFC 9110 §15.5.14) as
        // for an oversized body; the parts before it are stored whole instances and stay (sending the
        // request again in smaller batches is safe: storing an instance twice is a success).
        throw new PayloadTooLargeError(`The request has more than ${maxParts} parts; send at most ${maxParts} instances per STOW-RS request`);
      }
      const slot = results.length;
      results.push(undefined);
      const mediaType = part.headers['content-type'];
      if (mediaType !== undefined && parseContentType(mediaType).mediaType !== 'application/dicom') {
        results[slot] = {
          ok: false,
          failure: {
            failureReason: FailureReason.CannotUnderstand,
            message: `Part ${part.index + 1} has Content-Type ${parseContentType(mediaType).mediaType}; expected application/dicom`,
          },
        };
        continue;
      }
      const scanned: ScannedPart = await archive.scanAndStore(part.body, expectedStudyUid);
      const done = scanned.completion.then((result) => {
        results[slot] = result;
      });
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
      if (inFlight.size >= MAX_PARTS_IN_FLIGHT) await Promise.race(inFlight);
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
  const outcome = new StowOutcome();
  for (const result of results) {
    if (result === undefined) continue; // completions never reject; kept for the type
    if (result.ok) outcome.stored.push(result.item);
    else outcome.failed.push(result.failure);
  }
  return outcome;
}

/** Counts bytes as they arrive; refuses the request once it passes the limit, and turns a dropped connection into a clear error. */
async function* limitedBody(body: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<Buffer> {
  let received = 0;
  try {
    for await (const chunk of body) {
      received += chunk.length;
      if (received > maxBytes) {
        throw new PayloadTooLargeError(`The request body exceeds the limit of ${maxBytes} bytes`);
      }
      yield chunk;
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new MalformedMultipartError('The request body ended before the multipart message was complete');
  }
}
