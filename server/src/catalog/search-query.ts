/**
 * QIDO-RS search (PS3.18 §10.6): one SELECT per request over the level's table joined upwards to its
 * series, study and patient, so higher-level attributes are matchable and returnable at every level
 * (including the study-spanning /series and /instances forms). Rows come in primary-key order with
 * limit/offset applied in SQL, so consecutive pages neither skip nor repeat.
 */
import { sql, type Kysely, type RawBuilder, type SelectQueryBuilder, type SqlBool } from 'kysely';
import type { QidoResult } from './catalog.js';
import { buildDataset, planResults, type ResultPlan } from './build-results.js';
import { columnAlias, indexedAttributesAt, LEVEL_ALIAS } from './indexed-attributes.js';
import { scopeConditions, translateMatches } from './match-sql.js';
import type { SqlEngine } from './migrations.js';
import type { QidoLevel, QidoQuery } from './qido-query.js';
import type { CatalogDatabase } from './schema.js';

// The joined shape varies per level; rows are read back by alias, so a loose builder type suffices.
type LooseSelect = SelectQueryBuilder<any, any, Record<string, unknown>>;

function fromLevel(db: Kysely<CatalogDatabase>, level: QidoLevel): LooseSelect {
  const studies = (from: LooseSelect) => from.innerJoin('patients as p', 'p.id', 'st.patient_fk');
  if (level === 'study') return studies(db.selectFrom('studies as st') as unknown as LooseSelect);
  const series = (from: LooseSelect) => studies(from.innerJoin('studies as st', 'st.id', 'se.study_fk'));
  if (level === 'series') return series(db.selectFrom('series as se') as unknown as LooseSelect);
  return series((db.selectFrom('instances as i') as unknown as LooseSelect).innerJoin('series as se', 'se.id', 'i.series_fk'));
}

function selections(level: QidoLevel, plan: ResultPlan) {
  const columns = indexedAttributesAt(level).map((a) => a.column);
  if (plan.jsonAlias) columns.push(`${LEVEL_ALIAS[level]}.attributes`);
  return [...new Set(columns)].map((column) => sql.ref(column).as(columnAlias(column)));
}

function whereAll(conditions: RawBuilder<SqlBool>[]): RawBuilder<SqlBool> {
  return sql<SqlBool>`${sql.join(conditions, sql` and `)}`;
}

/**
 * Rejected instances (IOCM, docs/architecture.md "Curation") are never found: at the instance level by
 * their flag; a series or study whose instances are all rejected has a count of 0 (counters count only
 * what is not rejected) and is not found either.
 */
function visibleOnly(level: QidoLevel): RawBuilder<SqlBool> {
  if (level === 'study') return sql<SqlBool>`${sql.ref('st.num_instances')} > 0`;
  if (level === 'series') return sql<SqlBool>`${sql.ref('se.num_instances')} > 0`;
  return sql<SqlBool>`${sql.ref('i.rejected')} = 0`;
}

export async function runSearch(db: Kysely<CatalogDatabase>, engine: SqlEngine, query: QidoQuery): Promise<QidoResult> {
  const { conditions, ignoredKeys } = translateMatches(query, engine);
  const where = [visibleOnly(query.level), ...scopeConditions(query), ...conditions];
  const plan = planResults(query);
  let select = fromLevel(db, query.level).select(selections(query.level, plan));
  if (where.length > 0) select = select.where(whereAll(where));
  const rows = await select
    .orderBy(sql.ref(`${LEVEL_ALIAS[query.level]}.id`))
    .limit(query.limit)
    .offset(query.offset)
    .execute();
  return { matches: rows.map((row) => buildDataset(row, plan)), ignoredKeys };
}
