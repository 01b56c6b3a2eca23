/**
 * A parsed QIDO-RS query (PS3.18 §8.3.4 and §10.6): what to match, what to return, which page.
 * Parsing turns HTTP query parameters into this value and reports every mistake as a BadQueryError
 * naming the parameter. Matching semantics follow PS3.4 §C.2.2.2.
 */
export type QidoLevel = 'study' | 'series' | 'instance';

export interface AttributeMatch {
  /** 8-digit upper-case hex tag, e.g. '00100010'. */
  tag: string;
  /** Percent-decoded value as given: may hold wildcards, a range, or a UID list. Empty = universal match. */
  value: string;
}

export interface QidoQuery {
  level: QidoLevel;
  /** Scope from the path: /studies/{study}/series, /studies/{study}/series/{series}/instances, ... */
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  matches: AttributeMatch[];
  /** Extra attributes to return (tags), or 'all'. */
  includeFields: string[] | 'all';
  limit: number;
  offset: number;
  fuzzyMatching: boolean;
}
