/**
 * The parts of the npm `oidc-provider` (9.x, untyped) the sign-in end-to-end test uses. Its full
 * configuration is documented in node_modules/oidc-provider/lib/helpers/defaults.js.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (request: IncomingMessage, response: ServerResponse) => void;
    on(event: string, listener: (...args: any[]) => void): this;
    readonly Grant: new (properties: { clientId: string; accountId: string }) => ProviderGrant;
  }

  export interface ProviderGrant {
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }
}
