/**
 * FHIR's HTTP conventions (https://hl7.org/fhir/R4/http.html) for the `/fhir` routes: errors as
 * OperationOutcome with the matching status, searchset Bundles with self / next / previous links,
 * the `application/fhir+json` media type and `_format` / Accept negotiation (JSON only).
 */
import type { Bundle, BundleLink, OperationOutcome, Resource } from 'fhir/r4.js';
import { AppError, httpStatusOf, isAppError, type ErrorCode } from '../errors.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

type IssueType = OperationOutcome['issue'][number]['code'];

/** OperationOutcome issue types (http://hl7.org/fhir/issue-type) of the archive's error codes. */
function issueTypeOf(code: string, status: number): IssueType {
  const byCode: Partial<Record<ErrorCode, IssueType>> = {
    BAD_QUERY: 'invalid',
    BAD_REQUEST: 'invalid',
    UNAUTHENTICATED: 'login',
    FORBIDDEN: 'forbidden',
    NOT_FOUND: 'not-found',
    NOT_ACCEPTABLE: 'not-supported',
    UNSUPPORTED_MEDIA_TYPE: 'not-supported',
    TOO_MANY_REQUESTS: 'throttled',
    PAYLOAD_TOO_LARGE: 'too-costly',
    AUDIT_UNAVAILABLE: 'transient',
    AUTH_UNAVAILABLE: 'transient',
    INDEX_FAILURE: 'transient',
    SERVICE_BUSY: 'transient',
  };
  const known = byCode[code as ErrorCode];
  if (known !== undefined) return known;
  if (status === 404) return 'not-found';
  if (status === 405) return 'not-supported';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'exception';
  return 'invalid';
}

export function operationOutcome(severity: 'error' | 'fatal' | 'warning' | 'information', code: IssueType, diagnostics: string, expression?: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity, code, diagnostics, ...(expression === undefined ? {} : { expression: [expression] }) }],
  };
}

/**
 * An error as FHIR answers it: the archive's status for its code, an OperationOutcome naming what was
 * wrong (never a patient value: the messages of errors.ts never quote one). Unexpected errors are a 500
 * without details.
 */
export function outcomeOf(err: unknown): { status: number; outcome: OperationOutcome } {
  if (isAppError(err)) {
    const status = httpStatusOf(err.code);
    const internal = status >= 500 && !['INDEX_FAILURE', 'SERVICE_BUSY', 'AUTH_UNAVAILABLE', 'AUDIT_UNAVAILABLE', 'STORAGE_FAILURE'].includes(err.code);
    const parameter = (err as { parameter?: string }).parameter;
    return {
      status,
      outcome: operationOutcome(status >= 500 ? 'fatal' : 'error', issueTypeOf(err.code, status), internal ? 'Internal server error' : `${err.code}: ${err.message}`, parameter),
    };
  }
  const fastify = err as { statusCode?: number; code?: string; message?: string };
  if (typeof fastify.statusCode === 'number' && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    return { status: fastify.statusCode, outcome: operationOutcome('error', issueTypeOf(fastify.code ?? '', fastify.statusCode), fastify.message ?? 'Bad request') };
  }
  return { status: 500, outcome: operationOutcome('fatal', 'exception', 'Internal server error') };
}

/**
 * `_format` (which overrides Accept) and Accept: JSON is all this server writes. Refused with 406
 * when the client wants only XML or RDF.
 */
export function checkFormat(format: string | string[] | undefined, accept: string | undefined): void {
  const formats = format === undefined ? [] : Array.isArray(format) ? format : [format];
  if (formats.length > 1) throw new AppError('BAD_QUERY', 'Query parameter "_format" may be given once');
  const wanted = formats[0];
  if (wanted !== undefined) {
    if (!['json', 'application/json', 'application/fhir+json'].includes(wanted.split(';')[0]!.trim().toLowerCase())) {
      throw new AppError('NOT_ACCEPTABLE', 'Only JSON is served: _format may be json, application/json or application/fhir+json');
    }
    return;
  }
  if (accept === undefined || accept.trim() === '') return;
  const types = accept.split(',').map((item) => item.split(';')[0]!.trim().toLowerCase());
  if (!types.some((t) => t === '*/*' || t === 'application/*' || t === 'application/json' || t === 'application/fhir+json' || t === 'application/json+fhir')) {
    throw new AppError('NOT_ACCEPTABLE', 'Only JSON is served: accept application/fhir+json');
  }
}

/** The query string of a Bundle link: the parameters used, then `_count` and `_offset`. */
function linkQuery(query: Record<string, string | string[] | undefined>, used: readonly string[], count: number, offset: number): string {
  const params = new URLSearchParams();
  for (const name of used) {
    const value = query[name];
    for (const item of value === undefined ? [] : Array.isArray(value) ? value : [value]) params.append(name, item);
  }
  params.set('_count', String(count));
  if (offset > 0) params.set('_offset', String(offset));
  return params.toString();
}

/** A searchset Bundle of one page with its navigation links (absolute, on the given base). */
export function searchsetBundle(input: {
  fhirBase: string;
  type: string;
  query: Record<string, string | string[] | undefined>;
  used: readonly string[];
  count: number;
  offset: number;
  total: number;
  resources: readonly Resource[];
}): Bundle {
  const { fhirBase, type, query, used, count, offset, total, resources } = input;
  const url = (at: number) => `${fhirBase}/${type}?${linkQuery(query, used, count, at)}`;
  const link: BundleLink[] = [{ relation: 'self', url: url(offset) }];
  if (count > 0 && offset + count < total) link.push({ relation: 'next', url: url(offset + count) });
  if (count > 0 && offset > 0) link.push({ relation: 'previous', url: url(Math.max(0, offset - count)) });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total,
    link,
    ...(resources.length === 0
      ? {}
      : { entry: resources.map((resource) => ({ fullUrl: `${fhirBase}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' as const } })) }),
  };
}
