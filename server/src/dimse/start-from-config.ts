/** Starts the DIMSE service from the configuration when it is enabled (main.ts calls this). */
import { Archive } from '../archive/archive.js';
import type { Services } from '../app.js';
import type { Config } from '../config.js';
import { startDimseServer, type DimseServer } from './dimse-server.js';

export async function startDimseIfEnabled(config: Readonly<Config>, services: Services): Promise<DimseServer | undefined> {
  if (!config.dimse.enabled) return undefined;
  const archive = new Archive(services.blobStore, services.catalog, services.logger, {
    maxHeaderBytes: config.stow.maxHeaderBytes,
    maxNesting: config.limits.dicomMaxNesting,
    decodeMaxBytes: config.limits.decodeMaxBytes,
    renderMaxPixels: config.limits.renderMaxPixels,
  });
  return startDimseServer({ config: config.dimse, archive, logger: services.logger, pageSize: config.qido.maxLimit, audit: services.audit });
}
