/**
 * The report store contract (report-store.contract.ts) on both index databases (test-support/side-store-engines.ts).
 */
import { runOnBothIndexes } from '../test-support/side-store-engines.js';
import { runReportStoreContract } from './report-store.contract.js';
import { KyselyReportStore } from './kysely-report-store.js';

await runOnBothIndexes({
  what: 'the report store',
  tempPrefix: 'report-store-',
  schemaPrefix: 'pacs_reports',
  open: (index) => KyselyReportStore.open(index),
  contract: runReportStoreContract,
});
