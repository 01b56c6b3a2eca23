/**
 * The one way the viewer's requests get their credentials: `authorizedFetch` (every DICOMweb and AI
 * request goes through dicomweb/client.ts `request`, which uses it), `authHeaders` (Cornerstone's image
 * loader, imaging/cornerstone.ts), `withTokenInQuery` (WebSocket and EventSource, which cannot send
 * headers: the server accepts `?access_token=` on those routes only) and `setAuthorizedSource`
 * (<img>/<video>, fetched with the token into an object URL). With sign-in off they change nothing; in
 * link mode (a consult link, session.ts) the token is the link's `share.…` credential.
 */
import { accessToken, authEnabled, linkMode, renew, signIn } from './session.js';

export function authHeaders(): Record<string, string> {
  const token = accessToken();
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

function withAuthorization(init: RequestInit): RequestInit {
  const token = accessToken();
  if (token === undefined) return init;
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${token}`);
  return { ...init, headers };
}

/**
 * fetch with the access token. A 401 (token expired or revoked meanwhile) is retried once after a
 * silent renewal; if that fails too the user is sent to sign in again and the 401 is returned.
 */
export async function authorizedFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, withAuthorization(init));
  if (res.status !== 401 || !authEnabled()) return res;
  const replayable = init.body === undefined || init.body === null || typeof init.body === 'string' || init.body instanceof Blob || init.body instanceof ArrayBuffer;
  if (replayable && (await renew())) {
    const again = await fetch(url, withAuthorization(init));
    if (again.status !== 401) return again;
  }
  void signIn();
  return res;
}

/** `url` with `access_token` in its query when signed in (WebSocket, EventSource). */
export function withTokenInQuery(url: string): string {
  const token = accessToken();
  if (token === undefined) return url;
  const u = new URL(url, location.href);
  u.searchParams.set('access_token', token);
  return u.href;
}

const objectUrls = new WeakMap<HTMLElement, string>();

/**
 * Points an <img> or <video> at a server URL. Sign-in off: `src` as before (lazy loading, ranges).
 * Sign-in on: elements cannot send an Authorization header, so the resource is fetched with the token
 * and shown from an object URL; a failure fires the element's `error` event like a failed `src` would.
 */
export function setAuthorizedSource(element: HTMLImageElement | HTMLVideoElement, url: string): void {
  releaseSource(element);
  // A share link's credential (link mode) goes in the header too: the link's cookie may be another link's.
  if (!authEnabled() && !linkMode()) {
    element.src = url;
    return;
  }
  void authorizedFetch(url)
    .then(async (res) => {
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const objectUrl = URL.createObjectURL(await res.blob());
      objectUrls.set(element, objectUrl);
      // An image is decoded once loaded: its object URL can go then (a video keeps reading it).
      if (element instanceof HTMLImageElement) element.addEventListener('load', () => releaseSource(element), { once: true });
      element.src = objectUrl;
    })
    .catch(() => element.dispatchEvent(new Event('error')));
}

/** Frees the object URL of setAuthorizedSource (no-op with sign-in off). */
export function releaseSource(element: HTMLElement): void {
  const previous = objectUrls.get(element);
  if (previous !== undefined) {
    URL.revokeObjectURL(previous);
    objectUrls.delete(element);
  }
}
