/**
 * Blob storage: DICOM Part-10 files kept byte for byte, addressed by an opaque key chosen by the
 * archive. DICOM-agnostic on purpose (Orthanc's IStorageArea): the index maps UIDs to keys.
 *
 * Every implementation must pass `blob-store.contract.ts`.
 */
import type { Readable } from 'node:stream';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive (HTTP Range semantics). */
  end: number;
}

export interface BlobInfo {
  key: string;
  size: number;
}

/** A blob as listed by `list`. */
export interface ListedBlob extends BlobInfo {
  /**
   * When the blob was written: the file's mtime; S3's LastModified, which for a multipart upload is
   * when the upload *started*. Orphan sweeps compare it with an age threshold (archive/fsck.ts).
   */
  modifiedAt: Date;
}

/** How a put may be done. */
export interface PutOptions {
  /**
   * The caller promises that `key` is new (a random key nothing has written or references) and that
   * nothing reads or lists it before the put resolves, as ingest does: its index row, the only way to
   * find the blob, is written after. A store may then write the blob in place instead of atomically
   * (the folder store: no temp file and rename; it refuses a key that exists). Still: the blob is
   * durable when the put resolves and a rejected put leaves nothing under `key`. A crash mid-put may
   * leave a partial blob under `key` that nothing references: an orphan, which the sweep removes once
   * older than its threshold (archive/fsck.ts). Stores without a cheaper way ignore it (S3: a put is
   * atomic anyway).
   */
  fresh?: boolean;
}

export interface BlobStore {
  /**
   * Optional: key prefixes (`xx/yy/`) are folders whose creation costs a mkdir and an fsync of their
   * parent (the folder store), so ingest keeps one prefix for a run of new keys (archive.ts, BlobKeys).
   */
  readonly prefixFolders?: boolean;
  /**
   * Streams `body` into the blob `key`. Atomic: until the returned promise resolves no reader can see
   * the blob, and if it rejects (or `body` errors) nothing is left behind under `key`.
   * Overwrites an existing blob with the same key (atomically). `options.fresh`: see PutOptions.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<BlobInfo>;
  /** Whole blob as a stream. Rejects with NotFoundError (code NOT_FOUND) for an unknown key. */
  get(key: string): Promise<Readable>;
  /** Bytes `start..end` inclusive, as one ranged read (file read at offset; S3 Range GET). */
  getRange(key: string, range: ByteRange): Promise<Buffer>;
  /**
   * Optional: bytes `start..end` inclusive written into `target` from `targetOffset` (nothing else of
   * `target` is touched), for a caller that brings its own memory (a whole instance of a study or series
   * retrieve, frames as stored: reused buffers, archive/part-buffers.ts and answer-buffers.ts): the folder
   * store keeps nothing open for it and makes no buffer of its own. The same errors as getRange; a
   * `target` too small is a RangeError. Without it, callers use getRange and copy.
   */
  readInto?(key: string, range: ByteRange, target: Buffer, targetOffset: number): Promise<void>;
  /** Size of the blob, or undefined if it does not exist. */
  stat(key: string): Promise<BlobInfo | undefined>;
  /** Removes the blob; removing a missing blob is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Every complete blob, streamed page by page in no particular order (never all keys in memory).
   * Unfinished puts are not blobs and are not listed. Used by fsck to find blobs nothing indexes.
   */
  list(): AsyncIterable<ListedBlob>;
  /**
   * Removes what interrupted puts left behind (a killed process's temp files, unfinished multipart
   * uploads) last written before `olderThan`, and returns how many it removed. Such leftovers are
   * never visible as blobs; this only reclaims their space. The cutoff keeps puts of other live
   * processes sharing the store out of harm's way.
   */
  removePartials(olderThan: Date): Promise<number>;
  /**
   * Optional: drops what the store keeps open of `key` (read handles), or of every key when none is
   * given, because another process sharing the store rewrote or removed it (the change feed says so).
   */
  forgetCached?(key?: string): void;
  /** Releases connections or handles. */
  close(): Promise<void>;
}
