/**
 * AI in use, measured (on the quality page `#/quality`, for administrators): for the page's period, one
 * row per model id + version from `GET /ai/usage`: findings shown, accepted and rejected by clinicians
 * (in signed reports, or marked right / wrong), the acceptance rate, and beside it the model card's
 * precision at its operating threshold on its test set. A rate clearly under the test-set figure says
 * the model does worse in this hospital than on its test set. A user who is not an administrator (403)
 * sees a short note instead.
 */
import type { ModelUsage, UsageReport } from '../../../server/src/contracts/ai-usage.js';
import { authorizedFetch } from '../auth/http.js';
import { AI_ROOT } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';
import { errorBox, h } from '../ui/dom.js';
import { percent } from './report-model.js';

/** A rate this many points under the test set's precision is marked as worse here. */
const WORSE_BY = 0.1;

async function fetchUsage(from: string, to: string, signal: AbortSignal): Promise<UsageReport | 'forbidden'> {
  const res = await authorizedFetch(`${AI_ROOT}/usage?${new URLSearchParams({ from, to })}`, { headers: { Accept: 'application/json' }, signal });
  if (res.status === 403 || res.status === 401) return 'forbidden';
  if (!res.ok) {
    let why = res.statusText;
    try {
      why = ((await res.json()) as { error?: { message?: string } }).error?.message ?? why;
    } catch {
      /* the status says enough */
    }
    throw new Error(t('aiusage:failed', { status: res.status, why }));
  }
  return (await res.json()) as UsageReport;
}

function row(m: ModelUsage): HTMLElement {
  const precision = m.testSet?.precisionAtThreshold ?? null;
  const worse = m.acceptanceRate !== null && precision !== null && m.acceptanceRate < precision - WORSE_BY;
  return h(
    'tr',
    { 'data-model': `${m.model.id} ${m.model.version}`, ...(worse ? { class: 'ai-usage-worse' } : {}) },
    h('th', { scope: 'row', text: m.model.id }),
    h('td', { text: m.model.version }),
    h('td', { class: 'num', 'data-measure': 'shown', text: String(m.shown) }),
    h('td', { class: 'num', 'data-measure': 'accepted', text: String(m.accepted) }),
    h('td', { class: 'num', 'data-measure': 'rejected', text: String(m.rejected) }),
    h('td', { class: 'num', 'data-measure': 'acceptanceRate', text: percent(m.acceptanceRate) }),
    h(
      'td',
      { class: 'num', 'data-measure': 'testSet', title: m.testSet?.split ?? t('aiusage:noCard') },
      percent(precision),
      worse ? h('span', { class: 'measure-badge badge-not-met', text: ` ${t('aiusage:worse')}` }) : undefined,
    ),
  );
}

/** The section for the period `from` … `to` (YYYYMMDD); call again when the period changes. */
export async function renderAiUsage(section: HTMLElement, from: string, to: string, signal: AbortSignal): Promise<void> {
  section.replaceChildren(h('h3', { text: t('aiusage:title') }), h('p', { class: 'muted loading', text: t('common:loading') }));
  let usage: UsageReport | 'forbidden';
  try {
    usage = await fetchUsage(from, to, signal);
  } catch (err) {
    if ((err as Error).name === 'AbortError') return;
    section.replaceChildren(h('h3', { text: t('aiusage:title') }), errorBox((err as Error).message, () => void renderAiUsage(section, from, to, signal)));
    return;
  }
  if (usage === 'forbidden') {
    section.replaceChildren(h('h3', { text: t('aiusage:title') }), h('p', { class: 'muted', text: t('aiusage:adminsOnly') }));
    return;
  }
  const head = h(
    'tr',
    {},
    h('th', { text: t('aiusage:model') }),
    h('th', { text: t('aiusage:version') }),
    h('th', { class: 'num', text: t('aiusage:shown') }),
    h('th', { class: 'num', text: t('aiusage:accepted') }),
    h('th', { class: 'num', text: t('aiusage:rejected') }),
    h('th', { class: 'num', text: t('aiusage:rate') }),
    h('th', { class: 'num', text: t('aiusage:testSet') }),
  );
  const rows = usage.models.map(row);
  section.replaceChildren(
    h('h3', { text: t('aiusage:title') }),
    h('p', { class: 'muted', text: t('aiusage:summary') }),
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { class: 'study-table ai-usage-table', id: 'ai-usage-table' },
        h('thead', {}, head),
        h('tbody', {}, ...(rows.length === 0 ? [h('tr', {}, h('td', { colspan: 7, class: 'muted', text: t('aiusage:none') }))] : rows)),
      ),
    ),
    h(
      'details',
      { class: 'quality-definitions' },
      h('summary', { text: t('aiusage:how') }),
      h('dl', {}, ...Object.entries(usage.definitions).flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
    ),
  );
}
