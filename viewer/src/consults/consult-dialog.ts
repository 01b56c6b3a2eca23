/**
 * "Ask for a second opinion" on a study (`POST /consults`, docs/api.md "Consults"): the specialist (a
 * user of this archive by sign-in subject, or someone outside by name and contact), the question, the
 * series to include, "de-identify" (on by default: the specialist sees a copy under a pseudonym, PS3.15
 * Annex E Basic Profile) and the link's life in days. On success the consult link is shown once, with
 * a Copy button: the archive keeps only its hash, so it cannot be shown again. A user without the
 * `share` permission is told so (the server's 403).
 */
import { searchSeries } from '../dicomweb/client.js';
import { num, str, TAG } from '../dicomweb/dicom-json.js';
import { formatDateTime, t } from '../i18n/i18n.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { ConsultApiError, createConsult, type CreateConsultBody, type CreatedConsult } from './consults-client.js';
import './consults.css';

/** Opens the dialog over the page; resolves when it is closed. */
export async function openConsultDialog(study: string): Promise<void> {
  const dialog = h('dialog', { class: 'consult-dialog', 'aria-labelledby': 'consult-dialog-title' });
  document.body.append(dialog);
  const closed = new Promise<void>((resolve) => dialog.addEventListener('close', () => (dialog.remove(), resolve())));
  const close = h('button', { type: 'button', text: t('common:close'), 'data-action': 'close-consult' });
  close.addEventListener('click', () => dialog.close());
  dialog.replaceChildren(h('h2', { id: 'consult-dialog-title', text: t('consult:askTitle') }), h('p', { class: 'muted', text: t('common:loading') }));
  dialog.showModal();

  let series: Array<{ uid: string; label: string }> = [];
  try {
    series = (await searchSeries(study))
      .sort((a, b) => (num(a, TAG.SeriesNumber) ?? 0) - (num(b, TAG.SeriesNumber) ?? 0))
      .flatMap((s) => {
        const uid = str(s, TAG.SeriesInstanceUID);
        if (uid === undefined) return [];
        const count = num(s, TAG.NumberOfSeriesRelatedInstances);
        const label = [`${str(s, TAG.Modality) ?? ''} ${num(s, TAG.SeriesNumber) ?? ''}`.trim(), str(s, TAG.SeriesDescription) ?? '', count === undefined ? '' : t('consult:instances', { count })].filter((x) => x !== '').join(' · ');
        return [{ uid, label }];
      });
  } catch (err) {
    dialog.replaceChildren(h('h2', { id: 'consult-dialog-title', text: t('consult:askTitle') }), errorBox(messageOf(err)), close);
    return closed;
  }
  dialog.replaceChildren(askForm(study, series, dialog, close));
  return closed;
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h('label', { class: 'consult-field' }, h('span', { text: label }), input, hint === undefined ? undefined : h('small', { class: 'muted', text: hint }));
}

