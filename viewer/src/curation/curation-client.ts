/**
 * The curation API (docs/api.md "Curation": `/curation`, `DELETE` under the DICOMweb root) and the
 * audit trail's curation records (`/admin/audit`), for the viewer. The viewer cannot know the user's
 * permissions in advance (auth/session.ts holds a name, not roles): a refusal (403) becomes a
 * `CurationError` saying plainly which permission is needed (`admin`, or `delete` for DELETE), with the
 * server's own words; other failures keep the server's message. URLs carry UIDs only.
 */
import { authorizedFetch } from '../auth/http.js';
import { DICOMWEB_ROOT } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';
import type { DeleteResult, MoveBody, MoveResult, PatientTargetJson, RejectBody, RejectionReason, RejectedList, RejectResult, RestoreResult, StudyAttributesJson } from '../../../server/src/contracts/curation.js';
import type { AuditRecordJson } from '../../../server/src/contracts/audit.js';

export const CURATION_ROOT = '/curation';
export const AUDIT_ROOT = '/admin/audit';

/** A refused or failed curation request: `message` is fit for the page; `forbidden` tells a 403 apart. */
export class CurationError extends Error {
  constructor(message: string, readonly status: number | undefined) {
    super(message);
    this.name = 'CurationError';
  }
  get forbidden(): boolean {
    return this.status === 403;
  }
}

async function call<T>(url: string, what: string, init: { method?: string; body?: unknown; permission?: 'admin' | 'delete' } = {}): Promise<T> {
  let res: Response;
  try {
    res = await authorizedFetch(url, {
      method: init.method ?? 'GET',
      headers: { Accept: 'application/json', ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  } catch {
    throw new CurationError(t('curation:api.unreachable', { what }), undefined);
  }
  if (!res.ok) {
    let why = res.statusText;
    try {
      why = ((await res.json()) as { error?: { message?: string } }).error?.message ?? why;
    } catch {
      /* the status says enough */
    }
    if (res.status === 403) throw new CurationError(t(init.permission === 'delete' ? 'curation:api.needsDelete' : 'curation:api.needsAdmin', { what, why }), 403);
    if (res.status === 401) throw new CurationError(t('curation:api.signIn', { what }), 401);
    throw new CurationError(t('curation:api.failed', { what, status: res.status, why }), res.status);
  }
  return (await res.json()) as T;
}

/** `RejectBody` with its reason as one of CID 7011's codes (the schema's union of literals types as `never` here). */
export type RejectRequest = Omit<RejectBody, 'reason'> & { reason: RejectionReason };

export const reject = (body: RejectRequest) => call<RejectResult>(`${CURATION_ROOT}/rejections`, t('curation:what.reject'), { method: 'POST', body });

export const listRejected = (limit = 200) => call<RejectedList>(`${CURATION_ROOT}/rejected?state=active&limit=${limit}`, t('curation:what.list')).then((l) => l.rejected);

export const restoreNote = (note: string) => call<RestoreResult>(`${CURATION_ROOT}/notes/${encodeURIComponent(note)}/restore`, t('curation:what.restore'), { method: 'POST' });

export const restoreInstance = (sop: string) => call<RestoreResult>(`${CURATION_ROOT}/rejected/${encodeURIComponent(sop)}/restore`, t('curation:what.restore'), { method: 'POST' });

export const move = (body: MoveBody) => call<MoveResult>(`${CURATION_ROOT}/move`, t('curation:what.move'), { method: 'POST', body });

export const split = (study: string, seriesInstanceUids: string[], attributes?: StudyAttributesJson, patient?: PatientTargetJson) =>
  call<MoveResult>(`${CURATION_ROOT}/studies/${encodeURIComponent(study)}/split`, t('curation:what.split'), {
    method: 'POST',
    body: { seriesInstanceUids, ...(attributes === undefined ? {} : { attributes }), ...(patient === undefined ? {} : { patient }) },
  });

export const merge = (study: string, into: string) => call<MoveResult>(`${CURATION_ROOT}/studies/${encodeURIComponent(study)}/merge`, t('curation:what.merge'), { method: 'POST', body: { into } });

/** DELETE of a study, a series of it or an instance (needs the `delete` permission). */
export function deleteObject(study: string, series?: string, sop?: string): Promise<DeleteResult> {
  let url = `${DICOMWEB_ROOT}/studies/${encodeURIComponent(study)}`;
  if (series !== undefined) url += `/series/${encodeURIComponent(series)}`;
  if (series !== undefined && sop !== undefined) url += `/instances/${encodeURIComponent(sop)}`;
  return call<DeleteResult>(url, t('curation:what.delete'), { method: 'DELETE', permission: 'delete' });
}

/** The audit trail's records of one curation action (newest first). */
export const auditRecords = (action: 'reject' | 'restore' | 'move' | 'delete', limit: number) =>
  call<{ records: AuditRecordJson[] }>(`${AUDIT_ROOT}?action=${action}&limit=${limit}`, t('curation:what.audit')).then((r) => r.records);

