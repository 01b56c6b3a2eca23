/**
 * One typed, frozen configuration built from environment variables. Every problem is collected and
 * reported at once, so an administrator fixes a broken deployment in one pass. The defaults run the
 * whole product embedded (blob folder + SQLite under ./data) on loopback, with no other service.
 *
 * This module is what the rest of the server imports: the `Config` type and `loadConfig`, which
 * composes the section readers of `config/` over one shared `EnvReader` (`config/env-reader.ts`)
 * that collects the problems of every section, and `loadConfigOrExit` for the entry points.
 */
import path from 'node:path';
import { AppError, isAppError } from './errors.js';
import { readAiConfig, readJobsConfig, readLiveConfig, type AiConfig, type JobsConfig, type LiveConfig } from './config/ai.js';
import { readAuditConfig, type AuditConfig } from './config/audit.js';
import { readBackupConfig, type BackupConfig } from './config/backup.js';
import { readAuthConfig, type AuthConfig } from './config/auth.js';
import { readChangeFeedConfig, type ChangeFeedConfig } from './config/changes.js';
import { readClusterConfig, type ClusterConfig } from './config/cluster.js';
import { readCurationConfig, type CurationConfig } from './config/curation.js';
import { readLifecycleConfig, type LifecycleConfig } from './config/lifecycle.js';
import { readDimseConfig, type DimseConfig } from './config/dimse.js';
import { readFhirConfig, withIssuerSystems, type FhirConfig } from './config/fhir.js';
import { readHisConfig, type HisConfig } from './config/his.js';
import { readHl7Config, type Hl7Config } from './config/hl7.js';
import { EnvReader, GiB, isLoopbackHost, MiB, type Env } from './config/env-reader.js';
import { readTlsConfig, readTrustedProxies, type TlsConfig } from './config/http.js';
import { readLimitsConfig, type LimitsConfig } from './config/limits.js';
import { readSharingConfig, type SharingConfig } from './config/sharing.js';
import { readBlobStoreConfig, readIndexConfig, type BlobStoreConfig, type IndexConfig } from './config/storage.js';

export { BUNDLED_MODELS_DIR, type AiConfig, type JobsConfig, type LiveConfig } from './config/ai.js';
export { DEFAULT_TRACKING, validateTracking, type TrackingConfig } from './config/tracking.js';
export type { AuditConfig } from './config/audit.js';
export type { BackupConfig } from './config/backup.js';
export { DEFAULT_ROLE_PERMISSIONS, type AuthConfig } from './config/auth.js';
export type { ChangeFeedConfig, ChangeFeedKind } from './config/changes.js';
export type { ClusterConfig } from './config/cluster.js';
export type { CurationConfig } from './config/curation.js';
export type { LifecycleConfig } from './config/lifecycle.js';
export type { DimseConfig } from './config/dimse.js';
export type { FhirConfig, FhirPushConfig } from './config/fhir.js';
export type { HisConfig } from './config/his.js';
export type { Hl7Config, Hl7Sender } from './config/hl7.js';
export { isLoopbackHost, isValidAeTitle } from './config/env-reader.js';
export type { TlsConfig } from './config/http.js';
export type { LimitsConfig } from './config/limits.js';
export type { SharingConfig } from './config/sharing.js';
export type { BlobStoreConfig, IndexConfig } from './config/storage.js';

