/**
 * One typed, frozen configuration built from environment variables. Every problem is collected and
 * reported at once, so an administrator fixes a broken deployment in one pass. The defaults run the
 * whole product embedded (blob folder + SQLite under ./data) on loopback, with no other service.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PERMISSIONS, type Permission } from './auth/principal.js';
import { AppError } from './errors.js';

export type BlobStoreConfig =
  | { kind: 'fs'; root: string }
  | {
      kind: 's3';
      endPoint: string;
      port: number;
      useSSL: boolean;
      accessKey: string;
      secretKey: string;
      bucket: string;
      region: string;
      prefix: string;
      partSize: number;
    };

export type IndexConfig =
  | { kind: 'sqlite'; file: string }
  | { kind: 'postgres'; connectionString: string; schema: string; poolSize: number };

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
  live: {
    /** Largest frame accepted on the live stream, in bytes (larger ones are refused with an error message). */
    maxFrameBytes: number;
    /** Latency bound: a frame that waited longer than this for the model is dropped instead of analysed. */
    maxWaitMs: number;
  };
  dimse: DimseConfig;
  jobs: JobsConfig;
  /** Bounds against hostile or broken clients and files (docs/architecture.md, "Hostile input limits"). */
  limits: LimitsConfig;
  auth: AuthConfig;
  /** HTTPS with these PEM files; null: plain HTTP (loopback, or behind a TLS-terminating reverse proxy). */
  tls: { certFile: string; keyFile: string } | null;
  /** Audit trail (server/src/audit): where records are also sent, and whether requests wait for it. */
  audit: {
    /** PACS_AUDIT_SYSLOG: the ATNA audit repository (RFC 5424 syslog over UDP or TCP); null: off. */
    syslog: { protocol: 'udp' | 'tcp'; host: string; port: number } | null;
    /** PACS_AUDIT_FAIL_CLOSED: refuse protected requests (503) while audit records cannot be written. */
    failClosed: boolean;
  };
  /** True when HTTP or DIMSE listens beyond loopback with no authentication (allowed by override only). */
  exposedWithoutAuthentication: boolean;
}

/** Loopback addresses: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** DICOM network service (DIMSE, PS3.7/PS3.8): off by default; when on, loopback unless told otherwise. */
export interface DimseConfig {
  enabled: boolean;
  /** Address the SCP listens on (only that one). */
  host: string;
  port: number;
  /** Our AE title (Called AE title peers use; Calling AE title of our C-MOVE sub-associations). */
  aeTitle: string;
  /** Calling AE titles allowed to associate; empty: any. */
  allowedCallingAeTitles: readonly string[];
  /**
   * What each calling AE may do (`store` for C-STORE, `read` for C-FIND/C-MOVE/C-GET); empty: every
   * allowed AE may do everything. An AE missing here is refused at association when this is set.
   */
  aePermissions: Readonly<Record<string, readonly Permission[]>>;
  /** C-MOVE destinations: AE title → where its Storage SCP listens. */
  destinations: Readonly<Record<string, { host: string; port: number }>>;
}

export interface AiConfig {
  /** Off: no model is loaded and the /ai routes answer 404. */
  enabled: boolean;
  /** Folder holding manifest.json and the .onnx files it pins. */
  modelsDir: string;
  executionProvider: 'cpu' | 'cuda' | 'webgpu';
  /** onnxruntime intra-op threads per session; 0 = all cores. */
  threads: number;
  maxBatch: number;
  /** Requests allowed to wait per model before 503 + Retry-After. */
  queueDepth: number;
  /** Largest image body accepted by the detect endpoint, in bytes. */
  maxImageBytes: number;
}

