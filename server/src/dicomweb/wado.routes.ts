/**
 * WADO-RS routes (PS3.18 §10.4): whole instances of a study / series / instance, and frames of an
 * instance. Stored bytes are streamed as they are whenever the client accepts the stored syntax;
 * otherwise instances are transcoded to Explicit VR Little Endian and frames decoded to raw
 * little-endian pixels where the archive can decode the stored syntax (wado-accept.ts decides, 406
 * when neither works). Caching headers and 304s: http-cache.ts (frames immutable; whole instances,
 * studies and series revalidated, as they carry the patient identity the hospital link may correct).
 * An instance whose patient identity was corrected after it was stored goes out with the identity of
 * record in its header (Archive.openInstance / transcodeInstance), its pixel data unchanged.
 */
import { Readable } from 'node:stream';
import { PartBuffers } from '../archive/part-buffers.js';
import { AnswerBuffers } from '../archive/answer-buffers.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { frameSpans, parseFrameList } from '../archive/retrieve.js';
import { pixelAttributesFromJson } from '../archive/transcode.js';
import { readsAsStored } from '../archive/identity-on-read.js';
import type { InstanceScope, StoredInstance } from '../catalog/catalog.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, JPEG_BASELINE_8BIT } from '../dicom/transfer-syntax.js';
import { DEFAULT_JPEG_QUALITY } from '../archive/render.js';
import { BadQueryError } from '../errors.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { boundaryOf, representationETag, sendIfNotModified, withCacheHeaders, type CachePolicy } from './http-cache.js';
import { checkUidParam } from '../http/uid-param.js';
import { negotiateFrames, negotiateInstances } from './wado-accept.js';
import { sendInstancesZip, zipRequested } from './wado-zip.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

