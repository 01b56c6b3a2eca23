/** Picks the blob store named by the configuration and makes it ready (folder or bucket created). */
import type { BlobStoreConfig } from '../config.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

export async function createBlobStore(config: BlobStoreConfig): Promise<BlobStore> {
  switch (config.kind) {
    case 'fs':
      return FsBlobStore.create(config.root);
    case 's3':
      return S3BlobStore.create(config);
  }
}
