/**
 * Verifies OpenID Connect access tokens (JWT, RFC 9068 / RFC 7519) with `jose`: signature against the
 * issuer's JWKS (fetched once, refreshed when an unknown key id appears), issuer, audience, expiry and
 * the configured algorithms. Roles come from one configurable claim and map to permissions.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { AuthConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { Permission, Principal } from './principal.js';

type KeySet = ReturnType<typeof createRemoteJWKSet>;

export class TokenVerifier {
  private keySet: Promise<KeySet> | undefined;

  constructor(private readonly config: Readonly<AuthConfig>) {}

  /** The principal a valid token names; UNAUTHENTICATED (401) saying why a token is refused. */
  async verify(token: string): Promise<Principal> {
    const keySet = await this.keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: [...this.config.algorithms],
        clockTolerance: this.config.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      throw refusal(err);
    }
    return this.principalOf(payload);
  }

  principalOf(payload: JWTPayload): Principal {
    const roles = rolesIn(claimAt(payload, this.config.rolesClaim));
    const permissions = new Set<Permission>();
    for (const role of roles) for (const permission of this.config.rolePermissions[role] ?? []) permissions.add(permission);
    const name = [payload['preferred_username'], payload['name'], payload['email']].find((value) => typeof value === 'string');
    return { subject: payload.sub!, ...(typeof name === 'string' ? { name } : {}), roles, permissions, kind: 'token' };
  }

  /** The JWKS, discovered from the issuer's metadata unless configured; retried after a failure. */
  private keys(): Promise<KeySet> {
    this.keySet ??= this.jwksUri().then(
      (uri) => createRemoteJWKSet(new URL(uri), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 }),
      (err: unknown) => {
        this.keySet = undefined;
        throw err;
      },
    );
    return this.keySet;
  }

  private async jwksUri(): Promise<string> {
    if (this.config.jwksUri !== '') return this.config.jwksUri;
    const discovery = `${this.config.issuer}/.well-known/openid-configuration`;
    let metadata: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const response = await fetch(discovery, { signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      metadata = (await response.json()) as typeof metadata;
    } catch (err) {
      throw new AppError('AUTH_UNAVAILABLE', `The sign-in provider's metadata (${discovery}) could not be read: ${(err as Error).message}`, { cause: err });
    }
    // OpenID Connect Discovery §4.3: the metadata's issuer must be the one we were configured with.
    if (metadata.issuer !== this.config.issuer || typeof metadata.jwks_uri !== 'string') {
      throw new AppError('AUTH_UNAVAILABLE', `The sign-in provider's metadata at ${discovery} names another issuer or no jwks_uri`);
    }
    return metadata.jwks_uri;
  }
}

/** A claim by dotted path (`realm_access.roles`), or a top-level claim whose name contains dots. */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function rolesIn(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter((role) => role !== '');
  if (Array.isArray(value)) return value.filter((role): role is string => typeof role === 'string');
  return [];
}

function refusal(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof joseErrors.JWTExpired) return new AppError('UNAUTHENTICATED', 'The access token has expired: sign in again');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return new AppError('UNAUTHENTICATED', `The access token was refused: claim "${err.claim}" ${err.reason === 'check_failed' ? 'does not match' : err.reason.replace(/_/g, ' ')}`);
  }
  if (err instanceof joseErrors.JWKSTimeout || (err instanceof joseErrors.JOSEError && err.code === 'ERR_JWKS_INVALID')) {
    return new AppError('AUTH_UNAVAILABLE', "The sign-in provider's signing keys could not be fetched", { cause: err });
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new AppError('UNAUTHENTICATED', 'The access token is signed with an algorithm this server does not accept');
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new AppError('UNAUTHENTICATED', 'The access token signature is not valid for this issuer');
  }
  if (err instanceof Error && /fetch|ECONNREFUSED|network/i.test(err.message)) {
    return new AppError('AUTH_UNAVAILABLE', "The sign-in provider's signing keys could not be fetched", { cause: err });
  }
  return new AppError('UNAUTHENTICATED', 'The access token is malformed or not a signed JWT');
}
