/**
 * A real OpenID provider for the viewer's sign-in test: the npm `oidc-provider` on loopback, configured
 * like a hospital's Keycloak or Entra ID would be for the viewer:
 * - `pacs-viewer`: a public client (no secret, `token_endpoint_auth_method: none`), authorization code
 *   with PKCE (S256, required), the viewer's origin as redirect and post-logout redirect URI, refresh
 *   tokens (rotated) for silent renewal;
 * - resource indicators (RFC 8707): access tokens are JWTs (RS256) for the archive's audience, with the
 *   account's `roles` claim (`extraTokenClaims`) and a short lifetime;
 * - `pacs-seeder`: a confidential client using client credentials (a modality-gateway-like service
 *   account with the `uploader` role) so the test stores its studies through the real STOW-RS route;
 * - the provider's development login pages (any password; the login name picks the test account);
 *   consent is skipped, as for a first-party app.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { Provider } from 'oidc-provider';

export const RESOURCE = 'urn:filmless-pacs:api';
export const API_SCOPE = 'pacs';
export const VIEWER_CLIENT_ID = 'pacs-viewer';
const SEEDER = { id: 'pacs-seeder', secret: 'seeder-secret-for-tests-only' };

export interface TestAccount {
  name: string;
  roles: string[];
}

export interface OidcTestProvider {
  issuer: string;
  /** Requests to the token endpoint, by grant type (to see how renewals happened). */
  grants: string[];
  /** Creates the provider for the viewer at `viewerUrl` (known once the archive listens). */
  configure(viewerUrl: string): Promise<void>;
  /** An access token of the seeder service account (role `uploader`), by client credentials. */
  serviceToken(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts listening at once (the archive must be told the issuer before it starts); the provider itself
 * is created by `configure` when the viewer's URL, its redirect URI, is known.
 */
export async function startOidcTestProvider(options: { audience: string; accessTokenTtlSeconds: number; accounts: Record<string, TestAccount> }): Promise<OidcTestProvider> {
  let handler: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (handler === undefined) res.writeHead(503).end();
    else handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const grants: string[] = [];

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'oidc-test-key', alg: 'RS256', use: 'sig' };
  const { accounts } = options;

  return {
    issuer,
    grants,
    async configure(viewerUrl: string) {
      const viewerOrigin = new URL(viewerUrl).origin;
      const provider = new Provider(issuer, {
        clients: [
          {
            client_id: VIEWER_CLIENT_ID,
            client_name: 'filmless-pacs viewer',
            application_type: 'web',
            token_endpoint_auth_method: 'none',
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            redirect_uris: [`${viewerOrigin}/`],
            post_logout_redirect_uris: [`${viewerOrigin}/`],
          },
          {
            client_id: SEEDER.id,
            client_secret: SEEDER.secret,
            grant_types: ['client_credentials'],
            response_types: [],
            redirect_uris: [],
          },
        ],
        jwks: { keys: [signingKey] },
        cookies: { keys: ['oidc-test-cookie-key-not-a-secret'] },
        pkce: { required: () => true },
        scopes: ['openid', 'profile', 'offline_access'],
        claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
        ttl: { AccessToken: options.accessTokenTtlSeconds, ClientCredentials: 600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
        rotateRefreshToken: true,
        // Like Keycloak for public clients: a refresh token with every code (no offline_access needed).
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
        clientBasedCORS: (_ctx: unknown, origin: string) => origin === viewerOrigin,
        async findAccount(_ctx: unknown, sub: string) {
          const account = accounts[sub];
          if (account === undefined) return undefined;
          return { accountId: sub, claims: async () => ({ sub, name: account.name, preferred_username: sub }) };
        },
        // The archive reads roles from the access token's `roles` claim (PACS_AUTH_ROLES_CLAIM).
        extraTokenClaims: async (_ctx: unknown, token: { kind: string; accountId?: string; clientId?: string }) => {
          if (token.kind === 'ClientCredentials') return token.clientId === SEEDER.id ? { roles: ['uploader'] } : undefined;
          return token.accountId === undefined ? undefined : { roles: accounts[token.accountId]?.roles ?? [] };
        },
        // A first-party app: no consent screen; the grant covers what the viewer asks for.
        async loadExistingGrant(ctx: { oidc: { client: { clientId: string }; session: { accountId: string; grantIdFor(clientId: string): string | undefined }; result?: { consent?: { grantId?: string } }; provider: Provider & { Grant: { find(id: string): Promise<unknown> } }; requestParamOIDCScopes: Set<string> } }) {
          const { oidc } = ctx;
          const existing = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
          if (existing !== undefined) {
            const found = await oidc.provider.Grant.find(existing);
            if (found !== undefined) return found;
          }
          const grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
          grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
          grant.addResourceScope(RESOURCE, API_SCOPE);
          await grant.save();
          return grant;
        },
        features: {
          devInteractions: { enabled: true },
          clientCredentials: { enabled: true },
          // The viewer revokes its refresh token at sign-out; a client may revoke only its own tokens.
          revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) => token.clientId === client.clientId },
          rpInitiatedLogout: {
            enabled: true,
            // No external fonts on loopback-only test machines.
            logoutSource: async (ctx: { body: string }, form: string) => {
              ctx.body = `<!doctype html><title>Sign out</title><h1>Sign out?</h1>${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`;
            },
          },
          resourceIndicators: {
            enabled: true,
            // The viewer sends no `resource`: the archive is the default (Keycloak: audience mapper;
            // Entra ID: the API's scope in PACS_AUTH_VIEWER_SCOPE).
            defaultResource: async () => RESOURCE,
            useGrantedResource: async () => true,
            getResourceServerInfo: async (_ctx: unknown, resource: string) => {
              if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
              return { scope: API_SCOPE, audience: options.audience, accessTokenTTL: options.accessTokenTtlSeconds, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
            },
          },
        },
      });
      provider.on('grant.success', (ctx: { oidc: { params?: { grant_type?: string } } }) => grants.push(ctx.oidc.params?.grant_type ?? '?'));
      provider.on('server_error', (_ctx: unknown, err: Error) => console.error('oidc-provider server_error', err));
      handler = provider.callback();
    },
    async serviceToken() {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${SEEDER.id}:${SEEDER.secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: API_SCOPE, resource: RESOURCE }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (body.access_token === undefined) throw new Error(`client credentials refused: ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