function askForm(study: string, series: Array<{ uid: string; label: string }>, dialog: HTMLDialogElement, close: HTMLButtonElement): HTMLElement {
  const kindUser = h('input', { type: 'radio', name: 'specialist-kind', value: 'user', id: 'specialist-user' });
  const kindOutside = h('input', { type: 'radio', name: 'specialist-kind', value: 'outside', id: 'specialist-outside', checked: true });
  const subject = h('input', { name: 'subject', id: 'consult-subject', maxlength: 256, autocomplete: 'off' });
  const name = h('input', { name: 'name', id: 'consult-name', maxlength: 128, required: true, autocomplete: 'off' });
  const contact = h('input', { name: 'contact', id: 'consult-contact', maxlength: 256, autocomplete: 'off' });
  const message = h('textarea', { name: 'message', id: 'consult-message', rows: 4, maxlength: 4000, required: true });
  const deidentify = h('input', { type: 'checkbox', name: 'deidentify', id: 'consult-deidentify', checked: true });
  const days = h('input', { type: 'number', name: 'expires', id: 'consult-days', min: 1, max: 3650, step: 1, placeholder: t('consult:expiryDefault') });
  const boxes = series.map((s) => ({ uid: s.uid, box: h('input', { type: 'checkbox', name: 'series', value: s.uid, checked: true, 'data-series': s.uid }), label: s.label }));
  const subjectField = field(t('consult:subject'), subject, t('consult:subjectHint'));
  const contactField = field(t('consult:contact'), contact, t('consult:contactHint'));
  const syncKind = () => {
    subjectField.hidden = !kindUser.checked;
    subject.required = kindUser.checked;
    contactField.hidden = kindUser.checked;
  };
  kindUser.addEventListener('change', syncKind);
  kindOutside.addEventListener('change', syncKind);
  syncKind();

  const submit = h('button', { type: 'submit', text: t('consult:send'), 'data-action': 'send-consult' });
  const status = h('div', { class: 'consult-status', role: 'status', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'consult-form', method: 'dialog' },
    h('h2', { id: 'consult-dialog-title', text: t('consult:askTitle') }),
    h(
      'fieldset',
      {},
      h('legend', { text: t('consult:specialist') }),
      h('label', {}, kindOutside, ` ${t('consult:kindOutside')}`),
      ' ',
      h('label', {}, kindUser, ` ${t('consult:kindUser')}`),
      subjectField,
      field(t('consult:name'), name),
      contactField,
    ),
    field(t('consult:message'), message),
    h(
      'fieldset',
      { class: 'consult-series' },
      h('legend', { text: t('consult:series') }),
      ...(boxes.length === 0 ? [h('p', { class: 'muted', text: t('consult:noSeries') })] : boxes.map((b) => h('label', {}, b.box, ` ${b.label}`))),
    ),
    h('label', { class: 'consult-check' }, deidentify, ` ${t('consult:deidentify')}`),
    h('p', { class: 'muted consult-hint', text: t('consult:deidentifyHint') }),
    field(t('consult:expiry'), days),
    h('div', { class: 'consult-actions' }, submit, ' ', close),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = boxes.filter((b) => b.box.checked).map((b) => b.uid);
    if (boxes.length > 0 && chosen.length === 0) {
      status.replaceChildren(errorBox(t('consult:chooseSeries')));
      return;
    }
    const body: CreateConsultBody = {
      studyInstanceUid: study,
      specialist: {
        name: name.value.trim(),
        ...(kindUser.checked ? { subject: subject.value.trim() } : {}),
        ...(!kindUser.checked && contact.value.trim() !== '' ? { contact: contact.value.trim() } : {}),
      },
      message: message.value.trim(),
      deidentify: deidentify.checked,
      ...(chosen.length < boxes.length ? { seriesInstanceUids: chosen } : {}),
      ...(days.value.trim() === '' ? {} : { expiresInDays: Number(days.value) }),
    };
    submit.disabled = true;
    status.replaceChildren(h('span', { class: 'muted', text: body.deidentify ? t('consult:sendingCopy') : t('consult:sending') }));
    try {
      const made = await createConsult(body);
      dialog.replaceChildren(sentView(made, close));
    } catch (err) {
      const refused = err instanceof ConsultApiError && err.status === 403;
      status.replaceChildren(errorBox(refused ? t('consult:shareForbidden') : messageOf(err)));
      if (refused) status.dataset['refused'] = 'share';
      submit.disabled = false;
    }
  });
  return form;
}

/** The consult made: its link, shown once, with Copy. */
function sentView(made: CreatedConsult, close: HTMLButtonElement): HTMLElement {
  const url = h('input', { type: 'text', readonly: true, value: made.link.url, id: 'consult-link', 'aria-label': t('consult:linkLabel'), size: 60 });
  const copy = h('button', { type: 'button', text: t('consult:copy'), 'data-action': 'copy-link' });
  const copied = h('span', { role: 'status', 'aria-live': 'polite', class: 'muted' });
  copy.addEventListener('click', async () => {
    url.select();
    try {
      await navigator.clipboard.writeText(made.link.url);
    } catch {
      // No clipboard permission (http, an old browser): the selected text copies with the keyboard.
      document.execCommand?.('copy');
    }
    copied.textContent = t('consult:copied');
  });
  const toConsults = h('a', { href: '#/consults', id: 'to-consults', text: t('consult:toConsults') });
  toConsults.addEventListener('click', () => close.click());
  const summary = made.consult.copy;
  return h(
    'div',
    { class: 'consult-sent', 'data-consult': made.consult.id },
    h('h2', { id: 'consult-dialog-title', text: t('consult:sentTitle') }),
    h('p', { text: t('consult:sentHelp', { name: made.consult.specialist.name }) }),
    h('div', { class: 'consult-link-row' }, url, ' ', copy, ' ', copied),
    h('p', { class: 'consult-once', role: 'note', text: t('consult:shownOnce', { date: formatDateTime(made.link.expiresAt) }) }),
    summary === null
      ? h('p', { class: 'muted', text: t('consult:notDeidentified') })
      : h(
          'p',
          { class: 'muted', 'data-testid': 'consult-copy' },
          t('consult:copySummary', { count: summary.instances }),
          summary.excluded.length === 0 ? '' : ` ${t('consult:copyExcluded', { count: summary.excluded.length, reasons: [...new Set(summary.excluded.map((x) => x.reason))].join('; ') })}`,
          summary.burnedInUnknown === 0 ? '' : ` ${t('consult:copyBurnedIn', { count: summary.burnedInUnknown })}`,
        ),
    h('div', { class: 'consult-actions' }, toConsults, ' ', close),
  );
}
