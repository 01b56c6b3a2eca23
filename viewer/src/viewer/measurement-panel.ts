/**
 * The measurements of the shown image, under the stack viewport: each length or area drawn with the
 * measurement tools (keys L and A, stack-commands.ts) with its value, in mm / mm² where the image has a
 * pixel spacing and in pixels otherwise (said so), "Add to report" for one or all of them, and Remove.
 * Values and the report's measurements come from reports/measurement-report.ts; adding goes through
 * reports/add-to-report.ts (the reports API, loaded on the first click), and says where it went with a
 * link to the report.
 */
import { pixelSpacing, str, num, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import type { StackMeasurement, StackView } from '../imaging/cornerstone.js';
import { formatMeasured, measure, toReportMeasurement, type Conversion, type Measured } from '../reports/measurement-report.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';

type MeasuringView = Pick<StackView, 'measurements' | 'onMeasurementsChange' | 'removeMeasurement' | 'state' | 'onChange'>;

export interface MeasurementPanelOptions {
  study: string;
  series: string;
  instances: DicomJson[];
}

/** Measurements added to a report in this page, with their points then (moved since: addable again). */
const added = new Map<string, string>();
const pointsKey = (m: StackMeasurement) => m.points.map((p) => p.toFixed(2)).join(',');

export function measurementPanel(view: MeasuringView, options: MeasurementPanelOptions): { element: HTMLElement; dispose: () => void } {
  const byUid = new Map(options.instances.map((i) => [str(i, TAG.SOPInstanceUID), i]));
  const list = h('ul', { class: 'measurement-list' });
  const empty = h('span', { class: 'muted', text: t('stack:measure.none') });
  const addAll = h('button', { type: 'button', text: t('stack:measure.addAll'), 'data-action': 'add-all-measurements' });
  const note = h('p', { class: 'muted measurement-note', hidden: true });
  const status = h('div', { class: 'measurement-status', role: 'status', 'aria-live': 'polite' });
  // Always there, at a fixed height: the viewport above keeps its size (and its image's place under the
  // mouse) when the first measurement appears, while it is being drawn.
  const element = h('section', { class: 'measurements-panel', 'aria-label': t('stack:measure.label'), 'data-testid': 'measurements' }, h('div', { class: 'measurement-row' }, empty, list, addAll), note, status);

  const convert = (m: StackMeasurement): Conversion => {
    const instance = byUid.get(m.sop);
    return toReportMeasurement(m, { series: options.series, frames: num(instance, TAG.NumberOfFrames) ?? 1, spacing: pixelSpacing(instance, m.frame) });
  };

  const add = async (measurements: StackMeasurement[], buttons: HTMLButtonElement[]) => {
    const converted = measurements.map(convert);
    const refused = converted.find((c) => !c.ok);
    if (refused !== undefined && !refused.ok) {
      status.replaceChildren(errorBox(refused.reason));
      return;
    }
    for (const b of buttons) b.disabled = true;
    status.replaceChildren(h('span', { class: 'muted', text: t('stack:measure.adding') }));
    try {
      const { addMeasurementsToReport } = await import('../reports/add-to-report.js');
      const result = await addMeasurementsToReport(
        options.study,
        converted.flatMap((c) => (c.ok ? [c.measurement] : [])),
      );
      for (const m of measurements) added.set(m.uid, pointsKey(m));
      const n = (k: number) => t('stack:measure.count', { count: k });
      const what =
        result.added === 0
          ? measurements.length === 1
            ? t('stack:measure.alreadyOne')
            : t('stack:measure.alreadyMany')
          : `${t(result.created ? 'stack:measure.addedNew' : 'stack:measure.addedDraft', { what: n(result.added) })}${result.already > 0 ? t('stack:measure.alreadyThere', { what: n(result.already) }) : ''}.`;
      status.replaceChildren(h('span', { 'data-testid': 'measurement-added', 'data-report': result.reportId, text: `${what} ` }), h('a', { href: result.href, 'data-testid': 'measurement-report-link', text: t('stack:measure.openReport') }));
    } catch (err) {
      status.replaceChildren(errorBox(messageOf(err)));
    } finally {
      render(true);
    }
  };

  let shownKey = '';
  const render = (force = false) => {
    const current = view.state().current;
    const measurements = current === undefined ? [] : view.measurements(current);
    const key = `${current?.sop}/${current?.frame}|${measurements.map((m) => `${m.uid}:${pointsKey(m)}:${added.get(m.uid) ?? ''}`).join(';')}`;
    if (key === shownKey && !force) return;
    shownKey = key;
    const instance = current === undefined ? undefined : byUid.get(current.sop);
    const spacing = pixelSpacing(instance, current?.frame);
    const buttons: HTMLButtonElement[] = [];
    const rows = measurements.map((m, i) => {
      // What the report would hold (value to 0.1, from the points to 0.01 pixel) where it can hold it.
      const conversion = convert(m);
      const value: Measured = conversion.ok ? { value: conversion.measurement.value, unit: m.type === 'length' ? 'mm' : 'mm²' } : measure(m.type, m.points, spacing);
      const isAdded = added.get(m.uid) === pointsKey(m);
      const button = h('button', {
        type: 'button',
        text: isAdded ? t('stack:measure.added') : t('stack:measure.add'),
        'data-action': 'add-measurement',
        disabled: !conversion.ok || isAdded,
        title: conversion.ok ? (isAdded ? t('stack:measure.inReport') : t('stack:measure.addTitle')) : conversion.reason,
      });
      button.addEventListener('click', () => void add([m], [button, addAll]));
      buttons.push(button);
      const remove = h('button', { type: 'button', text: '✕', 'aria-label': t('stack:measure.remove', { n: i + 1 }), 'data-action': 'remove-measurement' });
      remove.addEventListener('click', () => view.removeMeasurement(m.uid));
      return h(
        'li',
        { class: 'measurement', 'data-measurement': m.uid, 'data-type': m.type, 'data-value': String(value.value), 'data-unit': value.unit },
        h('span', { class: 'measurement-value', text: `${m.type === 'length' ? t('stack:measure.length') : t('stack:measure.area')} ${formatMeasured(value)}` }),
        ' ',
        button,
        ' ',
        remove,
      );
    });
    list.replaceChildren(...rows);
    const addable = measurements.filter((m) => convert(m).ok && added.get(m.uid) !== pointsKey(m));
    addAll.hidden = addable.length < 2;
    addAll.disabled = false;
    addAll.onclick = () => void add(addable, [...buttons, addAll]);
    note.hidden = measurements.length === 0 || spacing?.source !== 'ImagerPixelSpacing';
    note.textContent = t('stack:measure.imagerNote');
    empty.hidden = measurements.length > 0;
  };

  const disposers = [view.onChange(() => render()), view.onMeasurementsChange(() => render())];
  render();
  return { element, dispose: () => disposers.forEach((d) => d()) };
}
