/**
 * The radiology report form: procedure, clinical information, findings, impression, key images and
 * simple measurements. A measurement is entered as numbers: its type (length in mm, area in mm²), value,
 * the image (and frame) it was made on, and its points in image pixels (x1,y1,x2,y2 for a length, a
 * polygon of at least three points for an area), as the contract stores them. Those drawn with the
 * stack viewer's measurement tools (keys L and A) come here by its "Add to report"
 * (viewer/measurement-panel.ts, measurement-report.ts), which saves them into the open draft.
 */
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { ImageRef, Measurement, RadiologyContent } from '../../../server/src/contracts/reports.js';
import { field, numberInput, section, selectInput, smallButton, textArea, textInput, type Kit } from './form-kit.js';
import { keyImagesSection } from './key-images.js';
import { MEASUREMENT_TYPES, parsePoints } from './report-model.js';
import type { StudyImages } from './study-images.js';

export function radiologyForm(kit: Kit, study: string, images: StudyImages, content: RadiologyContent): HTMLElement {
  content.measurements ??= [];
  content.keyImages ??= [];
  const text = section(
    t('reports:form.report'),
    'report',
    h('div', { class: 'report-row' }, field(t('reports:form.procedure'), textInput(kit, 'procedure', { get: () => content.procedure, set: (v) => (content.procedure = v) }, { maxlength: 200 }), { wide: true })),
    field(t('reports:form.clinical'), textArea(kit, 'clinicalInformation', { get: () => content.clinicalInformation, set: (v) => (content.clinicalInformation = v) }, 2, 4000), { wide: true }),
    field(t('reports:form.findings'), textArea(kit, 'findings', { get: () => content.findings, set: (v) => (content.findings = v) }, 6, 10_000), { wide: true }),
    field(t('reports:form.impression'), textArea(kit, 'impression', { get: () => content.impression, set: (v) => (content.impression = v) }, 3, 4000), { wide: true }),
  );

  const usable = images.images.filter((i) => !i.video);
  const body = h('tbody');
  const render = () => {
    const list = content.measurements!;
    if (list.length === 0) body.replaceChildren(h('tr', {}, h('td', { colspan: 7, class: 'muted', text: t('reports:form.noMeasurements') })));
    else body.replaceChildren(...list.map((m, i) => row(m, i)));
  };
  const row = (m: Measurement, i: number): HTMLElement => {
    const image = h('select', { name: 'image', disabled: kit.readOnly, 'aria-label': t('reports:form.imageOf', { n: i + 1 }) });
    usable.forEach((img, j) => image.append(h('option', { value: String(j), text: t('reports:form.imageOption', { series: img.seriesLabel, number: img.instanceNumber ?? '?' }) })));
    const at = usable.findIndex((img) => img.sop === m.image.sopInstanceUid);
    if (at < 0) image.append(h('option', { value: 'kept', text: t('reports:image', { uid: m.image.sopInstanceUid.slice(-8) }) }));
    image.value = at < 0 ? 'kept' : String(at);
    const frame = numberInput(kit, 'frame', { get: () => m.image.frame, set: (v) => (v === undefined ? delete m.image.frame : (m.image.frame = Math.round(v))) }, { min: 1, step: 1, class: 'frame-number', 'aria-label': t('reports:form.frame') });
    const showFrame = () => {
      const img = usable[Number(image.value)];
      frame.disabled = kit.readOnly || img === undefined || img.frames <= 1;
      if (img !== undefined) frame.max = String(img.frames);
    };
    image.addEventListener('change', () => {
      const img = usable[Number(image.value)];
      if (img === undefined) return;
      m.image = { seriesInstanceUid: img.series, sopInstanceUid: img.sop, ...(img.frames > 1 ? { frame: 1 } : {}) };
      frame.value = img.frames > 1 ? '1' : '';
      showFrame();
      kit.changed();
    });
    showFrame();
    const points = h('input', { type: 'text', name: 'points', placeholder: 'x1,y1,x2,y2', disabled: kit.readOnly, autocomplete: 'off', 'aria-label': t('reports:form.pointsLabel') });
    points.value = m.points.join(',');
    points.addEventListener('input', () => {
      const p = parsePoints(points.value);
      points.setCustomValidity(p === undefined ? t('reports:form.pointsInvalid') : '');
      if (p !== undefined) m.points = p;
      kit.changed();
    });
    return h(
      'tr',
      { 'data-measurement': i + 1 },
      h('td', {}, selectInput(kit, 'type', MEASUREMENT_TYPES, { get: () => m.type, set: (v) => (m.type = v ?? 'length') }, { labels: (v) => (v === 'length' ? t('reports:form.lengthMm') : t('reports:form.areaMm')) })),
      h('td', {}, numberInput(kit, 'value', { get: () => (Number.isFinite(m.value) ? m.value : undefined), set: (v) => (m.value = v ?? Number.NaN) }, { min: 0, step: 0.1, class: 'size-mm' })),
      h('td', {}, image, ' ', frame),
      h('td', {}, points),
      h('td', {}, textInput(kit, 'label', { get: () => m.label, set: (v) => (v === undefined || v === '' ? delete m.label : (m.label = v)) }, { maxlength: 64 })),
      h(
        'td',
        {},
        kit.readOnly
          ? undefined
          : smallButton(t('common:remove'), () => {
              content.measurements!.splice(i, 1);
              kit.changed();
              render();
            }),
      ),
    );
  };
  render();
  const first: ImageRef | undefined = content.keyImages[0] ?? (usable[0] === undefined ? undefined : { seriesInstanceUid: usable[0].series, sopInstanceUid: usable[0].sop, ...(usable[0].frames > 1 ? { frame: 1 } : {}) });
  const measurements = section(
    t('reports:form.measurements'),
    'measurements',
    h('p', { class: 'muted', text: t('reports:form.measurementsHelp') }),
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { class: 'measurements' },
        h('thead', {}, h('tr', {}, ...[t('reports:form.measureCol.type'), t('reports:form.measureCol.value'), t('reports:form.measureCol.image'), t('reports:form.measureCol.points'), t('reports:form.measureCol.label'), ''].map((text) => h('th', { text })))),
        body,
      ),
    ),
    kit.readOnly || first === undefined
      ? undefined
      : smallButton(
          t('reports:form.addMeasurement'),
          () => {
            const { sopClassUid: _ignored, ...image } = first as ImageRef & { caption?: string };
            delete (image as { caption?: string }).caption;
            content.measurements!.push({ type: 'length', value: Number.NaN, image, points: [] });
            kit.changed();
            render();
          },
          { id: 'add-measurement' },
        ),
  );
  const keyImages = keyImagesSection(kit, study, images, content.keyImages, () => undefined);
  return h('div', { class: 'report-form', 'data-kind': 'radiology' }, text, measurements, section(t('reports:form.keyImages'), 'key-images', keyImages.element));
}
