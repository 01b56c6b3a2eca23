/**
 * The HTTP application: wires the services built by the composition module (services.ts) into Fastify
 * (hooks for limits, access control and audit, the DICOMweb, AI, live and admin plugins, the viewer).
 * Constructs no storage, index, archive or engine of its own; tests pass services with their own parts.
 * The app owns the services it is given: closing the app closes them.
 */
import path from 'node:path';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { aiRoutes } from './ai/ai.routes.js';
import { aiUsageRoutes } from './ai-usage/ai-usage.routes.js';
import type { FrameReport } from './inference/frame-detections.js';
import { installAuditHook } from './audit/audit-http.js';
import { auditRoutes } from './audit/audit.routes.js';
import { auditSourceOf } from './audit/create-audit-trail.js';
import { installAccessControl } from './auth/access-control.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { analysesRoutes } from './ai/analyses.routes.js';
import { liveRoutes } from './live/live.routes.js';
import { ordersRoutes } from './his/orders.routes.js';
import { reportsRoutes } from './reports/reports.routes.js';
import { backupRoutes } from './backup/backup.routes.js';
import { curationRoutes } from './curation/curation.routes.js';
import { storageRoutes } from './lifecycle/storage.routes.js';
import { consultsRoutes } from './sharing/consults.routes.js';
import { sharingRoutes } from './sharing/sharing.routes.js';
import { installSecurityHeaders } from './http/security-headers.js';
import { dicomwebPlugin } from './dicomweb/dicomweb.plugin.js';
import { fhirOutboxRoutes } from './fhir/fhir-outbox.routes.js';
import { fhirRoutes } from './fhir/fhir.routes.js';
import { errorHandler } from './http/error-handler.js';
import { nodeServerOptions, registerRateLimit } from './http/hardening.js';
import { installResponseCheck } from './http/response-check.js';
import { PUBLIC } from './http/route-access.js';
import { registerViewer } from './http/viewer-static.js';
import { installJsonCompression } from './http/compress-json.js';
import { prepareHttp2Server, tlsServerOptions } from './http/tls-server.js';
import type { Services } from './services.js';

/** Response headers a cross-origin DICOMweb client needs to read (beyond the CORS-safelisted ones). */
export const CORS_EXPOSED_HEADERS = ['Content-Type', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'ETag', 'Warning', 'Location', 'Content-Location'];

export interface BuildOptions {
  /** Check every JSON response against its route's schema before it is serialized (the test app). */
  checkResponses?: boolean;
}

