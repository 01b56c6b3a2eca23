/**
 * Viewer sign-in (OpenID Connect, authorization code + PKCE with `oidc-client-ts`, a public client).
 *
 * At start the viewer asks the server (`GET /api`, public) whether sign-in is on and where: issuer,
 * client id and scope. Off (the embedded default), or `/api` not there (another archive): nothing
 * changes, requests go out without a token. On: the user is sent to the provider's login, comes back
 * with a code that is exchanged for tokens (kept in sessionStorage: gone with the tab), and the route
 * they were on is restored. The access token goes on every request to the server (see http.ts), is
 * renewed before it expires, and Sign out ends the provider's session.
 *
 * Renewal: with the refresh token the provider gave us (Keycloak does for public clients, Entra ID for
 * SPA redirect URIs with `offline_access`, oidc-provider when configured): a plain POST to the token
 * endpoint, which no third-party-cookie blocking can break. A provider that gives no refresh token is
 * asked in a hidden iframe (`prompt=none`) at `silent-renew.html`, which needs its session cookie in a
 * third-party context (works when provider and viewer share a site). The renewal is timed here, not
 * by oidc-client-ts's fixed "60 s before expiry", so that short-lived tokens are not renewed in a loop.
 *
 * oidc-client-ts (~20 kB compressed) is loaded only when the server has sign-in on: with it off, the
 * study list's first screen does not wait for it.
 */
import type { User, UserManager } from 'oidc-client-ts';
import { t } from '../i18n/i18n.js';

export interface AuthSettings {
  enabled: boolean;
  issuer?: string;
  clientId?: string;
  scope?: string;
}

/** Renew when this share of the token's lifetime is left (at most RENEW_MAX_EARLY_S before expiry). */
const RENEW_AT_REMAINING_FRACTION = 0.25;
const RENEW_MAX_EARLY_S = 60;

let manager: UserManager | undefined;
let user: User | null = null;
let renewTimer: ReturnType<typeof setTimeout> | undefined;
let redirecting = false;
const listeners = new Set<() => void>();

/** True once sign-in is configured on the server (requests then carry a token). */
export function authEnabled(): boolean {
  return manager !== undefined;
}

/** The current access token, or undefined (auth off, or not signed in); in link mode the link's credential. */
export function accessToken(): string | undefined {
  return linkMode() ? linkSession()?.accessToken : user?.access_token;
}

// ------------------------------------------------------------------------------------------ link mode
/**
 * Link mode: the page was opened at a consult link's URL (`/s/{token}`; the server answers it with this
 * viewer, docs/api.md "Share links"). There is no sign-in: the link is opened with `POST
 * /share/{token}/session` (consults/link-open.ts, which asks for the PIN when the link has one) and the
 * session's `share.…` credential is the Bearer of every request (`accessToken` above). It is kept in
 * memory and in sessionStorage (gone with the tab; a reload reuses it until it expires), never in the URL.
 */
export interface LinkSession {
  /** `share.…`: the Authorization Bearer of every request. */
  accessToken: string;
  /** ISO 8601: the session's end. */
  expiresAt: string;
  /** The page the link opens (`#/consult/{id}`). */
  home: string;
}

const LINK_PATH = /\/s\/([A-Za-z0-9_-]{43})\/?$/;
const LINK_STORAGE_KEY = 'pacs.link';
let link: LinkSession | undefined;

/** The link's token when the page is a share link's URL (link mode), else undefined. */
export function linkToken(): string | undefined {
  return typeof location === 'undefined' ? undefined : LINK_PATH.exec(location.pathname)?.[1];
}

export function linkMode(): boolean {
  return linkToken() !== undefined;
}

/** The opened link's session (memory, else this tab's sessionStorage for this link), while it lasts. */
export function linkSession(): LinkSession | undefined {
  if (link === undefined) {
    try {
      const stored = JSON.parse(sessionStorage.getItem(LINK_STORAGE_KEY) ?? 'null') as (LinkSession & { path: string }) | null;
      if (stored !== null && stored.path === location.pathname) link = { accessToken: stored.accessToken, expiresAt: stored.expiresAt, home: stored.home };
    } catch {
      // No storage (private mode) or not ours: open the link again.
    }
  }
  if (link !== undefined && !(Date.parse(link.expiresAt) > Date.now())) setLinkSession(undefined);
  return link;
}

/** Keeps (or forgets, with undefined) the link's session for this tab. */
export function setLinkSession(session: LinkSession | undefined): void {
  link = session;
  try {
    if (session === undefined) sessionStorage.removeItem(LINK_STORAGE_KEY);
    else sessionStorage.setItem(LINK_STORAGE_KEY, JSON.stringify({ ...session, path: location.pathname }));
  } catch {
    // Without storage the session lasts as long as the page.
  }
  for (const l of listeners) l();
}

