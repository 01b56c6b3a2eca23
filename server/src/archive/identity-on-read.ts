/**
 * Retrieving an instance whose patient identity was corrected after it was stored (hospital link:
 * update, merge, or coercion at ingest; docs/architecture.md, "Hospital link"): the stored file is
 * never rewritten; what is sent is its head (File Meta and every element before the top-level pixel
 * data element's value) with the identity of record applied (dicom/identity-rewrite.ts), followed by
 * the rest of the stored file, pixel data included, copied byte for byte by bounded ranged reads. Memory
 * is the head (bounded at ingest by PACS_STOW_MAX_HEADER_BYTES) plus one chunk, whatever the file size.
 *
 * A deflated data set cannot be cut at its pixel data: it is read whole (bounded like transcoding),
 * inflated, rewritten and deflated again.
 */
import { Readable } from 'node:stream';
import type { StoredInstance } from '../catalog/catalog.js';
import { withIdentityHead } from '../dicom/identity-rewrite.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BULKDATA_CHUNK_BYTES, readBulkData } from './bulkdata.js';

/** Where the head of a stored file ends: the top-level pixel data value, or the end of the file. */
function headLength(instance: StoredInstance): number {
  const pixelData = instance.pixelData;
  return pixelData !== undefined && pixelData.valueOffset > 0 ? pixelData.valueOffset : instance.blobSize;
}

async function readHead(blobs: BlobStore, instance: StoredInstance, length: number, maxBytes: number): Promise<Buffer> {
  if (length > maxBytes) {
    throw new AppError('NOT_ACCEPTABLE', `The instance's header is ${length} bytes, over the ${maxBytes}-byte limit for applying its corrected patient identity`);
  }
  return length === 0 ? Buffer.alloc(0) : blobs.getRange(instance.blobKey, { start: 0, end: length - 1 });
}

/**
 * The stored file of `instance` as it reads with `identity`: the corrected head first (so a failure is
 * known before anything is sent), then the rest streamed. `maxHeadBytes` bounds what is held in memory.
 */
export async function correctedInstance(
  blobs: BlobStore,
  instance: StoredInstance,
  identity: PatientIdentity,
  maxHeadBytes: number,
): Promise<{ size: number; stream: Readable }> {
  const deflated = instance.transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
  const length = deflated ? instance.blobSize : headLength(instance);
  const head = withIdentityHead(await readHead(blobs, instance, length, maxHeadBytes), identity);
  const rest = instance.blobSize - length;
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    if (rest > 0) yield* readBulkData(blobs, instance.blobKey, [[length, rest]], 0, rest - 1, BULKDATA_CHUNK_BYTES);
  }
  return { size: head.length + rest, stream: Readable.from(parts(), { objectMode: false }) };
}
