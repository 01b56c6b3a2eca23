/**
 * The parts of the npm `oidc-provider` (9.x, untyped) the FHIR push tests use (fhir-test-server.ts: an
 * OAuth2 server issuing client-credentials tokens). The viewer's end-to-end tests declare their own
 * parts in viewer/e2e/oidc-provider.d.ts.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (request: IncomingMessage, response: ServerResponse) => void;
    on(event: string, listener: (...args: any[]) => void): this;
    /** Issued client-credentials tokens: the token when it exists and has not expired. */
    readonly ClientCredentials: { find(value: string): Promise<{ clientId: string; scope?: string } | undefined> };
  }
}
