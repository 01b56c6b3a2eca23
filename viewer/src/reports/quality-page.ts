/**
 * Endoscopy quality figures (`#/quality`): for a period of procedure dates, one row per endoscopist
 * (the signer of a report's version 1) and one for all, from the final colonoscopy reports
 * (`GET /reports/quality`): adenoma and polyp detection rates, caecal intubation rate, median withdrawal
 * time, adequate bowel preparation, each against its ESGE 2017 minimum standard (met / not met), with
 * its counts. The period lives in the page (and the last one shown in this tab's memory).
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import './reports.css';
import type { QualityFigures, QualityReport } from '../../../server/src/contracts/reports.js';
import { defaultPeriod, dicomDateOf, medianText, rateText, type MeasureText } from './report-model.js';
import { qualityFigures } from './reports-client.js';

const remembered: { from?: string; to?: string } = {};

const COLUMNS: Array<{ key: keyof QualityFigures; title: string; text: (f: QualityFigures) => MeasureText }> = [
  { key: 'adenomaDetectionRate', title: 'Adenoma detection rate', text: (f) => rateText(f.adenomaDetectionRate) },
  { key: 'polypDetectionRate', title: 'Polyp detection rate', text: (f) => rateText(f.polypDetectionRate) },
  { key: 'caecalIntubationRate', title: 'Caecal intubation rate', text: (f) => rateText(f.caecalIntubationRate) },
  { key: 'medianWithdrawalTimeSeconds', title: 'Median withdrawal time', text: (f) => medianText(f.medianWithdrawalTimeSeconds) },
  { key: 'adequateBowelPreparationRate', title: 'Adequate bowel preparation', text: (f) => rateText(f.adequateBowelPreparationRate) },
];

const STATE_TEXT: Record<MeasureText['state'], string> = { met: 'met', 'not-met': 'not met', 'no-target': 'no ESGE target', 'no-data': 'no data' };

export function renderQualityPage(root: HTMLElement): () => void {
  const period = defaultPeriod();
  const from = h('input', { type: 'date', id: 'quality-from', name: 'from', required: true });
  const to = h('input', { type: 'date', id: 'quality-to', name: 'to', required: true });
  from.value = remembered.from ?? period.from;
  to.value = remembered.to ?? period.to;
  const show = h('button', { type: 'submit', id: 'quality-show', text: 'Show' });
  const form = h(
    'form',
    { class: 'search', 'aria-label': 'Period' },
    h('label', {}, h('span', { text: 'Procedures from' }), from),
    h('label', {}, h('span', { text: 'to' }), to),
    show,
  );
  const result = h('section', { class: 'quality-result', 'aria-live': 'polite' });
  root.replaceChildren(h('div', { class: 'quality-page' }, h('h2', { text: 'Endoscopy quality figures (colonoscopy)' }), form, result));

  let controller: AbortController | undefined;
  const load = async () => {
    const f = dicomDateOf(from.value);
    const t = dicomDateOf(to.value);
    if (f === undefined || t === undefined) {
      result.replaceChildren(errorBox('Enter both dates of the period.'));
      return;
    }
    if (f > t) {
      result.replaceChildren(errorBox('The period starts after it ends.'));
      return;
    }
    remembered.from = from.value;
    remembered.to = to.value;
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    result.replaceChildren(h('p', { class: 'muted loading', text: 'Loading…' }));
    try {
      const report = await qualityFigures(f, t, mine.signal);
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
          h('span', { class: `measure-badge badge-${m.state}`, text: STATE_TEXT[m.state] }),
        );
      }),
      h('td', { class: 'num', 'data-measure': 'awaitingHistology', text: String(figures.awaitingHistology) }),
    );
  const targets = report.overall;
  const head = h(
    'tr',
    {},
    h('th', { text: 'Endoscopist' }),
    h('th', { class: 'num', text: 'Procedures' }),
    ...COLUMNS.map((c) => h('th', {}, c.title, h('br'), h('small', { class: 'muted', text: `ESGE: ${c.text(targets).target}` }))),
    h('th', { class: 'num', title: 'Procedures with a resected lesion whose histology is only suspected', text: 'Awaiting histology' }),
  );
  const rows = report.endoscopists.map((e) => row(e.endoscopist.name ?? e.endoscopist.subject, e.figures, { 'data-endoscopist': e.endoscopist.subject }));
  const table = h(
    'table',
    { class: 'study-table quality-table', id: 'quality-table' },
    h('thead', {}, head),
    h('tbody', {}, ...(rows.length === 0 ? [h('tr', {}, h('td', { colspan: COLUMNS.length + 3, class: 'muted', text: 'No final colonoscopy reports in this period.' }))] : rows)),
    h('tfoot', {}, row('All endoscopists', report.overall, { 'data-endoscopist': '*', class: 'overall' })),
  );
  const fmt = (d: string) => `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}`;
  return [
    h('p', { class: 'muted', text: `Procedures dated ${fmt(report.from)} to ${fmt(report.to)}: ${report.overall.procedures} final colonoscopy report${report.overall.procedures === 1 ? '' : 's'}.` }),
    h('div', { class: 'table-scroll' }, table),
    h(
      'details',
      { class: 'quality-definitions' },
      h('summary', { text: 'How each figure is counted' }),
      h('dl', {}, ...Object.entries(report.definitions).flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
      h('p', { class: 'muted', text: `Targets: ${report.source}.` }),
    ),
  ];
}
