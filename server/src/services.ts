/**
 * The composition module: the one place (with the entry points main.ts, worker.ts and fsck.ts) where
 * concrete objects are constructed from the configuration. It builds the blob store, the index, the
 * archive with its caches, the audit trail, the inference engine, the slide-analysis job store, queue
 * and service, and the live session registry, once per process; the HTTP app (app.ts), the DIMSE
 * service, the worker process and fsck all receive what they need from here, so two front ends of one
 * process share one archive and one set of caches.
 *
 * Ownership: `Services.close()` closes everything it holds (also parts a test handed in), in the order
 * that keeps data safe: live recordings finish, slide steps stop, audit records are written, then the
 * engine, index and blob store close.
 */
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { Archive } from './archive/archive.js';
import type { ChangeFeed } from './changes/change-feed.js';
import { createChangeFeed } from './changes/create-change-feed.js';
import type { Catalog } from './catalog/catalog.js';
import { createCatalog } from './catalog/create-catalog.js';
import { startWalCheckpointer } from './catalog/wal-checkpointer.js';
import { CurationService } from './curation/curation-service.js';
import { BackupService, backupAudit, describeBackupStore } from './backup/backup-service.js';
import { BackupStore } from './backup/backup-store.js';
import { BlobReplicator, type CopyMessage } from './backup/blob-replicator.js';
import { IndexBackups } from './backup/index-backups.js';
import { Housekeeping, type HousekeepingMessage } from './lifecycle/housekeeping.js';
import type { AiConfig, Config } from './config.js';
import type { AuditTrail } from './audit/audit-trail.js';
import { createAuditTrail } from './audit/create-audit-trail.js';
import { FhirClient } from './fhir/fhir-client.js';
import { IdentifierSystems } from './fhir/fhir-ids.js';
import { FhirIndex } from './fhir/fhir-index.js';
import { FhirPush, type PushMessage } from './fhir/fhir-push.js';
import { FhirService } from './fhir/fhir-service.js';
import { FhirStore } from './fhir/fhir-store.js';
import { HisService } from './his/his-service.js';
import { LiveProcedureSteps } from './his/live-procedure-steps.js';
import type { HisStore } from './his/his-store.js';
import { KyselyHisStore } from './his/kysely-his-store.js';
import type { StoredPatients } from './his/his-model.js';
import { loggerOptions } from './http/logger.js';
import { FrameDetections } from './inference/frame-detections.js';
import { InferenceEngine } from './inference/inference-engine.js';
import { loadModelRegistry } from './inference/model-registry.js';
import type { LiveOrders } from './live/live-orders.js';
import { LiveSessionRegistry } from './live/live-session-registry.js';
import { KyselyReportStore } from './reports/kysely-report-store.js';
import { AiUsageService } from './ai-usage/ai-usage-service.js';
import { AiUsageStore } from './ai-usage/ai-usage-store.js';
import { ReportService } from './reports/report-service.js';
import type { ReportStore } from './reports/report-store.js';
import { ConsultService } from './sharing/consult-service.js';
import { ShareService } from './sharing/share-service.js';
import { ShareStore } from './sharing/share-store.js';
import { AnalysisService } from './pathology/analysis-service.js';
import { BullmqQueue } from './pathology/bullmq-queue.js';
import { InProcessQueue, type JobQueue } from './pathology/job-queue.js';
import { JobStore } from './pathology/job-store.js';
import type { BlobStore } from './storage/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';

/** Slide analysis (pathology/): the job store, the queue and the service that runs the steps. */
export interface SlideAnalyses {
  readonly store: JobStore;
  readonly queue: JobQueue;
  readonly service: AnalysisService;
}

/** Reports (reports/): drafts, signing into the study as SR + Encapsulated PDF, the PDF, quality figures. */
export interface Reporting {
  readonly store: ReportStore;
  readonly service: ReportService;
}

/** AI in use, measured (ai-usage/): findings shown and clinicians' decisions per model version. */
export interface AiUsage {
  readonly store: AiUsageStore;
  readonly service: AiUsageService;
}

/** The FHIR R4 link (fhir/): the read model of the /fhir API, the outbox and, when configured, the push to the EMR. */
export interface FhirLink {
  readonly store: FhirStore;
  readonly service: FhirService;
  /** Present when PACS_FHIR_PUSH_URL is set (in the server; a worker process does not push). */
  readonly push?: FhirPush;
}

