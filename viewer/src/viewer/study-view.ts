/**
 * One study: the series list (thumbnails from WADO-RS `/thumbnail`), the AI results of the study
 * (TID 1500 SRs, toggled one by one) and the display of the chosen series, chosen by what it holds:
 * a whole-slide pyramid, a video, images (a Cornerstone stack) or a non-image document.
 */
import { setAuthorizedSource } from '../auth/http.js';
import { instancePath, searchSeries, seriesMetadata, seriesThumbnailUrl, studyAttributes } from '../dicomweb/client.js';
import { FrameFetcher } from '../dicomweb/frames.js';
import { formatDate, num, personName, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { kindOf, type SeriesKind } from './series-kind.js';
import { parseSrDetections, type SrResult } from '../overlays/sr-detections.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import { StudyContext, type Display } from './display.js';
import { StackPreview } from './stack-preview.js';

const NON_IMAGE_MODALITIES = ['SR', 'ANN', 'KO', 'PR', 'SEG', 'RTSTRUCT', 'DOC'];

const byNumber = (tag: string) => (a: DicomJson, b: DicomJson) => (num(a, tag) ?? 0) - (num(b, tag) ?? 0);

export interface StudyViewOptions {
  /** Fills the study header (its links to the study list and the reports; the patient is added after): main.ts adds "Ask for a second opinion", a consult's case (consults/) keeps no way out of it. */
  header?: (header: HTMLElement, study: string) => void;
  /** Adds actions on the study once its series are known: main.ts adds the "Correct" menu (curation/: reject, move, split, merge, delete). */
  actions?: (slot: HTMLElement, view: StudyViewActions) => void;
}

/** What the study's actions may know of the page: the series listed, the one shown and, for images, the instance shown. */
export interface StudyViewActions {
  study: string;
  seriesList: () => DicomJson[];
  shownSeries: string | undefined;
  /** The SOP Instance UID of the image on screen (a stack), or of the series' only instance; undefined when none. */
  shownInstance: () => string | undefined;
}

export async function renderStudyView(root: HTMLElement, study: string, series: string | undefined, navigate: (series: string) => void, options: StudyViewOptions = {}): Promise<() => void> {
  const seriesNav = h('nav', { class: 'series-list', 'aria-label': t('study:seriesLabel') });
  const aiPanel = h('section', { class: 'ai-results', 'aria-label': t('study:aiLabel') });
  const header = h('div', { class: 'study-header' }, h('a', { href: '#/', text: t('study:backToStudies') }), ' · ', h('a', { href: `#/study/${study}/report`, id: 'study-reports', text: t('study:report') }));
  const display = h('section', { class: 'display', 'aria-label': t('study:displayLabel') });
  root.replaceChildren(h('div', { class: 'study-view' }, h('aside', {}, header, seriesNav, aiPanel), display));
  options.header?.(header, study);

  const context = new StudyContext(study);
  let current: Display | undefined;
  let destroyed = false;

  let seriesList: DicomJson[];
  try {
    const [attrs, list] = await Promise.all([studyAttributes(study), searchSeries(study)]);
    if (attrs === undefined) throw new Error(t('study:notFound'));
    header.append(
      h('div', { class: 'patient' }, h('strong', { text: personName(attrs, TAG.PatientName) || t('study:noName') }), ` ${str(attrs, TAG.PatientID) ?? ''}`),
      h('div', { class: 'muted', text: `${formatDate(str(attrs, TAG.StudyDate))} ${str(attrs, TAG.StudyDescription) ?? ''}` }),
    );
    seriesList = list.sort(byNumber(TAG.SeriesNumber));
  } catch (err) {
    display.replaceChildren(errorBox(messageOf(err), () => void renderStudyView(root, study, series, navigate, options)));
    return () => undefined;
  }

  const loadResults = async () => {
    const srSeries = seriesList.filter((s) => str(s, TAG.Modality) === 'SR');
    const results: SrResult[] = [];
    for (const s of srSeries) {
      const uid = str(s, TAG.SeriesInstanceUID);
      if (uid === undefined) continue;
      for (const instance of await seriesMetadata(study, uid)) {
        const parsed = parseSrDetections(instance);
        if (parsed !== undefined && parsed.detections.length >= 0) results.push(parsed);
      }
    }
    context.results = results;
    renderAiPanel();
    context.changed();
  };

  const renderAiPanel = () => {
    if (context.results.length === 0) {
      aiPanel.replaceChildren(h('h3', { text: t('study:aiResults') }), h('p', { class: 'muted', text: t('study:aiNone') }));
      return;
    }
    const items = context.results.map((r) => {
      const box = h('input', { type: 'checkbox', checked: !context.hidden.has(r.sop), 'data-result': r.sop });
      box.addEventListener('change', () => {
        if (box.checked) context.hidden.delete(r.sop);
        else context.hidden.add(r.sop);
        context.changed();
      });
      const n = r.detections.length;
      return h('li', {}, h('label', {}, box, ` ${r.title}: ${n === 0 ? t('study:noFindings') : t('study:findings', { count: n })}`));
    });
    aiPanel.replaceChildren(h('h3', { text: t('study:aiResults') }), h('ul', {}, ...items));
  };

  const renderSeriesNav = (selected: string | undefined) => {
    seriesNav.replaceChildren(
      ...seriesList.map((s) => {
        const uid = str(s, TAG.SeriesInstanceUID) ?? '';
        const modality = str(s, TAG.Modality) ?? '';
        // Documents (SR, annotations, key objects, presentation states) have no pixels to thumbnail.
        const placeholder = () => h('span', { class: 'thumb-placeholder', text: modality || '?' });
        let img: HTMLElement;
        if (NON_IMAGE_MODALITIES.includes(modality)) img = placeholder();
        else {
          const thumb = h('img', { alt: '', width: 64, height: 64, loading: 'lazy' });
          img = thumb;
          thumb.addEventListener('error', () => thumb.replaceWith(placeholder()));
          setAuthorizedSource(thumb, seriesThumbnailUrl(study, uid));
        }
        const button = h(
          'button',
          { type: 'button', class: 'series-item', 'data-series': uid, 'aria-current': uid === selected ? 'true' : undefined },
          img,
          h('span', {}, h('strong', { text: `${modality} ${num(s, TAG.SeriesNumber) ?? ''}` }), h('br'), str(s, TAG.SeriesDescription) ?? '', h('br'), h('small', { text: t('study:instances', { n: num(s, TAG.NumberOfSeriesRelatedInstances) ?? '?' }) })),
        );
        button.addEventListener('click', () => navigate(uid));
        return button;
      }),
    );
  };

  const refresh = async () => {
    seriesList = (await searchSeries(study)).sort(byNumber(TAG.SeriesNumber));
    renderSeriesNav(selectedSeries);
    await loadResults();
  };

  // Default: the first series with images (not SR / annotations).
  let shownInstances: DicomJson[] = [];
  const selectedSeries = series ?? str(seriesList.find((s) => !NON_IMAGE_MODALITIES.includes(str(s, TAG.Modality) ?? '')) ?? seriesList[0], TAG.SeriesInstanceUID);
  renderSeriesNav(selectedSeries);
  if (options.actions !== undefined) {
    const slot = h('div', { class: 'study-actions' });
    header.append(slot);
    options.actions(slot, {
      study,
      seriesList: () => seriesList,
      shownSeries: selectedSeries,
      shownInstance: () => display.querySelector<HTMLElement>('[data-sop]:not([data-sop=""])')?.dataset['sop'] ?? (shownInstances.length === 1 ? str(shownInstances[0], TAG.SOPInstanceUID) : undefined),
    });
  }
  void loadResults().catch((err) => aiPanel.replaceChildren(errorBox(t('study:aiFailed', { message: messageOf(err) }))));

  if (selectedSeries === undefined) {
    display.replaceChildren(h('p', { class: 'muted', text: t('study:noSeries') }));
  } else {
    display.replaceChildren(h('p', { class: 'muted loading', text: t('study:loadingSeries') }));
    // A slide (SM): its viewer's code (a few kB) is fetched while the metadata is on its way.
    const modality = str(seriesList.find((s) => str(s, TAG.SeriesInstanceUID) === selectedSeries), TAG.Modality);
    const slideCode = modality === 'SM' ? import('../wsi/wsi-display.js') : undefined;
    slideCode?.catch(() => undefined);
    // The imaging code (Cornerstone) is not fetched here: on a thin link it would share the bandwidth
    // with the metadata and the first image, which come first (stack-preview.ts).
    try {
      const instances = (await seriesMetadata(study, selectedSeries)).sort(byNumber(TAG.InstanceNumber));
      if (destroyed) return () => undefined;
      shownInstances = instances;
      const seriesInfo = seriesList.find((s) => str(s, TAG.SeriesInstanceUID) === selectedSeries);
      const kind = kindOf(instances);
      if (kind === 'wsi') {
        const { WsiDisplay } = await (slideCode ?? import('../wsi/wsi-display.js'));
        current = await WsiDisplay.create(display, { study, series: selectedSeries, instances, seriesList });
      } else if (kind === 'video') {
        const { VideoDisplay } = await import('./video-display.js');
        current = VideoDisplay.create(display, study, selectedSeries, instances);
      } else if (kind === 'image') {
        // First image first (a light preview, or the stored JPEG), then the imaging code and the
        // full-fidelity frame, then the prefetch of the next images.
        const byUid = new Map(instances.map((i) => [str(i, TAG.SOPInstanceUID), i]));
        const fetcher = new FrameFetcher(
          (ref) => `${instancePath(study, selectedSeries, ref.sop)}/frames/${ref.frame}`,
          (sop) => str(byUid.get(sop), TAG.TransferSyntaxUID),
        );
        const preview = StackPreview.show(display, { study, series: selectedSeries, instances, fetcher });
        current = { destroy: () => (preview.destroy(), fetcher.destroy()) };
        await preview.shown;
        const { StackDisplay } = await import('./stack-display.js');
        current = await StackDisplay.create(display, { study, series: selectedSeries, seriesInfo, instances, context, refresh, fetcher, preview });
      } else {
        current = showDocument(display, kind, instances, context);
      }
    } catch (err) {
      display.replaceChildren(errorBox(messageOf(err), () => navigate(selectedSeries)));
    }
  }
  return () => {
    destroyed = true;
    current?.destroy();
  };
}

function showDocument(root: HTMLElement, kind: SeriesKind, instances: DicomJson[], context: StudyContext): Display {
  const items = instances.map((i) => {
    const sop = str(i, TAG.SOPInstanceUID);
    const result = context.results.find((r) => r.sop === sop);
    const text = result === undefined ? t('study:document', { modality: str(i, TAG.Modality) ?? '' }) : `${result.title}: ${result.detections.map((d) => `${d.label}${d.score === undefined ? '' : ` ${(d.score * 100).toFixed(0)}%`}`).join(', ') || t('study:noFindings')}`;
    return h('li', { text });
  });
  root.replaceChildren(
    h('p', { class: 'muted', text: kind === 'annotation' ? t('study:annotationsHere') : t('study:notImages') }),
    h('ul', {}, ...items),
  );
  return { destroy: () => undefined };
}
