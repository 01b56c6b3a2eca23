/**
 * Sign-in section (PACS_AUTH_*): OpenID Connect issuer, audience, accepted signature algorithms and
 * the table of what each role may do.
 */
import type { Permission } from '../auth/permissions.js';
import type { EnvReader } from './env-reader.js';

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
  // The hospital link's orders REST API: a registration desk or an integration engine without HL7.
  scheduler: ['read', 'his'],
  // Reports (reports/): a physician drafts and signs; a resident drafts for a physician to sign.
  // Share links and consults (sharing/): a physician hands the patient a result slip or asks a colleague.
  physician: ['read', 'report', 'sign', 'share'],
  resident: ['read', 'report'],
  // Curation (curation/): rejecting, restoring, moving need `admin`; deleting for good needs `delete`, the admin's only.
  admin: ['read', 'store', 'ai', 'admin', 'his', 'report', 'sign', 'share', 'delete'],
};

const SIGNATURE_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** PACS_AUTH_*: an issuer and an audience are required once sign-in is on. */
export function readAuthConfig(read: EnvReader): AuthConfig {
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