/** The models shipped with the product: `models/` at the repository root (from src/ or dist/). */
export const BUNDLED_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string): string {
    const value = this.env[name];
    return value === undefined || value === '' ? fallback : value;
  }

  required(name: string, when: string): string {
    const value = this.env[name];
    if (value === undefined || value === '') {
      this.problems.push(`${name} is required when ${when}`);
      return '';
    }
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw.trim())) {
      this.problems.push(`${name} must be a whole number, got "${raw}"`);
      return fallback;
    }
    const value = Number(raw);
    if (value < min || value > max) {
      this.problems.push(`${name} must be between ${min} and ${max}, got ${value}`);
      return fallback;
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    this.problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  }

  /**
   * A comma-separated list of web origins (`scheme://host[:port]`, http or https, no path); a trailing
   * slash is dropped and the host lower-cased as browsers send it. `*` is refused: patient data.
   */
  origins(name: string): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [];
    const origins: string[] = [];
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      let url: URL | undefined;
      try {
        url = new URL(item);
      } catch {
        url = undefined;
      }
      const valid =
        url !== undefined &&
        (url.protocol === 'http:' || url.protocol === 'https:') &&
        url.username === '' &&
        url.password === '' &&
        url.pathname === '/' &&
        url.search === '' &&
        url.hash === '' &&
        /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+\/?$/i.test(item);
      if (!valid) {
        this.problems.push(`${name} must list http(s) origins such as https://viewer.example.org (no path, no "*"), got "${item}"`);
        continue;
      }
      if (!origins.includes(url!.origin)) origins.push(url!.origin);
    }
    return origins;
  }

  /** An AE title (PS3.5 AE: 1–16 characters, no backslash, no control characters; blanks trimmed). */
  aeTitle(name: string, fallback: string): string {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const value = raw.trim();
    if (!isValidAeTitle(value)) {
      this.problems.push(`${name} must be an AE title of 1 to 16 characters without backslash or control characters, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  /** A comma-separated list of AE titles; empty: none. */
  aeTitles(name: string): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [];
    const titles: string[] = [];
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      if (!isValidAeTitle(item)) {
        this.problems.push(`${name} must list AE titles of 1 to 16 characters without backslash or control characters, got "${item}"`);
        continue;
      }
      if (!titles.includes(item)) titles.push(item);
    }
    return titles;
  }

  /** `AE=host:port,AE2=host:port`: C-MOVE destinations by AE title. */
  destinations(name: string): Record<string, { host: string; port: number }> {
    const raw = this.env[name];
    const destinations: Record<string, { host: string; port: number }> = {};
    if (raw === undefined || raw.trim() === '') return destinations;
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      const match = /^([^=]+)=(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(item);
      const ae = match?.[1]?.trim() ?? '';
      const port = match ? Number(match[3]) : NaN;
      if (!match || !isValidAeTitle(ae) || !(port >= 1 && port <= 65535)) {
        this.problems.push(`${name} must list AE=host:port entries such as ORTHANC=127.0.0.1:4242 (AE title of 1 to 16 characters, port 1-65535), got "${item}"`);
        continue;
      }
      if (Object.hasOwn(destinations, ae)) {
        this.problems.push(`${name} lists the AE title "${ae}" twice`);
        continue;
      }
      destinations[ae] = { host: match[2]!.replace(/^\[|\]$/g, ''), port };
    }
    return destinations;
  }

  /** A comma-separated list of plain words; empty or unset: the fallback. */
  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [...fallback];
    return [...new Set(raw.split(',').map((item) => item.trim()).filter((item) => item !== ''))];
  }

  /**
   * `name=perm,perm;name2=perm`: what each role (or, for DIMSE, each AE title) may do. Permissions are
   * read, store, ai, admin.
   */
  rolePermissions(name: string, fallback: Readonly<Record<string, readonly Permission[]>>): Record<string, Permission[]> {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return Object.fromEntries(Object.entries(fallback).map(([key, value]) => [key, [...value]]));
    const table: Record<string, Permission[]> = {};
    for (const entry of raw.split(';').map((item) => item.trim())) {
      if (entry === '') continue;
      const match = /^([^=]+)=(.*)$/.exec(entry);
      const key = match?.[1]?.trim() ?? '';
      const permissions = (match?.[2] ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '');
      const unknown = permissions.filter((item) => !(PERMISSIONS as readonly string[]).includes(item));
      if (!match || key === '' || permissions.length === 0 || unknown.length > 0) {
        this.problems.push(`${name} must list name=permission,permission entries separated by ";" (permissions: ${PERMISSIONS.join(', ')}), got "${entry}"`);
        continue;
      }
      table[key] = [...new Set(permissions as Permission[])];
    }
    return table;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
    return fallback;
  }
}

/**
 * Sign-in (issue "Security and reliability"): OpenID Connect bearer tokens (JWT) verified against the
 * issuer's JWKS. Off by default: the embedded product listens on loopback only.
 */
export interface AuthConfig {
  enabled: boolean;
  /** The OpenID provider's issuer URL; tokens must carry exactly this `iss`. */
  issuer: string;
  /** The `aud` tokens must carry (the API's client id or resource name). */
  audience: string;
  /** Where the signing keys are; empty: from the issuer's /.well-known/openid-configuration. */
  jwksUri: string;
  /** Signature algorithms accepted (never `none`, never HMAC with a public key). */
  algorithms: readonly string[];
  /** Claim holding the user's roles, dotted for nested claims (Keycloak: `realm_access.roles`). */
  rolesClaim: string;
  /** Role name → the permissions it grants. */
  rolePermissions: Readonly<Record<string, readonly Permission[]>>;
  /** Seconds of clock skew tolerated on exp/nbf/iat. */
  clockToleranceSeconds: number;
  /** What the web viewer needs to sign users in (authorization code + PKCE, a public client). */
  viewer: { clientId: string; scope: string };
}

/** Default role names: a hospital maps its directory groups onto these, or sets its own. */
export const DEFAULT_ROLE_PERMISSIONS: Readonly<Record<string, readonly Permission[]>> = {
  reader: ['read'],
  uploader: ['store'],
  'ai-user': ['read', 'ai'],
  admin: ['read', 'store', 'ai', 'admin'],
};

const SIGNATURE_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

function readAuthConfig(read: EnvReader): AuthConfig {
  const enabled = read.boolean('PACS_AUTH_ENABLED', false);
  const need = (name: string) => (enabled ? read.required(name, 'PACS_AUTH_ENABLED=true') : read.string(name, ''));
  const issuer = need('PACS_AUTH_ISSUER').replace(/\/+$/, '');
  const audience = need('PACS_AUTH_AUDIENCE');
  const jwksUri = read.string('PACS_AUTH_JWKS_URI', '');
  for (const [name, value] of [['PACS_AUTH_ISSUER', issuer], ['PACS_AUTH_JWKS_URI', jwksUri]] as const) {
    if (value !== '' && !/^https?:\/\/[^/]/i.test(value)) read.problems.push(`${name} must be an http(s) URL, got "${value}"`);
  }
  const algorithms = read.list('PACS_AUTH_ALGORITHMS', ['RS256', 'PS256', 'ES256']);
  for (const algorithm of algorithms) {
    if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(algorithm)) {
      read.problems.push(`PACS_AUTH_ALGORITHMS may list ${SIGNATURE_ALGORITHMS.join(', ')}, got "${algorithm}"`);
    }
  }
  return {
    enabled,
    issuer,
    audience,
    jwksUri,
    algorithms,
    rolesClaim: read.string('PACS_AUTH_ROLES_CLAIM', 'roles'),
    rolePermissions: read.rolePermissions('PACS_AUTH_ROLE_PERMISSIONS', DEFAULT_ROLE_PERMISSIONS),
    clockToleranceSeconds: read.integer('PACS_AUTH_CLOCK_TOLERANCE_SECONDS', 30, 0, 600),
    viewer: {
      clientId: read.string('PACS_AUTH_VIEWER_CLIENT_ID', ''),
      scope: read.string('PACS_AUTH_VIEWER_SCOPE', 'openid profile'),
    },
  };
}

function readTlsConfig(read: EnvReader, cwd: string): Config['tls'] {
  const certFile = read.string('PACS_TLS_CERT_FILE', '');
  const keyFile = read.string('PACS_TLS_KEY_FILE', '');
  if (certFile === '' && keyFile === '') return null;
  if (certFile === '' || keyFile === '') {
    read.problems.push('PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE must be set together (PEM certificate chain and its private key)');
    return null;
  }
  return { certFile: path.resolve(cwd, certFile), keyFile: path.resolve(cwd, keyFile) };
}

/** PACS_AUDIT_SYSLOG: `udp://host:514` or `tcp://host:6514`; empty: no syslog export. */
function readAuditSyslog(read: EnvReader): Config['audit']['syslog'] {
  const raw = read.string('PACS_AUDIT_SYSLOG', '').trim();
  if (raw === '') return null;
  const match = /^(udp|tcp):\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(raw);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) {
    read.problems.push(`PACS_AUDIT_SYSLOG must be udp://host:port or tcp://host:port (e.g. udp://audit.example.org:514), got "${raw}"`);
    return null;
  }
  return { protocol: match[1] as 'udp' | 'tcp', host: match[2]!.replace(/^\[|\]$/g, ''), port };
}

/** Bounds against hostile or broken clients and files; each has a default that real traffic never meets. */
export interface LimitsConfig {
  http: {
    /** Largest request line + headers (Node's maxHeaderSize); beyond: 431. */
    maxHeaderBytes: number;
    /** Total time a client may take to send the request line and headers (slow-loris); 0: none. */
    headersTimeoutMs: number;
    /**
     * A connection on which no byte moves either way for this long is closed (an idle timeout, reset by
     * every chunk, so a long upload that keeps sending is never cut; there is no total request deadline).
     */
    idleTimeoutMs: number;
  };
  rateLimit: {
    /** Requests per client address per window; 0: rate limiting off. Beyond: 429 + Retry-After. */
    max: number;
    windowSeconds: number;
    /** Loopback clients (the embedded viewer, local tools, a reverse proxy on the same host) are not limited. */
    exemptLoopback: boolean;
  };
  /** Parts of one STOW-RS request (the whole request is refused beyond: 413). */
  stowMaxParts: number;
  /** Frame numbers in one WADO-RS frame list (400 beyond). */
  wadoMaxFrames: number;
  /** Sequences nested deeper than this in a DICOM data set are refused at ingest. */
  dicomMaxNesting: number;
  /** Decoded pixel bytes one request may hold in memory (decoded frames, transcoding, decoded bulk data): 406 beyond. */
  decodeMaxBytes: number;
  /** Largest frame (Rows × Columns) rendered to JPEG/PNG, thumbnails and AI detections on stored frames: 406 beyond. */
  renderMaxPixels: number;
  /** Memory for finished WADO-RS metadata responses, reused while the study / series is unchanged; 0: off. */
  metadataCacheBytes: number;
}

function readLimitsConfig(read: EnvReader): LimitsConfig {
  return {
    http: {
      maxHeaderBytes: read.integer('PACS_HTTP_MAX_HEADER_BYTES', 16 * 1024, 1024, MiB),
      headersTimeoutMs: read.integer('PACS_HTTP_HEADERS_TIMEOUT_MS', 20_000, 0, 600_000),
      idleTimeoutMs: read.integer('PACS_HTTP_IDLE_TIMEOUT_MS', 120_000, 0, 3_600_000),
    },
    rateLimit: {
      max: read.integer('PACS_RATE_LIMIT_MAX', 6000, 0, 10_000_000),
      windowSeconds: read.integer('PACS_RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
      exemptLoopback: read.boolean('PACS_RATE_LIMIT_EXEMPT_LOOPBACK', true),
    },
    stowMaxParts: read.integer('PACS_STOW_MAX_PARTS', 10_000, 1, 10_000_000),
    wadoMaxFrames: read.integer('PACS_WADO_MAX_FRAMES', 1000, 1, 100_000),
    dicomMaxNesting: read.integer('PACS_DICOM_MAX_NESTING', 64, 1, 1000),
    decodeMaxBytes: read.integer('PACS_DECODE_MAX_BYTES', 512 * MiB, MiB, 8 * GiB),
    renderMaxPixels: read.integer('PACS_RENDER_MAX_PIXELS', 8192 * 8192, 1024, 1024 * 1024 * 1024),
    metadataCacheBytes: read.integer('PACS_METADATA_CACHE_MB', 64, 0, 64 * 1024) * MiB,
  };
}

/** Slide analysis jobs (server/src/pathology): where their steps queue and who runs them. */
export interface JobsConfig {
  /** `inprocess` (embedded: a queue in memory, resumed from the job store at start) or `bullmq` (Redis). */
  queue: 'inprocess' | 'bullmq';
  redisUrl: string;
  /** Redis key prefix of the BullMQ queue. */
  redisPrefix: string;
  /** Run steps in the server process too; false when separate worker processes (server/src/worker.ts) do. */
  workersInProcess: boolean;
  /** Steps one process runs at once. */
  concurrency: number;
  /** Model windows per queued unit (the unit of progress, retry and exactly-once recording). */
  windowsPerUnit: number;
  /** BullMQ: seconds without a lock renewal before another worker takes a step of a dead worker. */
  stalledSeconds: number;
}

function readJobsConfig(read: EnvReader): JobsConfig {
  return {
    queue: read.oneOf('PACS_JOBS_QUEUE', ['inprocess', 'bullmq'] as const, 'inprocess'),
    redisUrl: read.string('PACS_REDIS_URL', 'redis://127.0.0.1:6379'),
    redisPrefix: read.string('PACS_REDIS_PREFIX', 'filmless'),
    workersInProcess: read.boolean('PACS_JOBS_WORKERS_IN_PROCESS', true),
    concurrency: read.integer('PACS_JOBS_CONCURRENCY', 1, 1, 64),
    windowsPerUnit: read.integer('PACS_JOBS_WINDOWS_PER_UNIT', 16, 1, 4096),
    stalledSeconds: read.integer('PACS_JOBS_STALLED_SECONDS', 30, 1, 3600),
  };
}

/** PS3.5 Table 6.2-1, AE: at most 16 characters of the default repertoire, no backslash, no control characters. */
/** PACS_TRUSTED_PROXIES: `127.0.0.1,10.0.0.0/8`: IPv4/IPv6 addresses or CIDR ranges. */
function readTrustedProxies(read: EnvReader): string[] {
  const entries = read.list('PACS_TRUSTED_PROXIES', []);
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const ip = isIP(address ?? '');
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (ip === 6 ? 128 : 32));
    if (ip === 0 || !prefixOk || extra !== undefined) read.problems.push(`PACS_TRUSTED_PROXIES must list IP addresses or CIDR ranges such as 127.0.0.1,10.0.0.0/8, got "${entry}"`);
  }
  return entries;
}

/** PACS_DIMSE_AE_PERMISSIONS: `MODALITY1=store;WORKSTATION=read;PEERPACS=read,store`. */
function readAePermissions(read: EnvReader): Record<string, Permission[]> {
  const table = read.rolePermissions('PACS_DIMSE_AE_PERMISSIONS', {});
  for (const ae of Object.keys(table)) {
    if (!isValidAeTitle(ae)) read.problems.push(`PACS_DIMSE_AE_PERMISSIONS must name AE titles of 1 to 16 characters, got "${ae}"`);
    const unsupported = table[ae]!.filter((permission) => permission !== 'read' && permission !== 'store');
    if (unsupported.length > 0) read.problems.push(`PACS_DIMSE_AE_PERMISSIONS: DIMSE knows only read and store, got "${unsupported.join(',')}" for ${ae}`);
  }
  return table;
}

export function isValidAeTitle(value: string): boolean {
  return value.length >= 1 && value.length <= 16 && /^[\x20-\x7E]+$/.test(value) && !value.includes('\\') && value.trim() !== '';
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Readonly<Config> {
  const read = new EnvReader(env);
  const dataDir = path.resolve(cwd, read.string('PACS_DATA_DIR', 'data'));

  const blobKind = read.oneOf('PACS_BLOB_STORE', ['fs', 's3'] as const, 'fs');
  const blobStore: BlobStoreConfig =
    blobKind === 'fs'
      ? { kind: 'fs', root: path.resolve(dataDir, read.string('PACS_BLOB_DIR', 'blobs')) }
      : {
          kind: 's3',
          endPoint: read.required('PACS_S3_ENDPOINT', 'PACS_BLOB_STORE=s3'),
          port: read.integer('PACS_S3_PORT', 9000, 1, 65535),
          useSSL: read.boolean('PACS_S3_USE_SSL', false),
          accessKey: read.required('PACS_S3_ACCESS_KEY', 'PACS_BLOB_STORE=s3'),
          secretKey: read.required('PACS_S3_SECRET_KEY', 'PACS_BLOB_STORE=s3'),
          bucket: read.string('PACS_S3_BUCKET', 'dicom'),
          region: read.string('PACS_S3_REGION', 'us-east-1'),
          prefix: read.string('PACS_S3_PREFIX', ''),
          partSize: read.integer('PACS_S3_PART_SIZE', 16 * MiB, 5 * MiB, 5 * GiB),
        };

  const indexKind = read.oneOf('PACS_INDEX', ['sqlite', 'postgres'] as const, 'sqlite');
  const index: IndexConfig =
    indexKind === 'sqlite'
      ? { kind: 'sqlite', file: path.resolve(dataDir, read.string('PACS_SQLITE_FILE', 'index.sqlite')) }
      : {
          kind: 'postgres',
          connectionString: read.required('PACS_POSTGRES_URL', 'PACS_INDEX=postgres'),
          schema: read.string('PACS_POSTGRES_SCHEMA', 'public'),
          poolSize: read.integer('PACS_POSTGRES_POOL_SIZE', 10, 1, 200),
        };

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
    ai: {
      enabled: read.boolean('PACS_AI_ENABLED', true),
      modelsDir: path.resolve(cwd, read.string('PACS_MODELS_DIR', BUNDLED_MODELS_DIR)),
      executionProvider: read.oneOf('PACS_AI_EXECUTION_PROVIDER', ['cpu', 'cuda', 'webgpu'] as const, 'cpu'),
      threads: read.integer('PACS_AI_THREADS', 0, 0, 256),
      maxBatch: read.integer('PACS_AI_MAX_BATCH', 4, 1, 64),
      queueDepth: read.integer('PACS_AI_QUEUE_DEPTH', 16, 0, 10_000),
      maxImageBytes: read.integer('PACS_AI_MAX_IMAGE_BYTES', 32 * MiB, 1024, GiB),
    },
    live: {
      maxFrameBytes: read.integer('PACS_LIVE_MAX_FRAME_BYTES', 8 * MiB, 1024, 256 * MiB),
      maxWaitMs: read.integer('PACS_LIVE_MAX_WAIT_MS', 50, 1, 60_000),
    },
    dimse: {
      enabled: read.boolean('PACS_DIMSE_ENABLED', false),
      host: read.string('PACS_DIMSE_HOST', '127.0.0.1'),
      port: read.integer('PACS_DIMSE_PORT', 11112, 0, 65535),
      aeTitle: read.aeTitle('PACS_DIMSE_AE_TITLE', 'FILMLESS'),
      allowedCallingAeTitles: read.aeTitles('PACS_DIMSE_ALLOWED_CALLING_AES'),
      aePermissions: readAePermissions(read),
      destinations: read.destinations('PACS_DIMSE_DESTINATIONS'),
    },
    jobs: readJobsConfig(read),
    limits: readLimitsConfig(read),
    auth: readAuthConfig(read),
    tls: readTlsConfig(read, cwd),
    audit: { syslog: readAuditSyslog(read), failClosed: read.boolean('PACS_AUDIT_FAIL_CLOSED', true) },
    exposedWithoutAuthentication: false,
  };

  // Without sign-in, anything that listens beyond loopback would serve patient data to the network.
  // Refuse it unless explicitly accepted (e.g. behind an authenticating reverse proxy or in a closed
  // network); main.ts then warns loudly. DIMSE has no tokens: beyond loopback it needs an AE allow-list.
  const dimseOpen = config.dimse.allowedCallingAeTitles.length === 0 && Object.keys(config.dimse.aePermissions).length === 0;
  const exposed = [
    ...(isLoopbackHost(config.host) || config.auth.enabled ? [] : [`PACS_HOST=${config.host}`]),
    ...(config.dimse.enabled && !isLoopbackHost(config.dimse.host) && dimseOpen ? [`PACS_DIMSE_HOST=${config.dimse.host}`] : []),
  ];
  config.exposedWithoutAuthentication = exposed.length > 0;
  if (exposed.length > 0 && !read.boolean('PACS_ALLOW_UNAUTHENTICATED_NETWORK', false)) {
    read.problems.push(
      `${exposed.join(' and ')} would serve patient data beyond this machine without authentication; ` +
        'enable sign-in (PACS_AUTH_ENABLED=true with PACS_AUTH_ISSUER and PACS_AUTH_AUDIENCE) and, for DIMSE, a calling-AE list ' +
        '(PACS_DIMSE_AE_PERMISSIONS or PACS_DIMSE_ALLOWED_CALLING_AES), or listen on loopback behind an authenticating reverse proxy, ' +
        'or set PACS_ALLOW_UNAUTHENTICATED_NETWORK=true to accept that risk',
    );
  }

  if (read.problems.length > 0) {
    throw new AppError('CONFIG_INVALID', `Invalid configuration:\n  - ${read.problems.join('\n  - ')}`);
  }
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
