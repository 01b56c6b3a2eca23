/**
 * The AI usage store on the index database (the SQLite file or the PostgreSQL schema of PACS_INDEX),
 * through a Kysely instance of its own like reports/kysely-report-store.ts. Tables, created idempotently
 * at open (PostgreSQL: under an advisory lock, several processes may start at once):
 *
 * - `ai_finding`: one row per AI finding shown or decided (key: the SOP Instance UID of the stored AI
 *   result + the item in it, contracts/ai-usage.ts), with its study, series, model id + version and label,
 *   when it was first shown, and its latest decision (accepted / rejected, by whom, when, from a signed
 *   report or a verdict).
 * - `ai_finding_decision`: every decision ever recorded (append-only), with the report id and version
 *   or the verdict's comment.
 *
 * No patient data: UIDs, model ids, labels and the deciding user's subject and name.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { createSideTables, opened, openSideDatabase, type SideDatabase } from '../catalog/open-side-database.js';
import type { IndexConfig } from '../config.js';

export type AiDecisionValue = 'accepted' | 'rejected';
export type AiDecisionSource = 'report' | 'verdict';

/** What is known of a finding from its stored AI result. */
export interface AiFindingFacts {
  sopInstanceUid: string;
  item: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  model: { id: string; version: string };
  label: string;
}

export interface AiDecisionInput {
  finding: AiFindingFacts;
  decision: AiDecisionValue;
  by: { subject: string; name: string | null };
  at: number;
  source: AiDecisionSource;
  reportId?: string;
  reportVersion?: number;
  comment?: string;
}

export interface StoredAiDecision extends Omit<AiDecisionInput, 'finding'> {
  sopInstanceUid: string;
  item: string;
}

export interface ModelUsageRow {
  model: { id: string; version: string };
  shown: number;
  accepted: number;
  rejected: number;
}

interface FindingTable {
  sop_instance_uid: string;
  item: string;
  study_instance_uid: string;
  series_instance_uid: string;
  model_id: string;
  model_version: string;
  label: string;
  shown_at: number | string;
  decision: AiDecisionValue | null;
  decided_at: number | string | null;
  decided_by: string | null;
  decided_by_name: string | null;
  decided_from: AiDecisionSource | null;
}

interface DecisionTable {
  id: string;
  sop_instance_uid: string;
  item: string;
  decision: AiDecisionValue;
  decided_at: number | string;
  decided_by: string;
  decided_by_name: string | null;
  source: AiDecisionSource;
  report_id: string | null;
  report_version: number | null;
  comment: string | null;
}

interface AiUsageDatabase {
  ai_finding: FindingTable;
  ai_finding_decision: DecisionTable;
}

type Db = Kysely<AiUsageDatabase>;

const factsColumns = (f: AiFindingFacts) => ({
  sop_instance_uid: f.sopInstanceUid,
  item: f.item,
  study_instance_uid: f.studyInstanceUid,
  series_instance_uid: f.seriesInstanceUid,
  model_id: f.model.id.slice(0, 64),
  model_version: f.model.version.slice(0, 64),
  label: f.label.slice(0, 64),
});

export class AiUsageStore {
  private readonly db: Db;

  private constructor(private readonly side: SideDatabase<AiUsageDatabase>) {
    this.db = side.db;
  }

  static async open(index: IndexConfig): Promise<AiUsageStore> {
    const store = new AiUsageStore(openSideDatabase<AiUsageDatabase>(index));
    return opened(store, () => createSideTables(store.side, 'filmless-pacs ai usage migration', createTables));
  }

  /** Records findings as shown at `at` (the first time only). Returns how many were shown for the first time. */
  async recordShown(findings: readonly AiFindingFacts[], at: number): Promise<number> {
    if (findings.length === 0) return 0;
    const unique = [...new Map(findings.map((f) => [`${f.sopInstanceUid}/${f.item}`, f])).values()];
    return this.side.write(async (db) => {
      let added = 0;
      // Chunks keep each statement well under both engines' bound-parameter limits.
      for (let i = 0; i < unique.length; i += 200) {
        const rows = unique.slice(i, i + 200).map((f) => ({ ...factsColumns(f), shown_at: at, decision: null, decided_at: null, decided_by: null, decided_by_name: null, decided_from: null }));
        const result = await db
          .insertInto('ai_finding')
          .values(rows)
          .onConflict((oc) => oc.columns(['sop_instance_uid', 'item']).doNothing())
          .executeTakeFirst();
        added += Number(result.numInsertedOrUpdatedRows ?? 0);
      }
      return added;
    });
  }