/** Share links, result slips and consults (sharing/): own tables in the index database. */
export interface Sharing {
  readonly store: ShareStore;
  readonly service: ShareService;
  readonly consults: ConsultService;
}

/** The hospital link (his/): orders, patients and worklist from the HIS, in the index database. */
export interface HospitalLink {
  readonly store: HisStore;
  readonly service: HisService;
}

export interface Services {
  readonly logger: Logger;
  readonly blobStore: BlobStore;
  readonly catalog: Catalog;
  /** The archive's use cases with their caches: one per process, shared by HTTP and DIMSE. */
  readonly archive: Archive;
  /** What the processes sharing the index announce to each other (changes/): caches drop what changed. */
  readonly changes: ChangeFeed;
  /** Absent when AI is disabled (PACS_AI_ENABLED=false) or a test wires none. */
  readonly inference?: InferenceEngine;
  /** Present whenever `inference` is: detection on stored frames kept as DICOM SR. */
  readonly frameDetections?: FrameDetections;
  /** Present whenever `inference` is. */
  readonly analyses?: SlideAnalyses;
  /** Absent only where a test wires none. */
  readonly audit?: AuditTrail;
  /** Live endoscopy sessions still storing their recordings (drained before storage closes). */
  readonly liveSessions: LiveSessionRegistry;
  /** The hospital link (orders, patients, worklist): always built; absent only where a test leaves it out. */
  readonly his?: HospitalLink;
  /** Present whenever `his` is: the live room performing worklist items (his/live-procedure-steps.ts behind live/'s port). */
  readonly liveOrders?: LiveOrders;
  /** Reports (own tables in the index database): always built; absent only where a test leaves it out. */
  readonly reports?: Reporting;
  /** AI in use, measured (own tables in the index database): built in the server; absent in a worker or where a test leaves it out. */
  readonly aiUsage?: AiUsage;
  /** The FHIR link: present unless PACS_FHIR_ENABLED=false and no push is configured. */
  readonly fhir?: FhirLink;
  /** Share links and consults: built in the server; absent in a worker or where a test leaves it out. */
  readonly sharing?: Sharing;
  /** Curation (IOCM rejection, DELETE, move / split / merge) and the purge timer: built in the server. */
  readonly curation?: CurationService;
  /** Backup (blob copies on the backup store, index backups): built in the server when PACS_BACKUP_STORE is set. */
  readonly backup?: BackupService;
  /** Storage lifecycle housekeeping (recompression, retention expiry; every rule off by default): built in the server. */
  readonly housekeeping?: Housekeeping;
  close(): Promise<void>;
}

/**
 * What a caller may hand in instead of having it built from the configuration (tests: a counting
 * store, an in-memory index, a failing audit store). `null`: leave that part out.
 */
export interface ServiceParts {
  logger?: Logger;
  blobStore?: BlobStore;
  catalog?: Catalog;
  audit?: AuditTrail | null;
  inference?: InferenceEngine | null;
  his?: HospitalLink | null;
  reports?: Reporting | null;
  aiUsage?: AiUsage | null;
  sharing?: Sharing | null;
  /** A change feed to use instead of the configured one (closed with the services). */
  changes?: ChangeFeed;
}

/**
 * Where slide-analysis steps run: `server` (the HTTP server; unfinished jobs are resumed at start and
 * steps run in this process when PACS_JOBS_WORKERS_IN_PROCESS) or `worker` (worker.ts: a process that
 * only takes steps from the BullMQ queue).
 */
export type ServicesRole =
  | {
      kind: 'server';
      /**
       * Whether this process runs the duties only one process on the index may run (default true): the
       * purge sweep, housekeeping runs and their crash recovery, backup replication and index backups,
       * slide-job resumption. A cluster (cluster/) gives them to worker 0 alone; the others only serve.
       */
      backgroundDuties?: boolean;
    }
  | { kind: 'worker'; workerId?: string; prepareEngine?: (engine: InferenceEngine) => void };

export interface ServicesOptions extends ServiceParts {
  role?: ServicesRole;
}

/** The blob store and index alone (fsck): no models, no audit trail. */
export async function openStorage(config: Readonly<Config>): Promise<{ blobStore: BlobStore; catalog: Catalog; close(): Promise<void> }> {
  const blobStore = await createBlobStore(config.blobStore);
  try {
    const catalog = await createCatalog(config.index);
    return {
      blobStore,
      catalog,
      async close() {
        await catalog.close();
        await blobStore.close();
      },
    };
  } catch (err) {
    await blobStore.close();
    throw err;
  }
}

