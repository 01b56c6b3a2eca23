/**
 * What the backup store holds besides the blob copies (which keep the primary's keys, so a copy is
 * found by the key the index names): everything of the backup's own under `_backup/`, a prefix no
 * archive key has (archive keys are `xx/yy/<uuid>.dcm`).
 *
 * - `_backup/deleted/<key>`: a tombstone, written when the index stopped referencing `<key>` (purge,
 *   DELETE, a recompressed original). The copy is kept PACS_BACKUP_KEEP_DELETED_DAYS; a restore never
 *   re-indexes a tombstoned blob (it was deleted on purpose).
 * - `_backup/index/<id>.sqlite.gz` (SQLite snapshot, gzip) or `<id>.pgdump` (pg_dump custom format):
 *   the index backups; `_backup/index/catalogue.json` lists them, newest first, so a restore finds the
 *   newest without listing the whole store.
 */
import { Readable } from 'node:stream';
import type { BlobStore } from '../storage/blob-store.js';
import { isAppError } from '../errors.js';

export const BACKUP_PREFIX = '_backup/';
export const TOMBSTONE_PREFIX = '_backup/deleted/';
export const INDEX_PREFIX = '_backup/index/';
export const CATALOGUE_KEY = '_backup/index/catalogue.json';

export function tombstoneKey(blobKey: string): string {
  return `${TOMBSTONE_PREFIX}${blobKey}`;
}

/** True for the backup's own objects (never blob copies). */
export function isBackupObject(key: string): boolean {
  return key.startsWith(BACKUP_PREFIX);
}

/** One index backup on the backup store. */
export interface IndexGeneration {
  id: string;
  key: string;
  engine: 'sqlite' | 'postgres';
  createdAt: string;
  /** Bytes on the backup store (compressed). */
  bytes: number;
  /** sha256 of the object on the backup store. */
  sha256: string;
  /** Instances the index held (SQLite: counted in the snapshot; PostgreSQL: counted just before the dump). */
  instances: number | undefined;
  /** Tables in the snapshot (the catalog's and every side store's: his, reports, sharing, fhir, jobs, audit, backup). */
  tables: string[];
}

export interface IndexCatalogue {
  generations: IndexGeneration[];
}

export async function readCatalogue(store: BlobStore): Promise<IndexCatalogue> {
  let stream: Readable;
  try {
    stream = await store.get(CATALOGUE_KEY);
  } catch (err) {
    if (isAppError(err) && err.code === 'NOT_FOUND') return { generations: [] };
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<IndexCatalogue>;
  return { generations: Array.isArray(parsed.generations) ? parsed.generations : [] };
}

/** Replaces the catalogue (the store's put is atomic: a reader sees the old or the new one). */
export async function writeCatalogue(store: BlobStore, catalogue: IndexCatalogue): Promise<void> {
  await store.put(CATALOGUE_KEY, Readable.from([Buffer.from(JSON.stringify(catalogue, null, 2))]));
}
