/**
 * The HIS store contract (his-store.contract.ts) on both index databases (test-support/side-store-engines.ts).
 */
import { runOnBothIndexes } from '../test-support/side-store-engines.js';
import { runHisStoreContract } from './his-store.contract.js';
import { KyselyHisStore } from './kysely-his-store.js';

await runOnBothIndexes({
  what: 'the HIS store',
  tempPrefix: 'his-store-',
  schemaPrefix: 'pacs_his',
  open: (index) => KyselyHisStore.open(index),
  contract: runHisStoreContract,
});
