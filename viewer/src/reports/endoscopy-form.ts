/**
 * The endoscopy (colonoscopy) report form, after the ESGE quality standards as the contract structures
 * them: indication, Boston Bowel Preparation Scale per segment (total shown), extent reached and caecal
 * landmarks (each with its photo from the key images), withdrawal time (computed by the server from the
 * live recording when a landmark photo is a frame of it; editable), lesions, the study's AI findings to
 * accept or reject (an accepted one cites its SR and frame), key images, conclusion and recommendation.
 */
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { EndoscopyContent, ImageRef, Lesion, OfferedAiFinding } from '../../../server/src/contracts/reports.js';
import { checkbox, field, numberInput, section, selectInput, smallButton, textArea, textInput, type Kit } from './form-kit.js';
import { thumbnail } from './image-picker.js';
import { keyImagesSection } from './key-images.js';
import {
  BBPS_SEGMENTS,
  bbpsTotal,
  COMPLETENESS,
  describeImage,
  DYSPLASIA,
  formatDuration,
  HISTOLOGY,
  HISTOLOGY_STATUS,
  INDICATIONS,
  label,
  LANDMARKS,
  mergeAiFindings,
  PARIS,
  parseDuration,
  RESECTIONS,
  sameImage,
  SEGMENTS,
  type AiFindingRow,
} from './report-model.js';
import type { StudyImages } from './study-images.js';

type Scores = Partial<Record<(typeof BBPS_SEGMENTS)[number], number>>;
const SCORES = ['0', '1', '2', '3'] as const;
const bbpsLabel = (segment: (typeof BBPS_SEGMENTS)[number]): string =>
  ({ right: t('reports:form.bbpsRight'), transverse: t('reports:form.bbpsTransverse'), left: t('reports:form.bbpsLeft') })[segment];

