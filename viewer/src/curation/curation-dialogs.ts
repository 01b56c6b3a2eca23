/**
 * The dialogs of the "Correct" menu (correct-menu.ts): each names what it will change, asks for a
 * confirmation (a typed word for a deletion), makes the REST call (curation-client.ts), then renders
 * the study again from the server. A refusal (403) is shown in the dialog as the permission it needs.
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import { formatDateTime, formatDicomDate, formatPersonName, t } from '../i18n/i18n.js';
import { searchStudies, studyAttributes } from '../dicomweb/client.js';
import { num, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import type { MoveBody, MoveResult, PatientTargetJson } from '../../../server/src/contracts/curation.js';
import { deleteObject, merge, move, reject, split } from './curation-client.js';
import { asUid, confirmsDeletion, REASONS, reasonText, type Reason } from './curation-format.js';
import { goTo, setFlash, type CorrectAction, type CorrectContext } from './curation-nav.js';
import './curation.css';

// ------------------------------------------------------------------------------------------ pieces
interface Frame {
  dialog: HTMLDialogElement;
  body: HTMLElement;
  actions: HTMLElement;
  error: HTMLElement;
  showError(err: unknown): void;
  close(): void;
}

function frame(id: string, title: string): Frame {
  document.getElementById(id)?.remove();
  const body = h('div', { class: 'curation-body' });
  const error = h('div', { class: 'curation-error', id: 'curation-error' });
  const actions = h('div', { class: 'curation-actions' });
  const dialog = h('dialog', { class: 'curation-dialog', id, 'aria-labelledby': `${id}-title` }, h('h3', { id: `${id}-title`, text: title }), body, error, actions);
  document.body.append(dialog);
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.addEventListener('cancel', () => dialog.remove());
  dialog.showModal();
  return { dialog, body, actions, error, close, showError: (err) => error.replaceChildren(errorBox(messageOf(err))) };
}

function button(id: string, text: string, onClick: () => void | Promise<void>, primary = false): HTMLButtonElement {
  const b = h('button', { type: 'button', id, class: primary ? 'primary' : undefined, text });
  b.addEventListener('click', () => void onClick());
  return b;
}

const cancelButton = (f: Frame) => button('curation-cancel', t('curation:cancel'), () => f.close());

/** Runs a request with the buttons disabled; its failure is shown in the dialog. Returns undefined on failure. */
async function busy<T>(f: Frame, work: () => Promise<T>): Promise<T | undefined> {
  const buttons = [...f.actions.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  f.error.replaceChildren(h('p', { class: 'muted', role: 'status', text: t('curation:working') }));
  try {
    const out = await work();
    f.error.replaceChildren();
    return out;
  } catch (err) {
    f.showError(err);
    return undefined;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

const seriesUid = (s: DicomJson) => str(s, TAG.SeriesInstanceUID) ?? '';
const instanceCount = (s: DicomJson | undefined) => num(s, TAG.NumberOfSeriesRelatedInstances) ?? 0;

/** "OT 2 — Chest (3 images)": a series as the page names it. */
function seriesLabel(s: DicomJson): string {
  return t('curation:seriesLabel', { modality: str(s, TAG.Modality) ?? '?', number: num(s, TAG.SeriesNumber) ?? '', description: str(s, TAG.SeriesDescription) ?? '', images: t('curation:images', { count: instanceCount(s) }) }).replace(/\s+—\s+\(/, ' (');
}

/** Checkboxes of the study's series (the one shown checked); rejection notes (KO of series 9900) left out. */
function seriesChooser(context: CorrectContext, name: string): { element: HTMLElement; selected: () => DicomJson[] } {
  const list = context.seriesList().filter((s) => str(s, TAG.Modality) !== 'KO');
  const boxes = list.map((s) => {
    const uid = seriesUid(s);
    const box = h('input', { type: 'checkbox', name, value: uid, 'data-series': uid, checked: uid === context.shownSeries });
    return { s, box, label: h('label', { class: 'curation-choice' }, box, ` ${seriesLabel(s)}`) };
  });
  return {
    element: h('fieldset', { class: 'curation-series' }, h('legend', { text: t('curation:whichSeries') }), ...boxes.map((b) => b.label)),
    selected: () => boxes.filter((b) => b.box.checked).map((b) => b.s),
  };
}

/** The study shown, as the page names it (date, description, patient), for confirmations. */
async function studyName(uid: string): Promise<string> {
  const attrs = await studyAttributes(uid).catch(() => undefined);
  return attrs === undefined ? uid : describeStudy(attrs);
}

function describeStudy(s: DicomJson): string {
  return t('curation:studyLabel', {
    date: formatDicomDate(str(s, TAG.StudyDate)) || '—',
    description: str(s, TAG.StudyDescription) ?? '',
    accession: str(s, TAG.AccessionNumber) ?? '—',
    patient: formatPersonName(str(s, TAG.PatientName)) || t('curation:noName'),
    patientId: str(s, TAG.PatientID) ?? '—',
  });
}

/**
 * Finds a target study through QIDO-RS: by accession number, Study Instance UID (typed UIDs are
 * recognised) or Patient ID. Patient IDs travel only in the QIDO query string, as the study list's do.
 */
function studyPicker(exclude: string): { element: HTMLElement; chosen: () => DicomJson | undefined } {
  const field = h('select', { id: 'curation-target-field', 'aria-label': t('curation:picker.field') }, h('option', { value: 'accession', text: t('curation:picker.accession') }), h('option', { value: 'uid', text: t('curation:picker.uid') }), h('option', { value: 'patient', text: t('curation:picker.patientId') }));
  const input = h('input', { type: 'search', id: 'curation-target-query', 'aria-label': t('curation:picker.query'), placeholder: t('curation:picker.placeholder') });
  const results = h('div', { class: 'curation-results', id: 'curation-target-results', role: 'radiogroup', 'aria-label': t('curation:picker.results') });
  let found: DicomJson[] = [];
  const search = async () => {
    const text = input.value.trim();
    if (text === '') return;
    results.replaceChildren(h('p', { class: 'muted', text: t('curation:working') }));
    try {
      const uid = field.value === 'uid' || (field.value === 'accession' && asUid(text) !== undefined) ? asUid(text) : undefined;
      if (field.value === 'uid' && uid === undefined) throw new Error(t('curation:picker.badUid'));
      found =
        uid !== undefined
          ? [await studyAttributes(uid)].filter((s): s is DicomJson => s !== undefined)
          : await searchStudies(field.value === 'patient' ? { PatientID: text } : { AccessionNumber: text }, 50, 0);
      found = found.filter((s) => str(s, TAG.StudyInstanceUID) !== exclude);
      results.replaceChildren(
        ...(found.length === 0
          ? [h('p', { class: 'muted', text: t('curation:picker.none') })]
          : found.map((s) => {
              const studyUid = str(s, TAG.StudyInstanceUID) ?? '';
              const radio = h('input', { type: 'radio', name: 'curation-target', value: studyUid, 'data-study': studyUid });
              const mods = (s[TAG.ModalitiesInStudy]?.Value ?? []).join(', ');
              return h('label', { class: 'curation-choice' }, radio, ` ${describeStudy(s)}`, h('small', { class: 'muted', text: ` ${mods} · ${t('curation:images', { count: num(s, TAG.NumberOfStudyRelatedInstances) ?? 0 })}` }));
            })),
      );
      const first = results.querySelector<HTMLInputElement>('input[type=radio]');
      if (found.length === 1 && first !== null) first.checked = true;
    } catch (err) {
      results.replaceChildren(errorBox(messageOf(err)));
    }
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      void search();
    }
  });
  const go = button('curation-target-search', t('curation:picker.search'), search);
  return {
    element: h('div', { class: 'curation-picker' }, h('div', { class: 'curation-row' }, field, input, go), results),
    chosen: () => {
      const uid = results.querySelector<HTMLInputElement>('input[type=radio]:checked')?.value;
      return found.find((s) => str(s, TAG.StudyInstanceUID) === uid);
    },
  };
}

/** A patient new to the archive, or one it knows (Patient ID + issuer): the target of a move. */
function patientForm(): { element: HTMLElement; value: () => PatientTargetJson } {
  const field = (name: string, label: string, attrs: Record<string, string | boolean> = {}) => {
    const input = h('input', { name, id: `curation-patient-${name}`, ...attrs });
    return { input, label: h('label', { class: 'curation-field' }, h('span', { text: label }), input) };
  };
  const id = field('id', t('curation:patient.id'), { maxlength: '64', required: true });
  const issuer = field('issuer', t('curation:patient.issuer'), { maxlength: '64' });
  const family = field('family', t('curation:patient.family'));
  const given = field('given', t('curation:patient.given'));
  const birth = field('birth', t('curation:patient.birthDate'), { type: 'date' });
  const sex = h('select', { name: 'sex', id: 'curation-patient-sex' }, h('option', { value: '', text: '—' }), h('option', { value: 'F', text: t('curation:patient.sexF') }), h('option', { value: 'M', text: t('curation:patient.sexM') }), h('option', { value: 'O', text: t('curation:patient.sexO') }));
  return {
    element: h('div', { class: 'curation-patient' }, h('p', { class: 'muted small', text: t('curation:patient.hint') }), id.label, issuer.label, family.label, given.label, birth.label, h('label', { class: 'curation-field' }, h('span', { text: t('curation:patient.sex') }), sex)),
    value: () => {
      const patientId = id.input.value.trim();
      if (patientId === '') throw new Error(t('curation:patient.idNeeded'));
      const name = [family.input.value.trim(), given.input.value.trim()].join('^').replace(/\^+$/, '');
      return {
        patientId,
        issuer: issuer.input.value.trim(),
        ...(name === '' ? {} : { name }),
        ...(birth.input.value === '' ? {} : { birthDate: birth.input.value.replace(/-/g, '') }),
        ...(sex.value === '' ? {} : { sex: sex.value as 'M' | 'F' | 'O' }),
      };
    },
  };
}

/** Two steps: the choices, then a confirmation naming what will change (Back returns to the choices). */
function confirmStep(f: Frame, choices: HTMLElement, confirmLabel: string, describe: () => Promise<Node[]>, run: () => Promise<void>): void {
  const showChoices = () => {
    f.body.replaceChildren(choices);
    f.error.replaceChildren();
    f.actions.replaceChildren(cancelButton(f), button('curation-next', t('curation:next'), showConfirm, true));
  };
  const showConfirm = async () => {
    let summary: Node[];
    try {
      summary = await describe();
    } catch (err) {
      f.showError(err);
      return;
    }
    f.body.replaceChildren(h('div', { class: 'curation-confirm', id: 'curation-summary' }, ...summary));
    f.error.replaceChildren();
    f.actions.replaceChildren(button('curation-back', t('curation:back'), showChoices), button('curation-confirm', confirmLabel, run, true));
  };
  showChoices();
}

const list = (items: string[]) => h('ul', {}, ...items.map((text) => h('li', { text })));

// ------------------------------------------------------------------------------------------ actions
function rejectDialog(context: CorrectContext, instanceOnly: boolean): void {
  const f = frame('curation-reject', instanceOnly ? t('curation:reject.titleInstance') : t('curation:reject.title'));
  const shownSeriesInfo = context.seriesList().find((s) => seriesUid(s) === context.shownSeries);
  const sop = instanceOnly ? context.shownInstance() : undefined;
  if (instanceOnly && (sop === undefined || shownSeriesInfo === undefined)) {
    f.body.replaceChildren(h('p', { text: t('curation:reject.noInstance') }));
    f.actions.replaceChildren(cancelButton(f));
    return;
  }
  const chooser = instanceOnly ? undefined : seriesChooser(context, 'reject-series');
  const reasons = h(
    'fieldset',
    { class: 'curation-reasons' },
    h('legend', { text: t('curation:reject.reason') }),
    ...REASONS.map((code) => h('label', { class: 'curation-choice' }, h('input', { type: 'radio', name: 'reason', value: code, 'data-reason': code }), ` ${reasonText(code)} `, h('small', { class: 'muted', text: `(DCM ${code})` }))),
  );
  const description = h('textarea', { name: 'description', id: 'curation-description', maxlength: 1024, rows: 2 });
  const choices = h(
    'div',
    {},
    instanceOnly ? h('p', { text: t('curation:reject.instanceOf', { series: seriesLabel(shownSeriesInfo!) }) }) : chooser!.element,
    reasons,
    h('label', { class: 'curation-field wide' }, h('span', { text: t('curation:reject.description') }), description),
  );
  const reason = () => f.body.ownerDocument.querySelector<HTMLInputElement>('#curation-reject input[name=reason]:checked')?.value as Reason | undefined;
  let chosenReason: Reason | undefined;
  let chosenSeries: DicomJson[] = [];
  confirmStep(
    f,
    choices,
    t('curation:reject.confirm'),
    async () => {
      chosenReason = reason();
      if (chosenReason === undefined) throw new Error(t('curation:reject.reasonNeeded'));
      chosenSeries = instanceOnly ? [] : chooser!.selected();
      if (!instanceOnly && chosenSeries.length === 0) throw new Error(t('curation:seriesNeeded'));
      const what = instanceOnly ? [t('curation:reject.theInstance', { series: seriesLabel(shownSeriesInfo!), sop: sop! })] : chosenSeries.map(seriesLabel);
      return [h('p', { text: t('curation:reject.willHide', { study: await studyName(context.study) }) }), list(what), h('p', { text: t('curation:reject.because', { reason: reasonText(chosenReason) }) }), h('p', { class: 'muted', text: t('curation:reject.restorable') })];
    },
    async () => {
      const text = description.value.trim();
      const out = await busy(f, () =>
        reject({ studyInstanceUid: context.study, reason: chosenReason!, ...(instanceOnly ? { sopInstanceUids: [sop!] } : { seriesInstanceUids: chosenSeries.map(seriesUid) }), ...(text === '' ? {} : { description: text }) }),
      );
      if (out === undefined) return;
      f.close();
      setFlash({ study: context.study, text: t('curation:reject.done', { count: out.rejected, reason: reasonText(out.reason.code, out.reason.meaning), purge: formatDateTime(out.purgeAfter) }), link: { href: '#/curation', text: t('curation:reject.toPage') } });
      // The series shown is gone when it was rejected whole (or its only image was).
      const shownGone = instanceOnly ? instanceCount(shownSeriesInfo) <= 1 : chosenSeries.some((s) => seriesUid(s) === context.shownSeries);
      goTo(shownGone || context.shownSeries === undefined ? `#/study/${context.study}` : `#/study/${context.study}/series/${context.shownSeries}`);
    },
  );
}

function moveDone(context: CorrectContext, out: MoveResult, key: string): void {
  setFlash({ study: out.sourceRemoved ? out.toStudy : context.study, text: t(key, { series: out.series, count: out.instances }) + (out.sourceRemoved ? ` ${t('curation:move.sourceRemoved')}` : ''), ...(out.sourceRemoved ? {} : { link: { href: `#/study/${out.toStudy}`, text: t('curation:move.openTarget') } }) });
  goTo(out.sourceRemoved ? `#/study/${out.toStudy}` : `#/study/${context.study}`);
}

function moveDialog(context: CorrectContext): void {
  const f = frame('curation-move', t('curation:move.title'));
  const chooser = seriesChooser(context, 'move-series');
  const sop = context.shownInstance();
  const onlyInstance = h('input', { type: 'checkbox', id: 'curation-move-instance' });
  const picker = studyPicker(context.study);
  const patient = patientForm();
  const toStudy = h('input', { type: 'radio', name: 'move-target', value: 'study', id: 'curation-to-study', checked: true });
  const toPatient = h('input', { type: 'radio', name: 'move-target', value: 'patient', id: 'curation-to-patient' });
  const studyBox = h('div', {}, picker.element);
  const patientBox = h('div', { hidden: true }, patient.element);
  const sync = () => {
    studyBox.hidden = !toStudy.checked;
    patientBox.hidden = !toPatient.checked;
  };
  toStudy.addEventListener('change', sync);
  toPatient.addEventListener('change', sync);
  const choices = h(
    'div',
    {},
    chooser.element,
    sop === undefined ? '' : h('label', { class: 'curation-choice' }, onlyInstance, ` ${t('curation:move.onlyInstance')}`),
    h('fieldset', { class: 'curation-target' }, h('legend', { text: t('curation:move.where') }), h('label', { class: 'curation-choice' }, toStudy, ` ${t('curation:move.toStudy')}`), studyBox, h('label', { class: 'curation-choice' }, toPatient, ` ${t('curation:move.toPatient')}`), patientBox),
  );
  let body: MoveBody | undefined;
  confirmStep(
    f,
    choices,
    t('curation:move.confirm'),
    async () => {
      const instance = sop !== undefined && onlyInstance.checked;
      const series = chooser.selected();
      if (!instance && series.length === 0) throw new Error(t('curation:seriesNeeded'));
      const from: MoveBody['from'] = instance ? { studyInstanceUid: context.study, sopInstanceUids: [sop] } : { studyInstanceUid: context.study, seriesInstanceUids: series.map(seriesUid) };
      let where: string;
      if (toStudy.checked) {
        const target = picker.chosen();
        if (target === undefined) throw new Error(t('curation:picker.needed'));
        body = { from, to: { studyInstanceUid: str(target, TAG.StudyInstanceUID)! } };
        where = describeStudy(target);
      } else {
        const p = patient.value();
        body = { from, to: { patient: p } };
        where = t('curation:move.newStudyOf', { patient: formatPersonName(p.name ?? '') || t('curation:noName'), patientId: p.patientId });
      }
      const what = instance ? [t('curation:move.theInstance', { series: seriesLabel(context.seriesList().find((s) => seriesUid(s) === context.shownSeries) ?? {}) })] : series.map(seriesLabel);
      return [h('p', { text: t('curation:move.willMove', { study: await studyName(context.study) }) }), list(what), h('p', { text: t('curation:move.to') }), list([where]), h('p', { class: 'muted', text: t('curation:move.kept') })];
    },
    async () => {
      const out = await busy(f, () => move(body!));
      if (out === undefined) return;
      f.close();
      moveDone(context, out, 'curation:move.done');
    },
  );
}

function splitDialog(context: CorrectContext): void {
  const f = frame('curation-split', t('curation:split.title'));
  const chooser = seriesChooser(context, 'split-series');
  const accession = h('input', { name: 'accession', id: 'curation-split-accession', maxlength: 16 });
  const description = h('input', { name: 'studyDescription', id: 'curation-split-description', maxlength: 64 });
  const choices = h(
    'div',
    {},
    h('p', { class: 'muted', text: t('curation:split.hint') }),
    chooser.element,
    h('label', { class: 'curation-field' }, h('span', { text: t('curation:split.accession') }), accession),
    h('label', { class: 'curation-field' }, h('span', { text: t('curation:split.description') }), description),
  );
  let chosen: DicomJson[] = [];
  confirmStep(
    f,
    choices,
    t('curation:split.confirm'),
    async () => {
      chosen = chooser.selected();
      if (chosen.length === 0) throw new Error(t('curation:seriesNeeded'));
      return [h('p', { text: t('curation:split.willSplit', { study: await studyName(context.study) }) }), list(chosen.map(seriesLabel))];
    },
    async () => {
      const attributes = { ...(accession.value.trim() === '' ? {} : { accessionNumber: accession.value.trim() }), ...(description.value.trim() === '' ? {} : { studyDescription: description.value.trim() }) };
      const out = await busy(f, () => split(context.study, chosen.map(seriesUid), Object.keys(attributes).length === 0 ? undefined : attributes));
      if (out === undefined) return;
      f.close();
      moveDone(context, out, 'curation:split.done');
    },
  );
}

function mergeDialog(context: CorrectContext): void {
  const f = frame('curation-merge', t('curation:merge.title'));
  const picker = studyPicker(context.study);
  let target: DicomJson | undefined;
  confirmStep(
    f,
    h('div', {}, h('p', { class: 'muted', text: t('curation:merge.hint') }), picker.element),
    t('curation:merge.confirm'),
    async () => {
      target = picker.chosen();
      if (target === undefined) throw new Error(t('curation:picker.needed'));
      return [h('p', { text: t('curation:merge.willMerge', { study: await studyName(context.study), count: context.seriesList().length }) }), list([describeStudy(target)]), h('p', { class: 'muted', text: t('curation:merge.gone') })];
    },
    async () => {
      const out = await busy(f, () => merge(context.study, str(target, TAG.StudyInstanceUID)!));
      if (out === undefined) return;
      f.close();
      moveDone(context, out, 'curation:merge.done');
    },
  );
}

function deleteDialog(context: CorrectContext): void {
  const f = frame('curation-delete', t('curation:delete.title'));
  const chooser = seriesChooser(context, 'delete-series');
  const sop = context.shownInstance();
  const scope = (value: string, label: string, checked = false) => {
    const input = h('input', { type: 'radio', name: 'delete-scope', value, 'data-scope': value, checked });
    return { input, label: h('label', { class: 'curation-choice' }, input, ` ${label}`) };
  };
  const series = scope('series', t('curation:delete.series'), true);
  const instance = scope('instance', t('curation:delete.instance'));
  const study = scope('study', t('curation:delete.study'));
  const choices = h('div', {}, h('p', { class: 'curation-warning', text: t('curation:delete.warning') }), h('fieldset', {}, h('legend', { text: t('curation:delete.what') }), series.label, sop === undefined ? '' : instance.label, study.label), chooser.element);
  const word = t('curation:delete.word');
  const typed = h('input', { id: 'curation-delete-typed', autocomplete: 'off', 'aria-label': t('curation:delete.type', { word }) });
  let run: () => Promise<void> = async () => undefined;
  confirmStep(
    f,
    choices,
    t('curation:delete.confirm'),
    async () => {
      const name = await studyName(context.study);
      let what: string[];
      if (study.input.checked) {
        what = [t('curation:delete.wholeStudy', { study: name })];
        run = async () => void (await deleteObject(context.study));
      } else if (instance.input.checked && sop !== undefined) {
        const info = context.seriesList().find((s) => seriesUid(s) === context.shownSeries);
        what = [t('curation:reject.theInstance', { series: info === undefined ? '' : seriesLabel(info), sop })];
        run = async () => void (await deleteObject(context.study, context.shownSeries, sop));
      } else {
        const chosen = chooser.selected();
        if (chosen.length === 0) throw new Error(t('curation:seriesNeeded'));
        what = chosen.map(seriesLabel);
        run = async () => {
          for (const s of chosen) await deleteObject(context.study, seriesUid(s));
        };
      }
      return [h('p', { text: t('curation:delete.willDelete', { study: name }) }), list(what), h('p', { class: 'curation-warning', text: t('curation:delete.forGood') }), h('label', { class: 'curation-field wide' }, h('span', { text: t('curation:delete.type', { word }) }), typed)];
    },
    async () => {
      if (!confirmsDeletion(typed.value, word)) {
        f.showError(new Error(t('curation:delete.typeNeeded', { word })));
        return;
      }
      const ok = await busy(f, async () => (await run(), true));
      if (ok !== true) return;
      f.close();
      if (study.input.checked) {
        goTo('#/');
        return;
      }
      setFlash({ study: context.study, text: t('curation:delete.done') });
      goTo(`#/study/${context.study}`);
    },
  );
  // The confirm button stays off until the word is typed.
  typed.addEventListener('input', () => {
    const confirm = f.actions.querySelector<HTMLButtonElement>('#curation-confirm');
    if (confirm !== null) confirm.disabled = !confirmsDeletion(typed.value, word);
  });
  new MutationObserver(() => {
    const confirm = f.actions.querySelector<HTMLButtonElement>('#curation-confirm');
    if (confirm !== null && !confirmsDeletion(typed.value, word)) confirm.disabled = true;
  }).observe(f.actions, { childList: true });
}

/** Opens the dialog of a "Correct" menu item. */
export function openCurationDialog(action: CorrectAction, context: CorrectContext): void {
  if (action === 'reject-series') rejectDialog(context, false);
  else if (action === 'reject-instance') rejectDialog(context, true);
  else if (action === 'move') moveDialog(context);
  else if (action === 'split') splitDialog(context);
  else if (action === 'merge') mergeDialog(context);
  else deleteDialog(context);
}
