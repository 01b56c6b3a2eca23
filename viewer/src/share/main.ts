/**
 * The entry of the patient's phone page (viewer/share.html, at `/s/{token}`). Every round trip counts on
 * a slow mobile link, so this small module starts opening the link (`POST /share/{token}/session`, or
 * `GET /share/view` with the cookie after a reload of this tab) and, once the view is known, the first
 * image series' instance list, while the page itself (share-page.ts: texts, layout, gestures) is still
 * on its way; the page then picks both up.
 */
import { imageSeries, OPENED_KEY, openLink, seriesImages, viewFromCookie, type Opening, type SharedImage, type SharedView } from './share-api.js';
import './share.css';

const TOKEN = /^\/s\/([A-Za-z0-9_-]{43})\/?$/.exec(location.pathname)?.[1];

const firstImagesOf = (view: SharedView, accessToken: string | undefined): Promise<SharedImage[]> | undefined => {
  const first = imageSeries(view)[0];
  if (first === undefined) return undefined;
  const list = seriesImages(first.instances, accessToken);
  list.catch(() => undefined); // the page asks again
  return list;
};

async function opening(token: string): Promise<Opening | { reload: SharedView; firstImages: Promise<SharedImage[]> | undefined }> {
  let opened: string | null = null;
  try {
    opened = sessionStorage.getItem(OPENED_KEY);
  } catch {
    opened = null;
  }
  if (opened?.startsWith(`${token}|`) === true) {
    const view = await viewFromCookie();
    if (view !== undefined && view.linkId === opened.slice(token.length + 1)) return { reload: view, firstImages: firstImagesOf(view, undefined) };
  }
  const result = await openLink(token);
  return result.ok ? { ...result, firstImages: firstImagesOf(result.session.view, result.session.accessToken) } : result;
}

const started = TOKEN === undefined ? undefined : opening(TOKEN);
void import('./share-page.js').then((page) => page.run(TOKEN, started));