export async function buildApp(config: Readonly<Config>, services: Services, options: BuildOptions = {}): Promise<FastifyInstance> {
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
    // Validation errors carry the offending value and schema, so http/route-schema.ts can say "may be
    // given once" for a repeated query parameter and name the field.
    ajv: { customOptions: { verbose: true } },
    // Optional HTTPS (PACS_TLS_CERT_FILE / PACS_TLS_KEY_FILE), with HTTP/2 beside HTTP/1.1 unless
    // PACS_HTTP2=false (http/tls-server.ts); usually a reverse proxy terminates TLS.
    ...tlsServerOptions(config.tls, config.limits.http),
  }) as unknown as FastifyInstance;
  prepareHttp2Server(app, config.tls, config.limits.http);
  // First: nosniff and no referrer on every response, a Content-Security-Policy on every HTML page
  // (share links take the archive to people outside the hospital network).
  installSecurityHeaders(app, config.auth.enabled ? { signInOrigin: new URL(config.auth.issuer).origin } : {});

  // WebSocket support (the live endoscopy stream) at the root and first: its own hooks then run before
  // access control's, so an upgrade refused with 401/403 still has its socket closed by the plugin. A
  // message above the frame limit is refused with an error (connection kept); far above it, ws closes
  // the connection (1009) before buffering it.
  await app.register(websocket, { options: { maxPayload: config.live.maxFrameBytes * 2 + 8192 } });

  // Per-client rate limiting (PACS_RATE_LIMIT_*): before access control, so refused requests count too.
  await registerRateLimit(app, config.limits.rateLimit);
  // Before any route: every route registered later is checked for its declared permission.
  const verifier = config.auth.enabled ? new TokenVerifier(config.auth) : undefined;
  // Share links' credentials (sharing/) give confined link principals, whatever the sign-in setting.
  installAccessControl(app, verifier, services.sharing?.service);
  // Right after it: every request to a non-public route is audited once, refused ones included.
  if (services.audit !== undefined) installAuditHook(app, services.audit, verifier);

  // The OpenAPI document of the JSON APIs (AI, slide analysis, audit), generated from the routes'
  // schemas; DICOMweb is specified by PS3.18 and the viewer's files are not an API, so routes without
  // tags are left out. Served at GET /api/openapi.json.
  await app.register(swagger, {
    openapi: {
      info: { title: 'filmless-pacs', version: '1', description: 'JSON APIs of the archive: AI, slide analysis, audit, orders and worklist. DICOMweb (PS3.18) is under ' + config.dicomwebPrefix + '.' },
      ...(config.auth.enabled
        ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } }, security: [{ bearer: [] }] }
        : {}),
    },
    transform: ({ schema, url }) => {
      const tags = (schema as { tags?: string[] } | undefined)?.tags;
      return { schema: (tags === undefined ? { ...schema, hide: true } : schema) as never, url };
    },
  });
  if (options.checkResponses === true) installResponseCheck(app);

  app.setErrorHandler(errorHandler);
  // JSON bodies (QIDO-RS, AI, orders, audit, FHIR) brotli/gzip-compressed by Accept-Encoding, Vary set.
  installJsonCompression(app);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `No route for ${request.method} ${request.url.split('?')[0]}` } });
  });

  if (config.corsOrigins.length > 0) {
    // Browser viewers on other origins (OHIF, Slim): only the configured ones, never `*` (patient data).
    await app.register(cors, {
      origin: [...config.corsOrigins],
      // DELETE: cancelling a slide analysis job (ai/analyses.routes.ts); PUT: changing orders and patients (his/orders.routes.ts).
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
      exposedHeaders: CORS_EXPOSED_HEADERS,
      maxAge: 600,
    });
  }

  const { archive } = services;
  await app.register(dicomwebPlugin, { prefix: config.dicomwebPrefix, archive, config });

  const { inference, frameDetections, analyses } = services;
  if (inference !== undefined && frameDetections !== undefined) {
    await app.register(liveRoutes, {
      engine: inference,
      archive,
      log: services.logger,
      tmpDir: path.join(config.dataDir, 'live-tmp'),
      maxFrameBytes: config.live.maxFrameBytes,
      maxWaitMs: config.live.maxWaitMs,
      tracking: config.live.tracking,
      sessions: services.liveSessions,
      // Sessions from a worklist item (the hospital link's orders).
      ...(services.liveOrders === undefined ? {} : { orders: services.liveOrders }),
    });
    await app.register(aiRoutes, {
      prefix: '/ai',
      engine: inference,
      frameDetections,
      maxImageBytes: config.ai.maxImageBytes,
      publicBaseUrl: config.publicBaseUrl,
      dicomwebPrefix: config.dicomwebPrefix,
      // "Shown" of the AI usage figures: the detections the viewer's AI panel gets.
      ...(services.aiUsage === undefined ? {} : { findingsShown: (reports: FrameReport[]) => services.aiUsage!.service.returned(reports) }),
    });
  }
  if (analyses !== undefined) {
    // Whole-slide analysis jobs (pathology/): the service and job store built by services.ts.
    await app.register(analysesRoutes, { prefix: '/ai', service: analyses.service, store: analyses.store, publicBaseUrl: config.publicBaseUrl, dicomwebPrefix: config.dicomwebPrefix });
  }

  if (services.audit !== undefined) await app.register(auditRoutes, { prefix: '/admin', trail: services.audit, source: auditSourceOf(config) });
  // The hospital link's orders REST API and worklist (his/): the service and store built by services.ts.
  if (services.his !== undefined) await app.register(ordersRoutes, { prefix: '/his', link: services.his.service, store: services.his.store, publicBaseUrl: config.publicBaseUrl });
  // Reports (reports/): the service built by services.ts.
  // AI in use, measured (ai-usage/): verdicts on stored AI findings and the figures per model version, under /ai.
  if (services.aiUsage !== undefined) await app.register(aiUsageRoutes, { prefix: '/ai', service: services.aiUsage.service });
  if (services.reports !== undefined) await app.register(reportsRoutes, { prefix: '/reports', service: services.reports.service, publicBaseUrl: config.publicBaseUrl, dicomwebPrefix: config.dicomwebPrefix });

  // The FHIR R4 API (fhir/): its read model built by services.ts; the push outbox for administrators.
  if (services.fhir !== undefined) {
    if (config.fhir.enabled) {
      await app.register(fhirRoutes, {
        prefix: '/fhir',
        service: services.fhir.service,
        publicBaseUrl: config.publicBaseUrl,
        dicomwebPrefix: config.dicomwebPrefix,
        defaultCount: config.fhir.defaultCount,
        maxCount: config.fhir.maxCount,
      });
    }
    await app.register(fhirOutboxRoutes, { prefix: '/admin', store: services.fhir.store, ...(services.fhir.push === undefined ? {} : { push: services.fhir.push }) });
  }

  // Share links, result slips, the patient page and consults (sharing/): the services built by services.ts.
  if (services.sharing !== undefined) {
    await app.register(sharingRoutes, { service: services.sharing.service, publicBaseUrl: config.publicBaseUrl, dicomwebPrefix: config.dicomwebPrefix, archive });
    await app.register(consultsRoutes, { service: services.sharing.consults, publicBaseUrl: config.publicBaseUrl });
  }

  // Curation (curation/): IOCM rejection, restore, purge, move / split / merge under /curation; DELETE
  // beside the DICOMweb resources it removes. Last, so DICOMweb's own routes are in place before it.
  if (services.curation !== undefined) await app.register(curationRoutes, { service: services.curation, dicomwebPrefix: config.dicomwebPrefix });
  // Storage lifecycle (lifecycle/): usage figures and housekeeping runs under /api/storage.
  if (services.housekeeping !== undefined) await app.register(storageRoutes, { catalog: services.catalog, housekeeping: services.housekeeping });

  // Backup (backup/): its state for administrators (enabled: false without a backup store), index backup now, verification.
  await app.register(backupRoutes, services.backup === undefined ? {} : { service: services.backup });

  app.get('/healthz', PUBLIC, async () => ({ status: 'ok' }));
  // Public like /api: it describes the APIs, it holds no patient data.
  app.get('/api/openapi.json', PUBLIC, async () => app.swagger());
  // Public: the viewer reads here whether and where to sign in before it has a token.
  app.get('/api', PUBLIC, async () => ({
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

  // The live sockets are closed by @fastify/websocket (preClose); services.close() then waits for
  // their recordings before it closes the index and blob store.
  app.addHook('onClose', async () => {
    await services.close();
  });
  return app;
}
