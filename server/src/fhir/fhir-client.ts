/**
 * The push's HTTP side: requests to the EMR's FHIR server with a bearer token from OAuth2 client
 * credentials (RFC 6749 §4.4; client authentication by HTTP Basic, §2.3.1), the token cached until
 * shortly before it expires and fetched again after a 401.
 *
 * Failures are `PushError`s whose message names the request, the HTTP status and the OperationOutcome
 * issue codes, or the network error's code: never the body's diagnostics or a resource, which may quote
 * patient data (these messages reach the log and the administrators' outbox view).
 */
import type { Bundle, OperationOutcome, Resource } from 'fhir/r4.js';
import type { FhirPushConfig } from '../config.js';

export class PushError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'PushError';
  }
}

/** What a write returned: the resource's reference at the EMR (`ImagingStudy/123`). */
export interface WriteOutcome {
  status: number;
  reference: string;
}

const TOKEN_MARGIN_MS = 30_000;

function issueCodes(body: unknown): string {
  const outcome = body as Partial<OperationOutcome> | undefined;
  if (outcome?.resourceType !== 'OperationOutcome' || !Array.isArray(outcome.issue)) return '';
  const codes = outcome.issue.map((issue) => `${issue.severity}:${issue.code}`).slice(0, 5);
  return codes.length === 0 ? '' : ` (OperationOutcome ${codes.join(', ')})`;
}

function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string } }).cause;
  if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') return 'timeout';
  return cause?.code ?? (err as { code?: string }).code ?? (err as Error).name ?? 'error';
}

export class FhirClient {
  private token: { value: string; expiresAt: number } | undefined;
  private tokenRequest: Promise<string> | undefined;

  constructor(private readonly config: Pick<FhirPushConfig, 'url' | 'oauth' | 'timeoutSeconds'>) {}

  /** The EMR's base URL (for the audit record: who received the data). */
  get baseUrl(): string {
    return this.config.url;
  }

  private async accessToken(): Promise<string | undefined> {
    const oauth = this.config.oauth;
    if (oauth === null) return undefined;
    if (this.token !== undefined && Date.now() < this.token.expiresAt) return this.token.value;
    // One token request at a time: concurrent sends wait for the same one.
    this.tokenRequest ??= this.fetchToken(oauth).finally(() => {
      this.tokenRequest = undefined;
    });
    return this.tokenRequest;
  }

  private async fetchToken(oauth: NonNullable<FhirPushConfig['oauth']>): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'client_credentials', ...(oauth.scope === '' ? {} : { scope: oauth.scope }) });
    const basic = Buffer.from(`${encodeURIComponent(oauth.clientId)}:${encodeURIComponent(oauth.clientSecret)}`).toString('base64');
    let response: Response;
    try {
      response = await fetch(oauth.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', authorization: `Basic ${basic}` },
        body,
        signal: AbortSignal.timeout(this.config.timeoutSeconds * 1000),
      });
    } catch (err) {
      throw new PushError(`token request failed: ${networkCode(err)}`, null);
    }
    const json = (await response.json().catch(() => undefined)) as { access_token?: unknown; expires_in?: unknown; error?: unknown } | undefined;
    if (!response.ok || typeof json?.access_token !== 'string') {
      const error = typeof json?.error === 'string' ? ` (${json.error.slice(0, 64)})` : '';
      throw new PushError(`token request answered ${response.status}${error}`, response.status);
    }
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 300;
    this.token = { value: json.access_token, expiresAt: Date.now() + Math.max(expiresIn * 1000 - TOKEN_MARGIN_MS, 1000) };
    return json.access_token;
  }

  /** One request to the FHIR server; a 401 drops the cached token and tries once more with a new one. */
  private async request(method: 'GET' | 'PUT' | 'POST', path: string, body?: Resource, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; location: string | null }> {
    const what = `${method} ${path.split('?')[0]}`;
    for (let attempt = 1; ; attempt += 1) {
      const token = await this.accessToken();
      let response: Response;
      try {
        response = await fetch(`${this.config.url}/${path}`, {
          method,
          headers: {
            accept: 'application/fhir+json',
            ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
            prefer: 'return=representation',
            ...headers,
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(this.config.timeoutSeconds * 1000),
        });
      } catch (err) {
        throw new PushError(`${what} failed: ${networkCode(err)}`, null);
      }
      const text = await response.text().catch(() => '');
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (response.status === 401 && attempt === 1 && this.config.oauth !== null) {
        this.token = undefined;
        continue;
      }
      if (!response.ok) throw new PushError(`${what} answered ${response.status}${issueCodes(parsed)}`, response.status);
      return { status: response.status, body: parsed, location: response.headers.get('location') };
    }
  }

  private referenceOf(type: string, result: { status: number; body: unknown; location: string | null }, what: string): WriteOutcome {
    const resource = result.body as Partial<Resource> | undefined;
    if (resource?.resourceType === type && typeof resource.id === 'string') return { status: result.status, reference: `${type}/${resource.id}` };
    // Prefer: return=minimal servers: the Location header (…/Type/id/_history/v).
    const match = result.location === null ? null : new RegExp(`(?:^|/)${type}/([A-Za-z0-9.-]{1,64})(?:/_history/|$)`).exec(result.location);
    if (match !== null) return { status: result.status, reference: `${type}/${match[1]}` };
    throw new PushError(`${what} answered ${result.status} without the resource or its Location`, result.status);
  }

  /** Ids of the `type` resources holding this identifier (a search, one page). */
  async search(type: string, identifier: { system?: string; value: string }): Promise<string[]> {
    const token = `${identifier.system === undefined ? '' : `${identifier.system}|`}${identifier.value}`;
    const result = await this.request('GET', `${type}?identifier=${encodeURIComponent(token)}&_count=10`);
    const bundle = result.body as Partial<Bundle> | undefined;
    return (bundle?.entry ?? []).map((e) => e.resource).filter((r): r is Resource => r?.resourceType === type && typeof r.id === 'string').map((r) => `${type}/${r.id}`);
  }

  /**
   * Conditional update (FHIR R4 §3.1.0.4.3): `PUT type?identifier=system|value`. The server updates the
   * one resource with that identifier or creates it when there is none: sending again never makes a
   * second one.
   */
  async conditionalUpdate<T extends Resource>(resource: T, identifier: { system: string; value: string }): Promise<WriteOutcome> {
    const type = resource.resourceType;
    const path = `${type}?identifier=${encodeURIComponent(`${identifier.system}|${identifier.value}`)}`;
    return this.referenceOf(type, await this.request('PUT', path, resource), `PUT ${type}`);
  }

  /** Conditional create (`If-None-Exist`): the existing resource when one has the identifier, else a new one. */
  async conditionalCreate<T extends Resource>(resource: T, identifier: { system?: string; value: string }): Promise<WriteOutcome> {
    const type = resource.resourceType;
    const token = `${identifier.system === undefined ? '' : `${identifier.system}|`}${identifier.value}`;
    return this.referenceOf(type, await this.request('POST', type, resource, { 'if-none-exist': `identifier=${encodeURIComponent(token)}` }), `POST ${type}`);
  }
}
