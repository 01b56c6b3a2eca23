/**
 * The patient page's few requests (docs/api.md "Share links"), with fetch and nothing else (the page
 * must stay tiny: no DICOMweb client library):
 *
 * - `POST /share/{token}/session` opens the link (with the PIN when it has one): the answer holds the
 *   access token (kept in memory only) and the view, so the page needs no second request to start; the
 *   server also sets the HttpOnly `pacs_share` cookie, which serves the page's `<img>` and download GETs.
 * - `GET /share/view` with that cookie: the view again after a reload of the page (no PIN asked twice).
 * - QIDO-RS instances of a series with the access token.
 *
 * URLs the server gives are made same-origin (path and query only): the page's Content-Security-Policy
 * allows requests to its own origin only, and the public base URL may name another host for the same
 * server.
 */
import type { SharedView, ShareSession } from '../../../server/src/contracts/sharing.js';

export type { SharedView };

/** Why a link did not open. */
export type OpenFailure =
  | { kind: 'pin-required' }
  | { kind: 'pin-invalid'; triesLeft: number | undefined }
  | { kind: 'pin-locked'; retryAfterSeconds: number | undefined }
  | { kind: 'gone' }
  | { kind: 'invalid' }
  | { kind: 'network'; message: string };

export type OpenResult = { ok: true; session: ShareSession } | { ok: false; failure: OpenFailure };
/** An opening started by main.ts: with the first image series' images already asked for. */
export type Opening = { ok: true; session: ShareSession; firstImages?: Promise<SharedImage[]> | undefined } | { ok: false; failure: OpenFailure };

/** This tab opened the link before (a reload): `token|linkId`, so the cookie's session is reused without the PIN again. */
export const OPENED_KEY = 'pacs.share.opened';

/** The path and query of a URL the server gave (same origin as the page). */
export function local(url: string): string {
  const parsed = new URL(url, location.href);
  return `${parsed.pathname}${parsed.search}`;
}

async function errorCode(response: Response): Promise<{ code: string; message: string }> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    return { code: body.error?.code ?? '', message: body.error?.message ?? '' };
  } catch {
    return { code: '', message: '' };
  }
}

