/**
 * HTTP caching of retrieved content (RFC 9111, RFC 9110 §8.8.3, §13.1.2). A stored SOP instance's pixel
 * data never changes under its UID, so what derives from it alone (frames, pixel bulk data, rendered
 * images) is `immutable` for a year; the whole instance carries the patient's identity, which the hospital
 * link may correct (docs/architecture.md, "Hospital link"), so it is revalidated every time (`no-cache`;
 * its ETag names the identity of record), as are study / series responses, which can also grow as
 * instances arrive. Always `private`: it is patient data, never for shared
 * caches. The strong ETag names the exact representation (storage keys + everything that shapes the
 * bytes: path, negotiated media type / transfer syntax, rendering parameters, base URL), and multipart
 * bodies take their boundary from it, so the same ETag always means the same bytes.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Pixel content of one instance: never changes. */
export const IMMUTABLE_CACHE_CONTROL = 'private, max-age=31536000, immutable';
/** Whole instances, studies, series: revalidate with If-None-Match before reuse. */
export const REVALIDATE_CACHE_CONTROL = 'private, no-cache';

export interface CachePolicy {
  /** Strong ETag, quoted. */
  etag: string;
  /** true: derived from one instance (immutable); false: study / series level (no-cache). */
  immutable: boolean;
}

/**
 * Part of every ETag: bump it when the server starts producing different bytes for the same request
 * (transcoder, renderer or multipart layout changes), so clients do not keep stale immutable copies.
 */
export const REPRESENTATION_VERSION = '1';

/** A strong ETag from the parts that identify a representation (order matters). */
export function representationETag(parts: ReadonlyArray<string | number | undefined>): string {
  const hash = createHash('sha256');
  hash.update(`v${REPRESENTATION_VERSION}\u0000`);
  for (const part of parts) hash.update(`${part ?? ''}\u0000`);
  return `"${hash.digest('base64url').slice(0, 32)}"`;
}

/** A multipart boundary that is the same whenever the ETag is (so the bytes are too). */
export function boundaryOf(policy: CachePolicy): string {
  return `pacs-${policy.etag.slice(1, -1)}`;
}

/**
 * Whether If-None-Match matches `etag`: `*`, or a list containing it (weak comparison, as RFC 9110
 * §13.1.2 requires for If-None-Match: a `W/` prefix is ignored).
 */
export function ifNoneMatchMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  if (text.trim() === '*') return true;
  return text.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}

/** Adds names to the Vary header, keeping those already there (CORS adds `Origin`). */
export function addVary(reply: FastifyReply, ...names: string[]): FastifyReply {
  const current = reply.getHeader('vary');
  const existing = (Array.isArray(current) ? current.join(',') : String(current ?? ''))
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  for (const name of names) {
    if (!existing.some((present) => present.toLowerCase() === name.toLowerCase() || present === '*')) existing.push(name);
  }
  return reply.header('Vary', existing.join(', '));
}

/** Cache-Control, ETag and Vary: Accept on a successful (or 304) reply. */
export function withCacheHeaders(reply: FastifyReply, policy: CachePolicy): FastifyReply {
  void reply.header('Cache-Control', policy.immutable ? IMMUTABLE_CACHE_CONTROL : REVALIDATE_CACHE_CONTROL).header('ETag', policy.etag);
  return addVary(reply, 'Accept');
}

/**
 * Answers 304 Not Modified (with the validators, no body) when the client already has this
 * representation; call it before reading any blob. Returns true when it did.
 */
export function sendIfNotModified(request: FastifyRequest, reply: FastifyReply, policy: CachePolicy): boolean {
  if (!ifNoneMatchMatches(request.headers['if-none-match'], policy.etag)) return false;
  void withCacheHeaders(reply, policy).code(304).send();
  return true;
}
