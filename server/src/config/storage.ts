/**
 * Where the product keeps its data: the blob store (a folder, or MinIO/S3) holding the DICOM files
 * and the SQL index (SQLite, or PostgreSQL). Embedded defaults live under the data folder.
 */
import path from 'node:path';
import { GiB, MiB, type EnvReader } from './env-reader.js';

export type BlobStoreConfig =
  | { kind: 'fs'; root: string }
  | {
      kind: 's3';
      endPoint: string;
      port: number;
      useSSL: boolean;
      accessKey: string;
      secretKey: string;
      bucket: string;
      region: string;
      prefix: string;
      partSize: number;
    };

export type IndexConfig =
  | { kind: 'sqlite'; file: string }
  | { kind: 'postgres'; connectionString: string; schema: string; poolSize: number };

/** PACS_BLOB_STORE and its settings; the folder store defaults to `<dataDir>/blobs`. */
export function readBlobStoreConfig(read: EnvReader, dataDir: string): BlobStoreConfig {
  const blobKind = read.oneOf('PACS_BLOB_STORE', ['fs', 's3'] as const, 'fs');
  return blobKind === 'fs'
    ? { kind: 'fs', root: path.resolve(dataDir, read.string('PACS_BLOB_DIR', 'blobs')) }
    : {
        kind: 's3',
        endPoint: read.required('PACS_S3_ENDPOINT', 'PACS_BLOB_STORE=s3'),
        port: read.integer('PACS_S3_PORT', 9000, 1, 65535),
        useSSL: read.boolean('PACS_S3_USE_SSL', false),
        accessKey: read.required('PACS_S3_ACCESS_KEY', 'PACS_BLOB_STORE=s3'),
        secretKey: read.required('PACS_S3_SECRET_KEY', 'PACS_BLOB_STORE=s3'),
        bucket: read.string('PACS_S3_BUCKET', 'dicom'),
        region: read.string('PACS_S3_REGION', 'us-east-1'),
        prefix: read.string('PACS_S3_PREFIX', ''),
        partSize: read.integer('PACS_S3_PART_SIZE', 16 * MiB, 5 * MiB, 5 * GiB),
      };
}

/** PACS_INDEX and its settings; SQLite defaults to `<dataDir>/index.sqlite`. */
export function readIndexConfig(read: EnvReader, dataDir: string): IndexConfig {
  const indexKind = read.oneOf('PACS_INDEX', ['sqlite', 'postgres'] as const, 'sqlite');
  return indexKind === 'sqlite'
    ? { kind: 'sqlite', file: path.resolve(dataDir, read.string('PACS_SQLITE_FILE', 'index.sqlite')) }
    : {
        kind: 'postgres',
        connectionString: read.required('PACS_POSTGRES_URL', 'PACS_INDEX=postgres'),
        schema: read.string('PACS_POSTGRES_SCHEMA', 'public'),
        poolSize: read.integer('PACS_POSTGRES_POOL_SIZE', 10, 1, 200),
      };
}
