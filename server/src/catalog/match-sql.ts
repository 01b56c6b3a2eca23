/**
 * Translates QIDO-RS matching keys into SQL conditions, following the matching kinds of PS3.4
 * §C.2.2.2: single value, list of UIDs / values, wildcards, ranges and universal matching. String
 * matching is case-sensitive (SQLite runs with case_sensitive_like=ON), person names are matched on
 * their upper-cased search column so they are case-insensitive on both engines.
 */
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { keywordOrTag } from './dictionary.js';
import { indexedAttributeAt, type IndexedAttribute } from './indexed-attributes.js';
import {
  hasWildcard,
  inclusiveUpperTime,
  isUniversal,
  parseDateMatch,
  parseIntegerMatch,
  parseTimeMatch,
  splitValueList,
  type PointOrRange,
} from './match-values.js';
import type { SqlEngine } from './migrations.js';
import type { AttributeMatch, QidoQuery } from './qido-query.js';

type Condition = RawBuilder<SqlBool>;

interface MatchContext {
  engine: SqlEngine;
  fuzzy: boolean;
  parameter: string;
}

export interface TranslatedMatches {
  conditions: Condition[];
  /** Keys that cannot be matched here (keyword, or tag when unknown), in request order. */
  ignoredKeys: string[];
}

const ESCAPE = '!';

/** '*' → '%', '?' → '_', with LIKE's own specials escaped (PS3.4 §C.2.2.2.4). */
export function likePattern(value: string): string {
  return value.replace(/[!%_]/g, (c) => ESCAPE + c).replace(/\*/g, '%').replace(/\?/g, '_');
}

function like(column: string, pattern: string): Condition {
  return sql<SqlBool>`${sql.ref(column)} like ${pattern} escape ${sql.lit(ESCAPE)}`;
}

function equals(column: string, value: string | number): Condition {
  return sql<SqlBool>`${sql.ref(column)} = ${value}`;
}

function anyOf(conditions: Condition[]): Condition {
  return conditions.length === 1 ? conditions[0]! : sql<SqlBool>`(${sql.join(conditions, sql` or `)})`;
}

function stringMatch(column: string, value: string): Condition {
  return hasWildcard(value) ? like(column, likePattern(value)) : equals(column, value);
}

/** The query value in the form of a stored search key: first name group, upper-cased, no trailing '^'. */
function personNameKey(value: string): string {
  const group = value.split('=').find((g) => g.trim() !== '') ?? '';
  return group.trim().replace(/\^+$/, '').toUpperCase();
}

/**
 * PN: case-insensitive. With fuzzymatching=true (PS3.18 §8.3.4.5) any name component may start with
 * the value: components are separated by '^' (and sometimes spaces) within the search key.
 */
function personNameMatch(column: string, value: string, fuzzy: boolean): Condition {
  const key = personNameKey(value);
  if (!fuzzy) return stringMatch(column, key);
  const prefix = likePattern(key) + '%';
  return anyOf([like(column, prefix), like(column, `%^${prefix}`), like(column, `% ${prefix}`)]);
}

function rangeMatch(column: string, parsed: PointOrRange, engine: SqlEngine, upper = (v: string) => v): Condition {
  if ('single' in parsed) return equals(column, parsed.single);
  // Bytewise comparison regardless of the PostgreSQL database collation (TM values contain '.').
  const ref = engine === 'postgres' ? sql`${sql.ref(column)} collate "C"` : sql.ref(column);
  const parts: Condition[] = [];
  if (parsed.range.lower !== undefined) parts.push(sql<SqlBool>`${ref} >= ${parsed.range.lower}`);
  if (parsed.range.upper !== undefined) parts.push(sql<SqlBool>`${ref} <= ${upper(parsed.range.upper)}`);
  if (parts.length === 0) return sql<SqlBool>`${sql.ref(column)} is not null`;
  return sql<SqlBool>`(${sql.join(parts, sql` and `)})`;
}

/**
 * ModalitiesInStudy matches when any series of the study has a matching Modality (PS3.18 §10.6.1.2);
 * a series whose instances are all rejected (count 0) does not count.
 */
function modalitiesMatch(value: string): Condition {
  const modality = stringMatch('m.modality', value);
  return sql<SqlBool>`exists (select 1 from ${sql.table('series')} as ${sql.id('m')} where ${sql.ref('m.study_fk')} = ${sql.ref('st.id')} and ${sql.ref('m.num_instances')} > 0 and ${modality})`;
}

function itemMatch(attribute: IndexedAttribute, item: string, ctx: MatchContext): Condition {
  const column = attribute.matchColumn ?? attribute.column;
  switch (attribute.match) {
    case 'pn':
      return personNameMatch(column, item, ctx.fuzzy);
    case 'date':
      return rangeMatch(column, parseDateMatch(item, ctx.parameter), ctx.engine);
    case 'time':
      return rangeMatch(column, parseTimeMatch(item, ctx.parameter), ctx.engine, inclusiveUpperTime);
    case 'integer':
      return equals(column, parseIntegerMatch(item, ctx.parameter));
    case 'modalities':
      return modalitiesMatch(item);
    default:
      return stringMatch(column, item);
  }
}

