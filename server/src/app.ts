/**
 * Composition root: the only place concrete storage and index classes are constructed. `buildApp`
 * wires given dependencies into Fastify (tests pass their own); `createServices` builds them from config.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import cors from '@fastify/cors';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Archive } from './archive/archive.js';
import type { Catalog } from './catalog/catalog.js';
import { createCatalog } from './catalog/create-catalog.js';
import type { AiConfig, Config } from './config.js';
import { aiRoutes } from './ai/ai.routes.js';
import { installAuditHook } from './audit/audit-http.js';
import type { AuditTrail } from './audit/audit-trail.js';
import { auditRoutes } from './audit/audit.routes.js';
import { auditSourceOf, createAuditTrail } from './audit/create-audit-trail.js';
import { installAccessControl } from './auth/access-control.js';
import { requires } from './auth/principal.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { analysesRoutes } from './ai/analyses.routes.js';
import { liveRoutes, LiveSessionRegistry } from './live/live.routes.js';
import { InferenceEngine } from './inference/inference-engine.js';
import { loadModelRegistry } from './inference/model-registry.js';
import { dicomwebPlugin } from './dicomweb/dicomweb.plugin.js';
import { errorHandler } from './http/error-handler.js';
import { nodeServerOptions, registerRateLimit } from './http/hardening.js';
import { loggerOptions } from './http/logger.js';
import { registerViewer } from './http/viewer-static.js';
import type { BlobStore } from './storage/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';

/** Response headers a cross-origin DICOMweb client needs to read (beyond the CORS-safelisted ones). */
export const CORS_EXPOSED_HEADERS = ['Content-Type', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'ETag', 'Warning', 'Location', 'Content-Location'];

export interface Services {
  blobStore: BlobStore;
  catalog: Catalog;
  logger: Logger;
  /** Absent when AI is disabled (PACS_AI_ENABLED=false). */
  inference?: InferenceEngine;
  /** The audit trail (audit/): always from createServices; absent only in hand-wired tests. */
  audit?: AuditTrail;
}

export async function createServices(config: Readonly<Config>, logger?: Logger): Promise<Services> {
  const log = logger ?? pino(loggerOptions(config));
  const blobStore = await createBlobStore(config.blobStore);
  let catalog: Catalog | undefined;
  let audit: AuditTrail | undefined;
  try {
    catalog = await createCatalog(config.index);
    audit = await createAuditTrail(config, log);
    const inference = config.ai.enabled ? await startInference(config.ai, log) : undefined;
    return { blobStore, catalog, logger: log, audit, ...(inference === undefined ? {} : { inference }) };
  } catch (err) {
    await audit?.close();
    await catalog?.close();
    await blobStore.close();
    throw err;
  }
}

/** Verifies the registry (sha256 of every model) and warms up one session per model. */
async function startInference(ai: AiConfig, log: Logger): Promise<InferenceEngine> {
  const models = await loadModelRegistry(ai.modelsDir);
  return InferenceEngine.start(models, { executionProvider: ai.executionProvider, threads: ai.threads, maxBatch: ai.maxBatch, queueDepth: ai.queueDepth }, log);
}

