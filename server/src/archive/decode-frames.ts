/**
 * Blob-reading side of decoding for WADO-RS: the whole stored file (bounded) for instance transcoding,
 * and single frames read by range then decoded to raw little-endian pixels (transcode.ts).
 */
import type { BlobStore } from '../storage/blob-store.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { EXPLICIT_VR_BIG_ENDIAN } from '../dicom/transfer-syntax.js';
import { AppError } from '../errors.js';
import { readFrames } from './retrieve.js';
import { decodedFrameLength, decodeFrame, initializeCodecs, MAX_TRANSCODE_BYTES, swapToLittleEndian, type PixelAttributes } from './transcode.js';

/** The stored file in one buffer; a 406 for files over MAX_TRANSCODE_BYTES (checked before and while reading). */
export async function readWholeInstance(blobs: BlobStore, instance: StoredInstance, maxBytes: number = MAX_TRANSCODE_BYTES): Promise<Buffer> {
  if (instance.blobSize > maxBytes) throw tooLargeFile(instance.blobSize, maxBytes);
  const stream = await blobs.get(instance.blobKey);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw tooLargeFile(size, maxBytes);
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks, size);
}

function tooLargeFile(bytes: number, maxBytes: number): AppError {
  return new AppError(
    'NOT_ACCEPTABLE',
    `The instance is ${bytes} bytes, over the ${maxBytes}-byte limit for transcoding in memory; ask with transfer-syntax=* to receive it as stored`,
  );
}

/**
 * Raw little-endian pixels of the given frames, in request order. Compressed frames are decoded one
 * after another (synchronous WebAssembly); big-endian native frames have their 16-bit words swapped.
 * The decoded total is bounded by MAX_TRANSCODE_BYTES (a 406 before anything is read).
 */
export async function decodeFrames(
  blobs: BlobStore,
  instance: StoredInstance,
  attributes: PixelAttributes,
  frameNumbers: readonly number[],
  maxBytes: number = MAX_TRANSCODE_BYTES,
): Promise<Buffer[]> {
  const total = decodedFrameLength(attributes) * frameNumbers.length;
  if (total > maxBytes) {
    throw new AppError(
      'NOT_ACCEPTABLE',
      `The ${frameNumbers.length} frames asked for decode to ${total} bytes, over the ${maxBytes}-byte limit per request (PACS_DECODE_MAX_BYTES); ask for fewer frames`,
    );
  }
  const stored = await readFrames(blobs, instance, frameNumbers);
  if (instance.pixelData?.encapsulated !== true) {
    if (instance.transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN) return stored.map((frame) => swapToLittleEndian(frame, attributes.bitsAllocated));
    return stored;
  }
  await initializeCodecs();
  return stored.map((bitstream, index) => decodeFrame(instance.transferSyntaxUid, attributes, bitstream, frameNumbers[index]).pixels);
}