export interface WadoRoutesOptions {
  archive: Archive;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for Content-Location (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
  /** Most frame numbers in one frame list (PACS_WADO_MAX_FRAMES; default MAX_FRAMES_PER_REQUEST). */
  maxFrames?: number | undefined;
  /** Buffers frame answers as stored are read into, reused once written out (default: a pool of these routes). */
  frameBuffers?: AnswerBuffers;
}

interface RetrieveParams {
  study: string;
  series?: string;
  instance?: string;
}

export async function wadoRoutes(app: FastifyInstance, options: WadoRoutesOptions): Promise<void> {
  const { archive } = options;
  // Frame answers as stored reuse their buffers once written out (answer-buffers.ts).
  const frameBuffers = options.frameBuffers ?? new AnswerBuffers();

  const scopeOf = (params: RetrieveParams): InstanceScope => {
    checkUidParam(params.study, 'StudyInstanceUID');
    checkUidParam(params.series, 'SeriesInstanceUID');
    checkUidParam(params.instance, 'SOPInstanceUID');
    return { studyInstanceUid: params.study, seriesInstanceUid: params.series, sopInstanceUid: params.instance };
  };

  const retrieveInstances = async (request: FastifyRequest<{ Params: RetrieveParams }>, reply: FastifyReply) => {
    const instances = await archive.findInstances(scopeOf(request.params));
    // `Accept: application/zip` (PS3.18 §8.7.3.5.2): the same instances as one ZIP file (wado-zip.ts).
    const zip = zipRequested(request.headers.accept);
    if (zip !== undefined) return sendInstancesZip(request, reply, archive, instances, zip.transferSyntax);
    const transcode = negotiateInstances(request.headers.accept, instances, archive.decodeMaxBytes);
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    // Whole instances carry the patient's identity, which the hospital link can correct at any time:
    // revalidated every time (the ETag names the identity of record), never immutable. A study or series
    // can also gain instances.
    const policy: CachePolicy = {
      immutable: false,
      etag: representationETag([
        'instances',
        base,
        ...instances.map((i) => `${i.sopInstanceUid}|${i.blobKey}|${transcode.has(i.sopInstanceUid) ? EXPLICIT_VR_LITTLE_ENDIAN : i.transferSyntaxUid}${identityTag(i)}`),
      ]),
    };
    if (sendIfNotModified(request, reply, policy)) return reply;
    // A lone instance to transcode is decoded before the reply starts, so a decoding failure is still a
    // clean 406; in a series or study each is decoded as its part is reached, one at a time.
    const prepared = new Map<string, Buffer>();
    if (instances.length === 1 && transcode.has(instances[0]!.sopInstanceUid)) {
      prepared.set(instances[0]!.sopInstanceUid, await archive.transcodeInstance(instances[0]!));
    }
    const boundary = boundaryOf(policy);
    request.log.info({ instances: instances.length, transcoded: transcode.size }, 'WADO-RS instances');
    void withCacheHeaders(reply, policy).type(`multipart/related; type="application/dicom"; boundary=${boundary}`);
    // Stored bytes only: the length is known from the index before the first byte, so the client can show
    // progress (and there is no chunked framing). Transcoded sizes are known only once decoded, those of
    // files sent with a corrected patient identity once their header is rewritten.
    const corrected = instances.filter((i) => !readsAsStored(i)).length;
    if (corrected > 0) request.log.info({ corrected }, 'WADO-RS instances sent with the identity (patient, study) of record');
    if (transcode.size === 0 && corrected === 0) void reply.header('content-length', storedLength(instances, boundary, base));
    // Part buffers are used again once written out: the bytes not yet written are those in the body
    // stream's buffer and the response's unfinished writes (its own and its socket's), counted only while
    // the body is piped straight into the response (nothing between them that could hold a part).
    const sink = reply.raw;
    const buffers = new PartBuffers(() => (pipedOnlyInto(body, sink) ? body.readableLength + sink.writableLength : undefined));
    const body = Readable.from(instanceParts(archive, instances, transcode, prepared, boundary, base, buffers), { objectMode: false });
    return reply.send(body);
  };

  app.get('/studies/:study', requires('read', { audit: 'retrieve' }), retrieveInstances);
  app.get('/studies/:study/series/:series', requires('read', { audit: 'retrieve' }), retrieveInstances);
  app.get('/studies/:study/series/:series/instances/:instance', requires('read', { audit: 'retrieve' }), retrieveInstances);

  app.get<{ Params: RetrieveParams & { frames: string }; Querystring: Record<string, string | string[] | undefined> }>(
    '/studies/:study/series/:series/instances/:instance/frames/:frames',
    requires('read', { audit: 'retrieve' }),
    async (request, reply) => {
      const scope = scopeOf(request.params);
      const frameNumbers = parseFrameList(request.params.frames, options.maxFrames);
      const quality = frameQuality(request.query);
      const [instance] = await archive.findInstances(scope);
      frameSpans(instance!, frameNumbers); // 400/404/406 about the frames before negotiation
      const representation = negotiateFrames(request.headers.accept, instance!);
      const encodeQuality = representation.encode === JPEG_BASELINE_8BIT ? (quality ?? DEFAULT_JPEG_QUALITY) : undefined;
      const policy: CachePolicy = {
        immutable: true,
        etag: representationETag([
          'frames',
          instance!.blobKey,
          frameNumbers.join(','),
          representation.mediaType,
          representation.partContentType,
          String(representation.decode),
          ...(representation.encode === undefined ? [] : [`encode:${representation.encode}:${encodeQuality ?? ''}`]),
        ]),
      };
      if (sendIfNotModified(request, reply, policy)) return reply;
      let frames: Buffer[];
      if (representation.encode !== undefined) {
        const [withAttributes] = await archive.findInstancesWithAttributes(scope);
        const dataset = withAttributes!.attributes;
        frames = await archive.encodeFrames(instance!, dataset, pixelAttributesFromJson(dataset), frameNumbers, {
          syntax: representation.encode,
          ...(encodeQuality === undefined ? {} : { quality: encodeQuality }),
        });
        request.log.info({ frames: frameNumbers.length, encoded: representation.encode }, 'WADO-RS frames encoded');
      } else if (representation.decode) {
        const [withAttributes] = await archive.findInstancesWithAttributes(scope);
        frames = await archive.readDecodedFrames(instance!, pixelAttributesFromJson(withAttributes!.attributes), frameNumbers);
      } else {
        const take = (size: number) => frameBuffers.take(size);
        frames = await archive.readFrames(instance!, frameNumbers, take);
        frameBuffers.giveBackWhenSent(reply.raw, frames);
      }
      const boundary = boundaryOf(policy);
      const chunks: Buffer[] = [];
      for (const frame of frames) {
        chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${representation.partContentType}\r\n\r\n`, 'latin1'), frame, CRLF);
      }
      chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
      // The parts are written as they are, not copied into one buffer first (frames can be megabytes each);
      // the length is known, so the reply still carries Content-Length rather than chunked encoding.
      const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      return withCacheHeaders(reply, policy)
        .type(`multipart/related; type="${representation.mediaType}"; boundary=${boundary}`)
        .header('content-length', length)
        .send(Readable.from(chunks, { objectMode: false }));
    },
  );
}

const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * `quality=1..100`: the JPEG quality of frames encoded as JPEG Baseline (image/jpeg). PS3.18 defines
 * `quality` for rendered resources (§8.3.5.1.3) and no parameter for frames; the frames resource takes
 * the same query parameter, same syntax, and ignores it for every other representation.
 */
export function frameQuality(query: Record<string, string | string[] | undefined>): number | undefined {
  const value = query['quality'];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new BadQueryError('quality', 'must be given once');
  if (!/^\s*[0-9]+\s*$/.test(value) || Number(value) < 1 || Number(value) > 100) throw new BadQueryError('quality', 'the quality must be a whole number from 1 to 100');
  return Number(value);
}

/**
 * Part of an instance's ETag: the patient identity of record it is read with, when one is applied, and
 * the study and series of record of an instance curation moved.
 */
export function identityTag(instance: StoredInstance): string {
  const patient = instance.patient;
  const identity = patient === undefined ? '' : `|patient:${patient.version}:${patient.digest}:${patient.differs ? 1 : 0}`;
  return instance.placement === undefined ? identity : `${identity}|study:${instance.placement.digest}`;
}

/**
 * The multipart body: each stored file byte for byte, in order. Small files come whole from the
 * archive's read-ahead (a bounded window of ranged reads issued ahead of the part being sent); large
 * ones are streamed, one blob open at a time. A client that goes away ends the generator, which closes
 * the open blob stream. Instances in `transcode` are read whole and transcoded to Explicit VR Little
 * Endian, one at a time.
 */
async function* instanceParts(
  archive: Archive,
  instances: readonly StoredInstance[],
  transcode: ReadonlySet<string>,
  prepared: Map<string, Buffer>,
  boundary: string,
  base: string,
  buffers: PartBuffers,
): AsyncGenerator<Buffer> {
  // Instances read whole come as whole parts (head, stored bytes, CRLF in one buffer, the file read into
  // place): one chunk per part, fewer writes to the socket than head, body and CRLF apart, and no copy.
  const framing = (instance: StoredInstance) => ({ head: partHead(boundary, base, instance, instance.transferSyntaxUid), tail: CRLF });
  // Every chunk is counted by `buffers` as it is passed on: parts read ahead by the read-ahead itself,
  // the others here (pass).
  const pass = (chunk: Buffer) => {
    buffers.passed(chunk.length);
    return chunk;
  };
  for await (const { instance, bytes } of archive.readInstancesAhead(instances, (i) => transcode.has(i.sopInstanceUid), framing, buffers)) {
    if (bytes !== undefined) {
      yield bytes;
      continue;
    }
    const transcoded = transcode.has(instance.sopInstanceUid);
    const head = partHead(boundary, base, instance, transcoded ? EXPLICIT_VR_LITTLE_ENDIAN : instance.transferSyntaxUid);
    if (transcoded) {
      const body = prepared.get(instance.sopInstanceUid) ?? (await archive.transcodeInstance(instance));
      prepared.delete(instance.sopInstanceUid);
      yield pass(Buffer.concat([head, body, CRLF]));
      continue;
    }
    yield pass(head);
    let sent = 0;
    const blob = await archive.openInstance(instance);
    for await (const chunk of blob) {
      sent += (chunk as Buffer).length;
      yield pass(chunk as Buffer);
    }
    // The announced Content-Length came from the index: a file that disagrees must break the reply, not skew it.
    if (readsAsStored(instance) && sent !== instance.blobSize) {
      throw new Error(`stored file of ${instance.sopInstanceUid} has ${sent} bytes, the index says ${instance.blobSize}`);
    }
    yield pass(CRLF);
  }
  yield pass(closingDelimiter(boundary));
}

/**
 * Whether `body` is piped into `sink` and nothing else (how Fastify sends a stream when no hook replaces
 * it). Reads the stream's pipe list (`_readableState.pipes`, Node's internal state, the same in Node 20
 * to 24): there is no public API for it; if it ever changes shape the answer is false and part buffers
 * are simply not reused.
 */
function pipedOnlyInto(body: Readable, sink: NodeJS.WritableStream): boolean {
  const pipes = (body as unknown as { _readableState?: { pipes?: unknown } })._readableState?.pipes;
  return Array.isArray(pipes) && pipes.length === 1 && pipes[0] === sink;
}

function partHead(boundary: string, base: string, instance: StoredInstance, syntax: string): Buffer {
  const location = `${base}/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${instance.sopInstanceUid}`;
  return Buffer.from(`--${boundary}\r\nContent-Type: application/dicom; transfer-syntax=${syntax}\r\nContent-Location: ${location}\r\n\r\n`, 'latin1');
}

function closingDelimiter(boundary: string): Buffer {
  return Buffer.from(`--${boundary}--\r\n`, 'latin1');
}

/** Bytes of the multipart body of `instances` sent as stored (instanceParts without transcoding). */
function storedLength(instances: readonly StoredInstance[], boundary: string, base: string): number {
  let length = closingDelimiter(boundary).length;
  for (const instance of instances) length += partHead(boundary, base, instance, instance.transferSyntaxUid).length + instance.blobSize + CRLF.length;
  return length;
}
