/**
 * The reports API (`/reports`, docs/api.md "Reports"): a study's reports, drafts, saving with the
 * revision (lost-update protection), signing, amending, one version, the PDF, the AI findings of a
 * study and the endoscopy quality figures. Every request goes through auth/http.ts `authorizedFetch`
 * (the access token when signed in). The JSON is the server's contract (server/src/contracts/reports.ts),
 * imported as types only. URLs carry report ids and UIDs, never patient data.
 *
 * A refusal becomes a `ReportApiError` whose message is for the page: what was refused and why, in
 * the server's words (its messages name the field), with plain wording for 403 and 409.
 */
import type { AiFindingList, QualityReport, ReportContent, ReportJson, ReportKind, ReportList, ReportVersionJson } from '../../../server/src/contracts/reports.js';
import { authorizedFetch } from '../auth/http.js';
import { authEnabled } from '../auth/session.js';
import { ViewerError } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';

/** Reports API root, from `<meta name="reports-root">` (default `/reports`). */
export const REPORTS_ROOT = (document.querySelector<HTMLMetaElement>('meta[name="reports-root"]')?.content ?? '/reports').replace(/\/$/, '');

export type Action = 'load' | 'create' | 'save' | 'sign' | 'amend' | 'pdf' | 'quality';

/** A refused or failed reports request: `status` and the server's `code` (CONFLICT, FORBIDDEN…). */
export class ReportApiError extends ViewerError {
  constructor(
    message: string,
    status: number | undefined,
    readonly code: string | undefined,
    readonly action: Action,
  ) {
    super(message, status);
    this.name = 'ReportApiError';
  }
}

/** Why Sign is off for this user, in the page's language. */
export const signRefusedText = (): string => t('reports:api.signRefused');

/** The action, as the messages name it (in the page's language when the request is made). */
const what = (action: Action): string => t(`reports:api.what.${action}`);

async function failure(res: Response, action: Action): Promise<ReportApiError> {
  let code: string | undefined;
  let detail = '';
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = body.error?.code;
      detail = body.error?.message ?? '';
    } catch {
      if (text.length < 300) detail = text;
    }
  } catch {
    /* unreadable body: the status says enough */
  }
  const why = detail === '' ? res.statusText : detail;
  let message: string;
  // The framing in the page's language; the server's reason (why) as it sent it.
  if (res.status === 403 && action === 'sign') message = signRefusedText();
  else if (res.status === 403) message = t('reports:api.forbidden', { what: what(action).toLowerCase(), why });
  else if (res.status === 401 && authEnabled()) message = t('reports:api.signInEnded', { what: what(action) });
  else if (res.status === 409 && action === 'save') message = t('reports:api.conflictSave', { why });
  else if (res.status === 409 && action === 'sign') message = t('reports:api.notSigned', { why });
  else if (res.status === 409) message = t('reports:api.refused', { what: what(action), why });
  else if (res.status === 400) message = action === 'save' || action === 'create' ? t('reports:api.notSaved', { why }) : t('reports:api.refused', { what: what(action), why });
  else if (res.status === 503 && code === 'STORAGE_FAILURE') message = t('reports:api.storageFailure', { why });
  else if (res.status === 404) message = t('reports:api.notFound', { what: what(action), why });
  else message = why ? t('common:request.failedDetail', { what: what(action), status: res.status, detail: why }) : t('common:request.failed', { what: what(action), status: res.status });
  return new ReportApiError(message, res.status, code, action);
}

async function call(url: string, action: Action, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await authorizedFetch(url, { ...init, headers: { Accept: 'application/json', ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }), ...(init.headers as Record<string, string> | undefined) } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ReportApiError(t('reports:api.unreachable', { what: what(action) }), undefined, undefined, action);
  }
  if (!res.ok) throw await failure(res, action);
  return res;
}

const json = async <T>(url: string, action: Action, init: RequestInit = {}): Promise<T> => (await (await call(url, action, init)).json()) as T;
const report = (id: string) => `${REPORTS_ROOT}/${encodeURIComponent(id)}`;

export const studyReports = async (study: string, signal?: AbortSignal) => (await json<ReportList>(`${REPORTS_ROOT}/studies/${study}`, 'load', signal ? { signal } : {})).reports;
export const getReport = (id: string) => json<ReportJson>(report(id), 'load');
export const getVersion = (id: string, version: number) => json<ReportVersionJson>(`${report(id)}/versions/${version}`, 'load');
export const aiFindings = async (study: string) => (await json<AiFindingList>(`${REPORTS_ROOT}/studies/${study}/ai-findings`, 'load')).findings;

/** A new draft of `kind`; with `content` it starts with that (else the server's empty content). */
export const createReport = (study: string, kind: ReportKind, content?: ReportContent) =>
  json<ReportJson>(REPORTS_ROOT, 'create', { method: 'POST', body: JSON.stringify({ studyInstanceUid: study, kind, ...(content === undefined ? {} : { content }) }) });

/** Replaces the draft's content; `revision` is the one the form was loaded with (409 if saved since). */
export const saveReport = (id: string, content: ReportContent, revision: number) => json<ReportJson>(report(id), 'save', { method: 'PUT', body: JSON.stringify({ content, revision }) });

/** Signs the draft at `revision` (a 403 says the user may not sign). Also stores a signed version's SR and PDF again after a 503. */
export const signReport = (id: string, revision: number | undefined) => json<ReportJson>(`${report(id)}/sign`, 'sign', { method: 'POST', body: JSON.stringify(revision === undefined ? {} : { revision }) });

export const amendReport = (id: string, reason: string) => json<ReportJson>(`${report(id)}/amend`, 'amend', { method: 'POST', body: JSON.stringify({ reason }) });

export const qualityFigures = (from: string, to: string, signal?: AbortSignal) =>
  json<QualityReport>(`${REPORTS_ROOT}/quality?${new URLSearchParams({ from, to })}`, 'quality', signal ? { signal } : {});

/** One version as PDF (a draft's is marked as such by the server). */
export async function versionPdf(id: string, version: number): Promise<Blob> {
  const res = await call(`${report(id)}/versions/${version}/pdf`, 'pdf', { headers: { Accept: 'application/pdf' } });
  return res.blob();
}
