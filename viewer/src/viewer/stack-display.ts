/**
 * Image series display: a Cornerstone stack (through imaging/cornerstone.ts only), its toolbar and
 * keyboard commands, the information overlay (series, instance, frame, window), AI boxes of the
 * visible SRs on the frame they reference, and "Detect polyps" on the shown frame.
 */
import { listModels, detectOnFrame, type AiModel } from '../ai/ai-client.js';
import { num, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { CT_PRESETS, initImaging, StackView, type ToolName } from '../imaging/cornerstone.js';
import { OverlayCanvas } from '../overlays/overlay-canvas.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import type { Display, StudyContext } from './study-view.js';

/** Starts Cornerstone (WebGL context, codecs, workers) ahead of the first image. */
export function prepareImaging(): Promise<void> {
  return initImaging();
}

export interface StackOptions {
  study: string;
  series: string;
  seriesInfo: DicomJson | undefined;
  instances: DicomJson[];
  context: StudyContext;
  refresh: () => Promise<void>;
}

export class StackDisplay implements Display {
  private disposers: Array<() => void> = [];

  private constructor(
    private readonly view: StackView,
    private readonly options: StackOptions,
  ) {}

  static async create(root: HTMLElement, options: StackOptions): Promise<StackDisplay> {
    const { instances } = options;
    const element = h('div', { class: 'cs-element' });
    const info = h('div', { class: 'info-overlay', 'data-testid': 'info' });
    const status = h('div', { class: 'display-status', role: 'status', 'aria-live': 'polite' });
    const viewportBox = h('div', { class: 'viewport', tabindex: 0, 'aria-label': 'Image viewport: arrow keys scroll, R resets' }, element, info);
    const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Image tools' });
    root.replaceChildren(toolbar, viewportBox, status);
    const overlay = new OverlayCanvas(viewportBox);
    // The info overlay stays above the boxes.
    viewportBox.append(info);

    const view = await StackView.create(element);
    const display = new StackDisplay(view, options);
    try {
      await view.load(options.study, options.series, instances);
    } catch (err) {
      view.destroy();
      root.replaceChildren(errorBox(messageOf(err)));
      return display;
    }

    const first = instances[0];
    const modality = str(first, TAG.Modality) ?? str(options.seriesInfo, TAG.Modality) ?? '';
    const fps = (() => {
      const frameTime = num(first, '00181063');
      if (frameTime !== undefined && frameTime > 0) return 1000 / frameTime;
      return num(first, '00180040') ?? num(first, '00082144') ?? 10;
    })();

    const redraw = () => {
      const s = view.state();
      const instance = instances.find((i) => str(i, TAG.SOPInstanceUID) === s.current?.sop);
      const frames = num(instance, TAG.NumberOfFrames) ?? 1;
      const lines = [
        `Series ${num(options.seriesInfo, TAG.SeriesNumber) ?? ''} ${str(options.seriesInfo, TAG.SeriesDescription) ?? ''} (${modality})`,
        `Image ${s.index + 1} / ${s.count}`,
        `Instance ${num(instance, TAG.InstanceNumber) ?? '?'}${frames > 1 ? `, frame ${s.current?.frame ?? 1} / ${frames}` : ''}`,
        s.window !== undefined && !view.isColour() ? `W ${Math.round(s.window.width)} L ${Math.round(s.window.center)}` : 'Colour',
        `Zoom ${(s.zoom * 100).toFixed(0)}%`,
      ];
      info.replaceChildren(...lines.map((l) => h('div', { text: l })));
      if (viewportBox.dataset['firstImageMs'] === undefined && s.current !== undefined) {
        // Time to the first rendered image, from navigation start (for the benchmark).
        viewportBox.dataset['firstImageMs'] = performance.now().toFixed(0);
      }
      viewportBox.dataset['index'] = String(s.index);
      viewportBox.dataset['sop'] = s.current?.sop ?? '';
      viewportBox.dataset['frame'] = String(s.current?.frame ?? '');
      const detections = options.context
        .visibleResults()
        .flatMap((r) => r.detections)
        .filter((d) => d.sop === s.current?.sop && d.frame === s.current?.frame);
      overlay.draw(detections, (x, y) => view.imageToCanvas(x, y));
    };
    display.disposers.push(view.onChange(redraw), options.context.onChange(redraw));
    display.disposers.push(view.onError((message) => status.replaceChildren(errorBox(message))));

    // Toolbar: tools, presets, scroll, cine, reset, detection.
    const toolButtons = new Map<ToolName, HTMLButtonElement>();
    const selectTool = (tool: ToolName) => {
      view.setPrimaryTool(tool);
      for (const [t, b] of toolButtons) b.setAttribute('aria-pressed', String(t === tool));
    };
    for (const [tool, label, key] of [
      ['windowLevel', 'Window/level', 'W'],
      ['pan', 'Pan', 'P'],
      ['zoom', 'Zoom', 'Z'],
    ] as const) {
      const b = h('button', { type: 'button', text: label, title: `${label} (${key})`, 'aria-pressed': String(tool === 'windowLevel'), 'data-tool': tool });
      b.addEventListener('click', () => selectTool(tool));
      toolButtons.set(tool, b);
      toolbar.append(b);
    }
    const reset = h('button', { type: 'button', text: 'Reset', title: 'Reset (R)' });
    reset.addEventListener('click', () => view.reset());
    toolbar.append(reset);
    if (modality === 'CT') {
      const presets = h('select', { 'aria-label': 'Window preset' }, h('option', { value: '', text: 'Window preset' }), ...Object.keys(CT_PRESETS).map((p, i) => h('option', { value: p, text: `${p} (${i + 1})` })));
      presets.addEventListener('change', () => {
        const p = CT_PRESETS[presets.value];
        if (p !== undefined) view.setWindow(p.center, p.width);
      });
      toolbar.append(presets);
    }
    const prev = h('button', { type: 'button', text: '◀', title: 'Previous image (↑)', 'aria-label': 'Previous image' });
    const next = h('button', { type: 'button', text: '▶', title: 'Next image (↓)', 'aria-label': 'Next image' });
    prev.addEventListener('click', () => void view.scroll(-1));
    next.addEventListener('click', () => void view.scroll(1));
    toolbar.append(prev, next);
    const cine = h('button', { type: 'button', text: 'Play', title: 'Cine (space)', 'aria-pressed': 'false', 'data-action': 'cine' });
    const toggleCine = () => {
      if (view.playing) view.stopCine();
      else view.playCine(fps);
      cine.textContent = view.playing ? 'Stop' : 'Play';
      cine.setAttribute('aria-pressed', String(view.playing));
    };
    cine.addEventListener('click', toggleCine);
    if (view.state().count > 1) toolbar.append(cine);

    viewportBox.addEventListener('keydown', (e) => {
      const k = e.key;
      if (k === 'ArrowDown' || k === 'ArrowRight' || k === 'PageDown') void view.scroll(k === 'PageDown' ? 10 : 1);
      else if (k === 'ArrowUp' || k === 'ArrowLeft' || k === 'PageUp') void view.scroll(k === 'PageUp' ? -10 : -1);
      else if (k === 'Home') void view.setIndex(0);
      else if (k === 'End') void view.setIndex(Number.MAX_SAFE_INTEGER);
      else if (k === 'r' || k === 'R') view.reset();
      else if (k === 'w' || k === 'W') selectTool('windowLevel');
      else if (k === 'p' || k === 'P') selectTool('pan');
      else if (k === 'z' || k === 'Z') selectTool('zoom');
      else if (k === '+' || k === '=') view.zoomBy(1.25);
      else if (k === '-') view.zoomBy(0.8);
      else if (k === ' ') toggleCine();
      else if (modality === 'CT' && /^[1-9]$/.test(k)) {
        const p = Object.values(CT_PRESETS)[Number(k) - 1];
        if (p !== undefined) view.setWindow(p.center, p.width);
      } else return;
      e.preventDefault();
    });

    // "Detect polyps" on endoscopy frames and other colour images (greyscale radiology has no polyp model).
    if (modality === 'ES' || view.isColour()) void display.addDetection(toolbar, status);
    const onResize = () => {
      view.resize();
      redraw();
    };
    window.addEventListener('resize', onResize);
    display.disposers.push(() => window.removeEventListener('resize', onResize));
    redraw();
    viewportBox.focus();
    return display;
  }

  /** "Detect polyps": runs a detection model on the shown frame; the stored SR is then drawn. */
  private async addDetection(toolbar: HTMLElement, status: HTMLElement): Promise<void> {
    let models: AiModel[];
    try {
      models = await listModels();
    } catch {
      return; // No AI on this archive: no action.
    }
    if (models.length === 0) return;
    const select = h('select', { 'aria-label': 'Detection model', 'data-testid': 'model' }, ...models.map((m) => h('option', { value: m.id, text: `${m.id} ${m.version}` })));
    const preferred = models.find((m) => m.id === 'polyp-detector') ?? models[0];
    if (preferred !== undefined) select.value = preferred.id;
    const button = h('button', { type: 'button', text: 'Detect polyps', 'data-action': 'detect' });
    const progress = h('span', { class: 'progress', hidden: true }, h('progress', { 'aria-label': 'Detection running' }), ' Running…');
    button.addEventListener('click', async () => {
      const frame = this.view.state().current;
      if (frame === undefined) return;
      button.disabled = true;
      progress.hidden = false;
      status.replaceChildren();
      try {
        const report = await detectOnFrame(this.options.study, this.options.series, frame.sop, frame.frame, select.value);
        // Show the stored result (the same path as any stored SR): reload the study's reports.
        this.options.context.hidden.delete(report.sopInstanceUid);
        await this.options.refresh();
        const result = this.options.context.results.find((r) => r.sop === report.sopInstanceUid);
        const n = result?.detections.length ?? 0;
        status.replaceChildren(h('span', { 'data-testid': 'detect-done', text: `${select.value}: ${n === 0 ? 'no findings' : `${n} finding${n === 1 ? '' : 's'}`} on this frame (stored as a report).` }));
      } catch (err) {
        status.replaceChildren(errorBox(messageOf(err)));
      } finally {
        button.disabled = false;
        progress.hidden = true;
      }
    });
    toolbar.append(h('span', { class: 'ai-action' }, select, button, progress));
  }

  destroy(): void {
    for (const d of this.disposers) d();
    this.view.destroy();
  }
}
