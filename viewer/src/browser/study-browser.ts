/**
 * Study browser: QIDO-RS search by patient name (wildcards `*` `?`), patient ID, study date range,
 * modality and accession number, in pages. The search terms live only in this page's memory and in
 * the QIDO-RS request (never in the page URL); opening a study puts only its UID in the URL hash.
 * Keyboard: Tab to the results, ↑/↓ between rows, Enter opens a study. The focused (or hovered) study's
 * series are previewed with their thumbnails below the results; a thumbnail opens that series.
 * Where the archive has a hospital link (`/his`), each study with an order shows the order's state
 * (SCHEDULED, IN PROGRESS, COMPLETED, DISCONTINUED, CANCELLED), asked once per page of results.
 */
import { searchSeries, searchStudies, seriesThumbnailUrl, type StudyQuery } from '../dicomweb/client.js';
import { formatDate, num, personName, str, TAG, values, type DicomJson } from '../dicomweb/dicom-json.js';
import { setAuthorizedSource } from '../auth/http.js';
import { ordersOfStudies } from '../his/his-client.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { orderStateText, t } from '../i18n/i18n.js';

const PAGE_SIZE = 25;
const MODALITIES = ['', 'CT', 'MR', 'CR', 'DX', 'US', 'XA', 'NM', 'PT', 'ES', 'SM', 'XC', 'GM', 'OT', 'SR', 'ANN'];

/** Kept between visits of the browser within this page (not in the URL, not in storage). */
const remembered: { query: StudyQuery & { from?: string; to?: string }; offset: number; searched: boolean } = { query: {}, offset: 0, searched: false };

const dicomDate = (iso: string | undefined) => (iso ?? '').replaceAll('-', '');

