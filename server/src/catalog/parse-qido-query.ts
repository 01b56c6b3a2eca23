/**
 * Parses QIDO-RS query parameters (PS3.18 §8.3.4) into a QidoQuery. Every mistake is a BadQueryError
 * naming the parameter. Values arrive already percent-decoded.
 *
 *   {attributeID}={value}   attributeID = keyword (PatientName) or 8-hex tag (00100010); may repeat
 *   includefield=a,b / all  §8.3.4.3, comma-separated and/or repeated
 *   limit, offset           §8.3.4.4, non-negative integers; limit capped at maxLimit
 *   fuzzymatching           §8.3.4.5, true | false
 */
import { BadQueryError } from '../errors.js';
import { entryForKeyword, entryForTag } from './dictionary.js';
import { validateMatchValue } from './match-values.js';
import type { AttributeMatch, QidoLevel, QidoQuery } from './qido-query.js';

export interface QidoScope {
  studyInstanceUid?: string | undefined;
  seriesInstanceUid?: string | undefined;
}

export interface QidoLimits {
  defaultLimit: number;
  maxLimit: number;
}

export type QidoParams = Record<string, string | string[] | undefined>;

/** Query parameters of PS3.18 §8.3.3 that the HTTP layer handles (media type, charset). */
const HTTP_LAYER_PARAMS = new Set(['accept', 'charset']);

/** Resolves an attributeID (keyword or tag) to its 8-hex tag. */
export function resolveAttribute(attributeId: string, parameter: string): string {
  const id = attributeId.trim();
  if (id.includes('.')) {
    throw new BadQueryError(parameter, `"${id}": sequence attribute paths are not supported`);
  }
  if (/^[0-9A-Fa-f]{8}$/.test(id)) return id.toUpperCase();
  const entry = /^[A-Za-z][A-Za-z0-9]*$/.test(id) ? entryForKeyword(id) : undefined;
  if (entry) return entry.tag;
  if (/^[0-9A-Fa-f,()]+$/.test(id) && /\d/.test(id)) {
    throw new BadQueryError(parameter, `"${id}" is not a valid tag: expected 8 hexadecimal digits like 00100010`);
  }
  throw new BadQueryError(parameter, `"${id}" is neither a DICOM keyword nor a tag`);
}

function valuesOf(raw: string | string[]): string[] {
  return Array.isArray(raw) ? raw : [raw];
}

function single(name: string, raw: string | string[]): string {
  const values = valuesOf(raw);
  if (values.length !== 1) throw new BadQueryError(name, 'must be given once');
  return values[0]!.trim();
}

function nonNegativeInteger(name: string, raw: string | string[]): number {
  const text = single(name, raw);
  if (!/^\d{1,15}$/.test(text)) throw new BadQueryError(name, 'must be a non-negative integer');
  return Number(text);
}

function parseBoolean(name: string, raw: string | string[]): boolean {
  const text = single(name, raw).toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new BadQueryError(name, 'must be true or false');
}

function parseIncludeFields(name: string, raw: string | string[], into: Set<string>): boolean {
  let all = false;
  for (const token of valuesOf(raw).flatMap((v) => v.split(','))) {
    const field = token.trim();
    if (field === '') continue;
    if (field.toLowerCase() === 'all') all = true;
    else into.add(resolveAttribute(field, name));
  }
  return all;
}

function parseMatch(name: string, raw: string | string[]): AttributeMatch[] {
  const tag = resolveAttribute(name, name);
  const vr = entryForTag(tag)?.vr;
  return valuesOf(raw).map((value) => {
    if (vr) validateMatchValue(vr, value, name);
    return { tag, value };
  });
}

export function parseQidoQuery(level: QidoLevel, scope: QidoScope, params: QidoParams, limits: QidoLimits): QidoQuery {
  const matches: AttributeMatch[] = [];
  const includes = new Set<string>();
  let includeAll = false;
  let limit = limits.defaultLimit;
  let offset = 0;
  let fuzzyMatching = false;
  for (const [name, raw] of Object.entries(params)) {
    if (raw === undefined) continue;
    const lower = name.toLowerCase();
    if (lower === 'includefield') includeAll = parseIncludeFields(name, raw, includes) || includeAll;
    else if (lower === 'limit') limit = nonNegativeInteger(name, raw);
    else if (lower === 'offset') offset = nonNegativeInteger(name, raw);
    else if (lower === 'fuzzymatching') fuzzyMatching = parseBoolean(name, raw);
    else if (!HTTP_LAYER_PARAMS.has(lower)) matches.push(...parseMatch(name, raw));
  }
  return {
    level,
    ...(scope.studyInstanceUid !== undefined && { studyInstanceUid: scope.studyInstanceUid }),
    ...(scope.seriesInstanceUid !== undefined && level === 'instance' && { seriesInstanceUid: scope.seriesInstanceUid }),
    matches,
    includeFields: includeAll ? 'all' : [...includes],
    limit: Math.min(limit, limits.maxLimit),
    offset,
    fuzzyMatching,
  };
}
