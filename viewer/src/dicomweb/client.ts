/**
 * The viewer's only way to the archive: DICOMweb (QIDO-RS, WADO-RS) under a configurable root, so it
 * works against any conformant archive. Patient attributes only ever travel in QIDO-RS query strings
 * (which our server logs without query strings); every other URL carries UIDs only.
 */
import { authorizedFetch } from '../auth/http.js';
import { authEnabled } from '../auth/session.js';
import { t } from '../i18n/i18n.js';
import type { DicomJson } from './dicom-json.js';
import { parseMultipart, type Part } from './multipart.js';

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
/** DICOMweb root (e.g. `/dicomweb` or another archive's URL), from `<meta name="dicomweb-root">`. */
export const DICOMWEB_ROOT = (meta('dicomweb-root') ?? '/dicomweb').replace(/\/$/, '');
/** AI API root, from `<meta name="ai-root">`. */
export const AI_ROOT = (meta('ai-root') ?? '/ai').replace(/\/$/, '');

/** A failure with a message fit for the page (never patient data: only statuses and server codes). */
export class ViewerError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'ViewerError';
  }
}

async function describeFailure(res: Response, what: string): Promise<ViewerError> {
  let detail = res.statusText;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { error?: { message?: string } };
      detail = body.error?.message ?? detail;
    } catch {
      if (text.length > 0 && text.length < 300) detail = text;
    }
  } catch {
    /* body unreadable: keep the status text */
  }
  if (res.status === 403) {
    // Signed in, but the user's roles do not allow this: say so plainly (the server says which permission).
    // The framing in the page's language; the server's own words (detail) as it sent them.
    return new ViewerError(t('common:request.forbidden', { what, detail: detail || t('common:request.forbiddenDefault') }), 403);
  }
  if (res.status === 401 && authEnabled()) return new ViewerError(t('common:request.signInEnded', { what }), 401);
  return new ViewerError(detail ? t('common:request.failedDetail', { what, status: res.status, detail }) : t('common:request.failed', { what, status: res.status }), res.status);
}

export async function request(url: string, init: RequestInit & { what: string }): Promise<Response> {
  let res: Response;
  try {
    // With the access token when signed in (auth/http.ts); exactly a plain fetch when sign-in is off.
    res = await authorizedFetch(url, init);
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ViewerError(t('common:request.unreachable', { what: init.what }));
  }
  if (!res.ok) throw await describeFailure(res, init.what);
  return res;
}

async function json<T>(url: string, what: string, signal?: AbortSignal): Promise<T> {
  const res = await request(url, { what, headers: { Accept: 'application/dicom+json' }, ...(signal ? { signal } : {}) });
  if (res.status === 204) return [] as T;
  const text = await res.text();
  return (text.length === 0 ? [] : JSON.parse(text)) as T;
}

export const studyPath = (study: string) => `${DICOMWEB_ROOT}/studies/${study}`;
export const seriesPath = (study: string, series: string) => `${studyPath(study)}/series/${series}`;
export const instancePath = (study: string, series: string, sop: string) => `${seriesPath(study, series)}/instances/${sop}`;

export interface StudyQuery {
  PatientName?: string;
  PatientID?: string;
  StudyDate?: string;
  ModalitiesInStudy?: string;
  AccessionNumber?: string;
}

/** QIDO-RS study search, one page. */
export function searchStudies(query: StudyQuery, limit: number, offset: number, signal?: AbortSignal): Promise<DicomJson[]> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (typeof v === 'string' && v.trim() !== '') params.set(k, v.trim());
  params.set('limit', String(limit));
  params.set('offset', String(offset));
  params.append('includefield', '00081030');
  return json(`${DICOMWEB_ROOT}/studies?${params}`, t('common:what.studySearch'), signal);
}

export function searchSeries(study: string, signal?: AbortSignal): Promise<DicomJson[]> {
  return json(`${studyPath(study)}/series?includefield=0008103E`, t('common:what.seriesSearch'), signal);
}

/** One study's attributes (QIDO-RS with a UID: no patient data in the URL). */
export async function studyAttributes(study: string): Promise<DicomJson | undefined> {
  return (await json<DicomJson[]>(`${DICOMWEB_ROOT}/studies?StudyInstanceUID=${study}&includefield=00081030`, t('common:what.studyLookup')))[0];
}

export function seriesMetadata(study: string, series: string, signal?: AbortSignal): Promise<DicomJson[]> {
  return json(`${seriesPath(study, series)}/metadata`, t('common:what.seriesMetadata'), signal);
}

export const seriesThumbnailUrl = (study: string, series: string) => `${seriesPath(study, series)}/thumbnail?viewport=96,96`;
export const renderedUrl = (study: string, series: string, sop: string) => `${instancePath(study, series, sop)}/rendered`;

/** WADO-RS frames in their stored syntax (`transfer-syntax=*` on the given media type): the parts. */
export async function retrieveFrames(study: string, series: string, sop: string, frames: number[], mediaType: string, signal?: AbortSignal): Promise<Part[]> {
  const res = await request(`${instancePath(study, series, sop)}/frames/${frames.join(',')}`, {
    what: t('common:what.frameRetrieval'),
    headers: { Accept: `multipart/related; type="${mediaType}"; transfer-syntax=*` },
    ...(signal ? { signal } : {}),
  });
  return parseMultipart(new Uint8Array(await res.arrayBuffer()), res.headers.get('content-type') ?? '');
}

/** WADO-RS instance as stored (Part-10 bytes). */
export async function retrieveInstance(study: string, series: string, sop: string, signal?: AbortSignal): Promise<Uint8Array> {
  const res = await request(instancePath(study, series, sop), {
    what: t('common:what.instanceRetrieval'),
    headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    ...(signal ? { signal } : {}),
  });
  const [part] = parseMultipart(new Uint8Array(await res.arrayBuffer()), res.headers.get('content-type') ?? '');
  if (part === undefined) throw new ViewerError(t('common:request.noPart', { what: t('common:what.instanceRetrieval') }));
  return part.body;
}
