/**
 * The report store on the index database (the SQLite file or the PostgreSQL schema of PACS_INDEX),
 * through a Kysely instance of its own like his/kysely-his-store.ts and pathology/job-store.ts; the
 * catalog's schema stays untouched. Tables, created idempotently at open (PostgreSQL: under an advisory
 * lock, several processes may start at once):
 *
 * - `report`: one row per report (id, study, kind, procedure date, creator, latest version number).
 * - `report_version`: every version with its state, content (JSON text), revision, signature (signer,
 *   time, content hash) and the UIDs of its DICOM objects. Rows are never deleted: a superseded version
 *   stays readable.
 *
 * Each state change is one conditional write (`… where status = 'draft' and revision = ?`) or one
 * transaction of them, so concurrent requests cannot both succeed (see report-store.ts). Writes go
 * through the side database's `write` / `transaction`: on SQLite in the process's write gate of the file,
 * waiting for other writers asynchronously (catalog/sqlite-write-gate.ts).
 */
import { sql, type Kysely } from 'kysely';
import { createSideTables, opened, openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';
import type { Person, ReportContent, ReportKind, VersionStatus } from '../contracts/reports.js';
import { AppError, NotFoundError } from '../errors.js';
import type { FinalReportForQuality, NewReport, ReportStore, StoredReport, StoredSignature, StoredVersion, VersionDicom } from './report-store.js';

interface ReportTable {
  id: string;
  study_instance_uid: string;
  kind: ReportKind;
  procedure_date: string;
  created_at: number | string;
  created_by: string;
  created_by_name: string | null;
  latest_version: number;
}

interface VersionTable {
  report_id: string;
  version: number;
  status: VersionStatus;
  content: string;
  revision: number;
  created_at: number | string;
  created_by: string;
  created_by_name: string | null;
  updated_at: number | string;
  updated_by: string;
  updated_by_name: string | null;
  amends: number | null;
  amendment_reason: string | null;
  signed_at: number | string | null;
  signer: string | null;
  signer_name: string | null;
  content_sha256: string | null;
  superseded_at: number | string | null;
  superseded_by: number | null;
  sr_series_uid: string | null;
  sr_sop_uid: string | null;
  pdf_series_uid: string | null;
  pdf_sop_uid: string | null;
  dicom_stored_at: number | string | null;
}

interface ReportDatabase {
  report: ReportTable;
  report_version: VersionTable;
}

type Db = Kysely<ReportDatabase>;

const num = (value: number | string): number => Number(value);

const numOrNull = (value: number | string | null): number | null => (value === null ? null : Number(value));
const person = (subject: string, name: string | null): Person => ({ subject, name });

function toReport(row: ReportTable): StoredReport {
  return {
    id: row.id,
    studyInstanceUid: row.study_instance_uid,
    kind: row.kind,
    procedureDate: row.procedure_date,
    createdAt: num(row.created_at),
    createdBy: person(row.created_by, row.created_by_name),
    latestVersion: Number(row.latest_version),
  };
}

function toVersion(row: VersionTable): StoredVersion {
  const signature: StoredSignature | null =
    row.signed_at === null || row.signer === null || row.content_sha256 === null
      ? null
      : { signer: person(row.signer, row.signer_name), signedAt: num(row.signed_at), contentSha256: row.content_sha256 };
  const dicom: VersionDicom | null =
    row.sr_sop_uid === null || row.sr_series_uid === null || row.pdf_sop_uid === null || row.pdf_series_uid === null
      ? null
      : {
          srSeriesInstanceUid: row.sr_series_uid,
          srSopInstanceUid: row.sr_sop_uid,
          pdfSeriesInstanceUid: row.pdf_series_uid,
          pdfSopInstanceUid: row.pdf_sop_uid,
          storedAt: numOrNull(row.dicom_stored_at),
        };
  return {
    reportId: row.report_id,
    version: Number(row.version),
    status: row.status,
    content: JSON.parse(row.content) as ReportContent,
    revision: Number(row.revision),
    createdAt: num(row.created_at),
    createdBy: person(row.created_by, row.created_by_name),
    updatedAt: num(row.updated_at),
    updatedBy: person(row.updated_by, row.updated_by_name),
    amends: row.amends === null ? null : Number(row.amends),
    amendmentReason: row.amendment_reason,
    signature,
    supersededAt: numOrNull(row.superseded_at),
    supersededBy: row.superseded_by === null ? null : Number(row.superseded_by),
    dicom,
  };
}

async function readReport(db: Db, id: string): Promise<StoredReport | undefined> {
  const row = await db.selectFrom('report').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? undefined : toReport(row);
}

async function readVersion(db: Db, id: string, version: number): Promise<StoredVersion | undefined> {
  const row = await db.selectFrom('report_version').selectAll().where('report_id', '=', id).where('version', '=', version).executeTakeFirst();
  return row === undefined ? undefined : toVersion(row);
}

export class KyselyReportStore implements ReportStore {
  private readonly db: Db;
  private readonly dialect: 'sqlite' | 'postgres';

  private constructor(private readonly side: SideDatabase<ReportDatabase>) {
    this.db = side.db;
    this.dialect = side.dialect;
  }

  static async open(index: IndexConfig): Promise<KyselyReportStore> {
    const store = new KyselyReportStore(openSideDatabase<ReportDatabase>(index));
    return opened(store, () => createSideTables(store.side, 'filmless-pacs report migration', createTables));
  }

  async create(report: NewReport): Promise<{ report: StoredReport; version: StoredVersion }> {
    await this.side.transaction(async (trx) => {
      await trx
        .insertInto('report')
        .values({
          id: report.id,
          study_instance_uid: report.studyInstanceUid,
          kind: report.kind,
          procedure_date: report.procedureDate,
          created_at: report.at,
          created_by: report.by.subject,
          created_by_name: report.by.name,
          latest_version: 1,
        })
        .execute();
      await trx
        .insertInto('report_version')
        .values({
          ...emptyVersionColumns(),
          report_id: report.id,
          version: 1,
          status: 'draft',
          content: JSON.stringify(report.content),
          revision: 0,
          created_at: report.at,
          created_by: report.by.subject,
          created_by_name: report.by.name,
          updated_at: report.at,
          updated_by: report.by.subject,
          updated_by_name: report.by.name,
        })
        .execute();
    });
    return { report: (await this.get(report.id))!, version: (await this.version(report.id, 1))! };
  }

  get(id: string): Promise<StoredReport | undefined> {
    return readReport(this.db, id);
  }

  async versions(id: string): Promise<StoredVersion[]> {
    const rows = await this.db.selectFrom('report_version').selectAll().where('report_id', '=', id).orderBy('version').execute();
    return rows.map(toVersion);
  }

  version(id: string, version: number): Promise<StoredVersion | undefined> {
    return readVersion(this.db, id, version);
  }

  async ofStudy(studyInstanceUid: string): Promise<StoredReport[]> {
    const rows = await this.db.selectFrom('report').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('created_at').orderBy('id').execute();
    return rows.map(toReport);
  }

  async updateDraft(id: string, change: { content: ReportContent; expectedRevision?: number; by: Person; at: number }): Promise<StoredVersion> {
    const result = await this.side.write((db) => {
      const latest = db.selectFrom('report').select('latest_version').where('id', '=', id);
      let update = db
        .updateTable('report_version')
        .set((eb) => ({
          content: JSON.stringify(change.content),
          revision: eb('revision', '+', 1),
          updated_at: change.at,
          updated_by: change.by.subject,
          updated_by_name: change.by.name,
        }))
        .where('report_id', '=', id)
        .where('version', '=', latest)
        .where('status', '=', 'draft');
      if (change.expectedRevision !== undefined) update = update.where('revision', '=', change.expectedRevision);
      return update.executeTakeFirst();
    });
    const report = await this.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    const current = (await this.version(id, report.latestVersion))!;
    if (Number(result.numUpdatedRows) === 0) throw refusal(current, change.expectedRevision, 'changed');
    return current;
  }

  async sign(id: string, change: { version: number; expectedRevision?: number; signature: StoredSignature; dicom: VersionDicom }): Promise<StoredVersion> {
    await this.side.transaction(async (trx) => {
      const report = await readReport(trx, id);
      if (report === undefined) throw new NotFoundError('No report with this id');
      const current = (await readVersion(trx, id, report.latestVersion))!;
      if (current.version !== change.version || current.status !== 'draft' || (change.expectedRevision !== undefined && current.revision !== change.expectedRevision)) {
        throw refusal(current, change.expectedRevision, 'signed');
      }
      const { signature, dicom } = change;
      const signed = await trx
        .updateTable('report_version')
        .set({
          status: 'final',
          signed_at: signature.signedAt,
          signer: signature.signer.subject,
          signer_name: signature.signer.name,
          content_sha256: signature.contentSha256,
          sr_series_uid: dicom.srSeriesInstanceUid,
          sr_sop_uid: dicom.srSopInstanceUid,
          pdf_series_uid: dicom.pdfSeriesInstanceUid,
          pdf_sop_uid: dicom.pdfSopInstanceUid,
          dicom_stored_at: null,
        })
        .where('report_id', '=', id)
        .where('version', '=', change.version)
        .where('status', '=', 'draft')
        .where('revision', '=', current.revision)
        .executeTakeFirst();
      if (Number(signed.numUpdatedRows) === 0) throw new AppError('CONFLICT', 'The draft changed while it was being signed: read it again');
      // The version in force until now (an amendment's predecessor) is superseded.
      await trx
        .updateTable('report_version')
        .set({ status: 'superseded', superseded_at: signature.signedAt, superseded_by: change.version })
        .where('report_id', '=', id)
        .where('status', '=', 'final')
        .where('version', '<', change.version)
        .execute();
    });
    return (await this.version(id, change.version))!;
  }

  async markStored(id: string, version: number, at: number): Promise<void> {
    await this.side.write((db) => db.updateTable('report_version').set({ dicom_stored_at: at }).where('report_id', '=', id).where('version', '=', version).where('dicom_stored_at', 'is', null).execute());
  }

  async amend(id: string, change: { reason: string; by: Person; at: number }): Promise<StoredVersion> {
    const next = await this.side.transaction(async (trx) => {
      const report = await readReport(trx, id);
      if (report === undefined) throw new NotFoundError('No report with this id');
      const current = (await readVersion(trx, id, report.latestVersion))!;
      if (current.status !== 'final') throw new AppError('CONFLICT', 'Only a signed report can be amended: the latest version is still a draft (edit it instead)');
      const version = report.latestVersion + 1;
      const moved = await trx.updateTable('report').set({ latest_version: version }).where('id', '=', id).where('latest_version', '=', report.latestVersion).executeTakeFirst();
      if (Number(moved.numUpdatedRows) === 0) throw new AppError('CONFLICT', 'The report was amended at the same time: read it again');
      await trx
        .insertInto('report_version')
        .values({
          ...emptyVersionColumns(),
          report_id: id,
          version,
          status: 'draft',
          content: JSON.stringify(current.content),
          revision: 0,
          created_at: change.at,
          created_by: change.by.subject,
          created_by_name: change.by.name,
          updated_at: change.at,
          updated_by: change.by.subject,
          updated_by_name: change.by.name,
          amends: current.version,
          amendment_reason: change.reason,
        })
        .execute();
      return version;
    });
    return (await this.version(id, next))!;
  }

  async finalEndoscopyReports(from: string, to: string): Promise<FinalReportForQuality[]> {
    const ordered = (column: 'r.procedure_date') => (this.dialect === 'postgres' ? sql`${sql.ref(column)} collate "C"` : sql.ref(column));
    const rows = await this.db
      .selectFrom('report as r')
      .innerJoin('report_version as v', (join) => join.onRef('v.report_id', '=', 'r.id'))
      .selectAll('v')
      .select(['r.id as r_id', 'r.study_instance_uid as r_study', 'r.kind as r_kind', 'r.procedure_date as r_date', 'r.created_at as r_created_at', 'r.created_by as r_created_by', 'r.created_by_name as r_created_by_name', 'r.latest_version as r_latest'])
      .where('r.kind', '=', 'endoscopy')
      .where('v.status', '=', 'final')
      .where(sql<boolean>`${ordered('r.procedure_date')} >= ${from}`)
      .where(sql<boolean>`${ordered('r.procedure_date')} <= ${to}`)
      .orderBy('r.procedure_date')
      .orderBy('r.id')
      .execute();
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.r_id);
    const firstSigners = new Map<string, Person>();
    for (let i = 0; i < ids.length; i += 500) {
      const firsts = await this.db
        .selectFrom('report_version')
        .select(['report_id', 'signer', 'signer_name'])
        .where('report_id', 'in', ids.slice(i, i + 500))
        .where('version', '=', 1)
        .execute();
      for (const f of firsts) if (f.signer !== null) firstSigners.set(f.report_id, person(f.signer, f.signer_name));
    }
    return rows.map((row) => {
      const { r_id, r_study, r_kind, r_date, r_created_at, r_created_by, r_created_by_name, r_latest, ...versionRow } = row;
      const version = toVersion(versionRow);
      return {
        report: toReport({ id: r_id, study_instance_uid: r_study, kind: r_kind, procedure_date: r_date, created_at: r_created_at, created_by: r_created_by, created_by_name: r_created_by_name, latest_version: r_latest }),
        version,
        endoscopist: firstSigners.get(r_id) ?? version.signature!.signer,
      };
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** Why a conditional write found nothing to change. */
function refusal(current: StoredVersion, expectedRevision: number | undefined, verb: 'changed' | 'signed'): AppError {
  if (current.status !== 'draft') {
    return new AppError('CONFLICT', `Version ${current.version} is signed and cannot be ${verb}: amend the report to change it`);
  }
  if (expectedRevision !== undefined && current.revision !== expectedRevision) {
    return new AppError('CONFLICT', `The draft was saved since (revision ${current.revision}, not ${expectedRevision}): read it again`);
  }
  return new AppError('CONFLICT', `Only the latest version (${current.version}) can be ${verb}`);
}

function emptyVersionColumns() {
  return {
    amends: null,
    amendment_reason: null,
    signed_at: null,
    signer: null,
    signer_name: null,
    content_sha256: null,
    superseded_at: null,
    superseded_by: null,
    sr_series_uid: null,
    sr_sop_uid: null,
    pdf_series_uid: null,
    pdf_sop_uid: null,
    dicom_stored_at: null,
  };
}

async function createTables(db: Db): Promise<void> {
  await db.schema
    .createTable('report')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('procedure_date', 'varchar(8)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_by_name', 'text')
    .addColumn('latest_version', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('report_study').ifNotExists().on('report').column('study_instance_uid').execute();
  await db.schema.createIndex('report_kind_date').ifNotExists().on('report').columns(['kind', 'procedure_date']).execute();

  await db.schema
    .createTable('report_version')
    .ifNotExists()
    .addColumn('report_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_by_name', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text')
    .addColumn('amends', 'integer')
    .addColumn('amendment_reason', 'text')
    .addColumn('signed_at', 'bigint')
    .addColumn('signer', 'text')
    .addColumn('signer_name', 'text')
    .addColumn('content_sha256', 'varchar(64)')
    .addColumn('superseded_at', 'bigint')
    .addColumn('superseded_by', 'integer')
    .addColumn('sr_series_uid', 'varchar(64)')
    .addColumn('sr_sop_uid', 'varchar(64)')
    .addColumn('pdf_series_uid', 'varchar(64)')
    .addColumn('pdf_sop_uid', 'varchar(64)')
    .addColumn('dicom_stored_at', 'bigint')
    .addPrimaryKeyConstraint('report_version_pk', ['report_id', 'version'])
    .execute();
  await db.schema.createIndex('report_version_status').ifNotExists().on('report_version').columns(['status', 'report_id']).execute();
}