  /**
   * Records decisions in one transaction: each is kept in the history, and becomes the finding's decision
   * unless the finding has a later one already. A finding decided but never recorded as shown is shown
   * at its decision (a decision implies it was seen).
   */
  async recordDecisions(decisions: readonly AiDecisionInput[]): Promise<void> {
    if (decisions.length === 0) return;
    await this.side.transaction(async (trx) => {
      for (const d of decisions) {
        await trx
          .insertInto('ai_finding_decision')
          .values({
            id: randomUUID(),
            sop_instance_uid: d.finding.sopInstanceUid,
            item: d.finding.item,
            decision: d.decision,
            decided_at: d.at,
            decided_by: d.by.subject,
            decided_by_name: d.by.name,
            source: d.source,
            report_id: d.reportId ?? null,
            report_version: d.reportVersion ?? null,
            comment: d.comment ?? null,
          })
          .execute();
        const latest = { decision: d.decision, decided_at: d.at, decided_by: d.by.subject, decided_by_name: d.by.name, decided_from: d.source };
        await trx
          .insertInto('ai_finding')
          .values({ ...factsColumns(d.finding), shown_at: d.at, ...latest })
          .onConflict((oc) =>
            oc
              .columns(['sop_instance_uid', 'item'])
              .doUpdateSet(latest)
              .where(sql<boolean>`ai_finding.decided_at is null or ai_finding.decided_at <= ${d.at}`),
          )
          .execute();
      }
    });
  }

  /** The finding's decisions, oldest first. */
  async decisions(sopInstanceUid: string, item: string): Promise<StoredAiDecision[]> {
    const rows = await this.db.selectFrom('ai_finding_decision').selectAll().where('sop_instance_uid', '=', sopInstanceUid).where('item', '=', item).orderBy('decided_at').orderBy('id').execute();
    return rows.map((r) => ({
      sopInstanceUid: r.sop_instance_uid,
      item: r.item,
      decision: r.decision,
      by: { subject: r.decided_by, name: r.decided_by_name },
      at: Number(r.decided_at),
      source: r.source,
      ...(r.report_id === null ? {} : { reportId: r.report_id }),
      ...(r.report_version === null ? {} : { reportVersion: Number(r.report_version) }),
      ...(r.comment === null ? {} : { comment: r.comment }),
    }));
  }

  /**
   * Per model id + version, for the period [from, to) in epoch milliseconds: findings first shown in it,
   * and findings whose latest decision was made in it, accepted or rejected.
   */
  async usage(from: number, to: number): Promise<ModelUsageRow[]> {
    const inPeriod = (column: 'shown_at' | 'decided_at') => sql<boolean>`${sql.ref(column)} >= ${from} and ${sql.ref(column)} < ${to}`;
    const rows = await this.db
      .selectFrom('ai_finding')
      .select([
        'model_id',
        'model_version',
        sql<number | string>`sum(case when ${inPeriod('shown_at')} then 1 else 0 end)`.as('shown'),
        sql<number | string>`sum(case when decision = 'accepted' and ${inPeriod('decided_at')} then 1 else 0 end)`.as('accepted'),
        sql<number | string>`sum(case when decision = 'rejected' and ${inPeriod('decided_at')} then 1 else 0 end)`.as('rejected'),
      ])
      .where((eb) => eb.or([eb.and([eb('shown_at', '>=', from), eb('shown_at', '<', to)]), eb.and([eb('decided_at', '>=', from), eb('decided_at', '<', to)])]))
      .groupBy(['model_id', 'model_version'])
      .orderBy('model_id')
      .orderBy('model_version')
      .execute();
    return rows.map((r) => ({ model: { id: r.model_id, version: r.model_version }, shown: Number(r.shown), accepted: Number(r.accepted), rejected: Number(r.rejected) }));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

async function createTables(db: Db): Promise<void> {
  await db.schema
    .createTable('ai_finding')
    .ifNotExists()
    .addColumn('sop_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('item', 'varchar(32)', (c) => c.notNull())
    .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('series_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('model_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('model_version', 'varchar(64)', (c) => c.notNull())
    .addColumn('label', 'varchar(64)', (c) => c.notNull())
    .addColumn('shown_at', 'bigint', (c) => c.notNull())
    .addColumn('decision', 'varchar(16)')
    .addColumn('decided_at', 'bigint')
    .addColumn('decided_by', 'text')
    .addColumn('decided_by_name', 'text')
    .addColumn('decided_from', 'varchar(16)')
    .addPrimaryKeyConstraint('ai_finding_pk', ['sop_instance_uid', 'item'])
    .execute();
  await db.schema.createIndex('ai_finding_shown').ifNotExists().on('ai_finding').column('shown_at').execute();
  await db.schema.createIndex('ai_finding_decided').ifNotExists().on('ai_finding').column('decided_at').execute();
  await db.schema
    .createTable('ai_finding_decision')
    .ifNotExists()
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('sop_instance_uid', 'varchar(64)', (c) => c.notNull())
    .addColumn('item', 'varchar(32)', (c) => c.notNull())
    .addColumn('decision', 'varchar(16)', (c) => c.notNull())
    .addColumn('decided_at', 'bigint', (c) => c.notNull())
    .addColumn('decided_by', 'text', (c) => c.notNull())
    .addColumn('decided_by_name', 'text')
    .addColumn('source', 'varchar(16)', (c) => c.notNull())
    .addColumn('report_id', 'varchar(64)')
    .addColumn('report_version', 'integer')
    .addColumn('comment', 'text')
    .execute();
  await db.schema.createIndex('ai_finding_decision_finding').ifNotExists().on('ai_finding_decision').columns(['sop_instance_uid', 'item']).execute();
}
