/**
 * What the FHIR API reads from the archive's index: patient rows, studies with their series and
 * instances, filtered the way FHIR searches ask (patient, identifiers, date ranges, last update) and
 * paged. A read-only Kysely connection of its own over the catalog's tables (catalog/schema.ts), like
 * the job store and the audit trail keep theirs: the Catalog interface answers QIDO-RS, whose matching
 * (wildcards, DICOM ranges) and return attributes are not FHIR's, and has no notion of "last updated".
 *
 * A study's last update (`meta.lastUpdated`, `_lastUpdated`) is the time its newest instance was indexed
 * (instances.created_at); patient identity corrections do not change the ImagingStudy (it names the
 * patient by reference only).
 */
import { sql, type Kysely, type SqlBool, type RawBuilder } from 'kysely';
import { openSideDatabase } from '../catalog/open-side-database.js';
import { identityOfPatientRow } from '../catalog/extract-attributes.js';
import type { CatalogDatabase } from '../catalog/schema.js';
import type { IndexConfig } from '../config.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { AppError, isAppError } from '../errors.js';
import type { DayRange, InstantRange } from './fhir-search.js';

export interface IndexPatient {
  rowId: number;
  /** The row's identity (`patientId` '' when the instances carried none). */
  identity: PatientIdentity;
}

export interface StudySummary {
  rowId: number;
  studyInstanceUid: string;
  patient: IndexPatient;
  studyDate: string | null;
  studyTime: string | null;
  timezoneOffset: string | null;
  accessionNumber: string | null;
  description: string | null;
  modalities: string[];
  numberOfSeries: number;
  numberOfInstances: number;
  /** ISO-8601 UTC: when the study's newest instance was indexed. */
  lastUpdated: string;
}

export interface SeriesDetail {
  seriesInstanceUid: string;
  number: number | null;
  modality: string | null;
  description: string | null;
  numberOfInstances: number;
  performedDate: string | null;
  performedTime: string | null;
  timezoneOffset: string | null;
  instances: Array<{ sopInstanceUid: string; sopClassUid: string; number: number | null }>;
}

export interface StudyDetail extends StudySummary {
  series: SeriesDetail[];
}

/** One identifier alternative of an ImagingStudy search: a Study Instance UID or an accession number. */
export type StudyIdentifier = { studyUid: string } | { accession: string };

/** Every group must match (AND); within a group, any alternative (OR). */
export interface StudyFilter {
  patientRowIds?: number[][];
  identifiers?: StudyIdentifier[][];
  started?: DayRange[];
  lastUpdated?: InstantRange[];
}

type Db = Kysely<CatalogDatabase>;

function indexFailure(err: unknown): unknown {
  return isAppError(err) ? err : new AppError('INDEX_FAILURE', 'Index database error while answering a FHIR request', { cause: err });
}

const LAST_UPDATED = sql<string>`(select max(${sql.ref('i.created_at')}) from ${sql.table('instances')} as ${sql.id('i')} inner join ${sql.table('series')} as ${sql.id('se')} on ${sql.ref('se.id')} = ${sql.ref('i.series_fk')} where ${sql.ref('se.study_fk')} = ${sql.ref('st.id')} and ${sql.ref('i.rejected')} = 0)`;

function dayCondition(column: string, range: DayRange): RawBuilder<SqlBool> {
  const ref = sql.ref(column);
  switch (range.prefix) {
    case 'eq':
    case 'ap':
      return sql<SqlBool>`(${ref} >= ${range.from} and ${ref} <= ${range.to})`;
    case 'ne':
      return sql<SqlBool>`(${ref} < ${range.from} or ${ref} > ${range.to})`;
    case 'gt':
    case 'sa':
      return sql<SqlBool>`${ref} > ${range.to}`;
    case 'lt':
    case 'eb':
      return sql<SqlBool>`${ref} < ${range.from}`;
    case 'ge':
      return sql<SqlBool>`${ref} >= ${range.from}`;
    case 'le':
      return sql<SqlBool>`${ref} <= ${range.to}`;
  }
}

/** [from, to) instant ranges on an ISO-8601 text expression (lexical order is time order: same format everywhere). */
export function instantCondition(expression: RawBuilder<unknown>, range: InstantRange): RawBuilder<SqlBool> {
  switch (range.prefix) {
    case 'eq':
    case 'ap':
      return sql<SqlBool>`(${expression} >= ${range.from} and ${expression} < ${range.to})`;
    case 'ne':
      return sql<SqlBool>`(${expression} < ${range.from} or ${expression} >= ${range.to})`;
    case 'gt':
    case 'sa':
      return sql<SqlBool>`${expression} >= ${range.to}`;
    case 'lt':
    case 'eb':
      return sql<SqlBool>`${expression} < ${range.from}`;
    case 'ge':
      return sql<SqlBool>`${expression} >= ${range.from}`;
    case 'le':
      return sql<SqlBool>`${expression} < ${range.to}`;
  }
}

