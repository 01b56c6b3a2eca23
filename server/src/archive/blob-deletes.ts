/**
 * Deleting the blobs of removed index rows (a purge of rejected instances, a DELETE; docs/architecture.md,
 * "Curation"). The rows went first, in a transaction that also queued their blob keys
 * (`pending_blob_deletes`); here each blob is deleted, unless an index row references its key after
 * all, and its queue entry cleared. A crash in between leaves the key queued: fsck --repair and the
 * server's startup recovery finish it. A blob is never deleted while a row references it.
 */
import type { Catalog } from '../catalog/catalog.js';
import type { BlobStore } from '../storage/blob-store.js';

export async function deleteQueuedBlobs(blobs: BlobStore, catalog: Catalog, blobKeys: readonly string[]): Promise<{ deleted: number; failed: number }> {
  const keys = [...new Set(blobKeys)];
  if (keys.length === 0) return { deleted: 0, failed: 0 };
  const referenced = await catalog.referencedBlobKeys(keys);
  const cleared: string[] = [...keys.filter((key) => referenced.has(key))];
  let deleted = 0;
  let failed = 0;
  for (const key of keys) {
    if (referenced.has(key)) continue;
    try {
      await blobs.delete(key);
      cleared.push(key);
      deleted += 1;
    } catch {
      failed += 1;
    }
  }
  await catalog.clearPendingBlobDeletes(cleared);
  return { deleted, failed };
}