/** Who is signed in, for the page header. */
export function signedInName(): string | undefined {
  if (user === null) return undefined;
  const p = user.profile;
  return [p.preferred_username, p.name, p.email, p.sub].find((v): v is string => typeof v === 'string' && v !== '');
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setUser(next: User | null): void {
  user = next;
  scheduleRenewal();
  for (const l of listeners) l();
}

/** The viewer's own page, without query or hash: the redirect URI registered at the provider. */
function appUrl(): string {
  return new URL(location.pathname.replace(/[^/]*$/, ''), location.origin).href;
}

async function readSettings(): Promise<AuthSettings> {
  try {
    const res = await fetch(new URL('api', appUrl()), { headers: { Accept: 'application/json' } });
    if (!res.ok) return { enabled: false };
    const body = (await res.json()) as { auth?: AuthSettings };
    return body.auth ?? { enabled: false };
  } catch {
    // Not our server (the viewer pointed at another archive) or not reachable: the first DICOMweb
    // request reports the latter in the page, as before.
    return { enabled: false };
  }
}

/**
 * Sets up sign-in. Resolves `true` when the page may render (auth off, or signed in), `false` when the
 * browser is on its way to the provider (render nothing more).
 */
export async function startAuth(): Promise<boolean> {
  const settings = await readSettings();
  if (!settings.enabled) return true;
  if (!settings.issuer || !settings.clientId) {
    throw new Error(t('auth:notConfigured'));
  }
  const base = appUrl();
  const { UserManager, WebStorageStateStore } = await import('oidc-client-ts');
  manager = new UserManager({
    authority: settings.issuer,
    client_id: settings.clientId,
    redirect_uri: base,
    silent_redirect_uri: new URL('silent-renew.html', base).href,
    post_logout_redirect_uri: base,
    response_type: 'code',
    scope: settings.scope ?? 'openid profile',
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
    // Renewal is timed here (scheduleRenewal); the access token is for the archive, not for userinfo.
    automaticSilentRenew: false,
    loadUserInfo: false,
    monitorSession: false,
  });

  const url = new URL(location.href);
  if (url.searchParams.has('state') && (url.searchParams.has('code') || url.searchParams.has('error'))) {
    let signedIn: User;
    try {
      signedIn = await manager.signinRedirectCallback();
    } catch (err) {
      history.replaceState(null, '', base);
      throw new Error(t('auth:signInFailed', { message: (err as Error).message }));
    }
    // The code and state must not stay in the address bar or history; back to the route of before.
    const hash = (signedIn.state as { hash?: unknown } | undefined)?.hash;
    history.replaceState(null, '', base + (typeof hash === 'string' && hash.startsWith('#') ? hash : ''));
    setUser(signedIn);
    return true;
  }

  if (url.searchParams.has('state')) {
    // Back from the provider's logout (RP-initiated logout carries our state back): clean the URL.
    await manager.signoutRedirectCallback().catch(() => undefined);
    history.replaceState(null, '', base + location.hash);
  }

  const stored = await manager.getUser();
  if (stored !== null && !stored.expired) {
    setUser(stored);
    return true;
  }
  if (stored !== null && (await renew())) return true;
  await signIn();
  return false;
}

/** To the provider's login; back at the current route afterwards. */
export async function signIn(): Promise<void> {
  if (manager === undefined || redirecting) return;
  redirecting = true;
  await manager.removeUser();
  user = null;
  await manager.signinRedirect({ state: { hash: location.hash } });
}

/** A new access token without leaving the page (refresh token, else hidden iframe); false if refused. */
export async function renew(): Promise<boolean> {
  if (manager === undefined) return false;
  try {
    const renewed = await manager.signinSilent();
    if (renewed === null) return false;
    setUser(renewed);
    return true;
  } catch {
    return false;
  }
}

function scheduleRenewal(): void {
  if (renewTimer !== undefined) clearTimeout(renewTimer);
  renewTimer = undefined;
  const left = user?.expires_in;
  if (user === null || left === undefined) return;
  const early = Math.min(RENEW_MAX_EARLY_S, left * RENEW_AT_REMAINING_FRACTION);
  renewTimer = setTimeout(() => {
    void renew().then((ok) => {
      // Not renewed (session ended at the provider, network down): the next request answered 401
      // sends the user to sign in again (http.ts).
      if (!ok) for (const l of listeners) l();
    });
  }, Math.max(1, left - early) * 1000);
}

/**
 * Signs out at the provider (RP-initiated logout), which then sends the browser back to the viewer, and
 * from there to the login. A provider without an end_session_endpoint: the tokens are forgotten here
 * (the provider's own session may live on) and the viewer shows it is signed out.
 */
export async function signOut(): Promise<'redirecting' | 'local'> {
  if (manager === undefined) return 'local';
  const current = user;
  if (renewTimer !== undefined) clearTimeout(renewTimer);
  // The refresh token would outlive the provider session at some providers: revoke it (RFC 7009).
  if (current?.refresh_token !== undefined && (await manager.metadataService.getRevocationEndpoint(true).catch(() => undefined)) !== undefined) {
    await manager.revokeTokens(['refresh_token']).catch(() => undefined);
  }
  const endSession = await manager.metadataService.getEndSessionEndpoint().catch(() => undefined);
  if (endSession !== undefined) {
    redirecting = true;
    await manager.signoutRedirect(current?.id_token !== undefined ? { id_token_hint: current.id_token } : {});
    return 'redirecting';
  }
  await manager.removeUser();
  setUser(null);
  return 'local';
}
