/**
 * Deflated data sets (PS3.5 §A.5): after the File Meta group, the rest of the file is one raw deflate
 * stream (RFC 1951, no zlib header). It is inflated only as far as the header reaches, while the file's
 * own bytes keep flowing to the sink untouched, to the end, through a pump that the caller awaits last.
 */
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { ByteReader } from './byte-reader.js';
import { walkDataset, type WalkResult } from './dataset-walker.js';

export interface DeflatedHeader {
  walk: WalkResult;
  /** The inflated header bytes, from the first data set element up to Pixel Data (or the end). */
  bytes: Buffer;
  /** Offset of `bytes[0]` in the inflated stream, which the walk's offsets are in. */
  start: number;
  /** Feeds the rest of the file through the reader (and so the sink); settles once the input ends. */
  pump: Promise<void>;
}

/**
 * Walks the deflated data set at the reader (just past the File Meta group) up to Pixel Data, with the
 * header limit counting inflated bytes. `cleanups` gets what stops inflating should the scan fail.
 */
export async function readDeflatedHeader(
  r: ByteReader,
  implicit: boolean,
  little: boolean,
  maxHeaderBytes: number,
  cleanups: Array<() => void>,
  maxNesting?: number,
): Promise<DeflatedHeader> {
  const metaEnd = r.position;
  r.stopKeeping();
  const inflater = createInflateRaw();
  let stopped = false;
  const stopInflating = (): void => {
    stopped = true;
    inflater.destroy();
  };
  cleanups.push(stopInflating);
  const pump = pumpInto(r, inflater, () => stopped);
  pump.catch((err: unknown) => inflater.destroy(err as Error));
  const inner = new ByteReader(inflater[Symbol.asyncIterator]());
  const walk = await walkDataset(inner, implicit, little, maxHeaderBytes - metaEnd, maxHeaderBytes, maxNesting);
  const headerEnd = walk.pixel ? walk.pixel.tagPos : inner.position;
  const bytes = inner.extract(0, headerEnd);
  inner.stopKeeping();
  stopInflating();
  return { walk, bytes, start: 0, pump };
}

/**
 * Feeds the rest of the outer reader (the file bytes, already sunk) into the inflater, honouring its
 * backpressure, until the input ends; once `stopped()`, it just drains the input so the sink still sees
 * every byte.
 */
async function pumpInto(r: ByteReader, inflater: InflateRaw, stopped: () => boolean): Promise<void> {
  for (;;) {
    const chunk = await r.nextRaw();
    if (chunk === undefined) break;
    if (stopped() || inflater.destroyed) continue;
    if (!inflater.write(chunk)) await writable(inflater);
  }
  if (!stopped() && !inflater.destroyed) inflater.end();
}

/** Resolves once the inflater drains, or closes or fails (then the pump just drains the input). */
function writable(inflater: InflateRaw): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      inflater.off('drain', done);
      inflater.off('close', done);
      inflater.off('error', done);
      resolve();
    };
    inflater.on('drain', done);
    inflater.on('close', done);
    inflater.on('error', done);
  });
}
