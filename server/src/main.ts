/**
 * Entry point of the server: config from the environment, the services (services.ts), the HTTP server
 * and, when enabled, the DIMSE service on the same archive and the HL7 listener on the hospital link;
 * closes cleanly on SIGINT/SIGTERM. With PACS_WORKERS > 1 this process becomes the cluster's primary
 * (cluster/cluster-primary.ts) and each worker it forks runs the rest of this file on the shared ports.
 */
import cluster from 'node:cluster';
import pino from 'pino';
import { buildApp } from './app.js';
import { startStorageRecovery } from './archive/fsck.js';
import { runClusterPrimary } from './cluster/cluster-primary.js';
import { clusterWorkerIdentity } from './cluster/cluster-worker.js';
import { loadConfigOrExit } from './config.js';
import { startDimseServer, type DimseServer } from './dimse/dimse-server.js';
import { startHl7Listener, type Hl7Listener } from './hl7/hl7-listener.js';
import { loggerOptions } from './http/logger.js';
import { createServices } from './services.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (cluster.isPrimary && config.cluster.workers > 1) {
    // The primary's few lines (workers started, died, ready, stopping) are logged at info even under PACS_LOG_LEVEL=warn.
    const level = ['fatal', 'error', 'warn'].includes(config.logLevel) ? 'info' : config.logLevel;
    const logger = pino({ ...loggerOptions(config), level }).child({ worker: 'primary' });
    logger.info({ workers: config.cluster.workers, auto: config.cluster.workersAuto }, 'starting the cluster (PACS_WORKERS)');
    await runClusterPrimary({ workers: config.cluster.workers, shutdownGraceMs: config.cluster.shutdownGraceSeconds * 1000, logger });
    return;
  }
  // In a cluster: every log line names the worker; only worker 0 runs the background duties.
  const worker = clusterWorkerIdentity(config);
  const duties = worker?.duties ?? config.cluster.backgroundDuties;
  const services = await createServices(config, {
    role: { kind: 'server', backgroundDuties: duties },
    ...(worker === undefined ? {} : { logger: pino(loggerOptions(config)).child({ worker: worker.slot }) }),
  });
  if (config.exposedWithoutAuthentication) {
    services.logger.warn(
      { host: config.host, dimseHost: config.dimse.enabled ? config.dimse.host : undefined, hl7Host: config.hl7.enabled ? config.hl7.host : undefined },
      'LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION (PACS_ALLOW_UNAUTHENTICATED_NETWORK=true): anyone who can reach this address can read and store patient data',
    );
  }
  const app = await buildApp(config, services);
  let dimse: DimseServer | undefined;
  let hl7: Hl7Listener | undefined;
  let closing = false;
  const shutdown = async (signal: string) => {
    // Once: a worker may get SIGINT from the terminal and SIGTERM from its primary.
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    // The HL7 listener first: the message being applied finishes before the hospital link closes with the app.
    await hl7?.close();
    await dimse?.close();
    await app.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  await app.listen({ host: config.host, port: config.port });
  // After a crash: orphan blobs and upload leftovers older than PACS_ORPHAN_MIN_AGE_SECONDS (fsck.ts); a duty.
  if (duties) void startStorageRecovery(services.blobStore, services.catalog, config.orphanMinAgeSeconds * 1000, services.logger);
  if (config.dimse.enabled) {
    // With the hospital link's store, the DIMSE service also answers Modality Worklist and MPPS.
    dimse = await startDimseServer({ config: config.dimse, archive: services.archive, logger: services.logger, pageSize: config.qido.maxLimit, audit: services.audit, his: services.his?.store });
  }
  if (config.hl7.enabled) {
    // The listener is given the hospital link (HisLink) the composition root built; it builds nothing.
    if (services.his) {
      hl7 = await startHl7Listener({ config: config.hl7, link: services.his.service, logger: services.logger, acceptedIssuers: config.his.patientIdIssuers });
    } else {
      services.logger.warn('PACS_HL7_ENABLED is set but this process has no hospital link: the HL7 listener is not started');
    }
  }
  app.log.info(
    {
      dicomweb: `${config.tls === null ? 'http' : 'https'}://${config.host}:${config.port}${config.dicomwebPrefix}`,
      blobStore: config.blobStore.kind,
      index: config.index.kind,
      signIn: config.auth.enabled ? config.auth.issuer : 'off',
      backgroundDuties: duties,
    },
    'filmless-pacs ready',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`Startup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