export interface Config {
  host: string;
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Absolute base URL clients use to reach us (for RetrieveURL); derived from the request when empty. */
  publicBaseUrl: string;
  dicomwebPrefix: string;
  dataDir: string;
  blobStore: BlobStoreConfig;
  index: IndexConfig;
  stow: {
    /** Largest request body accepted by STOW-RS, in bytes (413 beyond). */
    maxBodyBytes: number;
    /** Largest DICOM header (everything before Pixel Data) kept in memory while a part streams in. */
    maxHeaderBytes: number;
  };
  /**
   * Crash recovery (archive/fsck.ts): blobs nothing indexes and leftovers of interrupted uploads are
   * removed at startup and by `npm run fsck -- --repair` only once older than this, so an upload still
   * running in another process sharing the store is never touched.
   */
  orphanMinAgeSeconds: number;
  qido: {
    defaultLimit: number;
    maxLimit: number;
  };
  /**
   * Browser origins (`https://viewer.example.org`) allowed to call the API cross-origin (CORS);
   * empty: CORS is off and browsers only allow same-origin pages.
   */
  corsOrigins: readonly string[];
  /**
   * Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs); empty: none, the client
   * address is the socket's. Audit records and the rate limit use the resulting address.
   */
  trustedProxies: readonly string[];
  ai: AiConfig;
  live: LiveConfig;
  dimse: DimseConfig;
  jobs: JobsConfig;
  /** Bounds against hostile or broken clients and files (docs/architecture.md, "Hostile input limits"). */
  limits: LimitsConfig;
  auth: AuthConfig;
  /** HTTPS with these PEM files; null: plain HTTP (loopback, or behind a TLS-terminating reverse proxy). */
  tls: TlsConfig | null;
  /** Audit trail (server/src/audit): where records are also sent, and whether requests wait for it. */
  audit: AuditConfig;
  /** Hospital link (server/src/his): the patient ID issuers accepted from the HIS. */
  his: HisConfig;
  /** HL7 v2.5.1 listener over MLLP (server/src/hl7): orders and patients from the HIS; off by default. */
  hl7: Hl7Config;
  /** FHIR R4 (server/src/fhir): the /fhir API and the push of results to the EMR (off unless PACS_FHIR_PUSH_URL). */
  fhir: FhirConfig;
  /** Share links, result slips and consults (server/src/sharing): link lifetimes, PIN limits, the hospital's name and logo. */
  sharing: SharingConfig;
  /** Curation (server/src/curation): IOCM rejection purge delay and sweep interval. */
  curation: CurationConfig;
  /** Storage lifecycle (server/src/lifecycle): lossless recompression and retention rules (all off by default), housekeeping pace. */
  lifecycle: LifecycleConfig;
  /** Change feed (server/src/changes): how server processes sharing the index hear of each other's changes. */
  changes: ChangeFeedConfig;
  /** Cluster (server/src/cluster): server processes sharing this machine's ports, which one runs the background duties, drain time. */
  cluster: ClusterConfig;
  /** Backup (server/src/backup): the second store (blob copies, index backups), schedule and retention; off unless PACS_BACKUP_STORE. */
  backup: BackupConfig;
  /** True when HTTP, DIMSE or HL7 listens beyond loopback with no authentication (allowed by override only). */
  exposedWithoutAuthentication: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Reads every section from `env` (relative paths against `cwd`); throws one CONFIG_INVALID error
 * listing all problems, in the order the variables are read.
 */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Readonly<Config> {
  const read = new EnvReader(env);
  const dataDir = path.resolve(cwd, read.string('PACS_DATA_DIR', 'data'));
  const blobStore = readBlobStoreConfig(read, dataDir);
  const index = readIndexConfig(read, dataDir);

  const config: Config = {
    host: read.string('PACS_HOST', '127.0.0.1'),
    port: read.integer('PACS_PORT', 8080, 0, 65535),
    logLevel: read.oneOf('PACS_LOG_LEVEL', LOG_LEVELS, 'info'),
    publicBaseUrl: read.string('PACS_PUBLIC_BASE_URL', '').replace(/\/+$/, ''),
    dicomwebPrefix: '/dicomweb',
    dataDir,
    blobStore,
    index,
    stow: {
      maxBodyBytes: read.integer('PACS_STOW_MAX_BODY_BYTES', 16 * GiB, 1024, Number.MAX_SAFE_INTEGER),
      maxHeaderBytes: read.integer('PACS_STOW_MAX_HEADER_BYTES', 64 * MiB, 4096, GiB),
    },
    orphanMinAgeSeconds: read.integer('PACS_ORPHAN_MIN_AGE_SECONDS', 24 * 60 * 60, 0, 365 * 24 * 60 * 60),
    qido: {
      defaultLimit: read.integer('PACS_QIDO_DEFAULT_LIMIT', 1000, 1, 100_000),
      maxLimit: read.integer('PACS_QIDO_MAX_LIMIT', 10_000, 1, 1_000_000),
    },
    corsOrigins: read.origins('PACS_CORS_ORIGINS'),
    trustedProxies: readTrustedProxies(read),
    ai: readAiConfig(read, cwd),
    live: readLiveConfig(read),
    dimse: readDimseConfig(read),
    jobs: readJobsConfig(read),
    limits: readLimitsConfig(read),
    auth: readAuthConfig(read),
    tls: readTlsConfig(read, cwd),
    audit: readAuditConfig(read),
    his: readHisConfig(read),
    hl7: readHl7Config(read),
    // The push links back to PACS_PUBLIC_BASE_URL (the DICOMweb Endpoint, the report PDFs).
    fhir: readFhirConfig(read, read.string('PACS_PUBLIC_BASE_URL', '').replace(/\/+$/, '')),
    sharing: readSharingConfig(read, cwd),
    curation: readCurationConfig(read),
    lifecycle: readLifecycleConfig(read),
    backup: readBackupConfig(read, dataDir, blobStore),
    changes: readChangeFeedConfig(read),
    cluster: readClusterConfig(read),
    exposedWithoutAuthentication: false,
  };
  // The in-process change feed keeps the caches of one process only: several workers would answer stale.
  if (config.changes.kind === 'memory' && config.cluster.workers > 1) {
    if (config.cluster.workersAuto) config.cluster = { ...config.cluster, workers: 1 };
    else read.problems.push(`PACS_CHANGE_FEED=memory keeps the caches of one process only: with PACS_WORKERS=${config.cluster.workers} choose another feed (auto)`);
  }
  // FHIR identifier systems of the hospital record number and national ID issuers the HL7 section names.
  config.fhir = withIssuerSystems(config.fhir, config.hl7.patientIdIssuer, config.hl7.nationalIdIssuer);

  // The HL7 listener gives PID-3 identifiers these issuers: the hospital link must accept them.
  for (const [name, issuer] of [['PACS_HIS_PATIENT_ID_ISSUER', config.hl7.patientIdIssuer], ['PACS_HIS_NATIONAL_ID_ISSUER', config.hl7.nationalIdIssuer]] as const) {
    if (issuer !== '' && config.his.patientIdIssuers.length > 0 && !config.his.patientIdIssuers.includes(issuer)) {
      read.problems.push(`${name} is "${issuer}", which PACS_HIS_PATIENT_ID_ISSUERS does not list`);
    }
  }

  // Without sign-in, anything that listens beyond loopback would serve patient data to the network.
  // Refuse it unless explicitly accepted (e.g. behind an authenticating reverse proxy or in a closed
  // network); main.ts then warns loudly. DIMSE has no tokens: beyond loopback it needs an AE allow-list.
  const dimseOpen = config.dimse.allowedCallingAeTitles.length === 0 && Object.keys(config.dimse.aePermissions).length === 0;
  const exposed = [
    ...(isLoopbackHost(config.host) || config.auth.enabled ? [] : [`PACS_HOST=${config.host}`]),
    ...(config.dimse.enabled && !isLoopbackHost(config.dimse.host) && dimseOpen ? [`PACS_DIMSE_HOST=${config.dimse.host}`] : []),
    // HL7 has no sign-in either: beyond loopback it needs the sending-application list (MSH-3).
    ...(config.hl7.enabled && !isLoopbackHost(config.hl7.host) && config.hl7.allowedSenders.length === 0 ? [`PACS_HL7_HOST=${config.hl7.host}`] : []),
  ];
  config.exposedWithoutAuthentication = exposed.length > 0;
  if (exposed.length > 0 && !read.boolean('PACS_ALLOW_UNAUTHENTICATED_NETWORK', false)) {
    read.problems.push(
      `${exposed.join(' and ')} would serve patient data beyond this machine without authentication; ` +
        'enable sign-in (PACS_AUTH_ENABLED=true with PACS_AUTH_ISSUER and PACS_AUTH_AUDIENCE) and, for DIMSE, a calling-AE list ' +
        '(PACS_DIMSE_AE_PERMISSIONS or PACS_DIMSE_ALLOWED_CALLING_AES), for HL7 a sending-application list (PACS_HL7_ALLOWED_SENDERS), ' +
        'or listen on loopback behind an authenticating reverse proxy, ' +
        'or set PACS_ALLOW_UNAUTHENTICATED_NETWORK=true to accept that risk',
    );
  }

  if (read.problems.length > 0) {
    throw new AppError('CONFIG_INVALID', `Invalid configuration:\n  - ${read.problems.join('\n  - ')}`);
  }
  return deepFreeze(config);
}

/**
 * `loadConfig` for entry points: writes every problem to stderr and exits with status 2 when the
 * configuration is invalid.
 */
export function loadConfigOrExit(env: Env = process.env, cwd: string = process.cwd()): Readonly<Config> {
  try {
    return loadConfig(env, cwd);
  } catch (err) {
    process.stderr.write(`${isAppError(err) ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