function valueMatch(attribute: IndexedAttribute, value: string, ctx: MatchContext): Condition | undefined {
  const items = splitValueList(value, attribute.vr);
  if (items.length === 0) return undefined;
  if (attribute.match === 'uid') {
    return sql<SqlBool>`${sql.ref(attribute.column)} in (${sql.join(items)})`;
  }
  return anyOf(items.map((item) => itemMatch(attribute, item, ctx)));
}

function groupByTag(matches: AttributeMatch[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const { tag, value } of matches) groups.set(tag, [...(groups.get(tag) ?? []), value]);
  return groups;
}

const PATIENT_ID = '00100020';
const ISSUER_OF_PATIENT_ID = '00100021';

/** The condition of one attribute's values (any of them), on `column` instead of its own when given. */
function attributeMatch(attribute: IndexedAttribute, values: string[], ctx: MatchContext, column?: string): Condition | undefined {
  const target = column === undefined ? attribute : { ...attribute, column, matchColumn: undefined };
  const perValue = values.map((v) => valueMatch(target, v, ctx)).filter((c): c is Condition => c !== undefined);
  return perValue.length > 0 ? anyOf(perValue) : undefined;
}

function allOf(conditions: Condition[]): Condition {
  return conditions.length === 1 ? conditions[0]! : sql<SqlBool>`(${sql.join(conditions, sql` and `)})`;
}

/**
 * Patient ID and Issuer of Patient ID match together, on any identifier of the patient: its own
 * (p.patient_id, p.issuer) or one of its other IDs (Other Patient IDs Sequence, table
 * patient_other_ids). `PatientID=X&IssuerOfPatientID=Y` finds the patient for whom X is an identifier
 * issued by Y, e.g. the national citizen ID with its authority; either key alone matches any
 * identifier (or issuer) of the patient. PS3.18 §10.6.1.2 leaves the matching of patient identifiers
 * to the origin server; this is how IHE PIX-style cross-identifiers are meant to be found.
 */
function patientIdentifierMatch(groups: Map<string, string[]>, ctx: Omit<MatchContext, 'parameter'>, level: QidoQuery['level']): Condition | undefined {
  const keys: Array<[string, 'patient_id' | 'issuer']> = [
    [PATIENT_ID, 'patient_id'],
    [ISSUER_OF_PATIENT_ID, 'issuer'],
  ];
  const own: Condition[] = [];
  const other: Condition[] = [];
  for (const [tag, column] of keys) {
    const values = groups.get(tag);
    if (values === undefined || values.some(isUniversal)) continue;
    const attribute = indexedAttributeAt(tag, level)!;
    const matchCtx = { ...ctx, parameter: attribute.keyword };
    const onOwn = attributeMatch(attribute, values, matchCtx, `pi.${column}`);
    const onOther = attributeMatch(attribute, values, matchCtx, `o.${column}`);
    if (onOwn !== undefined) own.push(onOwn);
    if (onOther !== undefined) other.push(onOther);
  }
  if (own.length === 0) return undefined;
  // Two indexed lookups joined by UNION (an OR with a correlated EXISTS would scan every patient).
  return sql<SqlBool>`${sql.ref('p.id')} in (select ${sql.ref('pi.id')} from ${sql.table('patients')} as ${sql.id('pi')} where ${allOf(own)} union select ${sql.ref('o.patient_fk')} from ${sql.table('patient_other_ids')} as ${sql.id('o')} where ${allOf(other)})`;
}

/**
 * One condition per matched attribute; a key repeated in the request matches any of its values.
 * Universal matching adds no condition (the attribute is still returned).
 */
export function translateMatches(query: QidoQuery, engine: SqlEngine): TranslatedMatches {
  const conditions: Condition[] = [];
  const ignoredKeys: string[] = [];
  const groups = groupByTag(query.matches);
  const identifiers = patientIdentifierMatch(groups, { engine, fuzzy: query.fuzzyMatching }, query.level);
  if (identifiers !== undefined) conditions.push(identifiers);
  for (const [tag, values] of groups) {
    // A key with only universal values is a return key, not a filter: never an ignored match.
    if (values.every(isUniversal)) continue;
    if (tag === PATIENT_ID || tag === ISSUER_OF_PATIENT_ID) continue; // patientIdentifierMatch
    const attribute = indexedAttributeAt(tag, query.level);
    if (!attribute?.match) {
      ignoredKeys.push(keywordOrTag(tag));
      continue;
    }
    if (values.some(isUniversal)) continue; // one universal value matches everything
    const ctx: MatchContext = { engine, fuzzy: query.fuzzyMatching, parameter: attribute.keyword };
    const perValue = values.map((v) => valueMatch(attribute, v, ctx)).filter((c): c is Condition => c !== undefined);
    if (perValue.length > 0) conditions.push(anyOf(perValue));
  }
  return { conditions, ignoredKeys };
}

/** Scope from the request path: /studies/{study}/series/{series}/instances (PS3.18 §10.6.1). */
export function scopeConditions(query: QidoQuery): Condition[] {
  const conditions: Condition[] = [];
  if (query.studyInstanceUid !== undefined) conditions.push(equals('st.study_uid', query.studyInstanceUid));
  if (query.seriesInstanceUid !== undefined && query.level !== 'study') conditions.push(equals('se.series_uid', query.seriesInstanceUid));
  return conditions;
}
