/**
 * Entry point of the server: config from the environment, the services (services.ts), the HTTP server
 * and, when enabled, the DIMSE service on the same archive; closes cleanly on SIGINT/SIGTERM.
 */
import { buildApp } from './app.js';
import { startStorageRecovery } from './archive/fsck.js';
import { loadConfigOrExit } from './config.js';
import { startDimseServer, type DimseServer } from './dimse/dimse-server.js';
import { createServices } from './services.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const services = await createServices(config);
  if (config.exposedWithoutAuthentication) {
    services.logger.warn(
      { host: config.host, dimseHost: config.dimse.enabled ? config.dimse.host : undefined },
      'LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION (PACS_ALLOW_UNAUTHENTICATED_NETWORK=true): anyone who can reach this address can read and store patient data',
    );
  }
  const app = await buildApp(config, services);
  let dimse: DimseServer | undefined;
  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    await dimse?.close();
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  await app.listen({ host: config.host, port: config.port });
  // After a crash: orphan blobs and upload leftovers older than PACS_ORPHAN_MIN_AGE_SECONDS (fsck.ts).
  void startStorageRecovery(services.blobStore, services.catalog, config.orphanMinAgeSeconds * 1000, services.logger);
  if (config.dimse.enabled) {
    // With the hospital link's store, the DIMSE service also answers Modality Worklist and MPPS.
    dimse = await startDimseServer({ config: config.dimse, archive: services.archive, logger: services.logger, pageSize: config.qido.maxLimit, audit: services.audit, his: services.his?.store });
  }
  app.log.info(
    {
      dicomweb: `${config.tls === null ? 'http' : 'https'}://${config.host}:${config.port}${config.dicomwebPrefix}`,
      blobStore: config.blobStore.kind,
      index: config.index.kind,
      signIn: config.auth.enabled ? config.auth.issuer : 'off',
    },
    'filmless-pacs ready',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`Startup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
