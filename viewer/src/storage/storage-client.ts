/**
 * The storage API (`/api/storage`, administrators): usage in total and per study, housekeeping status
 * and runs. Failures become messages in the page's language, with the server's reason.
 */
import { authorizedFetch } from '../auth/http.js';
import { t } from '../i18n/i18n.js';
import type { HousekeepingStatusJson, StorageUsageJson, StudyUsageJson } from '../../../server/src/contracts/storage.js';

export const STORAGE_ROOT = '/api/storage';

async function call<T>(url: string, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await authorizedFetch(url, { ...init, headers: { Accept: 'application/json' } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new Error(t('storage:unreachable'));
  }
  if (!res.ok) {
    let why = res.statusText;
    try {
      why = ((await res.json()) as { error?: { message?: string } }).error?.message ?? why;
    } catch {
      /* the status says enough */
    }
    throw new Error(res.status === 403 ? t('storage:forbidden', { why }) : t('storage:failed', { status: res.status, why }));
  }
  return (await res.json()) as T;
}

export const storageUsage = (limit: number, offset: number, signal?: AbortSignal) => call<StorageUsageJson>(`${STORAGE_ROOT}/usage?limit=${limit}&offset=${offset}`, signal ? { signal } : {});
export const studyUsage = (study: string) => call<StudyUsageJson>(`${STORAGE_ROOT}/usage/studies/${encodeURIComponent(study)}`);
export const housekeepingStatus = () => call<HousekeepingStatusJson>(`${STORAGE_ROOT}/housekeeping`);
export const startHousekeeping = () => call<HousekeepingStatusJson>(`${STORAGE_ROOT}/housekeeping`, { method: 'POST' });
