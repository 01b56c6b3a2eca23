/** Builds the configured Catalog and brings its schema up to date. */
import type { IndexConfig } from '../config.js';
import type { Catalog } from './catalog.js';
import { PostgresCatalog } from './postgres-catalog.js';
import { SqliteCatalog } from './sqlite-catalog.js';

export async function createCatalog(config: IndexConfig): Promise<Catalog> {
  const catalog =
    config.kind === 'sqlite'
      ? new SqliteCatalog(config.file)
      : new PostgresCatalog({ connectionString: config.connectionString, schema: config.schema, poolSize: config.poolSize });
  try {
    await catalog.migrate();
  } catch (error) {
    await catalog.close().catch(() => undefined);
    throw error;
  }
  return catalog;
}
