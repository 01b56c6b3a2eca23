/**
 * Image series display: a Cornerstone stack (through imaging/cornerstone.ts only), its toolbar and
 * keyboard commands (one table: stack-commands.ts), the information overlay (series, instance, frame,
 * window), AI boxes of the visible SRs on the frame they reference, "Detect polyps" on the shown frame,
 * and the shown image's measurements with "Add to report" (measurement-panel.ts).
 * It takes over the viewport box of the series' StackPreview (stack-preview.ts), which keeps showing the
 * first image until Cornerstone has rendered the full-fidelity frame.
 */
import { listModels, detectOnFrame, type AiModel } from '../ai/ai-client.js';
import { num, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { CT_PRESETS, StackView } from '../imaging/cornerstone.js';
import { OverlayCanvas } from '../overlays/overlay-canvas.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { isLanguageChanging, t } from '../i18n/i18n.js';
import type { FrameFetcher } from '../dicomweb/frames.js';
import type { Display, StudyContext } from './display.js';
import type { StackPreview } from './stack-preview.js';
import { CommandTable, stackCommands } from './stack-commands.js';
import { measurementPanel } from './measurement-panel.js';

export interface StackOptions {
  study: string;
  series: string;
  seriesInfo: DicomJson | undefined;
  instances: DicomJson[];
  context: StudyContext;
  refresh: () => Promise<void>;
  /** Fetches the series' frames (full fidelity, measured rate, prefetch); destroyed with the display. */
  fetcher: FrameFetcher;
  /** The first image shown before the imaging code arrived; its box becomes the viewport. */
  preview: StackPreview;
}

/** The image shown when a language change tore the display down: the new one opens there (the user's place). */
let resume: { key: string; index: number } | undefined;

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
    // The preview's box: the first image stays on top of the Cornerstone element until it has rendered.
    const viewportBox = options.preview.box;
    viewportBox.prepend(element);
    const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': t('stack:tools') });
    root.replaceChildren(toolbar, viewportBox, status);
    const overlay = new OverlayCanvas(viewportBox);
    // The info overlay stays above the boxes.
    viewportBox.append(info);

    const view = await StackView.create(element);
    const display = new StackDisplay(view, options);
    try {
      await view.load(options.study, options.series, instances, options.fetcher);
      options.preview.finish();
    } catch (err) {
      view.destroy();
      options.preview.destroy();
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
        t('stack:info.series', { number: num(options.seriesInfo, TAG.SeriesNumber) ?? '', description: str(options.seriesInfo, TAG.SeriesDescription) ?? '', modality }),
        t('stack:info.image', { index: s.index + 1, count: s.count }),
        t('stack:info.instance', { number: num(instance, TAG.InstanceNumber) ?? '?' }) + (frames > 1 ? t('stack:info.frame', { frame: s.current?.frame ?? 1, frames }) : ''),
        s.window !== undefined && !view.isColour() ? t('stack:info.window', { width: Math.round(s.window.width), center: Math.round(s.window.center) }) : t('stack:info.colour'),
        t('stack:info.zoom', { percent: (s.zoom * 100).toFixed(0) }),
      ];
      info.replaceChildren(...lines.map((l) => h('div', { text: l })));
      if (viewportBox.dataset['firstImageMs'] === undefined && s.current !== undefined) {
        // Time to the first rendered image, from navigation start (for the benchmark).
        viewportBox.dataset['firstImageMs'] = performance.now().toFixed(0);
        viewportBox.dataset['firstImage'] ??= 'full';
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
    // Prefetch counters for tests and the benchmark (no patient data).
    const fetcher = options.fetcher;
    fetcher.onArrived = () => {
      viewportBox.dataset['prefetched'] = String(fetcher.counters.prefetched);
      viewportBox.dataset['frameBytes'] = String(fetcher.counters.bytes);
    };
    fetcher.onArrived();
    display.disposers.push(view.onError((message) => status.replaceChildren(errorBox(message))));

    // Toolbar and keys from one command table: tools, reset, presets, scroll, cine; then detection.
    const commands = new CommandTable(stackCommands(view, { modality, fps, count: view.state().count, presets: CT_PRESETS }));
    toolbar.append(...commands.toolbarItems());
    viewportBox.addEventListener('keydown', commands.onKeyDown);
    // The shown image's measurements (tools L and A): values, "Add to report".
    const measurements = measurementPanel(view, { study: options.study, series: options.series, instances });
    root.append(measurements.element);
    view.resize(); // the viewport box is shorter by the panel
    display.disposers.push(measurements.dispose);

    // "Detect polyps" on endoscopy frames and other colour images (greyscale radiology has no polyp model).
    if (modality === 'ES' || view.isColour()) void display.addDetection(toolbar, status);
    const onResize = () => {
      view.resize();
      redraw();
    };
    window.addEventListener('resize', onResize);
    display.disposers.push(() => window.removeEventListener('resize', onResize));
    const key = `${options.study}/${options.series}`;
    if (resume?.key === key && resume.index > 0) void view.setIndex(resume.index);
    resume = undefined;
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
    const select = h('select', { 'aria-label': t('stack:detect.model'), 'data-testid': 'model' }, ...models.map((m) => h('option', { value: m.id, text: `${m.id} ${m.version}` })));
    const preferred = models.find((m) => m.id === 'polyp-detector') ?? models[0];
    if (preferred !== undefined) select.value = preferred.id;
    const button = h('button', { type: 'button', text: t('stack:detect.button'), 'data-action': 'detect' });
    const progress = h('span', { class: 'progress', hidden: true }, h('progress', { 'aria-label': t('stack:detect.running') }), t('stack:detect.runningText'));
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
        status.replaceChildren(h('span', { 'data-testid': 'detect-done', text: t('stack:detect.done', { model: select.value, what: n === 0 ? t('study:noFindings') : t('study:findings', { count: n }) }) }));
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
    if (isLanguageChanging()) {
      try {
        resume = { key: `${this.options.study}/${this.options.series}`, index: this.view.state().index };
      } catch {
        // A view that never loaded: nothing to come back to.
      }
    }
    for (const d of this.disposers) d();
    this.view.destroy();
    this.options.preview.destroy();
    this.options.fetcher.destroy();
  }
}
