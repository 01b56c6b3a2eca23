/**
 * WADO-RS bulk data route (PS3.18 §10.4.1.1.5): the pixel data value of an instance, or another binary
 * element's value at any depth (`bulkdata/TAG[/ITEM/TAG...]`, archive/metadata.ts), the targets of
 * the BulkDataURIs in metadata responses. Multipart by default (§8.7.3), or the bare value for
 * `Accept: application/octet-stream`, which also honours a single HTTP byte range (206 / 416).
 * The value is streamed by bounded ranged blob reads (archive/bulkdata.ts). Encapsulated pixel data
 * the client does not accept as stored is decoded in memory (bounded; every frame, in frame order),
 * with ranges over the decoded bytes. Immutable, with a strong ETag (http-cache.ts).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { elementBulkData, isPixelDataPath, sliceBuffers, type BulkDataValue } from '../archive/bulkdata.js';
import { pixelAttributesFromJson } from '../archive/transcode.js';
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { negotiateBulkData, parseRange } from './bulkdata-accept.js';
import { boundaryOf, representationETag, sendIfNotModified, withCacheHeaders, type CachePolicy } from './http-cache.js';
import { bulkDataUri } from './metadata.routes.js';
import { checkUidParam } from '../http/uid-param.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

export interface BulkDataRoutesOptions {
  archive: Archive;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for Content-Location (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
}

interface BulkDataParams {
  study: string;
  series: string;
  instance: string;
  /** The element: a tag, or sequence tag/item number/tag... (archive/metadata.ts). */
  '*': string;
}

export async function bulkDataRoutes(app: FastifyInstance, options: BulkDataRoutesOptions): Promise<void> {
  const { archive } = options;

  app.get<{ Params: BulkDataParams }>('/studies/:study/series/:series/instances/:instance/bulkdata/*', requires('read', { audit: 'retrieve' }), async (request, reply) => {
    const { study, series, instance: sop, '*': tag } = request.params;
    checkUidParam(study, 'StudyInstanceUID');
    checkUidParam(series, 'SeriesInstanceUID');
    checkUidParam(sop, 'SOPInstanceUID');
    const scope = { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop };
    const [instance] = await archive.findInstances(scope);
    if (!isPixelDataPath(tag)) return sendElement(request, reply, options, instance!, tag);
    const value = archive.bulkData(instance!, tag); // 404 / 406 about the element before negotiation
    const representation = negotiateBulkData(request.headers.accept, instance!, value.encapsulated);
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    // A 206 carries the ETag of the whole representation (RFC 9110 §14.3), so it does not depend on Range.
    // Decoded values have the same content type as native ones: the decode flag tells them apart.
    const policy: CachePolicy = {
      immutable: true,
      etag: representationETag([
        'bulkdata',
        instance!.blobKey,
        value.length,
        String(representation.multipart),
        representation.contentType,
        representation.decode ? 'decoded' : 'stored',
        representation.multipart ? base : '',
      ]),
    };
    if (sendIfNotModified(request, reply, policy)) return reply;

    // The decoded value (every frame, bounded in memory) or the stored value (ranged reads).
    let body: BodySource = { length: value.length, read: (start, end) => valueBytes(archive, instance!, value, start, end) };
    if (representation.decode) {
      const [withAttributes] = await archive.findInstancesWithAttributes(scope);
      const frames = await archive.readDecodedBulkData(instance!, pixelAttributesFromJson(withAttributes!.attributes));
      body = { length: frames.reduce((sum, frame) => sum + frame.length, 0), read: (start, end) => sliceBuffers(frames, start, end) };
    }
    request.log.info({ bytes: body.length, multipart: representation.multipart, decoded: representation.decode }, 'WADO-RS bulk data');

    if (representation.multipart) {
      const boundary = boundaryOf(policy);
      const location = bulkDataUri(base, instance!, instance!.pixelData!.tag);
      const head = Buffer.from(`--${boundary}\r\nContent-Type: ${representation.contentType}\r\nContent-Location: ${location}\r\n\r\n`, 'latin1');
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
      return withCacheHeaders(reply, policy)
        .type(`multipart/related; type="application/octet-stream"; boundary=${boundary}`)
        .header('Content-Length', head.length + body.length + tail.length)
        .send(Readable.from(framed(head, bytesOf(body, 0, body.length - 1), tail), { objectMode: false }));
    }

    return sendBody(request, reply, body, representation.contentType, policy);
  });
}