/** Opens the link: `POST /share/{token}/session` with `{}` or `{"pin"}`. */
export async function openLink(token: string, pin?: string): Promise<OpenResult> {
  let response: Response;
  try {
    response = await fetch(`/share/${encodeURIComponent(token)}/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(pin === undefined ? {} : { pin }),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    return { ok: false, failure: { kind: 'network', message: err instanceof Error ? err.message : String(err) } };
  }
  if (response.ok) return { ok: true, session: (await response.json()) as ShareSession };
  const { code, message } = await errorCode(response);
  if (code === 'PIN_REQUIRED') return { ok: false, failure: { kind: 'pin-required' } };
  if (code === 'PIN_INVALID') {
    // "Wrong PIN: 3 tries left before the link locks for 15 minutes" (share-service.ts).
    const left = /(\d+)\s+tr(?:y|ies)\s+left/.exec(message);
    return { ok: false, failure: { kind: 'pin-invalid', triesLeft: left === null ? undefined : Number(left[1]) } };
  }
  if (code === 'PIN_LOCKED' || response.status === 429) {
    const retry = Number(response.headers.get('retry-after'));
    return { ok: false, failure: { kind: 'pin-locked', retryAfterSeconds: Number.isFinite(retry) && retry > 0 ? retry : undefined } };
  }
  if (response.status === 410) return { ok: false, failure: { kind: 'gone' } };
  if (response.status === 401 || response.status === 404 || response.status === 400) return { ok: false, failure: { kind: 'invalid' } };
  return { ok: false, failure: { kind: 'network', message: `HTTP ${response.status}` } };
}

/** The view through the cookie of an earlier opening (a reload): undefined when that session is gone. */
export async function viewFromCookie(): Promise<SharedView | undefined> {
  try {
    const response = await fetch('/share/view', { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    return response.ok ? ((await response.json()) as SharedView) : undefined;
  } catch {
    return undefined;
  }
}

/** One image of a series: an instance, or one frame of a multi-frame instance, or a video. */
export interface SharedImage {
  sopInstanceUid: string;
  /** 1-based frame of a multi-frame instance; undefined for a single-frame instance or a video. */
  frame: number | undefined;
  video: boolean;
  /** `…/instances/{uid}`, same origin. */
  base: string;
}

type DicomJson = Record<string, { Value?: unknown[] } | undefined>;
const value = (row: DicomJson, tag: string): unknown => row[tag]?.Value?.[0];

const VIDEO_SOP_CLASSES = new Set(['1.2.840.10008.5.1.4.1.1.77.1.1.1', '1.2.840.10008.5.1.4.1.1.77.1.2.1', '1.2.840.10008.5.1.4.1.1.77.1.4.1']);
/** Frames of one multi-frame instance offered for swiping (a long cine is for the DICOM download). */
export const MAX_FRAMES = 300;

/**
 * The images of a series in Instance Number order (QIDO-RS, PS3.18 §10.6: SOP Class, Instance Number and
 * Number of Frames are default return attributes at instance level; Rows is asked for, and an instance
 * without it, a report or a document, is not an image).
 */
export async function seriesImages(instancesUrl: string, accessToken: string | undefined): Promise<SharedImage[]> {
  const url = `${local(instancesUrl)}${instancesUrl.includes('?') ? '&' : '?'}includefield=00280010`;
  const response = await fetch(url, {
    headers: { accept: 'application/dicom+json', ...(accessToken === undefined ? {} : { authorization: `Bearer ${accessToken}` }) },
    credentials: 'same-origin',
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const rows = response.status === 204 ? [] : ((await response.json()) as DicomJson[]);
  const base = local(instancesUrl).split('?')[0]!;
  const instances = rows
    .map((row) => ({
      uid: String(value(row, '00080018') ?? ''),
      sopClass: String(value(row, '00080016') ?? ''),
      number: Number(value(row, '00200013') ?? Number.MAX_SAFE_INTEGER),
      frames: Number(value(row, '00280008') ?? 1) || 1,
      rows: value(row, '00280010'),
    }))
    .filter((i) => i.uid !== '' && (i.rows !== undefined || VIDEO_SOP_CLASSES.has(i.sopClass)))
    .sort((a, b) => a.number - b.number);
  const images: SharedImage[] = [];
  for (const instance of instances) {
    const at = `${base}/${encodeURIComponent(instance.uid)}`;
    if (VIDEO_SOP_CLASSES.has(instance.sopClass)) {
      images.push({ sopInstanceUid: instance.uid, frame: undefined, video: true, base: at });
      continue;
    }
    if (instance.frames <= 1) {
      images.push({ sopInstanceUid: instance.uid, frame: undefined, video: false, base: at });
      continue;
    }
    for (let frame = 1; frame <= Math.min(instance.frames, MAX_FRAMES); frame += 1) images.push({ sopInstanceUid: instance.uid, frame, video: false, base: at });
  }
  return images;
}

/**
 * The rendered JPEG of an image fitted to `box` device pixels (PS3.18 §8.3.5: `viewport`, `quality`;
 * the server never enlarges, so a small image costs its own size only).
 */
export function renderedUrl(image: SharedImage, box: { width: number; height: number }, quality: number): string {
  const path = image.frame === undefined ? `${image.base}/rendered` : `${image.base}/frames/${image.frame}/rendered`;
  return `${path}?viewport=${Math.max(1, Math.round(box.width))},${Math.max(1, Math.round(box.height))}&quality=${quality}`;
}

/** A video instance's rendered resource: its stored bitstream (video/mp4 or video/mpeg, with byte ranges). */
export const videoUrl = (image: SharedImage): string => `${image.base}/rendered`;

/** Image series only: reports (SR), documents (DOC), key object notes, presentation states and the like have nothing to swipe through. */
export const NOT_IMAGES: ReadonlySet<string> = new Set(['SR', 'DOC', 'KO', 'PR', 'REG', 'RWV', 'FID', 'PLAN', 'AU', 'ECG']);
export function imageSeries(view: SharedView): SharedView['series'] {
  return view.series
    .filter((s) => !NOT_IMAGES.has((s.modality ?? '').toUpperCase()) && s.numberOfInstances > 0)
    .sort((a, b) => (a.seriesNumber ?? Number.MAX_SAFE_INTEGER) - (b.seriesNumber ?? Number.MAX_SAFE_INTEGER));
}