export function endoscopyForm(kit: Kit, study: string, images: StudyImages, offered: OfferedAiFinding[], content: EndoscopyContent): HTMLElement {
  content.lesions ??= [];
  content.landmarks ??= [];
  content.keyImages ??= [];
  // A draft reviews every AI finding of the study (one stored after the draft was made comes as pending).
  const aiRows = (): AiFindingRow[] => mergeAiFindings(kit.readOnly ? [] : offered, content.aiFindings);
  if (!kit.readOnly) content.aiFindings = aiRows().map((r) => r.decision);

  // Indication
  content.indication ??= {};
  const indication = content.indication;
  const indicationSection = section(
    t('reports:form.indication'),
    'indication',
    h(
      'div',
      { class: 'report-row' },
      field(t('reports:form.category'), selectInput(kit, 'indication.category', INDICATIONS, { get: () => indication.category, set: (v) => (v === undefined ? delete indication.category : (indication.category = v)) }, { empty: '—' })),
      field(t('reports:form.indication'), textInput(kit, 'indication.text', { get: () => indication.text, set: (v) => (indication.text = v) }, { maxlength: 1000 }), { wide: true }),
    ),
  );

  // Boston Bowel Preparation Scale
  const scores: Scores = { ...(content.bowelPreparation ?? {}) };
  const total = h('output', { id: 'bbps-total', 'aria-live': 'polite' });
  const showTotal = () => {
    const sum = bbpsTotal(scores);
    total.textContent = sum === undefined ? '–' : String(sum);
    total.dataset['total'] = sum === undefined ? '' : String(sum);
    const all = BBPS_SEGMENTS.every((s) => scores[s] !== undefined);
    const none = BBPS_SEGMENTS.every((s) => scores[s] === undefined);
    if (all) content.bowelPreparation = { right: scores.right!, transverse: scores.transverse!, left: scores.left! };
    else if (none) delete content.bowelPreparation;
    // Partly scored: kept as is so the editor's check names it before saving.
    else content.bowelPreparation = { ...scores } as NonNullable<EndoscopyContent['bowelPreparation']>;
  };
  const bbps = section(
    t('reports:form.bbpsTitle'),
    'bbps',
    h(
      'div',
      { class: 'report-row' },
      ...BBPS_SEGMENTS.map((s) =>
        field(
          bbpsLabel(s),
          selectInput(
            kit,
            `bbps.${s}`,
            SCORES,
            {
              get: () => (scores[s] === undefined ? undefined : (String(scores[s]) as (typeof SCORES)[number])),
              set: (v) => (v === undefined ? delete scores[s] : (scores[s] = Number(v))),
            },
            { empty: '—', labels: (v) => v, onChange: showTotal },
          ),
        ),
      ),
      h('div', { class: 'report-field' }, h('span', { class: 'field-label', text: t('reports:form.bbpsTotal') }), h('strong', { class: 'bbps-total' }, total)),
    ),
    h('small', { class: 'muted', text: t('reports:form.bbpsAdequate') }),
  );
  showTotal();

  // Extent and caecal landmarks
  const landmarkPhotos = h('div', { class: 'landmarks' });
  const renderLandmarks = () => {
    const list = content.landmarks!;
    landmarkPhotos.replaceChildren(
      ...LANDMARKS.map((landmark) => {
        const entry = () => list.find((l) => l.landmark === landmark);
        const photo = h('select', { name: `landmark.${landmark}.image`, disabled: kit.readOnly || entry() === undefined, 'aria-label': t('reports:form.photoOf', { landmark: label(landmark).toLowerCase() }) });
        photo.append(h('option', { value: '', text: t('reports:form.noPhoto') }));
        const choices: ImageRef[] = [...content.keyImages!];
        const current = entry()?.image;
        if (current !== undefined && !choices.some((c) => sameImage(c, current))) choices.push(current);
        choices.forEach((ref, i) => photo.append(h('option', { value: String(i), text: t('reports:form.photo', { image: describeImage(ref, images.name) }) })));
        photo.value = current === undefined ? '' : String(choices.findIndex((c) => sameImage(c, current)));
        photo.addEventListener('change', () => {
          const e = entry();
          if (e === undefined) return;
          const ref = photo.value === '' ? undefined : choices[Number(photo.value)];
          if (ref === undefined) delete e.image;
          else e.image = { seriesInstanceUid: ref.seriesInstanceUid, sopInstanceUid: ref.sopInstanceUid, ...(ref.frame === undefined ? {} : { frame: ref.frame }) };
          kit.changed();
        });
        const seen = checkbox(
          kit,
          `landmark.${landmark}`,
          label(landmark),
          {
            get: () => entry() !== undefined,
            set: (on) => {
              const at = list.findIndex((l) => l.landmark === landmark);
              if (on && at < 0) list.push({ landmark });
              if (!on && at >= 0) list.splice(at, 1);
            },
          },
          renderLandmarks,
        );
        return h('div', { class: 'landmark', 'data-landmark': landmark }, seen, ' ', photo);
      }),
    );
  };
  renderLandmarks();
  // The limitation belongs to an extent: typed only once the extent reached is chosen.
  const limitation = textInput(kit, 'extent.limitation', {
    get: () => content.extent?.limitation,
    set: (v) => {
      if (content.extent !== undefined) content.extent.limitation = v;
    },
  }, { maxlength: 500, placeholder: t('reports:form.limitationPlaceholder') });
  limitation.disabled = kit.readOnly || content.extent === undefined;
  const reached = selectInput(
    kit,
    'extent.reached',
    SEGMENTS,
    {
      get: () => content.extent?.reached,
      set: (v) => {
        if (v === undefined) delete content.extent;
        else content.extent = { ...(content.extent ?? {}), reached: v };
      },
    },
    { empty: '—', onChange: () => (limitation.disabled = kit.readOnly || content.extent === undefined) },
  );
  const extentSection = section(
    t('reports:form.extentTitle'),
    'extent',
    h('div', { class: 'report-row' }, field(t('reports:form.extentReached'), reached), field(t('reports:form.limitation'), limitation, { wide: true })),
    h('div', { class: 'field-label', text: t('reports:form.landmarksSeen') }),
    landmarkPhotos,
  );

  // Withdrawal time
  const withdrawalNote = h('small', { class: 'muted', id: 'withdrawal-source' });
  const withdrawalInput = h('input', { type: 'text', name: 'withdrawal', id: 'withdrawal', placeholder: 'm:ss', size: 6, disabled: kit.readOnly, autocomplete: 'off' });
  const showWithdrawal = () => {
    const w = content.withdrawal;
    withdrawalInput.value = formatDuration(w?.seconds);
    withdrawalInput.dataset['source'] = w?.source ?? '';
    if (w === undefined) withdrawalNote.textContent = t('reports:form.withdrawalNone');
    else if (w.source === 'manual') withdrawalNote.textContent = t('reports:form.withdrawalManual');
    else if (w.recording === undefined) withdrawalNote.textContent = t('reports:form.withdrawalNoRecording');
    else if (w.recording.fromFrame === null) withdrawalNote.textContent = t('reports:form.withdrawalPick', { length: formatDuration(w.recording.recordingSeconds) });
    else
      withdrawalNote.textContent = `${t('reports:form.withdrawalFrames', { from: w.recording.fromFrame, to: w.recording.toFrame })}${kit.readOnly ? '' : t('reports:form.withdrawalRecomputed')}.`;
  };
  withdrawalInput.addEventListener('input', () => {
    const seconds = parseDuration(withdrawalInput.value);
    withdrawalInput.setCustomValidity(seconds === undefined ? t('reports:form.withdrawalInvalid') : '');
    if (seconds === undefined) return;
    content.withdrawal = { seconds, source: 'manual' };
    withdrawalNote.textContent = t('reports:form.withdrawalManual');
    kit.changed();
  });
  const useRecording = smallButton(
    t('reports:form.useRecording'),
    () => {
      content.withdrawal = { seconds: null, source: 'recording' };
      showWithdrawal();
      withdrawalNote.textContent = t('reports:form.withdrawalOnSave');
      kit.changed();
    },
    { id: 'withdrawal-recording', disabled: kit.readOnly },
  );
  showWithdrawal();
  const withdrawalSection = section(t('reports:form.withdrawalTitle'), 'withdrawal', h('div', { class: 'report-row' }, field(t('reports:form.withdrawal'), withdrawalInput), kit.readOnly ? undefined : useRecording), withdrawalNote);

  // Lesions
  const lesionBody = h('tbody');
  const lesionSelects = new Set<() => void>();
  const renderLesions = () => {
    const list = content.lesions!;
    if (list.length === 0) {
      lesionBody.replaceChildren(h('tr', {}, h('td', { colspan: 11, class: 'muted', text: t('reports:form.noLesions') })));
    } else {
      lesionBody.replaceChildren(...list.map((lesion, i) => lesionRow(kit, lesion, i, () => removeLesion(i), renderLesions)));
    }
    for (const update of lesionSelects) update();
  };
  const removeLesion = (i: number) => {
    content.lesions!.splice(i, 1);
    // Accepted AI findings recorded as a later lesion follow its new number.
    for (const f of content.aiFindings ?? []) {
      if (f.lesion === i + 1) delete f.lesion;
      else if (f.lesion !== undefined && f.lesion > i + 1) f.lesion -= 1;
    }
    kit.changed();
    renderLesions();
    renderAi();
  };
  const addLesion = smallButton(
    t('reports:form.addLesion'),
    () => {
      content.lesions!.push({ location: 'sigmoid' });
      kit.changed();
      renderLesions();
      renderAi();
    },
    { id: 'add-lesion' },
  );
  const lesionsSection = section(
    t('reports:form.lesions'),
    'lesions',
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { class: 'lesions' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...(['#', t('reports:form.lesionCol.location'), t('reports:form.lesionCol.size'), t('reports:form.lesionCol.paris'), t('reports:form.lesionCol.resection'), t('reports:form.lesionCol.completeness'), t('reports:form.lesionCol.retrieved'), t('reports:form.lesionCol.histology'), t('reports:form.lesionCol.status'), t('reports:form.lesionCol.dysplasia'), ''] as const).map((text) => h('th', { text })),
          ),
        ),
        lesionBody,
      ),
    ),
    kit.readOnly ? undefined : addLesion,
  );

  // AI findings
  const aiList = h('ol', { class: 'ai-findings' });
  const aiSummary = h('p', { class: 'muted', id: 'ai-summary', 'aria-live': 'polite' });
  let keyImages: ReturnType<typeof keyImagesSection> | undefined;
  const renderAi = () => {
    lesionSelects.clear();
    const rows = aiRows();
    if (rows.length === 0) {
      aiList.replaceChildren();
      aiSummary.textContent = t('reports:form.noAi');
      return;
    }
    const pending = rows.filter((r) => r.decision.decision === 'pending').length;
    aiSummary.textContent = `${t('reports:form.aiSummary', {
      count: rows.length,
      accepted: rows.filter((r) => r.decision.decision === 'accepted').length,
      rejected: rows.filter((r) => r.decision.decision === 'rejected').length,
      pending,
    })}${pending > 0 && !kit.readOnly ? t('reports:form.aiSignNote') : ''}.`;
    aiList.replaceChildren(...rows.map((row, i) => aiFindingItem(row, i)));
  };
  const aiFindingItem = (row: AiFindingRow, i: number): HTMLElement => {
    const d = row.decision;
    const source = d.source ?? row.offered?.source;
    const box = d.box ?? row.offered?.box;
    const score = d.score ?? row.offered?.score;
    const labelText = d.label ?? row.offered?.label ?? t('reports:form.finding');
    const offset = d.timeOffsetMs ?? row.offered?.timeOffsetMs ?? undefined;
    const model = d.model ?? row.offered?.model;
    const decide = (decision: 'accepted' | 'rejected') => {
      d.decision = d.decision === decision ? 'pending' : decision;
      if (d.decision !== 'accepted') delete d.lesion;
      kit.changed();
      renderAi();
    };
    const accept = smallButton(t('reports:form.accept'), () => decide('accepted'), { class: 'ai-accept', 'aria-pressed': d.decision === 'accepted' ? 'true' : 'false', disabled: kit.readOnly });
    const reject = smallButton(t('reports:form.reject'), () => decide('rejected'), { class: 'ai-reject', 'aria-pressed': d.decision === 'rejected' ? 'true' : 'false', disabled: kit.readOnly });
    const details: Array<Node | undefined> = [];
    if (d.decision === 'accepted') {
      const lesion = h('select', { name: 'ai.lesion', disabled: kit.readOnly, 'aria-label': t('reports:form.recordedAs') });
      const fill = () => {
        lesion.replaceChildren(h('option', { value: '', text: t('reports:form.notLinked') }), ...(content.lesions ?? []).map((l, j) => h('option', { value: String(j + 1), text: t('reports:form.lesionOption', { n: j + 1, location: label(l.location) }) })));
        lesion.value = d.lesion === undefined ? '' : String(d.lesion);
      };
      fill();
      lesionSelects.add(fill);
      lesion.addEventListener('change', () => {
        if (lesion.value === '') delete d.lesion;
        else d.lesion = Number(lesion.value);
        kit.changed();
      });
      details.push(
        h('div', { class: 'ai-citation', text: t('reports:form.cites', { sr: d.report.slice(-8), frame: d.frame, index: d.index }) }),
        h('div', { class: 'report-row' }, lesion, source === undefined || kit.readOnly ? undefined : smallButton(t('reports:form.addFrame'), () => keyImages?.add(source), { class: 'ai-key-image' })),
      );
    }
    return h(
      'li',
      { class: `ai-finding decision-${d.decision}`, 'data-finding': row.key, 'data-decision': d.decision, 'data-frame': d.frame, 'data-index': d.index },
      source === undefined ? h('span', { class: 'thumb-placeholder', text: 'AI' }) : thumbnail(study, source, { image: images.find(source), box, size: '192,144', alt: t('reports:form.aiAlt', { n: i + 1, frame: d.frame }) }),
      h(
        'div',
        { class: 'ai-finding-body' },
        h('div', {}, h('strong', { text: `${t('reports:form.aiTitle', { n: i + 1, label: labelText })}${score === undefined ? '' : ` ${Math.round(score * 100)} %`}` })),
        h('div', { class: 'muted', text: `${t('reports:form.aiFrame', { frame: d.frame })}${offset === undefined ? '' : t('reports:form.aiOffset', { offset: formatDuration(offset / 1000) })}${model === undefined ? '' : t('reports:form.aiModel', { model: `${model.id} ${model.version}` })}` }),
        h('div', { class: 'ai-decision' }, accept, ' ', reject, ' ', h('span', { class: 'decision-label', text: label(d.decision) })),
        ...details,
      ),
    );
  };
  renderLesions();
  renderAi();
  const aiSection = section(t('reports:form.aiFindings'), 'ai-findings', aiSummary, aiList);

  keyImages = keyImagesSection(kit, study, images, content.keyImages, renderLandmarks);
  const keySection = section(t('reports:form.keyImages'), 'key-images', keyImages.element);

  const conclusion = section(
    t('reports:form.conclusion'),
    'conclusion',
    field(t('reports:form.conclusion'), textArea(kit, 'conclusion', { get: () => content.conclusion, set: (v) => (content.conclusion = v) }, 4, 4000), { wide: true }),
    field(t('reports:form.recommendation'), textArea(kit, 'recommendation', { get: () => content.recommendation, set: (v) => (content.recommendation = v) }, 2, 2000), { wide: true }),
  );
  return h('div', { class: 'report-form', 'data-kind': 'endoscopy' }, indicationSection, bbps, extentSection, withdrawalSection, lesionsSection, aiSection, keySection, conclusion);
}

