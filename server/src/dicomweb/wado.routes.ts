/**
 * WADO-RS routes (PS3.18 §10.4), first slice: whole instances of a study / series / instance as
 * stored, and frames of an instance as stored (native, or the compressed bitstream when accepted).
 * No transcoding or decoding yet: what cannot be served as stored is a 406 (see wado-accept.ts).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { frameSpans, parseFrameList } from '../archive/retrieve.js';
import type { InstanceScope, StoredInstance } from '../catalog/catalog.js';
import { dicomwebBaseUrl } from './base-url.js';
import { checkUidParam } from './uid-param.js';
import { negotiateFrames, negotiateInstances } from './wado-accept.js';

export interface WadoRoutesOptions {
  archive: Archive;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for Content-Location (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
}

interface RetrieveParams {
  study: string;
  series?: string;
  instance?: string;
}

export async function wadoRoutes(app: FastifyInstance, options: WadoRoutesOptions): Promise<void> {
  const { archive } = options;

  const scopeOf = (params: RetrieveParams): InstanceScope => {
    checkUidParam(params.study, 'StudyInstanceUID');
    checkUidParam(params.series, 'SeriesInstanceUID');
    checkUidParam(params.instance, 'SOPInstanceUID');
    return { studyInstanceUid: params.study, seriesInstanceUid: params.series, sopInstanceUid: params.instance };
  };

  const retrieveInstances = async (request: FastifyRequest<{ Params: RetrieveParams }>, reply: FastifyReply) => {
    const instances = await archive.findInstances(scopeOf(request.params));
    negotiateInstances(request.headers.accept, instances);
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    const boundary = randomUUID();
    request.log.info({ instances: instances.length }, 'WADO-RS instances');
    return reply
      .type(`multipart/related; type="application/dicom"; boundary=${boundary}`)
      .send(Readable.from(instanceParts(archive, instances, boundary, base), { objectMode: false }));
  };

  app.get('/studies/:study', retrieveInstances);
  app.get('/studies/:study/series/:series', retrieveInstances);
  app.get('/studies/:study/series/:series/instances/:instance', retrieveInstances);

  app.get<{ Params: RetrieveParams & { frames: string } }>(
    '/studies/:study/series/:series/instances/:instance/frames/:frames',
    async (request, reply) => {
      const scope = scopeOf(request.params);
      const frameNumbers = parseFrameList(request.params.frames);
      const [instance] = await archive.findInstances(scope);
      frameSpans(instance!, frameNumbers); // 400/404/406 about the frames before negotiation
      const representation = negotiateFrames(request.headers.accept, instance!);
      const frames = await archive.readFrames(instance!, frameNumbers);
      const boundary = randomUUID();
      const chunks: Buffer[] = [];
      for (const frame of frames) {
        chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${representation.partContentType}\r\n\r\n`, 'latin1'), frame, CRLF);
      }
      chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
      return reply
        .type(`multipart/related; type="${representation.mediaType}"; boundary=${boundary}`)
        .send(Buffer.concat(chunks));
    },
  );
}

const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * The multipart body: each stored file streamed byte for byte, one after another (only one blob open
 * at a time; a client that goes away ends the generator, which closes the open blob stream).
 */
async function* instanceParts(archive: Archive, instances: readonly StoredInstance[], boundary: string, base: string): AsyncGenerator<Buffer> {
  for (const instance of instances) {
    const location = `${base}/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${instance.sopInstanceUid}`;
    yield Buffer.from(
      `--${boundary}\r\nContent-Type: application/dicom; transfer-syntax=${instance.transferSyntaxUid}\r\nContent-Location: ${location}\r\n\r\n`,
      'latin1',
    );
    const blob = await archive.openInstance(instance);
    for await (const chunk of blob) yield chunk as Buffer;
    yield CRLF;
  }
  yield Buffer.from(`--${boundary}--\r\n`, 'latin1');
}
