/**
 * The hospital link's read API (`/his`, docs/api.md "Orders and worklist"): today's worklist of the
 * live room's station, and the orders of the studies the study browser shows. The wire shapes are the
 * server's (server/src/contracts/his.ts), imported as types only.
 *
 * Not every archive has a hospital link (another DICOMweb server, or ours without one) and not every
 * user may read it: a 404 or 403 answers `undefined`, and the page then leaves the feature out.
 */
import type { HisOrderJson, OrderList, WorklistPage } from '../../../server/src/contracts/his.js';
import { request, ViewerError } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';

/** An order with its patient and state (a worklist item). */
export type HisOrder = HisOrderJson;
export type StepStatus = HisOrderJson['status'];

/** Hospital link root, from `<meta name="his-root">`. */
export const HIS_ROOT = (document.querySelector<HTMLMetaElement>('meta[name="his-root"]')?.content ?? '/his').replace(/\/$/, '');

/** The server has no /his (404) or the user may not read it (403): the feature is left out. */
const absent = (err: unknown) => err instanceof ViewerError && (err.status === 404 || err.status === 403);

async function getJson<T>(url: string, what: string, signal?: AbortSignal): Promise<T | undefined> {
  try {
    const res = await request(url, { what, headers: { Accept: 'application/json' }, ...(signal ? { signal } : {}) });
    return (await res.json()) as T;
  } catch (err) {
    if (absent(err)) return undefined;
    throw err;
  }
}

/** Today as `YYYYMMDD`, on this computer's clock (the day the room works). */
export function todayDicomDate(now = new Date()): string {
  return `${now.getFullYear()}${String(now.getMonth() + 1).padStart(2, '0')}${String(now.getDate()).padStart(2, '0')}`;
}

/**
 * Today's scheduled and started endoscopy (ES) items, of `station` (a Scheduled Station AE Title) or of
 * every station when it is empty; by scheduled time. `undefined`: no worklist here.
 */
export async function todaysWorklist(station: string, signal?: AbortSignal): Promise<HisOrder[] | undefined> {
  const params = new URLSearchParams({ date: todayDicomDate(), modality: 'ES' });
  if (station.trim() !== '') params.set('station', station.trim());
  return (await getJson<WorklistPage>(`${HIS_ROOT}/worklist?${params}`, t('common:what.worklist'), signal))?.items;
}

/**
 * The orders of these studies (one request for a page of studies), by Study Instance UID: an order
 * belongs to the study with its Study Instance UID, or else to the study with its accession number
 * (`accessionOf`: the studies' Accession Numbers; images stored under a modality's own study UID).
 * `undefined`: no hospital link here.
 */
export async function ordersOfStudies(studies: ReadonlyArray<{ uid: string; accessionNumber?: string }>, signal?: AbortSignal): Promise<Map<string, HisOrder[]> | undefined> {
  const uids = [...new Set(studies.map((s) => s.uid).filter((uid) => uid !== ''))];
  if (uids.length === 0) return new Map();
  const params = new URLSearchParams();
  for (const uid of uids) params.append('study', uid);
  const body = await getJson<OrderList>(`${HIS_ROOT}/orders?${params}`, t('common:what.orders'), signal);
  if (body === undefined) return undefined;
  const byStudy = new Map<string, HisOrder[]>();
  const add = (study: string, order: HisOrder) => byStudy.set(study, [...(byStudy.get(study) ?? []), order]);
  for (const order of body.orders) {
    if (uids.includes(order.studyInstanceUid)) add(order.studyInstanceUid, order);
    else for (const s of studies.filter((s) => s.accessionNumber !== undefined && s.accessionNumber === order.accessionNumber)) add(s.uid, order);
  }
  return byStudy;
}

/** `YYYYMMDDHHMM[SS]` → `HH:MM` (empty for a date-only schedule). */
export function scheduledTime(start: string): string {
  return /^\d{12}/.test(start) ? `${start.slice(8, 10)}:${start.slice(10, 12)}` : '';
}