interface StudyRow {
  st_id: number;
  study_uid: string;
  study_date: string | null;
  study_time: string | null;
  timezone_offset: string | null;
  accession_number: string | null;
  study_description: string | null;
  modalities: string | null;
  num_series: number;
  num_instances: number;
  last_updated: string | null;
  created_at: string;
  p_id: number;
  patient_id: string | null;
  issuer: string;
  patient_name: string | null;
  birth_date: string | null;
  sex: string | null;
  other_ids: string | null;
}

function toSummary(row: StudyRow): StudySummary {
  return {
    rowId: Number(row.st_id),
    studyInstanceUid: row.study_uid,
    patient: { rowId: Number(row.p_id), identity: identityOfPatientRow(row) },
    studyDate: row.study_date,
    studyTime: row.study_time,
    timezoneOffset: row.timezone_offset,
    accessionNumber: row.accession_number,
    description: row.study_description,
    modalities: row.modalities === null || row.modalities === '' ? [] : row.modalities.split('\\'),
    numberOfSeries: Number(row.num_series),
    numberOfInstances: Number(row.num_instances),
    lastUpdated: row.last_updated ?? row.created_at,
  };
}

export class FhirIndex {
  private constructor(private readonly db: Db) {}

  static open(index: IndexConfig): FhirIndex {
    return new FhirIndex(openSideDatabase<CatalogDatabase>(index).db);
  }

  /** Patient rows with exactly this Patient ID and issuer (one, or none). */
  async patientsByKey(key: PatientKey): Promise<IndexPatient[]> {
    return this.patientRows((q) => q.where('patient_id', '=', key.patientId).where('issuer', '=', key.issuer));
  }

  async patientByRowId(rowId: number): Promise<IndexPatient | undefined> {
    return (await this.patientRows((q) => q.where('id', '=', rowId)))[0];
  }

  /** Patient rows holding this identifier as Patient ID or among the other IDs; `issuer` undefined: any issuer. */
  async patientsByIdentifier(value: string, issuer: string | undefined): Promise<IndexPatient[]> {
    try {
      const own = this.db.selectFrom('patients').select('id').where('patient_id', '=', value);
      const other = this.db.selectFrom('patient_other_ids').select('patient_fk as id').where('patient_id', '=', value);
      const ids = issuer === undefined ? own.union(other) : own.where('issuer', '=', issuer).union(other.where('issuer', '=', issuer));
      const rows = await ids.execute();
      if (rows.length === 0) return [];
      return await this.patientRows((q) => q.where('id', 'in', rows.map((r) => Number(r.id))));
    } catch (err) {
      throw indexFailure(err);
    }
  }

  private async patientRows(where: (q: ReturnType<FhirIndex['patientQuery']>) => ReturnType<FhirIndex['patientQuery']>): Promise<IndexPatient[]> {
    try {
      const rows = await where(this.patientQuery()).orderBy('id').execute();
      return rows.map((row) => ({ rowId: Number(row.id), identity: identityOfPatientRow(row) }));
    } catch (err) {
      throw indexFailure(err);
    }
  }

  private patientQuery() {
    return this.db.selectFrom('patients').select(['id', 'patient_id', 'issuer', 'patient_name', 'birth_date', 'sex', 'other_ids']);
  }

