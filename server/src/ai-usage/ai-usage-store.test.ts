/**
 * The AI usage store contract (ai-usage-store.contract.ts) on both index databases (test-support/side-store-engines.ts).
 */
import { runOnBothIndexes } from '../test-support/side-store-engines.js';
import { runAiUsageStoreContract } from './ai-usage-store.contract.js';
import { AiUsageStore } from './ai-usage-store.js';

await runOnBothIndexes({
  what: 'the AI usage store',
  tempPrefix: 'ai-usage-store-',
  schemaPrefix: 'pacs_ai_usage',
  open: (index) => AiUsageStore.open(index),
  contract: runAiUsageStoreContract,
});
