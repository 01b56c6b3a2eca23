/**
 * Endoscopy quality figures (`#/quality`): for a period of procedure dates, one row per endoscopist
 * (the signer of a report's version 1) and one for all, from the final colonoscopy reports
 * (`GET /reports/quality`): adenoma and polyp detection rates, caecal intubation rate, median withdrawal
 * time, adequate bowel preparation, each against its ESGE 2017 minimum standard (met / not met), with
 * its counts. The period lives in the page (and the last one shown in this tab's memory).
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import { formatDicomDate, t } from '../i18n/i18n.js';
import './reports.css';
import type { QualityFigures, QualityReport } from '../../../server/src/contracts/reports.js';
import { defaultPeriod, dicomDateOf, medianText, rateText, type MeasureText } from './report-model.js';
import { qualityFigures } from './reports-client.js';
import { renderAiUsage } from './ai-usage-section.js';

const remembered: { from?: string; to?: string } = {};

// Titles are read when the table is drawn (the page's language then).
const COLUMNS: Array<{ key: keyof QualityFigures; title: () => string; text: (f: QualityFigures) => MeasureText }> = [
  { key: 'adenomaDetectionRate', title: () => t('reports:quality.adr'), text: (f) => rateText(f.adenomaDetectionRate) },
  { key: 'polypDetectionRate', title: () => t('reports:quality.pdr'), text: (f) => rateText(f.polypDetectionRate) },
  { key: 'caecalIntubationRate', title: () => t('reports:quality.cir'), text: (f) => rateText(f.caecalIntubationRate) },
  { key: 'medianWithdrawalTimeSeconds', title: () => t('reports:quality.mwt'), text: (f) => medianText(f.medianWithdrawalTimeSeconds) },
  { key: 'adequateBowelPreparationRate', title: () => t('reports:quality.bowel'), text: (f) => rateText(f.adequateBowelPreparationRate) },
];

const stateText = (state: MeasureText['state']): string =>
  ({ met: t('reports:quality.met'), 'not-met': t('reports:quality.notMet'), 'no-target': t('reports:quality.noTarget'), 'no-data': t('reports:quality.noData') })[state];

export function renderQualityPage(root: HTMLElement): () => void {
  const period = defaultPeriod();
  const from = h('input', { type: 'date', id: 'quality-from', name: 'from', required: true });
  const to = h('input', { type: 'date', id: 'quality-to', name: 'to', required: true });
  from.value = remembered.from ?? period.from;
  to.value = remembered.to ?? period.to;
  const show = h('button', { type: 'submit', id: 'quality-show', text: t('reports:quality.show') });
  const form = h(
    'form',
    { class: 'search', 'aria-label': t('reports:quality.period') },
    h('label', {}, h('span', { text: t('reports:quality.from') }), from),
    h('label', {}, h('span', { text: t('reports:quality.to') }), to),
    show,
  );
  const result = h('section', { class: 'quality-result', 'aria-live': 'polite' });
  // AI in use, measured (ai-usage-section.ts): the same period, for administrators.
  const aiUsage = h('section', { class: 'ai-usage', id: 'ai-usage', 'aria-live': 'polite' });
  root.replaceChildren(h('div', { class: 'quality-page' }, h('h2', { text: t('reports:quality.title') }), form, result, aiUsage));

  let controller: AbortController | undefined;
  const load = async () => {
    const f = dicomDateOf(from.value);
    const until = dicomDateOf(to.value);
    if (f === undefined || until === undefined) {
      result.replaceChildren(errorBox(t('reports:quality.bothDates')));
      return;
    }
    if (f > until) {
      result.replaceChildren(errorBox(t('reports:quality.startsAfter')));
      return;
    }
    remembered.from = from.value;
    remembered.to = to.value;
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    result.replaceChildren(h('p', { class: 'muted loading', text: t('common:loading') }));
    void renderAiUsage(aiUsage, f, until, mine.signal);
    try {
      const report = await qualityFigures(f, until, mine.signal);
      if (controller === mine) result.replaceChildren(...figures(report));
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      result.replaceChildren(errorBox(messageOf(err), () => void load()));
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void load();
  });
  void load();
  return () => controller?.abort();
}

function figures(report: QualityReport): HTMLElement[] {
  const row = (name: string, figures: QualityFigures, attrs: Record<string, string>) =>
    h(
      'tr',
      attrs,
      h('th', { scope: 'row', text: name }),
      h('td', { class: 'num', 'data-measure': 'procedures', text: String(figures.procedures) }),
      ...COLUMNS.map((c) => {
        const m = c.text(figures);
        return h(
          'td',
          { class: `measure measure-${m.state}`, 'data-measure': c.key, 'data-state': m.state },
          h('span', { class: 'measure-value', text: m.value }),
          h('span', { class: 'measure-detail', text: ` ${m.detail}` }),
          h('span', { class: `measure-badge badge-${m.state}`, text: stateText(m.state) }),
        );
      }),
      h('td', { class: 'num', 'data-measure': 'awaitingHistology', text: String(figures.awaitingHistology) }),
    );
  const targets = report.overall;
  const head = h(
    'tr',
    {},
    h('th', { text: t('reports:quality.endoscopist') }),
    h('th', { class: 'num', text: t('reports:quality.procedures') }),
    ...COLUMNS.map((c) => h('th', {}, c.title(), h('br'), h('small', { class: 'muted', text: t('reports:quality.esge', { target: c.text(targets).target }) }))),
    h('th', { class: 'num', title: t('reports:quality.awaitingTitle'), text: t('reports:quality.awaiting') }),
  );
  const rows = report.endoscopists.map((e) => row(e.endoscopist.name ?? e.endoscopist.subject, e.figures, { 'data-endoscopist': e.endoscopist.subject }));
  const table = h(
    'table',
    { class: 'study-table quality-table', id: 'quality-table' },
    h('thead', {}, head),
    h('tbody', {}, ...(rows.length === 0 ? [h('tr', {}, h('td', { colspan: COLUMNS.length + 3, class: 'muted', text: t('reports:quality.noReports') }))] : rows)),
    h('tfoot', {}, row(t('reports:quality.all'), report.overall, { 'data-endoscopist': '*', class: 'overall' })),
  );
  return [
    h('p', { class: 'muted', text: t('reports:quality.summary', { from: formatDicomDate(report.from), to: formatDicomDate(report.to), count: report.overall.procedures }) }),
    h('div', { class: 'table-scroll' }, table),
    h(
      'details',
      { class: 'quality-definitions' },
      h('summary', { text: t('reports:quality.how') }),
      h('dl', {}, ...Object.entries(report.definitions).flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
      h('p', { class: 'muted', text: t('reports:quality.targets', { source: report.source }) }),
    ),
  ];
}