/**
 * A binary element other than pixel data (e.g. an annotation group's coordinates, an ICC profile): read
 * whole from the stored data set. Its bytes do not depend on the pixel data's transfer syntax: the data
 * set is little endian in every syntax but the retired Explicit VR Big Endian.
 */
async function sendElement(request: FastifyRequest, reply: FastifyReply, options: BulkDataRoutesOptions, instance: StoredInstance, path: string): Promise<FastifyReply> {
  const { archive } = options;
  const bytes = await elementBulkData((value, start, end) => archive.readBulkData(instance, value, start, end), instance, path);
  const datasetSyntax = instance.transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN ? EXPLICIT_VR_BIG_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN;
  const representation = negotiateBulkData(request.headers.accept, { ...instance, transferSyntaxUid: datasetSyntax }, false);
  const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
  const policy: CachePolicy = {
    immutable: true,
    etag: representationETag(['bulkdata', instance.blobKey, path, bytes.length, String(representation.multipart), representation.contentType, representation.multipart ? base : '']),
  };
  if (sendIfNotModified(request, reply, policy)) return reply;
  request.log.info({ bytes: bytes.length, multipart: representation.multipart, element: path }, 'WADO-RS bulk data');
  const body: BodySource = { length: bytes.length, read: (start, end) => [bytes.subarray(start, end + 1)] };
  if (representation.multipart) {
    const boundary = boundaryOf(policy);
    const head = Buffer.from(`--${boundary}\r\nContent-Type: ${representation.contentType}\r\nContent-Location: ${bulkDataUri(base, instance, path)}\r\n\r\n`, 'latin1');
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
    return withCacheHeaders(reply, policy)
      .type(`multipart/related; type="application/octet-stream"; boundary=${boundary}`)
      .header('Content-Length', head.length + bytes.length + tail.length)
      .send(Buffer.concat([head, bytes, tail]));
  }
  return sendBody(request, reply, body, representation.contentType, policy);
}

/** A value to send: its length and its bytes start..end (inclusive). */
interface BodySource {
  length: number;
  read(start: number, end: number): AsyncIterable<Buffer> | Iterable<Buffer>;
}

/**
 * A bulk data value as a single-part body of `contentType`, streamed by bounded ranged reads, with
 * `Accept-Ranges: bytes` and one HTTP byte range honoured (206 / 416; anything else is the whole
 * value). Also serves video bitstreams from the rendered route.
 */
export function sendValue(
  request: FastifyRequest,
  reply: FastifyReply,
  archive: Archive,
  instance: StoredInstance,
  value: BulkDataValue,
  contentType: string,
  policy: CachePolicy,
): FastifyReply {
  return sendBody(request, reply, { length: value.length, read: (start, end) => valueBytes(archive, instance, value, start, end) }, contentType, policy);
}

/** sendValue for any body source (stored or decoded bytes). */
function sendBody(request: FastifyRequest, reply: FastifyReply, body: BodySource, contentType: string, policy: CachePolicy): FastifyReply {
  void reply.type(contentType).header('Accept-Ranges', 'bytes');
  const range = parseRange(request.headers.range, body.length);
  if (range === 'unsatisfiable') {
    return reply
      .code(416)
      .type('application/json')
      .header('Content-Range', `bytes */${body.length}`)
      .send({ error: { code: 'RANGE_NOT_SATISFIABLE', message: `The range starts past the end of the value (${body.length} bytes)` } });
  }
  const { start, end } = range ?? { start: 0, end: body.length - 1 };
  if (range !== undefined) void reply.code(206).header('Content-Range', `bytes ${start}-${end}/${body.length}`);
  return withCacheHeaders(reply, policy)
    .header('Content-Length', end - start + 1)
    .send(Readable.from(bytesOf(body, start, end), { objectMode: false }));
}

/** The body's bytes start..end; nothing for an empty body. */
async function* bytesOf(body: BodySource, start: number, end: number): AsyncGenerator<Buffer> {
  if (end >= start) yield* body.read(start, end);
}

/** The value's bytes start..end; nothing for an empty value. */
async function* valueBytes(archive: Archive, instance: StoredInstance, value: BulkDataValue, start: number, end: number): AsyncGenerator<Buffer> {
  if (end >= start) yield* archive.readBulkData(instance, value, start, end);
}

async function* framed(head: Buffer, body: AsyncIterable<Buffer>, tail: Buffer): AsyncGenerator<Buffer> {
  yield head;
  yield* body;
  yield tail;
}
