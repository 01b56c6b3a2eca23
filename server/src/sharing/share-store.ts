/**
 * Share links, their sessions and consults, in the index database (the SQLite file or the PostgreSQL
 * schema of PACS_INDEX) through a Kysely instance of their own, like reports/kysely-report-store.ts;
 * tables created idempotently at open (PostgreSQL: under an advisory lock). Writes go through the side
 * database's `write` / `transaction` (on SQLite in the process's write gate of the file).
 *
 * - `share_link`: one row per link: the SHA-256 of its token (never the token), what it opens (study,
 *   series as JSON or null, report), purpose, expiry, revocation, the PIN's scrypt hash and salt, the
 *   count of wrong PINs and the lock, the consult it was made for.
 * - `share_session`: the SHA-256 of each session credential given after a PIN check, with its link and
 *   expiry.
 * - `consult`: the request (original study, the copy's study, specialist, message, the secret of its UID
 *   replacement), its link, when it was viewed and answered, and the answer (text, regions as JSON, on
 *   the copy's UIDs).
 * - `consult_uid`: the re-identification map of a de-identified copy: copy UID → original UID, per consult.
 *
 * Rows are never deleted: a revoked or expired link stays listed (and in the audit trail).
 */
import { sql, type Kysely } from 'kysely';
import { createSideTables, opened, openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';

export interface PersonRef {
  subject: string;
  name: string | null;
}

export interface StoredLink {
  id: string;
  tokenSha256: string;
  purpose: 'patient' | 'consult';
  studyInstanceUid: string;
  seriesInstanceUids: string[] | null;
  includeReport: boolean;
  createdAt: number;
  createdBy: PersonRef;
  expiresAt: number;
  revokedAt: number | null;
  revokedBy: PersonRef | null;
  /** `scrypt$<salt hex>$<hash hex>`, or null without a PIN. */
  pinHash: string | null;
  pinFailures: number;
  pinLockedUntil: number | null;
  consultId: string | null;
}

export interface StoredSession {
  tokenSha256: string;
  linkId: string;
  createdAt: number;
  expiresAt: number;
}

export interface StoredConsult {
  id: string;
  originalStudyInstanceUid: string;
  caseStudyInstanceUid: string;
  deidentified: boolean;
  /** Hex of the secret the copy's UIDs were derived with (HMAC-SHA256). */
  uidSecret: string;
  requestedAt: number;
  requestedBy: PersonRef;
  specialistSubject: string | null;
  specialistName: string;
  specialistContact: string | null;
  message: string;
  linkId: string;
  /** JSON of the copy's summary (instances, excluded, burnedInUnknown), null when not de-identified. */
  copySummary: string | null;
  viewedAt: number | null;
  answeredAt: number | null;
  answerText: string | null;
  /** JSON of the answer's regions, on the copy's UIDs. */
  answerRegions: string | null;
  answeredBy: PersonRef | null;
}

interface LinkTable {
  id: string;
  token_sha256: string;
  purpose: string;
  study_instance_uid: string;
  series_uids: string | null;
  include_report: number;
  created_at: number | string;
  created_by: string;
  created_by_name: string | null;
  expires_at: number | string;
  revoked_at: number | string | null;
  revoked_by: string | null;
  revoked_by_name: string | null;
  pin_hash: string | null;
  pin_failures: number;
  pin_locked_until: number | string | null;
  consult_id: string | null;
}

interface SessionTable {
  token_sha256: string;
  link_id: string;
  created_at: number | string;
  expires_at: number | string;
}

interface ConsultTable {
  id: string;
  original_study_uid: string;
  case_study_uid: string;
  deidentified: number;
  uid_secret: string;
  requested_at: number | string;
  requested_by: string;
  requested_by_name: string | null;
  specialist_subject: string | null;
  specialist_name: string;
  specialist_contact: string | null;
  message: string;
  link_id: string;
  copy_summary: string | null;
  viewed_at: number | string | null;
  answered_at: number | string | null;
  answer_text: string | null;
  answer_regions: string | null;
  answered_by: string | null;
  answered_by_name: string | null;
}

interface UidTable {
  consult_id: string;
  copy_uid: string;
  original_uid: string;
}

interface ShareDatabase {
  share_link: LinkTable;
  share_session: SessionTable;
  consult: ConsultTable;
  consult_uid: UidTable;
}

type Db = Kysely<ShareDatabase>;
const num = (value: number | string): number => Number(value);
const numOrNull = (value: number | string | null): number | null => (value === null ? null : Number(value));

function toLink(row: LinkTable): StoredLink {
  return {
    id: row.id,
    tokenSha256: row.token_sha256,
    purpose: row.purpose === 'consult' ? 'consult' : 'patient',
    studyInstanceUid: row.study_instance_uid,
    seriesInstanceUids: row.series_uids === null ? null : (JSON.parse(row.series_uids) as string[]),
    includeReport: Number(row.include_report) === 1,
    createdAt: num(row.created_at),
    createdBy: { subject: row.created_by, name: row.created_by_name },
    expiresAt: num(row.expires_at),
    revokedAt: numOrNull(row.revoked_at),
    revokedBy: row.revoked_by === null ? null : { subject: row.revoked_by, name: row.revoked_by_name },
    pinHash: row.pin_hash,
    pinFailures: Number(row.pin_failures),
    pinLockedUntil: numOrNull(row.pin_locked_until),
    consultId: row.consult_id,
  };
}

function toConsult(row: ConsultTable): StoredConsult {
  return {
    id: row.id,
    originalStudyInstanceUid: row.original_study_uid,
    caseStudyInstanceUid: row.case_study_uid,
    deidentified: Number(row.deidentified) === 1,
    uidSecret: row.uid_secret,
    requestedAt: num(row.requested_at),
    requestedBy: { subject: row.requested_by, name: row.requested_by_name },
    specialistSubject: row.specialist_subject,
    specialistName: row.specialist_name,
    specialistContact: row.specialist_contact,
    message: row.message,
    linkId: row.link_id,
    copySummary: row.copy_summary,
    viewedAt: numOrNull(row.viewed_at),
    answeredAt: numOrNull(row.answered_at),
    answerText: row.answer_text,
    answerRegions: row.answer_regions,
    answeredBy: row.answered_by === null ? null : { subject: row.answered_by, name: row.answered_by_name },
  };
}

export class ShareStore {
  private readonly db: Db;

  private constructor(private readonly side: SideDatabase<ShareDatabase>) {
    this.db = side.db;
  }

  static async open(index: IndexConfig): Promise<ShareStore> {
    const store = new ShareStore(openSideDatabase<ShareDatabase>(index));
    return opened(store, () => createSideTables(store.side, 'filmless-pacs sharing migration', createTables));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // ---------------------------------------------------------------------------------------------- links

  async insertLink(link: StoredLink): Promise<void> {
    await this.side.write((db) =>
      db
        .insertInto('share_link')
        .values(linkRow(link))
        .execute(),
    );
  }

  async link(id: string): Promise<StoredLink | undefined> {
    const row = await this.db.selectFrom('share_link').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toLink(row);
  }

  async linkByToken(tokenSha256: string): Promise<StoredLink | undefined> {
    const row = await this.db.selectFrom('share_link').selectAll().where('token_sha256', '=', tokenSha256).executeTakeFirst();
    return row === undefined ? undefined : toLink(row);
  }

  async linksOfStudy(studyInstanceUid: string): Promise<StoredLink[]> {
    const rows = await this.db.selectFrom('share_link').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('created_at', 'desc').orderBy('id').execute();
    return rows.map(toLink);
  }

  /** Revokes a link once (the first revocation's time and user are kept); true when this call revoked it. */
  async revoke(id: string, by: PersonRef, at: number): Promise<boolean> {
    const result = await this.side.write((db) =>
      db.updateTable('share_link').set({ revoked_at: at, revoked_by: by.subject, revoked_by_name: by.name }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) === 1;
  }

  /** A wrong PIN: one more failure; the `maxAttempts`-th locks the link until `lockUntil` and starts the count again. Returns the row after. */
  async pinFailed(id: string, maxAttempts: number, lockUntil: number): Promise<StoredLink | undefined> {
    await this.side.transaction(async (trx) => {
      await trx.updateTable('share_link').set((eb) => ({ pin_failures: eb('pin_failures', '+', 1) })).where('id', '=', id).execute();
      await trx.updateTable('share_link').set({ pin_failures: 0, pin_locked_until: lockUntil }).where('id', '=', id).where('pin_failures', '>=', maxAttempts).execute();
    });
    return this.link(id);
  }

  async pinSucceeded(id: string): Promise<void> {
    await this.side.write((db) => db.updateTable('share_link').set({ pin_failures: 0 }).where('id', '=', id).where('pin_failures', '>', 0).execute());
  }

  async insertSession(session: StoredSession): Promise<void> {
    await this.side.write((db) =>
      db.insertInto('share_session').values({ token_sha256: session.tokenSha256, link_id: session.linkId, created_at: session.createdAt, expires_at: session.expiresAt }).execute(),
    );
  }

  async session(tokenSha256: string): Promise<StoredSession | undefined> {
    const row = await this.db.selectFrom('share_session').selectAll().where('token_sha256', '=', tokenSha256).executeTakeFirst();
    return row === undefined ? undefined : { tokenSha256: row.token_sha256, linkId: row.link_id, createdAt: num(row.created_at), expiresAt: num(row.expires_at) };
  }

  // ------------------------------------------------------------------------------------------- consults

  /** The consult, its link and (for a copy) its re-identification map, in one transaction. */
  async insertConsult(consult: StoredConsult, link: StoredLink, uids: ReadonlyMap<string, string>): Promise<void> {
    await this.side.transaction(async (trx) => {
      await trx
        .insertInto('consult')
        .values({
          id: consult.id,
          original_study_uid: consult.originalStudyInstanceUid,
          case_study_uid: consult.caseStudyInstanceUid,
          deidentified: consult.deidentified ? 1 : 0,
          uid_secret: consult.uidSecret,
          requested_at: consult.requestedAt,
          requested_by: consult.requestedBy.subject,
          requested_by_name: consult.requestedBy.name,
          specialist_subject: consult.specialistSubject,
          specialist_name: consult.specialistName,
          specialist_contact: consult.specialistContact,
          message: consult.message,
          link_id: consult.linkId,
          copy_summary: consult.copySummary,
          viewed_at: null,
          answered_at: null,
          answer_text: null,
          answer_regions: null,
          answered_by: null,
          answered_by_name: null,
        })
        .execute();
      await trx
        .insertInto('share_link')
        .values(linkRow(link))
        .execute();
      const rows = [...uids].map(([original, copy]) => ({ consult_id: consult.id, copy_uid: copy, original_uid: original }));
      for (let i = 0; i < rows.length; i += 200) await trx.insertInto('consult_uid').values(rows.slice(i, i + 200)).execute();
    });
  }

  async consult(id: string): Promise<StoredConsult | undefined> {
    const row = await this.db.selectFrom('consult').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toConsult(row);
  }

  async consults(filter: { requestedBy?: string; specialist?: string; originalStudy?: string }): Promise<StoredConsult[]> {
    let query = this.db.selectFrom('consult').selectAll();
    if (filter.requestedBy !== undefined) query = query.where('requested_by', '=', filter.requestedBy);
    if (filter.specialist !== undefined) query = query.where('specialist_subject', '=', filter.specialist);
    if (filter.originalStudy !== undefined) query = query.where('original_study_uid', '=', filter.originalStudy);
    const rows = await query.orderBy('requested_at', 'desc').orderBy('id').limit(500).execute();
    return rows.map(toConsult);
  }

  /** Marks the consult viewed once (the first time only). */
  async consultViewed(id: string, at: number): Promise<void> {
    await this.side.write((db) => db.updateTable('consult').set({ viewed_at: at }).where('id', '=', id).where('viewed_at', 'is', null).execute());
  }

  /** Records the answer once; false when it was answered already. */
  async answer(id: string, answer: { text: string; regions: string; by: PersonRef; at: number }): Promise<boolean> {
    const result = await this.side.write((db) =>
      db
        .updateTable('consult')
        .set({ answered_at: answer.at, answer_text: answer.text, answer_regions: answer.regions, answered_by: answer.by.subject, answered_by_name: answer.by.name, viewed_at: sql`coalesce(viewed_at, ${answer.at})` })
        .where('id', '=', id)
        .where('answered_at', 'is', null)
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) === 1;
  }

  /** The original UIDs of copy UIDs of a consult (those it does not know are left out). */
  async originalUids(consultId: string, copyUids: readonly string[]): Promise<Map<string, string>> {
    if (copyUids.length === 0) return new Map();
    const rows = await this.db.selectFrom('consult_uid').select(['copy_uid', 'original_uid']).where('consult_id', '=', consultId).where('copy_uid', 'in', [...new Set(copyUids)]).execute();
    return new Map(rows.map((row) => [row.copy_uid, row.original_uid]));
  }
}

async function createTables(db: Db): Promise<void> {
  await db.schema
    .createTable('share_link')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('token_sha256', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('purpose', 'varchar(16)', (c) => c.notNull())
    .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('series_uids', 'text')
    .addColumn('include_report', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_by_name', 'text')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_by', 'text')
    .addColumn('revoked_by_name', 'text')
    .addColumn('pin_hash', 'text')
    .addColumn('pin_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pin_locked_until', 'bigint')
    .addColumn('consult_id', 'varchar(64)')
    .execute();
  await db.schema.createIndex('share_link_study').ifNotExists().on('share_link').column('study_instance_uid').execute();
  await db.schema
    .createTable('share_session')
    .ifNotExists()
    .addColumn('token_sha256', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('link_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('consult')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('original_study_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('case_study_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('deidentified', 'integer', (c) => c.notNull())
    .addColumn('uid_secret', 'varchar(64)', (c) => c.notNull())
    .addColumn('requested_at', 'bigint', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_by_name', 'text')
    .addColumn('specialist_subject', 'text')
    .addColumn('specialist_name', 'text', (c) => c.notNull())
    .addColumn('specialist_contact', 'text')
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('link_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('copy_summary', 'text')
    .addColumn('viewed_at', 'bigint')
    .addColumn('answered_at', 'bigint')
    .addColumn('answer_text', 'text')
    .addColumn('answer_regions', 'text')
    .addColumn('answered_by', 'text')
    .addColumn('answered_by_name', 'text')
    .execute();
  await db.schema.createIndex('consult_requested_by').ifNotExists().on('consult').column('requested_by').execute();
  await db.schema.createIndex('consult_specialist').ifNotExists().on('consult').column('specialist_subject').execute();
  await db.schema.createIndex('consult_original_study').ifNotExists().on('consult').column('original_study_uid').execute();
  await db.schema
    .createTable('consult_uid')
    .ifNotExists()
    .addColumn('consult_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('copy_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('original_uid', 'varchar(64)', (c) => c.notNull())
    .addPrimaryKeyConstraint('consult_uid_pk', ['consult_id', 'copy_uid'])
    .execute();
}

/** The row of a new link (made alone, or with its consult in one transaction). */
function linkRow(link: StoredLink) {
  return {
    id: link.id,
    token_sha256: link.tokenSha256,
    purpose: link.purpose,
    study_instance_uid: link.studyInstanceUid,
    series_uids: link.seriesInstanceUids === null ? null : JSON.stringify(link.seriesInstanceUids),
    include_report: link.includeReport ? 1 : 0,
    created_at: link.createdAt,
    created_by: link.createdBy.subject,
    created_by_name: link.createdBy.name,
    expires_at: link.expiresAt,
    revoked_at: null,
    revoked_by: null,
    revoked_by_name: null,
    pin_hash: link.pinHash,
    pin_failures: 0,
    pin_locked_until: null,
    consult_id: link.consultId,
  };
}
