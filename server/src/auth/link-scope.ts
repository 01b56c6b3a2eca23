/**
 * Confinement of a share link's principal (principal.ts `scope`), applied by access control to every
 * request made with one, whatever the route, so no route confines links by hand:
 *
 * - A DICOMweb read (permission `read`, interface `dicomweb`: QIDO-RS, WADO-RS instances, frames,
 *   metadata, bulk data, rendered, thumbnails) is served only inside the link's study: a `:study` other
 *   than the link's is a 404 "Study not found", a `:series` outside the link's series a 404 "Series not
 *   found" (the archive's own words for an unknown UID, so a link tells nothing about what else
 *   exists), and an instance is looked up by the archive under the study and series of the URL. A
 *   search is forced to the link's study (and series): `StudyInstanceUID` / `SeriesInstanceUID` keys,
 *   by keyword or tag, are replaced by their intersection with what the link shares; when nothing is
 *   left the answer is an empty result. A link to chosen series cannot read study-level routes other
 *   than searches (WADO-RS study retrieve, study metadata, study thumbnail): 403.
 * - A route that declares `link: 'self'` (http/route-access.ts) serves the link itself; its handler
 *   confines the request (sharing/, consults).
 * - Anything else (STOW-RS, AI, the orders API, reports, FHIR, the audit trail, the live socket): 403.
 */
import type { FastifyRequest } from 'fastify';
import { AppError, NotFoundError } from '../errors.js';
import type { LinkScope } from './principal.js';

const STUDY_KEYS = new Set(['studyinstanceuid', '0020000d']);
const SERIES_KEYS = new Set(['seriesinstanceuid', '0020000e']);

/** What access control does with a request made with a share link. */
export type LinkDecision = { kind: 'serve' } | { kind: 'empty-search' };

export function confineToLink(request: FastifyRequest, scope: LinkScope): LinkDecision {
  const config = request.routeOptions.config;
  if (config.link === 'self') return { kind: 'serve' };
  const audit = config.audit;
  if (config.permission !== 'read' || audit?.interface !== 'dicomweb') {
    throw new AppError('FORBIDDEN', 'A share link opens only the study it shares, read-only: this request is not part of what it shares');
  }
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  const study = params['study'];
  const series = params['series'];
  if (study !== undefined && study !== scope.study) throw new NotFoundError('Study not found');
  if (series !== undefined && scope.series !== undefined && !scope.series.includes(series)) throw new NotFoundError('Series not found');
  if (audit.action === 'query') return forceSearchFilter(request, scope, study === undefined, series === undefined && audit.queryLevel !== 'study');
  if (study === undefined) {
    throw new AppError('FORBIDDEN', 'A share link opens only the study it shares: name it in the URL');
  }
  if (series === undefined && scope.series !== undefined) {
    throw new AppError('FORBIDDEN', 'This link shares chosen series of the study: retrieve them series by series');
  }
  return { kind: 'serve' };
}

/** UIDs of a QIDO-RS UID match value (a list separated by `,` or `\`); undefined: universal (matches any). */
function uidsOf(values: readonly string[]): Set<string> | undefined {
  const uids = values.flatMap((value) => value.split(/[,\\]/)).map((uid) => uid.trim());
  if (uids.every((uid) => uid === '' || uid === '*')) return undefined;
  return new Set(uids.filter((uid) => uid !== ''));
}

/** Removes every key that names one of `keys` (keyword in any case, or the tag) and returns their values. */
function takeKeys(query: Record<string, unknown>, keys: ReadonlySet<string>): string[] | undefined {
  let values: string[] | undefined;
  for (const [name, raw] of Object.entries(query)) {
    if (!keys.has(name.trim().toLowerCase())) continue;
    delete query[name];
    const list = Array.isArray(raw) ? raw : [raw];
    values = [...(values ?? []), ...list.filter((v): v is string => typeof v === 'string')];
  }
  return values;
}

/**
 * The search's study (and series) keys become what the link shares, intersected with what the client
 * asked for. Keys are ANDed by the catalog while repeated values of one key are ORed, so a filter cannot
 * simply be added beside the client's: the keys are replaced.
 */
function forceSearchFilter(request: FastifyRequest, scope: LinkScope, noStudyInPath: boolean, filterSeries: boolean): LinkDecision {
  const query: Record<string, unknown> = { ...((request.query ?? {}) as Record<string, unknown>) };
  const askedStudies = takeKeys(query, STUDY_KEYS);
  const studyAsked = askedStudies === undefined ? undefined : uidsOf(askedStudies);
  if (studyAsked !== undefined && !studyAsked.has(scope.study)) return { kind: 'empty-search' };
  if (noStudyInPath) query['StudyInstanceUID'] = scope.study;
  if (scope.series !== undefined && filterSeries) {
    const askedSeries = takeKeys(query, SERIES_KEYS);
    const seriesAsked = askedSeries === undefined ? undefined : uidsOf(askedSeries);
    const allowed = scope.series.filter((uid) => seriesAsked === undefined || seriesAsked.has(uid));
    if (allowed.length === 0) return { kind: 'empty-search' };
    query['SeriesInstanceUID'] = allowed.join(',');
  }
  request.query = query;
  return { kind: 'serve' };
}
