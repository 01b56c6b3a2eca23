/**
 * The consults API (`/consults`, docs/api.md "Consults") and the opening of a consult link (`POST
 * /share/{token}/session`, "Share links"). Every request goes through auth/http.ts `authorizedFetch`:
 * the sign-in token, or in link mode the link's `share.…` credential. The JSON is the server's contract
 * (server/src/contracts/sharing.ts), imported as types only. URLs carry ids and UIDs, never patient data.
 *
 * A refusal becomes a `ConsultApiError` with the server's `code` and a message for the page in the
 * server's words (its messages name the field); 403 says plainly which permission is missing.
 */
import type { AnswerConsultBody, ConsultJson, CreateConsultBody, CreatedConsult, ShareSession } from '../../../server/src/contracts/sharing.js';
import { authorizedFetch } from '../auth/http.js';
import { ViewerError } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';

export type { AnswerConsultBody, ConsultJson, CreateConsultBody, CreatedConsult };
export type ConsultRegion = NonNullable<AnswerConsultBody['regions']>[number];

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
/** Consults API root (`<meta name="consults-root">`, default `/consults`); share links under `/share`. */
export const CONSULTS_ROOT = (meta('consults-root') ?? '/consults').replace(/\/$/, '');
export const SHARE_ROOT = (meta('share-root') ?? '/share').replace(/\/$/, '');

/** A refused or failed consults request: `status` and the server's `code` (FORBIDDEN, PIN_REQUIRED…). */
export class ConsultApiError extends ViewerError {
  constructor(
    message: string,
    status: number | undefined,
    readonly code: string | undefined,
  ) {
    super(message, status);
    this.name = 'ConsultApiError';
  }
}

async function failure(res: Response, what: string): Promise<ConsultApiError> {
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
  if (res.status === 403) return new ConsultApiError(t('consult:forbidden', { what, detail: detail || t('consult:forbiddenDefault') }), 403, code ?? 'FORBIDDEN');
  return new ConsultApiError(t('consult:failed', { what, status: res.status, detail: detail === '' ? '' : ` (${detail})` }), res.status, code);
}

async function call<T>(url: string, what: string, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await authorizedFetch(url, {
      ...init,
      headers: { Accept: 'application/json', ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    });
  } catch {
    throw new ConsultApiError(t('consult:unreachable', { what }), undefined, undefined);
  }
  if (!res.ok) throw await failure(res, what);
  return (await res.json()) as T;
}

/** Asks for a second opinion: the consult, and its link (shown once). */
export function createConsult(body: CreateConsultBody): Promise<CreatedConsult> {
  return call(CONSULTS_ROOT, t('consult:whatCreate'), { method: 'POST', body: JSON.stringify(body) });
}

/** The consults I asked for (`requester`) or that were asked of me (`specialist`), newest first. */
export async function listConsults(role: 'requester' | 'specialist'): Promise<ConsultJson[]> {
  return (await call<{ consults: ConsultJson[] }>(`${CONSULTS_ROOT}?role=${role}`, t('consult:whatList'))).consults;
}

/** One consult (the specialist's first read marks it viewed). */
export function getConsult(id: string): Promise<ConsultJson> {
  return call(`${CONSULTS_ROOT}/${encodeURIComponent(id)}`, t('consult:whatLoad'));
}

/** The specialist's answer: a text and regions on the case's images. */
export function answerConsult(id: string, body: AnswerConsultBody): Promise<ConsultJson> {
  return call(`${CONSULTS_ROOT}/${encodeURIComponent(id)}/answer`, t('consult:whatAnswer'), { method: 'POST', body: JSON.stringify(body) });
}

/** Opens a share link (its PIN when it has one): the session credential and what the link shows. */
export async function openShareLink(token: string, pin?: string): Promise<ShareSession> {
  let res: Response;
  try {
    // No credentials yet: a plain fetch (the token in the path is the credential).
    res = await fetch(`${SHARE_ROOT}/${encodeURIComponent(token)}/session`, {
      method: 'POST',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(pin === undefined ? {} : { pin }),
    });
  } catch {
    throw new ConsultApiError(t('consult:unreachable', { what: t('consult:whatOpen') }), undefined, undefined);
  }
  if (!res.ok) throw await failure(res, t('consult:whatOpen'));
  return (await res.json()) as ShareSession;
}