export async function createServices(config: Readonly<Config>, options: ServicesOptions = {}): Promise<Services> {
  const role = options.role ?? { kind: 'server' };
  // Duties claimed row by row through leases in the database (the FHIR outbox) run in every process.
  const duties = role.kind === 'server' && role.backgroundDuties !== false;
  const logger = options.logger ?? pino(loggerOptions(config));
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close();
  };
  try {
    const blobStore = options.blobStore ?? (await createBlobStore(config.blobStore));
    closers.push(() => blobStore.close());
    const catalog = options.catalog ?? (await createCatalog(config.index));
    closers.push(() => catalog.close());
    // SQLite WAL checkpoints in a worker thread instead of inside commits on the event loop; one per
    // index file, in the process with the duties (the others fall back to checkpointing themselves).
    // Only for the catalog built here from the config: one given by the caller may be another file.
    if (duties && options.catalog === undefined && config.index.kind === 'sqlite' && config.index.file !== ':memory:') {
      const checkpointer = startWalCheckpointer(config.index.file, {
        onError: (message) => logger.warn({ error: message }, 'SQLite WAL checkpoint failed (tried again)'),
      });
      closers.push(() => checkpointer.stop());
    }
    // A diagnostic: a failing check must not keep the server from starting.
    if (role.kind === 'server') for (const warning of (await catalog.engineWarnings?.().catch(() => [])) ?? []) logger.warn(warning);
    const inference = options.inference === undefined ? (config.ai.enabled ? await startInference(config.ai, logger) : undefined) : (options.inference ?? undefined);
    if (inference !== undefined) closers.push(() => inference.close());
    if (role.kind === 'worker' && inference === undefined) throw new Error('A worker needs the models: PACS_AI_ENABLED must not be false');
    const audit = options.audit === undefined ? await createAuditTrail(config, logger) : (options.audit ?? undefined);
    if (audit !== undefined) closers.push(() => audit.close());
    // Before every cache: what other processes sharing the index change reaches the caches through it.
    const changes = options.changes ?? (await createChangeFeed(config, logger));
    closers.push(() => changes.close());
    // The hospital link before the archive: ingest asks it for orders (coercion by accession number),
    // and its patient updates and merges reach the stored studies through the archive (index rows and
    // caches; the stored files are never rewritten).
    const storedPatients: StoredPatients = {
      applyIdentity: (identity) => archive.applyPatientIdentity(identity),
      mergePatient: (prior, surviving) => archive.mergePatients(prior, surviving),
    };
    const his = options.his === undefined ? await startHospitalLink(config, audit, logger, storedPatients) : (options.his ?? undefined);
    if (his !== undefined) closers.push(() => his.store.close());
    // Built after the reports (below); the archive tells it of stored instances from then on.
    let fhir: FhirLink | undefined;
    // Built right after the archive; the archive tells it of rejection notes received (audited there).
    let curation: CurationService | undefined;
    // Built after the other services (server role, PACS_BACKUP_STORE set); the archive nudges it on every stored instance.
    let backup: BackupService | undefined;
    // Built right after curation; with compression at ingest the archive tells it of stored instances.
    let housekeeping: Housekeeping | undefined;
    const archive = new Archive(blobStore, catalog, logger, {
      maxHeaderBytes: config.stow.maxHeaderBytes,
      maxNesting: config.limits.dicomMaxNesting,
      decodeMaxBytes: config.limits.decodeMaxBytes,
      renderMaxPixels: config.limits.renderMaxPixels,
      ...(his === undefined ? {} : { orderReconciliation: his.service.reconciliation() }),
      // A study that gains instances is pushed to the EMR once it settled (PACS_FHIR_PUSH_ON_STUDY).
      instanceStored: (item) => {
        fhir?.push?.studyStored(item.studyInstanceUid);
        housekeeping?.instanceStored(item);
        // Replication passes run only where the duties do: that process finds the new blob at its next poll.
        if (duties) backup?.instanceStored();
      },
      // IOCM rejection notes (curation/): how long rejected instances stay; received notes audited.
      rejectionPurgeDelayMs: config.curation.rejectionPurgeDays * 24 * 3600 * 1000,
      rejectionApplied: (event) => curation?.noteApplied(event),
      changes,
    });
    if (role.kind === 'server') {
      const service = new CurationService(archive, audit, logger, {
        purgeDelayMs: config.curation.rejectionPurgeDays * 24 * 3600 * 1000,
        purgeIntervalMs: config.curation.purgeIntervalSeconds * 1000,
      });
      curation = service;
      // Closed before the index and blob store (closers run in reverse): a sweep in progress finishes.
      closers.push(() => service.close());
      if (duties) service.start();
      housekeeping = await startHousekeeping(config, blobStore, catalog, archive, service, audit, logger, duties);
      const started = housekeeping;
      closers.push(() => started.close());
    }
    let analyses: SlideAnalyses | undefined;
    if (inference !== undefined) {
      if (role.kind === 'worker') role.prepareEngine?.(inference);
      analyses = await startSlideAnalyses(config, archive, inference, logger, role);
      const { service, store } = analyses;
      closers.push(async () => {
        await service.close();
        await store.close();
      });
    }
    const reports = options.reports === undefined ? await startReporting(config, archive, logger) : (options.reports ?? undefined);
    if (reports !== undefined) closers.push(() => reports.store.close());
    // AI in use: told of the findings the reports offer and of signed reports' decisions.
    const aiUsage = options.aiUsage === undefined ? (role.kind === 'server' ? await startAiUsage(config, archive, reports, inference, logger) : undefined) : (options.aiUsage ?? undefined);
    if (aiUsage !== undefined) closers.push(() => aiUsage.store.close());
    // After the reports: signed reports are pushed to the EMR. Closed before them (closers run in reverse).
    fhir = await startFhirLink(config, his, reports, audit, logger, role, closers);
    // Share links and consults read the archive and the reports, and record link openings in the audit trail.
    const sharing = options.sharing === undefined ? (role.kind === 'server' ? await startSharing(config, archive, reports, audit, changes) : undefined) : (options.sharing ?? undefined);
    if (sharing !== undefined) closers.push(() => sharing.store.close());
    // The backup: copies of every indexed blob and index backups on the backup store (closed before the index).
    if (role.kind === 'server' && config.backup.store !== null) backup = await startBackup(config, blobStore, catalog, audit, logger, closers, duties);
    const liveSessions = new LiveSessionRegistry();
    closers.push(() => liveSessions.drain());
    return {
      logger,
      blobStore,
      catalog,
      archive,
      changes,
      liveSessions,
      ...(inference === undefined ? {} : { inference, frameDetections: new FrameDetections(archive, inference) }),
      ...(analyses === undefined ? {} : { analyses }),
      ...(audit === undefined ? {} : { audit }),
      ...(his === undefined ? {} : { his, liveOrders: new LiveProcedureSteps(his.store, audit, logger) satisfies LiveOrders }),
      ...(reports === undefined ? {} : { reports }),
      ...(aiUsage === undefined ? {} : { aiUsage }),
      ...(fhir === undefined ? {} : { fhir }),
      ...(sharing === undefined ? {} : { sharing }),
      ...(curation === undefined ? {} : { curation }),
      ...(backup === undefined ? {} : { backup }),
      ...(housekeeping === undefined ? {} : { housekeeping }),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The HIS store (own tables in the index database) and the hospital link's use cases. */
async function startHospitalLink(config: Readonly<Config>, audit: AuditTrail | undefined, logger: Logger, storedPatients: StoredPatients): Promise<HospitalLink> {
  const store = await KyselyHisStore.open(config.index);
  return { store, service: new HisService(store, storedPatients, audit, logger, { patientIdIssuers: config.his.patientIdIssuers }) };
}

/** The report store (own tables in the index database) and the reports use cases on the archive. */
async function startReporting(config: Readonly<Config>, archive: Archive, logger: Logger): Promise<Reporting> {
  const store = await KyselyReportStore.open(config.index);
  return { store, service: new ReportService(archive, store, logger) };
}

/** The AI usage store (own tables in the index database) and its use cases, told by the reports of findings shown and signed decisions. */
async function startAiUsage(config: Readonly<Config>, archive: Archive, reports: Reporting | undefined, inference: InferenceEngine | undefined, logger: Logger): Promise<AiUsage> {
  const store = await AiUsageStore.open(config.index);
  const service = new AiUsageService(archive, store, logger, { models: () => inference?.list() ?? [] });
  reports?.service.onAiFindingsShown((study, findings) => service.offered(study, findings));
  reports?.service.onSigned((event) => service.signed(event));
  return { store, service };
}

/** The share store (own tables in the index database), share links and consults on the archive. */
async function startSharing(config: Readonly<Config>, archive: Archive, reports: Reporting | undefined, audit: AuditTrail | undefined, changes: ChangeFeed): Promise<Sharing> {
  const store = await ShareStore.open(config.index);
  const service = new ShareService(store, archive, reports?.service, audit, { config: config.sharing, changes });
  return { store, service, consults: new ConsultService(store, archive, service, { maxInstanceBytes: config.limits.decodeMaxBytes }) };
}

/**
 * The FHIR link: its read model over the index, the HIS store and the reports, its outbox, and in the
 * server the push to the EMR (outbox rows sent through a job queue of their own name, in-process or
 * BullMQ like the slide analysis steps), told of every signed report.
 */
async function startFhirLink(
  config: Readonly<Config>,
  his: HospitalLink | undefined,
  reports: Reporting | undefined,
  audit: AuditTrail | undefined,
  logger: Logger,
  role: ServicesRole,
  closers: Array<() => Promise<void>>,
): Promise<FhirLink | undefined> {
  const { fhir } = config;
  // A slide-analysis worker serves no FHIR and pushes nothing.
  if (role.kind !== 'server' || (!fhir.enabled && fhir.push === null)) return undefined;
  const index = FhirIndex.open(config.index);
  closers.push(() => index.close());
  const store = await FhirStore.open(config.index);
  closers.push(() => store.close());
  const service = new FhirService(index, store, his?.store, reports?.store, {
    systems: new IdentifierSystems(fhir.issuerSystems, fhir.issuerSystemPrefix, fhir.patientIdSystem, fhir.nationalIdSystem),
    accessionSystem: fhir.accessionSystem,
    placerOrderSystem: fhir.placerOrderSystem,
    reportIdSystem: fhir.reportIdSystem,
    reportPdfPath: (id, version) => `/reports/${encodeURIComponent(id)}/versions/${version}/pdf`,
    ...(reports === undefined ? {} : { reportPdf: async (id: string, version: number) => (await reports.service.pdf(id, version)).pdf }),
  });
  if (fhir.push === null) return { store, service };
  const queue: JobQueue<PushMessage> =
    config.jobs.queue === 'bullmq'
      ? new BullmqQueue<PushMessage>({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds, queueName: 'fhir-outbox' })
      : new InProcessQueue<PushMessage>();
  const push = new FhirPush(store, queue, service, new FhirClient(fhir.push), logger, audit, {
    config: fhir.push,
    publicBaseUrl: config.publicBaseUrl,
    dicomwebPrefix: config.dicomwebPrefix,
    reportIdSystem: fhir.reportIdSystem,
  });
  closers.push(() => push.close());
  await push.start();
  reports?.service.onSigned(({ report }) => push.reportSigned(report.id, report.studyInstanceUid));
  return { store, service, push };
}

/**
 * Storage lifecycle housekeeping (lifecycle/): its units go through a job queue of their own name
 * (in-process, or BullMQ like the slide analysis steps when a rule is on), expired instances are
 * rejected through curation (113039 notes written as the REST rejection writes them).
 */
async function startHousekeeping(
  config: Readonly<Config>,
  blobStore: BlobStore,
  catalog: Catalog,
  archive: Archive,
  curation: CurationService,
  audit: AuditTrail | undefined,
  logger: Logger,
  duties: boolean,
): Promise<Housekeeping> {
  const { lifecycle } = config;
  const rulesOn = lifecycle.compression !== null || lifecycle.retention !== null || lifecycle.lossy !== null;
  const queue: JobQueue<HousekeepingMessage> =
    config.jobs.queue === 'bullmq' && rulesOn
      ? new BullmqQueue<HousekeepingMessage>({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds, queueName: 'storage-lifecycle' })
      : new InProcessQueue<HousekeepingMessage>();
  const housekeeping = new Housekeeping(blobStore, catalog, archive, queue, logger, {
    config: lifecycle,
    maxBytes: config.limits.decodeMaxBytes,
    maxHeaderBytes: config.stow.maxHeaderBytes,
    deleteGraceMs: lifecycle.deleteGraceSeconds * 1000,
    // A recompression journalled longer ago than an upload may take is one a crash interrupted (as fsck decides).
    staleConversionMs: config.orphanMinAgeSeconds * 1000,
    retention: curation,
    // Video re-encoding's temporary files (lifecycle/lossy-video.ts): next to the data, removed at start when left by a kill.
    tmpDir: path.join(config.dataDir, 'lifecycle-tmp'),
    ...(audit === undefined ? {} : { audit }),
  });
  // Without the duties: only the units this process queues (cluster workers other than worker 0).
  await housekeeping.start(true, duties);
  return housekeeping;
}

/**
 * The backup (backup/): the backup store (a folder on another disk or an S3 bucket elsewhere), the
 * outbox of blob copies sent through a job queue of its own name (in-process, or BullMQ like the slide
 * analysis steps), and the index backup schedule.
 */
async function startBackup(
  config: Readonly<Config>,
  blobStore: BlobStore,
  catalog: Catalog,
  audit: AuditTrail | undefined,
  logger: Logger,
  closers: Array<() => Promise<void>>,
  duties: boolean,
): Promise<BackupService> {
  const target = await createBlobStore(config.backup.store!);
  closers.push(() => target.close());
  const store = await BackupStore.open(config.index);
  const queue: JobQueue<CopyMessage> =
    config.jobs.queue === 'bullmq'
      ? new BullmqQueue<CopyMessage>({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds, queueName: 'backup-copies' })
      : new InProcessQueue<CopyMessage>();
  const { backup } = config;
  const replicator = new BlobReplicator(store, catalog, blobStore, target, queue, logger, {
    pollSeconds: backup.pollSeconds,
    reconcileMinutes: backup.reconcileMinutes,
    keepDeletedDays: backup.keepDeletedDays,
    concurrency: backup.concurrency,
  });
  const indexBackups = new IndexBackups(store, target, logger, { index: config.index, intervalMinutes: backup.indexIntervalMinutes, generations: backup.indexGenerations }, backupAudit(audit));
  const service = new BackupService(store, replicator, indexBackups, { description: describeBackupStore(backup.store!), keepDeletedDays: backup.keepDeletedDays });
  closers.push(() => service.close());
  // Without the duties the status API still answers; the copies and index backups run in the process with them.
  if (duties) await service.start();
  return service;
}

/** Verifies the registry (sha256 of every model) and warms up one session per model. */
async function startInference(ai: AiConfig, log: Logger): Promise<InferenceEngine> {
  const models = await loadModelRegistry(ai.modelsDir);
  return InferenceEngine.start(models, { executionProvider: ai.executionProvider, threads: ai.threads, threadSpinning: ai.threadSpinning, maxBatch: ai.maxBatch, queueDepth: ai.queueDepth }, log);
}

function createJobQueue(config: Readonly<Config>): JobQueue {
  return config.jobs.queue === 'bullmq'
    ? new BullmqQueue({ redisUrl: config.jobs.redisUrl, prefix: config.jobs.redisPrefix, stalledSeconds: config.jobs.stalledSeconds })
    : new InProcessQueue();
}

/**
 * The job store, queue and service. The server resumes unfinished jobs and, when configured, takes
 * steps itself; a worker process takes steps from the BullMQ queue only.
 */
async function startSlideAnalyses(config: Readonly<Config>, archive: Archive, engine: InferenceEngine, logger: Logger, role: ServicesRole): Promise<SlideAnalyses> {
  if (role.kind === 'worker' && config.jobs.queue !== 'bullmq') {
    throw new Error('A separate worker needs PACS_JOBS_QUEUE=bullmq (the in-process queue lives inside the server)');
  }
  const store = await JobStore.open(config.index);
  const queue = createJobQueue(config);
  const service = new AnalysisService(archive, engine, store, queue, logger, {
    windowsPerUnit: config.jobs.windowsPerUnit,
    windowsInFlight: config.ai.maxBatch,
    ...(role.kind === 'worker' && role.workerId !== undefined ? { workerId: role.workerId } : {}),
  });
  try {
    if (role.kind === 'server') {
      // Resuming unfinished jobs is a duty: two processes resuming one job would run its steps twice.
      if (role.backgroundDuties !== false) await service.recover();
      if (config.jobs.workersInProcess) await queue.startWorkers(service.handle, config.jobs.concurrency);
    } else {
      await queue.startWorkers(service.handle, config.jobs.concurrency);
      logger.info({ queue: 'bullmq', concurrency: config.jobs.concurrency }, 'slide analysis worker ready');
    }
  } catch (err) {
    await service.close();
    await store.close();
    throw err;
  }
  return { store, queue, service };
}