export function renderStudyBrowser(root: HTMLElement, open: (study: string, series?: string) => void): void {
  const field = (label: string, input: HTMLInputElement | HTMLSelectElement) => h('label', {}, h('span', { text: label }), input);
  const name = h('input', { name: 'PatientName', type: 'search', placeholder: t('browser:patientNamePlaceholder'), autocomplete: 'off' });
  const id = h('input', { name: 'PatientID', type: 'search', autocomplete: 'off' });
  const from = h('input', { name: 'from', type: 'date' });
  const to = h('input', { name: 'to', type: 'date' });
  const modality = h('select', { name: 'ModalitiesInStudy' }, ...MODALITIES.map((m) => h('option', { value: m, text: m === '' ? t('browser:anyModality') : m })));
  const accession = h('input', { name: 'AccessionNumber', type: 'search', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', text: t('browser:search') });
  const form = h(
    'form',
    { class: 'search', role: 'search', 'aria-label': t('browser:searchLabel') },
    field(t('browser:patientName'), name),
    field(t('browser:patientId'), id),
    field(t('browser:dateFrom'), from),
    field(t('browser:dateTo'), to),
    field(t('browser:modality'), modality),
    field(t('browser:accession'), accession),
    submit,
  );
  const q = remembered.query;
  name.value = q.PatientName ?? '';
  id.value = q.PatientID ?? '';
  from.value = q.from ?? '';
  to.value = q.to ?? '';
  modality.value = q.ModalitiesInStudy ?? '';
  accession.value = q.AccessionNumber ?? '';

  const results = h('section', { class: 'results', 'aria-live': 'polite' });
  const preview = h('section', { class: 'series-preview', 'aria-label': t('browser:previewLabel') });
  root.replaceChildren(h('h2', { text: t('browser:title') }), form, results, preview);

  let previewTimer: ReturnType<typeof setTimeout> | undefined;
  let previewed: string | undefined;
  const showSeries = (study: string) => {
    if (study === previewed) return;
    previewed = study;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      try {
        const series = await searchSeries(study);
        if (previewed !== study) return;
        preview.replaceChildren(
          h('h3', { text: t('browser:series') }),
          h(
            'div',
            { class: 'series-strip' },
            ...series.map((s) => {
              const uid = str(s, TAG.SeriesInstanceUID) ?? '';
              const modality = str(s, TAG.Modality) ?? '';
              const thumb = ['SR', 'ANN', 'KO', 'PR', 'SEG'].includes(modality)
                ? h('span', { class: 'thumb-placeholder', text: modality })
                : h('img', { alt: '', width: 64, height: 64, loading: 'lazy' });
              thumb.addEventListener('error', () => thumb.replaceWith(h('span', { class: 'thumb-placeholder', text: modality })));
              if (thumb instanceof HTMLImageElement) setAuthorizedSource(thumb, seriesThumbnailUrl(study, uid));
              const b = h('button', { type: 'button', class: 'series-item', 'data-series': uid }, thumb, h('span', { text: `${modality} ${str(s, TAG.SeriesDescription) ?? ''}` }));
              b.addEventListener('click', () => open(study, uid));
              return b;
            }),
          ),
        );
      } catch (err) {
        if (previewed === study) preview.replaceChildren(errorBox(messageOf(err)));
      }
    }, 150);
  };

  let controller: AbortController | undefined;
  const run = async (offset: number) => {
    const range = from.value || to.value ? `${dicomDate(from.value)}-${dicomDate(to.value)}` : undefined;
    remembered.query = {
      PatientName: name.value,
      PatientID: id.value,
      ModalitiesInStudy: modality.value,
      AccessionNumber: accession.value,
      from: from.value,
      to: to.value,
      ...(range === undefined ? {} : { StudyDate: range }),
    };
    remembered.offset = offset;
    remembered.searched = true;
    controller?.abort();
    controller = new AbortController();
    results.replaceChildren(h('p', { class: 'muted', text: t('browser:searching') }));
    const { from: _f, to: _t, ...query } = remembered.query;
    const { signal } = controller;
    try {
      const studies = await searchStudies(query, PAGE_SIZE + 1, offset, signal);
      const page = studies.slice(0, PAGE_SIZE);
      showResults(page, offset, studies.length > PAGE_SIZE);
      void showOrderStates(page, signal);
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      results.replaceChildren(errorBox(messageOf(err), () => void run(offset)));
    }
  };

  const showResults = (studies: DicomJson[], offset: number, more: boolean) => {
    if (studies.length === 0) {
      results.replaceChildren(h('p', { class: 'muted', text: offset === 0 ? t('browser:noMatch') : t('browser:noMore') }));
      return;
    }
    const rows = studies.map((s) => {
      const uid = str(s, TAG.StudyInstanceUID) ?? '';
      const tr = h(
        'tr',
        { tabindex: 0, 'data-study': uid },
        h('td', { text: personName(s, TAG.PatientName) }),
        h('td', { text: str(s, TAG.PatientID) ?? '' }),
        h('td', { text: formatDate(str(s, TAG.StudyDate)) }),
        h('td', { text: values(s, TAG.ModalitiesInStudy).join(', ') }),
        h('td', { text: str(s, TAG.AccessionNumber) ?? '' }),
        h('td', { text: str(s, TAG.StudyDescription) ?? '' }),
        h('td', { class: 'num', text: `${num(s, TAG.NumberOfStudyRelatedSeries) ?? '?'} / ${num(s, TAG.NumberOfStudyRelatedInstances) ?? '?'}` }),
        h('td', { class: 'order-cell', hidden: true }),
      );
      tr.addEventListener('click', () => open(uid));
      tr.addEventListener('focus', () => showSeries(uid));
      tr.addEventListener('mouseenter', () => showSeries(uid));
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          open(uid);
        } else if (e.key === 'ArrowDown') {
          e.preventDefault();
          (tr.nextElementSibling as HTMLElement | null)?.focus();
        } else if (e.key === 'ArrowUp') {
          e.preventDefault();
          (tr.previousElementSibling as HTMLElement | null)?.focus();
        }
      });
      return tr;
    });
    const head = h(
      'tr',
      {},
      ...(['patient', 'patientId', 'date', 'modalities', 'accession', 'description', 'counts'] as const).map((c) => h('th', { scope: 'col', text: t(`browser:col.${c}`) })),
      h('th', { scope: 'col', class: 'order-cell', text: t('browser:col.order'), hidden: true }),
    );
    const table = h('table', { class: 'study-table' }, h('thead', {}, head), h('tbody', {}, ...rows));
    const prev = h('button', { type: 'button', text: t('browser:previous'), disabled: offset === 0 });
    const next = h('button', { type: 'button', text: t('browser:next'), disabled: !more });
    prev.addEventListener('click', () => void run(Math.max(0, offset - PAGE_SIZE)));
    next.addEventListener('click', () => void run(offset + PAGE_SIZE));
    const pager = h('nav', { class: 'pager', 'aria-label': t('browser:pages') }, prev, h('span', { text: t('browser:range', { from: offset + 1, to: offset + studies.length }) }), next);
    results.replaceChildren(table, pager);
    // Time to the first list of studies on screen, from navigation start (for the benchmark).
    results.dataset['firstListMs'] ??= performance.now().toFixed(0);
  };

  /** The order state of each study of the page (one request); the column stays hidden when no study has an order. */
  const showOrderStates = async (studies: DicomJson[], signal: AbortSignal) => {
    if (studies.length === 0) return;
    let orders;
    try {
      orders = await ordersOfStudies(
        studies.map((s) => ({ uid: str(s, TAG.StudyInstanceUID) ?? '', ...(str(s, TAG.AccessionNumber) ? { accessionNumber: str(s, TAG.AccessionNumber)! } : {}) })),
        signal,
      );
    } catch {
      return; // the studies are shown; their order states are an extra that failed
    }
    // No hospital link, or no study of this page has an order: no column.
    if (orders === undefined || orders.size === 0 || signal.aborted) return;
    for (const cell of results.querySelectorAll<HTMLElement>('.order-cell')) cell.hidden = false;
    for (const row of results.querySelectorAll<HTMLTableRowElement>('tbody tr[data-study]')) {
      const cell = row.querySelector<HTMLElement>('.order-cell');
      const found = orders.get(row.dataset['study'] ?? '') ?? [];
      cell?.replaceChildren(
        ...found.map((order) =>
          h('span', { class: `order-state state-${order.status.replace(' ', '-').toLowerCase()}`, 'data-state': order.status, title: t('browser:orderTitle', { accession: order.accessionNumber }), text: orderStateText(order.status) }),
        ),
      );
    }
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void run(0);
  });
  void run(remembered.offset);
  name.focus();
}
