/**
 * An OpenID issuer for server-side auth tests: real keys (RS256, generated per run), its discovery
 * document and JWKS served over HTTP on loopback, and signed access tokens. The server under test
 * fetches and verifies exactly as it would against Keycloak or Entra ID. (The viewer's sign-in test
 * runs the full authorization-code flow against the npm `oidc-provider` instead.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

export interface TokenOptions {
  sub?: string;
  roles?: string[];
  audience?: string;
  issuer?: string;
  /** Seconds from now; negative: already expired. */
  expiresIn?: number;
  /** Sign with a key the issuer does not publish. */
  foreignKey?: boolean;
  extraClaims?: Record<string, unknown>;
}

export interface TestIssuer {
  issuer: string;
  audience: string;
  /** Requests the issuer served, by path (to check caching of keys). */
  hits: Map<string, number>;
  token(options?: TokenOptions): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(audience = 'filmless-pacs'): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
  const hits = new Map<string, number>();
  let issuer = '';
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const send = (body: unknown) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (path === '/.well-known/openid-configuration') send({ issuer, jwks_uri: `${issuer}/jwks`, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token` });
    else if (path === '/jwks') send({ keys: [jwk] });
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    audience,
    hits,
    async token(options: TokenOptions = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ roles: options.roles ?? [], ...options.extraClaims })
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key-1', typ: 'at+jwt' })
        .setSubject(options.sub ?? 'user-1')
        .setIssuer(options.issuer ?? issuer)
        .setAudience(options.audience ?? audience)
        .setIssuedAt(now - 5)
        .setExpirationTime(now + (options.expiresIn ?? 300))
        .sign(options.foreignKey === true ? foreign.privateKey : privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // the server under test keeps its JWKS connection alive
      }),
  };
}

/** The env that points the server at this issuer. */
export function authEnv(issuer: TestIssuer, extra: Record<string, string> = {}): Record<string, string> {
  return { PACS_AUTH_ENABLED: 'true', PACS_AUTH_ISSUER: issuer.issuer, PACS_AUTH_AUDIENCE: issuer.audience, ...extra };
}
