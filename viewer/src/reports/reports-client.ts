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

export const SIGN_REFUSED = 'You are not allowed to sign reports: your roles do not include the sign permission. A physician who may sign has to sign this report.';

const WHAT: Record<Action, string> = {
  load: 'Loading the report',
  create: 'Creating the report',
  save: 'Saving the draft',
  sign: 'Signing the report',
  amend: 'Amending the report',
  pdf: 'Downloading the PDF',
  quality: 'Loading the quality figures',
};

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
  if (res.status === 403 && action === 'sign') message = SIGN_REFUSED;
  else if (res.status === 403) message = `You are not allowed to do this (${WHAT[action].toLowerCase()}): ${why}. Ask your administrator for access.`;
  else if (res.status === 401 && authEnabled()) message = `${WHAT[action]}: your sign-in has ended; taking you to sign in again…`;
  else if (res.status === 409 && action === 'save')
    message = `Not saved: this draft was changed since you opened it (saved by someone else, signed or amended meanwhile). Your changes are still in the form; reload the report to see the current version, then enter them again. (${why})`;
  else if (res.status === 409 && action === 'sign') message = `Not signed: ${why}`;
  else if (res.status === 409) message = `${WHAT[action]} was refused: ${why}`;
  else if (res.status === 400) message = `${action === 'save' || action === 'create' ? 'Not saved' : `${WHAT[action]} was refused`}: ${why}`;
  else if (res.status === 503 && code === 'STORAGE_FAILURE') message = `Signed, but the SR and PDF could not be stored in the study yet: press Sign again to store them. (${why})`;
  else if (res.status === 404) message = `${WHAT[action]} failed: not found (${why})`;
  else message = `${WHAT[action]} failed: HTTP ${res.status}${why ? ` (${why})` : ''}`;
  return new ReportApiError(message, res.status, code, action);
}

async function call(url: string, action: Action, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await authorizedFetch(url, { ...init, headers: { Accept: 'application/json', ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }), ...(init.headers as Record<string, string> | undefined) } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ReportApiError(`${WHAT[action]} failed: the server cannot be reached (is it running?)`, undefined, undefined, action);
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
