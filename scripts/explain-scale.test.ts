/**
 * Query plans of the index-growth benchmark's queries (scripts/bench/scale-plans.ts) on both engines:
 * every statement the catalog sends for the usual QIDO-RS searches, a series' metadata and an ingest is
 * served by an index, so their cost does not grow with the archive (issue 22). PostgreSQL plans with
 * sequential scans disabled: a Seq Scan left means no index can serve the statement at any size.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { isPostgresAvailable, TEST_POSTGRES_URL } from '../server/src/test-support/postgres-test-schema.js';
import { newUidRoot, QUERY_MODALITIES } from './bench/scale-corpus.js';
import { explainQueries, fillIndex, openPlanTarget, type QueryPlan } from './bench/scale-plans.js';

const SHAPE = { patients: 100, seriesPerStudy: 4, instancesPerSeries: 25 };
const STUDIES = 200; // 20,000 instances
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'explain-scale-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function planOf(plans: QueryPlan[], query: string): string {
  const found = plans.find((p) => p.query.startsWith(query));
  if (!found) throw new Error(`no plan for ${query}`);
  return found.statements.map((s) => s.plan.join('\n')).join('\n');
}

function fullScans(plans: QueryPlan[]): string[] {
  return plans.flatMap((p) => p.statements.flatMap((s) => s.fullScans.map((line) => `${p.query}: ${line.trim()}`)));
}

describe('index plans of the usual queries at 20k instances', () => {
  it('SQLite: no statement reads a whole table but ModalitiesInStudy, which walks studies in order and stops at the page', async () => {
    const target = await openPlanTarget('sqlite', { file: path.join(tmp, 'index.sqlite') });
    try {
      const root = newUidRoot();
      await fillIndex(target, root, SHAPE, STUDIES);
      const plans = await explainQueries(target, root, SHAPE, STUDIES);
      // Known and bounded: the EXISTS probe per study (series_study_fk_modality_idx) in primary-key
      // order returns the first page early for a common modality (docs/benchmarks.md, "Index growth").
      // Explained once per modality of the corpus (CT common … US rare).
      expect(fullScans(plans)).toEqual(QUERY_MODALITIES.map((m) => `studies?ModalitiesInStudy=${m}&limit=100: SCAN st`));
      expect(planOf(plans, 'studies?StudyDate')).toContain('USING INDEX studies_study_date_idx');
      expect(planOf(plans, 'studies?PatientName')).toContain('USING INDEX patients_patient_name_search_idx');
      expect(planOf(plans, 'studies?AccessionNumber')).toContain('USING INDEX studies_accession_number_idx');
      expect(planOf(plans, 'studies/{study}/series/{series}/metadata')).toContain('USING INDEX instances_series_fk_number_idx');
    } finally {
      await target.close();
    }
  });

  it('PostgreSQL: every statement has an index, StudyDate ranges the "C"-collated one of migration 0006', async (ctx) => {
    if (!(await isPostgresAvailable())) {
      console.warn(`PostgreSQL not reachable at ${TEST_POSTGRES_URL}: skipped`);
      ctx.skip();
    }
    const schema = `explain_scale_test_${process.pid}`;
    const target = await openPlanTarget('postgres', { postgresUrl: TEST_POSTGRES_URL, schema, noSeqScan: true });
    try {
      const root = newUidRoot();
      await fillIndex(target, root, SHAPE, STUDIES);
      const plans = await explainQueries(target, root, SHAPE, STUDIES);
      expect(fullScans(plans)).toEqual([]);
      expect(planOf(plans, 'studies?StudyDate')).toContain('studies_study_date_c_idx');
      expect(planOf(plans, 'studies?PatientName')).toContain('patients_patient_name_search_idx');
    } finally {
      await target.close();
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      await client.query(`drop schema if exists "${schema}" cascade`);
      await client.end();
    }
  });
});