function lesionRow(kit: Kit, lesion: Lesion, i: number, remove: () => void, rerender: () => void): HTMLElement {
  const resection = () => (lesion.resection ??= { method: 'not-resected' });
  const histology = () => (lesion.histology ??= { type: 'adenoma', status: 'suspected' });
  const cell = (control: HTMLElement) => h('td', {}, control);
  // Completeness and retrieval belong to a resection, status and dysplasia to a histology: off without one.
  const off = (control: HTMLInputElement | HTMLSelectElement | HTMLLabelElement, when: boolean) => {
    const input = control instanceof HTMLLabelElement ? control.querySelector('input') : control;
    if (input !== null && when) input.disabled = true;
    return control;
  };
  return h(
    'tr',
    { 'data-lesion': i + 1 },
    h('td', { text: String(i + 1) }),
    cell(selectInput(kit, 'location', SEGMENTS, { get: () => lesion.location, set: (v) => (lesion.location = v ?? 'sigmoid') })),
    cell(numberInput(kit, 'sizeMm', { get: () => lesion.sizeMm, set: (v) => (v === undefined ? delete lesion.sizeMm : (lesion.sizeMm = v)) }, { min: 0, max: 300, step: 0.5, class: 'size-mm' })),
    cell(selectInput(kit, 'paris', PARIS, { get: () => lesion.paris, set: (v) => (v === undefined ? delete lesion.paris : (lesion.paris = v)) }, { empty: '—' })),
    cell(
      selectInput(
        kit,
        'resection',
        RESECTIONS,
        { get: () => lesion.resection?.method, set: (v) => (v === undefined ? delete lesion.resection : (resection().method = v)) },
        { empty: '—', onChange: rerender },
      ),
    ),
    cell(
      off(
        selectInput(kit, 'completeness', COMPLETENESS, { get: () => lesion.resection?.completeness, set: (v) => (v === undefined ? delete resection().completeness : (resection().completeness = v)) }, { empty: '—' }),
        lesion.resection === undefined,
      ),
    ),
    cell(off(checkbox(kit, 'retrieved', t('reports:form.yes'), { get: () => lesion.resection?.retrieved === true, set: (on) => (resection().retrieved = on) }), lesion.resection === undefined)),
    cell(
      selectInput(
        kit,
        'histology',
        HISTOLOGY,
        { get: () => lesion.histology?.type, set: (v) => (v === undefined ? delete lesion.histology : (histology().type = v)) },
        { empty: '—', onChange: rerender },
      ),
    ),
    cell(off(selectInput(kit, 'histologyStatus', HISTOLOGY_STATUS, { get: () => lesion.histology?.status, set: (v) => (histology().status = v ?? 'suspected') }), lesion.histology === undefined)),
    cell(
      off(
        selectInput(kit, 'dysplasia', DYSPLASIA, { get: () => lesion.histology?.dysplasia, set: (v) => (v === undefined ? delete histology().dysplasia : (histology().dysplasia = v)) }, { empty: '—' }),
        lesion.histology === undefined,
      ),
    ),
    h('td', {}, kit.readOnly ? undefined : smallButton(t('common:remove'), remove, { class: 'remove-lesion', 'aria-label': t('reports:form.removeLesion', { n: i + 1 }) })),
  );
}
