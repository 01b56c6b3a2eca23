/**
 * WADO-RS metadata routes (PS3.18 §10.4.1.1.2): the DICOM JSON (Annex F) of every instance of a study,
 * series or instance, answered from the index alone (archive/metadata.ts). Responses carry a strong
 * ETag (If-None-Match → 304) and are gzip-compressed when the client accepts it.
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LRUCache } from 'lru-cache';
import type { Archive } from '../archive/archive.js';
import { identityKey, metadataETag, metadataText } from '../archive/metadata.js';
import type { InstanceScope, InstanceWithAttributes, StoredInstance } from '../catalog/catalog.js';
import { AppError } from '../errors.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { addVary } from './http-cache.js';
import { acceptsDicomJson } from './negotiate.js';
import { checkUidParam } from '../http/uid-param.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

const gzip = promisify(gzipCallback);

/** Bodies smaller than this are sent uncompressed: gzip would barely shrink them. */
export const METADATA_GZIP_MIN_BYTES = 1024;
const GZIP_LEVEL = 6;

export interface MetadataRoutesOptions {
  archive: Archive;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for BulkDataURIs (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
  /** Bytes of finished responses kept (PACS_METADATA_CACHE_MB; default DEFAULT_METADATA_CACHE_BYTES); 0: none. */
  cacheBytes?: number | undefined;
}

export const DEFAULT_METADATA_CACHE_BYTES = 64 * 1024 * 1024;

interface MetadataParams {
  study: string;
  series?: string;
  instance?: string;
}

/** The bulk data URI of one element of one instance (the route in bulkdata.routes.ts serves it). */
export function bulkDataUri(base: string, instance: StoredInstance, tag: string): string {
  return `${base}/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${instance.sopInstanceUid}/bulkdata/${tag}`;
}

export async function metadataRoutes(app: FastifyInstance, options: MetadataRoutesOptions): Promise<void> {
  const { archive } = options;

  /**
   * Finished responses by ETag (which names the base URL, every instance with its blob and the patient
   * identity of record it is read with), so a series that gains an instance, or whose patient is
   * corrected, gets a new key and the old entry simply ages out. Why: a 500-instance series
   * is ~2 MB of JSON to assemble and gzip (tens of ms) each time a viewer opens it, while its content
   * only changes when an instance arrives. Bounded by bytes.
   */
  const cacheBytes = options.cacheBytes ?? DEFAULT_METADATA_CACHE_BYTES;
  const responses =
    cacheBytes > 0 ? new LRUCache<string, CachedBody>({ maxSize: Math.ceil(cacheBytes / 2), sizeCalculation: (body) => Math.max(1, body.bytes.length) }) : undefined;
  /**
   * Each instance's JSON text by storage key, base URL and the patient identity of record it is read with
   * (what it depends on): when a series gains an instance, as it does all through an acquisition while a
   * viewer polls, only the new one is built; a corrected or merged patient gives its instances new keys.
   */
  const instanceTexts =
    cacheBytes > 0 ? new LRUCache<string, string>({ maxSize: Math.ceil(cacheBytes / 2), sizeCalculation: (text) => Math.max(1, text.length) }) : undefined;
  const instanceText = (entry: InstanceWithAttributes, base: string, built: { count: number }): string => {
    const key = `${entry.instance.blobKey}\u0000${base}\u0000${identityKey(entry.instance)}`;
    let text = instanceTexts?.get(key);
    if (text === undefined) {
      text = metadataText(entry, (i, tag) => bulkDataUri(base, i, tag));
      instanceTexts?.set(key, text);
      built.count += 1;
    }
    return text;
  };

  const metadata = async (request: FastifyRequest<{ Params: MetadataParams }>, reply: FastifyReply) => {
    const { study, series, instance } = request.params;
    checkUidParam(study, 'StudyInstanceUID');
    checkUidParam(series, 'SeriesInstanceUID');
    checkUidParam(instance, 'SOPInstanceUID');
    if (!acceptsDicomJson(request.headers.accept)) {
      throw new AppError('NOT_ACCEPTABLE', 'Metadata is available as application/dicom+json only (application/dicom+xml is not supported)');
    }
    const scope: InstanceScope = { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: instance };
    // The validator needs only the instance list (no attributes): a 304 or a cached body costs one light query.
    const instances = await archive.findInstances(scope);
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    const etag = metadataETag(instances, base);
    const gzipEtag = `${etag.slice(0, -1)}-gzip"`;
    void addVary(reply.header('Cache-Control', 'private, no-cache'), 'Accept-Encoding');

    const matched = matchingETag(request.headers['if-none-match'], [etag, gzipEtag]);
    if (matched !== undefined) return reply.code(304).header('ETag', matched).send();

    const wantsGzip = acceptsGzip(request.headers['accept-encoding']);
    void reply.type('application/dicom+json');
    // A body under METADATA_GZIP_MIN_BYTES is kept uncompressed, for every client.
    const plain = responses?.get(etag);
    const cached = wantsGzip ? (responses?.get(gzipEtag) ?? (plain !== undefined && plain.bytes.length < METADATA_GZIP_MIN_BYTES ? plain : undefined)) : plain;
    if (cached !== undefined) {
      request.log.info({ instances: instances.length, cached: true }, 'WADO-RS metadata');
      return sendBody(reply, cached);
    }

    const found = await archive.findInstancesWithAttributes(scope);
    const built = { count: 0 };
    const json = Buffer.from(`[${found.map((entry) => instanceText(entry, base, built)).join(',')}]`, 'utf8');
    // The ETag computed before the attributes were read names the instances actually sent only if nothing
    // arrived in between; otherwise the answer goes out with its own tag and is not cached.
    const current = metadataETag(found.map((entry) => entry.instance), base);
    const body: CachedBody =
      json.length >= METADATA_GZIP_MIN_BYTES && wantsGzip
        ? { bytes: await gzip(json, { level: GZIP_LEVEL }), etag: `${current.slice(0, -1)}-gzip"`, gzip: true }
        : { bytes: json, etag: current, gzip: false };
    if (current === etag) responses?.set(body.etag, body);
    request.log.info({ instances: found.length, built: built.count }, 'WADO-RS metadata');
    return sendBody(reply, body);
  };

  app.get('/studies/:study/metadata', requires('read', { audit: 'retrieve' }), metadata);
  app.get('/studies/:study/series/:series/metadata', requires('read', { audit: 'retrieve' }), metadata);
  app.get('/studies/:study/series/:series/instances/:instance/metadata', requires('read', { audit: 'retrieve' }), metadata);
}

interface CachedBody {
  bytes: Buffer;
  etag: string;
  gzip: boolean;
}

function sendBody(reply: FastifyReply, body: CachedBody): FastifyReply {
  if (body.gzip) void reply.header('Content-Encoding', 'gzip');
  return reply.header('ETag', body.etag).send(body.bytes);
}

/**
 * If-None-Match (RFC 9110 §13.1.2): `*`, or a list of entity tags compared weakly (a `W/` prefix is
 * ignored). Either representation's tag matches (both validate the same content); the result is the
 * tag to send with the 304: the one the client holds (the first given for `*`).
 */
export function matchingETag(header: string | undefined, etags: readonly [string, ...string[]]): string | undefined {
  if (header === undefined) return undefined;
  for (const item of header.split(',')) {
    const tag = item.trim().replace(/^W\//, '');
    if (tag === '*') return etags[0];
    if (etags.includes(tag)) return tag;
  }
  return undefined;
}

/** Accept-Encoding (RFC 9110 §12.5.3): gzip (or x-gzip) with q > 0, or `*` with q > 0 when gzip is not listed. */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let gzipQ: number | undefined;
  let anyQ: number | undefined;
  for (const item of header.split(',')) {
    const [name = '', ...params] = item.split(';').map((part) => part.trim());
    let q = 1;
    for (const param of params) {
      const match = /^q=([0-9.]+)$/i.exec(param);
      if (match) q = Number(match[1]);
    }
    const coding = name.toLowerCase();
    if (coding === 'gzip' || coding === 'x-gzip') gzipQ = Math.max(gzipQ ?? 0, q);
    else if (coding === '*') anyQ = q;
  }
  return (gzipQ ?? anyQ ?? 0) > 0;
}
