/**
 * Retrieving an instance whose patient identity was corrected after it was stored (hospital link:
 * update, merge, or coercion at ingest; docs/architecture.md, "Hospital link"), or that curation moved
 * to another study or series (move, split, merge; "Curation"): the stored file is never rewritten;
 * what is sent is its head (File Meta and every element before the top-level pixel data element's
 * value) with the identity of record and the study of record applied (dicom/identity-rewrite.ts
 * `readChanges`), followed by
 * the rest of the stored file, pixel data included, copied byte for byte by bounded ranged reads. Memory
 * is the head (bounded at ingest by PACS_STOW_MAX_HEADER_BYTES) plus one chunk, whatever the file size.
 *
 * A deflated data set cannot be cut at its pixel data: it is read whole (bounded like transcoding),
 * inflated, rewritten and deflated again.
 */
import { Readable } from 'node:stream';
import type { StoredInstance } from '../catalog/catalog.js';
import { readChanges, withChangesHead, type HeaderChanges } from '../dicom/identity-rewrite.js';
import { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BULKDATA_CHUNK_BYTES, readBulkData } from './bulkdata.js';

/**
 * What a read of `instance` applies to its stored file: the patient's identity of record when it
 * differs from the file's, the study and series of record when curation moved it; undefined when the
 * stored file is what is read.
 */
export function readChangesOf(instance: StoredInstance): HeaderChanges | undefined {
  const identity = instance.patient?.differs === true ? instance.patient.identity : undefined;
  if (identity === undefined && instance.placement === undefined) return undefined;
  return readChanges(identity, instance.placement);
}

/** Whether the stored file is sent byte for byte (nothing to apply on read). */
export function readsAsStored(instance: StoredInstance): boolean {
  return instance.patient?.differs !== true && instance.placement === undefined;
}

/** Where the head of a stored file ends: the top-level pixel data value, or the end of the file. */
function headLength(instance: StoredInstance): number {
  const pixelData = instance.pixelData;
  return pixelData !== undefined && pixelData.valueOffset > 0 ? pixelData.valueOffset : instance.blobSize;
}

async function readHead(blobs: BlobStore, instance: StoredInstance, length: number, maxBytes: number): Promise<Buffer> {
  if (length > maxBytes) {
    throw new AppError('NOT_ACCEPTABLE', `The instance's header is ${length} bytes, over the ${maxBytes}-byte limit for applying its identity of record`);
  }
  return length === 0 ? Buffer.alloc(0) : blobs.getRange(instance.blobKey, { start: 0, end: length - 1 });
}

/**
 * The stored file of `instance` as it reads with `changes` (the patient's identity of record, a moved
 * instance's study and series): the corrected head first (so a failure is known before anything is
 * sent), then the rest streamed. `maxHeadBytes` bounds what is held in memory.
 */
export async function correctedInstance(
  blobs: BlobStore,
  instance: StoredInstance,
  changes: HeaderChanges,
  maxHeadBytes: number,
): Promise<{ size: number; stream: Readable }> {
  const deflated = instance.transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
  const length = deflated ? instance.blobSize : headLength(instance);
  const head = withChangesHead(await readHead(blobs, instance, length, maxHeadBytes), changes);
  const rest = instance.blobSize - length;
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    if (rest > 0) yield* readBulkData(blobs, instance.blobKey, [[length, rest]], 0, rest - 1, BULKDATA_CHUNK_BYTES);
  }
  return { size: head.length + rest, stream: Readable.from(parts(), { objectMode: false }) };
}
