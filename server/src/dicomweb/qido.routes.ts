/** QIDO-RS routes (PS3.18 §10.6): search for studies, series and instances. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import type { QidoLevel } from '../catalog/qido-query.js';
import { parseQidoQuery } from '../catalog/parse-qido-query.js';
import { AppError } from '../errors.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { acceptsDicomJson } from './negotiate.js';
import { checkUidParam } from '../http/uid-param.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

export interface QidoRoutesOptions {
  archive: Archive;
  publicBaseUrl: string;
  /** Path of the DICOMweb root, for RetrieveURLs (not `prefix`: Fastify reads that option itself). */
  dicomwebPath: string;
  defaultLimit: number;
  maxLimit: number;
}

interface ScopeParams {
  study?: string;
  series?: string;
}

export async function qidoRoutes(app: FastifyInstance, options: QidoRoutesOptions): Promise<void> {
  const search = (level: QidoLevel) => async (request: FastifyRequest<{ Params: ScopeParams }>, reply: FastifyReply) => {
    if (!acceptsDicomJson(request.headers.accept)) {
      throw new AppError('NOT_ACCEPTABLE', 'QIDO-RS results are available as application/dicom+json only');
    }
    checkUidParam(request.params.study, 'StudyInstanceUID');
    checkUidParam(request.params.series, 'SeriesInstanceUID');
    const query = parseQidoQuery(
      level,
      { studyInstanceUid: request.params.study, seriesInstanceUid: request.params.series },
      request.query as Record<string, string | string[] | undefined>,
      { defaultLimit: options.defaultLimit, maxLimit: options.maxLimit },
    );
    const result = await options.archive.search(query);
    const base = dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPath);
    const warnings: string[] = [];
    if (result.ignoredKeys.length > 0) {
      // PS3.18 §8.3.4.1: unsupported matching keys are ignored and reported in a Warning header.
      warnings.push(`299 ${request.hostname}: "The following attributes are not supported for matching: ${result.ignoredKeys.join(', ')}"`);
    }
    if (pageCappedByServer(request.query, query.limit, result.matches.length)) {
      // PS3.18 §8.3.4.4: a `limit` above what the server supports (or none, when more match than the
      // default page) is not an error: the server returns its maximum and says so in a Warning header.
      warnings.push(`299 ${request.hostname}: "The number of results exceeded the maximum supported by the server. Additional results can be requested."`);
    }
    if (warnings.length > 0) void reply.header('Warning', warnings.length === 1 ? warnings[0] : warnings);
    return reply.type('application/dicom+json').send(result.matches.map((match) => withRetrieveUrl(match, level, base)));
  };

  app.get('/studies', requires('read', { audit: 'query', queryLevel: 'study' }), search('study'));
  app.get('/series', requires('read', { audit: 'query', queryLevel: 'series' }), search('series'));
  app.get('/instances', requires('read', { audit: 'query', queryLevel: 'instance' }), search('instance'));
  app.get('/studies/:study/series', requires('read', { audit: 'query', queryLevel: 'series' }), search('series'));
  app.get('/studies/:study/instances', requires('read', { audit: 'query', queryLevel: 'instance' }), search('instance'));
  app.get('/studies/:study/series/:series/instances', requires('read', { audit: 'query', queryLevel: 'instance' }), search('instance'));
}

/**
 * The page is full and its size was set by the server, not the client: no `limit` was given (the default
 * page), or the one given was above the server's maximum and was lowered to it.
 */
function pageCappedByServer(params: unknown, effectiveLimit: number, returned: number): boolean {
  if (returned < effectiveLimit) return false;
  const entries = Object.entries(params as Record<string, string | string[] | undefined>);
  const raw = entries.find(([name]) => name.toLowerCase() === 'limit')?.[1];
  const asked = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  return asked === undefined || Number(asked) > effectiveLimit;
}

/** Retrieve URL (0008,1190) of each match, as Tables 10.6.3-3/-4/-5 require. */
function withRetrieveUrl(match: DicomJsonDataset, level: QidoLevel, base: string): DicomJsonDataset {
  const study = match['0020000D']?.Value?.[0];
  const series = match['0020000E']?.Value?.[0];
  const instance = match['00080018']?.Value?.[0];
  let url: string | undefined;
  if (level === 'study' && study) url = `${base}/studies/${study}`;
  if (level === 'series' && study && series) url = `${base}/studies/${study}/series/${series}`;
  if (level === 'instance' && study && series && instance) {
    url = `${base}/studies/${study}/series/${series}/instances/${instance}`;
  }
  return url ? { ...match, '00081190': { vr: 'UR', Value: [url] } } : match;
}
