/** STOW-RS routes (PS3.18 §10.5): POST {root}/studies and {root}/studies/{study}. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { Archive } from '../archive/archive.js';
import { AppError } from '../errors.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { acceptsDicomJson } from './negotiate.js';
import { checkUidParam } from '../http/uid-param.js';
import { checkDeclaredLength, stowBoundary, storeMultipart } from './stow.js';
import { routeAccess, storedObjects } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

export interface StowRoutesOptions {
  archive: Archive;
  maxBodyBytes: number;
  /** Most parts in one request (PACS_STOW_MAX_PARTS); default DEFAULT_STOW_MAX_PARTS. */
  maxParts?: number | undefined;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for RetrieveURLs (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
}

export async function stowRoutes(app: FastifyInstance, options: StowRoutesOptions): Promise<void> {
  // The body is consumed by our streaming parser, never buffered by Fastify: every content type is
  // passed through as the raw stream and judged by `stowBoundary`.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  const handle = async (request: FastifyRequest, reply: FastifyReply, studyUid?: string) => {
    if (!acceptsDicomJson(request.headers.accept)) {
      throw new AppError('NOT_ACCEPTABLE', 'STOW-RS responses are available as application/dicom+json only');
    }
    checkUidParam(studyUid, 'StudyInstanceUID');
    const boundary = stowBoundary(request.headers['content-type']);
    checkDeclaredLength(request.headers['content-length'], { maxBodyBytes: options.maxBodyBytes });
    const body = (request.body as Readable | undefined) ?? request.raw;
    const outcome = await storeMultipart(options.archive, body, boundary, options, studyUid);
    request.auditObjects = storedObjects(outcome.stored); // the audit record names each stored instance
    if (outcome.failed.length > 0) request.auditDetail = { failed: outcome.failed.length };
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    request.log.info({ stored: outcome.stored.length, failed: outcome.failed.length }, 'STOW-RS finished');
    return reply
      .code(outcome.httpStatus())
      .type('application/dicom+json')
      .send(outcome.toDicomJson(base, studyUid));
  };

  app.post('/studies', requires('store', { audit: 'store' }), (request, reply) => handle(request, reply));
  app.post<{ Params: { study: string } }>('/studies/:study', requires('store', { audit: 'store' }), (request, reply) =>
    handle(request, reply, request.params.study),
  );
}