  /** One page of the studies matching `filter`, newest study date first, and how many match in all. */
  async searchStudies(filter: StudyFilter, page: { count: number; offset: number }): Promise<{ total: number; studies: StudySummary[] }> {
    const conditions: Array<RawBuilder<SqlBool>> = [];
    for (const group of filter.patientRowIds ?? []) {
      if (group.length === 0) return { total: 0, studies: [] };
      conditions.push(sql<SqlBool>`${sql.ref('st.patient_fk')} in (${sql.join(group)})`);
    }
    for (const group of filter.identifiers ?? []) {
      if (group.length === 0) return { total: 0, studies: [] };
      const alternatives = group.map((item) => ('studyUid' in item ? sql<SqlBool>`${sql.ref('st.study_uid')} = ${item.studyUid}` : sql<SqlBool>`${sql.ref('st.accession_number')} = ${item.accession}`));
      conditions.push(sql<SqlBool>`(${sql.join(alternatives, sql` or `)})`);
    }
    for (const range of filter.started ?? []) conditions.push(dayCondition('st.study_date', range));
    for (const range of filter.lastUpdated ?? []) conditions.push(instantCondition(LAST_UPDATED, range));
    // A study whose instances are all rejected (IOCM, catalog/curation-rows.ts) counts 0 and is not shown.
    conditions.push(sql<SqlBool>`${sql.ref('st.num_instances')} > 0`);
    const where = sql<SqlBool>`${sql.join(conditions, sql` and `)}`;
    try {
      const countRow = await sql<{ n: number | string }>`select count(*) as ${sql.id('n')} from ${sql.table('studies')} as ${sql.id('st')} where ${where}`.execute(this.db);
      const total = Number(countRow.rows[0]?.n ?? 0);
      if (page.count === 0 || page.offset >= total) return { total, studies: [] };
      const rows = await this.studyRows(where, sql`order by (${sql.ref('st.study_date')} is null), ${sql.ref('st.study_date')} desc, ${sql.ref('st.study_time')} desc, ${sql.ref('st.id')} desc limit ${page.count} offset ${page.offset}`);
      return { total, studies: rows.map(toSummary) };
    } catch (err) {
      throw indexFailure(err);
    }
  }

  private async studyRows(where: RawBuilder<SqlBool>, tail: RawBuilder<unknown>): Promise<StudyRow[]> {
    const result = await sql<StudyRow>`select ${sql.ref('st.id')} as ${sql.id('st_id')}, ${sql.ref('st.study_uid')}, ${sql.ref('st.study_date')}, ${sql.ref('st.study_time')},
      ${sql.ref('st.timezone_offset')}, ${sql.ref('st.accession_number')}, ${sql.ref('st.study_description')}, ${sql.ref('st.modalities')},
      ${sql.ref('st.num_series')}, ${sql.ref('st.num_instances')}, ${sql.ref('st.created_at')}, ${LAST_UPDATED} as ${sql.id('last_updated')},
      ${sql.ref('p.id')} as ${sql.id('p_id')}, ${sql.ref('p.patient_id')}, ${sql.ref('p.issuer')}, ${sql.ref('p.patient_name')}, ${sql.ref('p.birth_date')}, ${sql.ref('p.sex')}, ${sql.ref('p.other_ids')}
      from ${sql.table('studies')} as ${sql.id('st')} inner join ${sql.table('patients')} as ${sql.id('p')} on ${sql.ref('p.id')} = ${sql.ref('st.patient_fk')}
      where ${where} ${tail}`.execute(this.db);
    return result.rows;
  }

  /** A study with its series and instances (series by number, instances by number), or undefined. */
  async study(studyInstanceUid: string): Promise<StudyDetail | undefined> {
    try {
      const [row] = await this.studyRows(sql<SqlBool>`${sql.ref('st.study_uid')} = ${studyInstanceUid} and ${sql.ref('st.num_instances')} > 0`, sql``);
      if (row === undefined) return undefined;
      const series = await this.db
        .selectFrom('series')
        .select(['id', 'series_uid', 'series_number', 'modality', 'series_description', 'num_instances', 'pps_start_date', 'pps_start_time', 'timezone_offset'])
        .where('study_fk', '=', Number(row.st_id))
        // Counters and lists leave rejected instances out (IOCM): the ImagingStudy shows what QIDO-RS does.
        .where('num_instances', '>', 0)
        .orderBy('series_number')
        .orderBy('id')
        .execute();
      const instances =
        series.length === 0
          ? []
          : await this.db
              .selectFrom('instances')
              .select(['series_fk', 'sop_instance_uid', 'sop_class_uid', 'instance_number'])
              .where('series_fk', 'in', series.map((s) => Number(s.id)))
              .where('rejected', '=', 0)
              .orderBy('instance_number')
              .orderBy('id')
              .execute();
      return {
        ...toSummary(row),
        series: series.map((s) => ({
          seriesInstanceUid: s.series_uid,
          number: s.series_number === null ? null : Number(s.series_number),
          modality: s.modality,
          description: s.series_description,
          numberOfInstances: Number(s.num_instances),
          performedDate: s.pps_start_date,
          performedTime: s.pps_start_time,
          timezoneOffset: s.timezone_offset,
          instances: instances
            .filter((i) => Number(i.series_fk) === Number(s.id))
            .map((i) => ({ sopInstanceUid: i.sop_instance_uid, sopClassUid: i.sop_class_uid, number: i.instance_number === null ? null : Number(i.instance_number) })),
        })),
      };
    } catch (err) {
      throw indexFailure(err);
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
