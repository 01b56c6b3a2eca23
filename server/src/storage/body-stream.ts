/**
 * Reading the body of a `put`. A failure of the body (client gone, upstream parser refusing the
 * payload with PayloadTooLargeError, ...) is the caller's error and must reach the caller unchanged;
 * a failure of the store is a STORAGE_FAILURE. `BodyFailure` keeps the two apart.
 */
import type { Readable } from 'node:stream';

/** Wraps an error raised by the body stream, so the store rethrows the original untouched. */
export class BodyFailure extends Error {
  constructor(readonly original: unknown) {
    super('Blob body stream failed', { cause: original });
    this.name = 'BodyFailure';
  }
}

/** The body's chunks as Buffers; errors of the body come out as BodyFailure. */
export async function* bodyChunks(body: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) {
      yield asBuffer(chunk);
    }
  } catch (err) {
    throw new BodyFailure(err);
  }
}

/** Views (never copies) a Uint8Array chunk as a Buffer; strings come from a body set to an encoding. */
function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('Blob body must yield bytes');
}

/**
 * The body cut into blocks of exactly `size` bytes, except the last (shorter, never empty).
 * An empty body yields nothing. Holds at most one block in memory.
 */
export async function* bodyBlocks(body: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  for await (let chunk of bodyChunks(body)) {
    while (pendingLength + chunk.length >= size) {
      const take = size - pendingLength;
      pending.push(chunk.subarray(0, take));
      yield Buffer.concat(pending, size);
      pending = [];
      pendingLength = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length > 0) {
      pending.push(chunk);
      pendingLength += chunk.length;
    }
  }
  if (pendingLength > 0) yield Buffer.concat(pending, pendingLength);
}

/** Rethrows a body failure as the body's own error; anything else goes through `otherwise`. */
export function unwrapBodyFailure(err: unknown, otherwise: (err: unknown) => Error): unknown {
  return err instanceof BodyFailure ? err.original : otherwise(err);
}