export async function buildApp(config: Readonly<Config>, services: Services): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: services.logger,
    // Gigabyte uploads over thin hospital links take long: no total request deadline, but idle
    // connections (nothing moving, PACS_HTTP_IDLE_TIMEOUT_MS) and slow headers are cut off (http/hardening.ts).
    requestTimeout: 0,
    connectionTimeout: config.limits.http.idleTimeoutMs,
    http: nodeServerOptions(config.limits.http),
    keepAliveTimeout: 72_000,
    // Behind a reverse proxy: the client's address from X-Forwarded-For, only when the proxy is trusted.
    ...(config.trustedProxies.length > 0 ? { trustProxy: [...config.trustedProxies] } : {}),
    // Fastify's default (100 characters) answers 414 to a WADO-RS frame list of a few dozen tiles.
    routerOptions: { maxParamLength: 16_384 },
    // Optional HTTPS (PACS_TLS_CERT_FILE / PACS_TLS_KEY_FILE); usually a reverse proxy terminates TLS.
    ...(config.tls === null ? {} : { https: { ...nodeServerOptions(config.limits.http), cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } }),
  }) as unknown as FastifyInstance;

  // WebSocket support (the live endoscopy stream) at the root and first: its own hooks then run before
  // access control's, so an upgrade refused with 401/403 still has its socket closed by the plugin. A
  // message above the frame limit is refused with an error (connection kept); far above it, ws closes
  // the connection (1009) before buffering it.
  await app.register(websocket, { options: { maxPayload: config.live.maxFrameBytes * 2 + 8192 } });

  // Per-client rate limiting (PACS_RATE_LIMIT_*): before access control, so refused requests count too.
  await registerRateLimit(app, config.limits.rateLimit);
  // Before any route: every route registered later is checked for its declared permission.
  const verifier = config.auth.enabled ? new TokenVerifier(config.auth) : undefined;
  installAccessControl(app, verifier);
  // Right after it: every request to a non-public route is audited once, refused ones included.
  if (services.audit !== undefined) installAuditHook(app, services.audit, verifier);

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `No route for ${request.method} ${request.url.split('?')[0]}` } });
  });

  if (config.corsOrigins.length > 0) {
    // Browser viewers on other origins (OHIF, Slim): only the configured ones, never `*` (patient data).
    await app.register(cors, {
      origin: [...config.corsOrigins],
      // DELETE: cancelling a slide analysis job (ai/analyses.routes.ts).
      methods: ['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'],
      exposedHeaders: CORS_EXPOSED_HEADERS,
      maxAge: 600,
    });
  }

  const archive = new Archive(services.blobStore, services.catalog, services.logger, {
    maxHeaderBytes: config.stow.maxHeaderBytes,
    maxNesting: config.limits.dicomMaxNesting,
    decodeMaxBytes: config.limits.decodeMaxBytes,
    renderMaxPixels: config.limits.renderMaxPixels,
  });
  await app.register(dicomwebPlugin, { prefix: config.dicomwebPrefix, archive, config });

  const inference = services.inference;
  const liveSessions = new LiveSessionRegistry();
  if (inference !== undefined) {
    await app.register(liveRoutes, {
      engine: inference,
      archive,
      log: services.logger,
      tmpDir: path.join(config.dataDir, 'live-tmp'),
      maxFrameBytes: config.live.maxFrameBytes,
      maxWaitMs: config.live.maxWaitMs,
      sessions: liveSessions,
      audit: services.audit,
    });
    await app.register(aiRoutes, {
      prefix: '/ai',
      archive,
      engine: inference,
      maxImageBytes: config.ai.maxImageBytes,
      publicBaseUrl: config.publicBaseUrl,
      dicomwebPrefix: config.dicomwebPrefix,
    });
    // Whole-slide analysis jobs (pathology/): job store, queue, in-process workers, recovery.
    await app.register(analysesRoutes, { prefix: '/ai', archive, engine: inference, config, log: services.logger });
  }

  if (services.audit !== undefined) await app.register(auditRoutes, { prefix: '/admin', trail: services.audit, source: auditSourceOf(config) });

  app.get('/healthz', requires('public'), async () => ({ status: 'ok' }));
  // Public: the viewer reads here whether and where to sign in before it has a token.
  app.get('/api', requires('public'), async () => ({
    name: 'filmless-pacs',
    dicomweb: config.dicomwebPrefix,
    ...(inference === undefined ? {} : { ai: '/ai' }),
    viewer: '/',
    auth: config.auth.enabled
      ? { enabled: true, issuer: config.auth.issuer, clientId: config.auth.viewer.clientId, scope: config.auth.viewer.scope }
      : { enabled: false },
  }));
  // The web viewer (static files of viewer/dist) at `/`: public, it holds no patient data.
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { permission: 'public', ...route.config };
    });
    await registerViewer(scope);
  });

  app.addHook('onClose', async () => {
    await liveSessions.drain();
    await services.audit?.close();
    await services.inference?.close();
    await services.catalog.close();
    await services.blobStore.close();
  });
  return app;
}
