/**
 * The patient's phone page (viewer/share.html), served at `/s/{token}` for a live share link: no sign-in,
 * the token in the path is the credential. main.ts has already asked to open the link (`POST /share/{token}/session`; the PIN
 * form when the link has one, with the tries left and the lock said plainly), then shows the hospital,
 * the patient (name as written in Vietnam), the date and the examination, the signed report(s) as PDF,
 * the images (gallery.ts: swipe, pinch-zoom, double tap) with the series as thumbnails, the two
 * downloads (JPEG ZIP, DICOM ZIP) and the "not for diagnosis" notice, in Vietnamese or English.
 *
 * Kept tiny for a slow mobile link (docs/benchmarks.md: first image ≤ 3 s over 1.6 Mbit/s with 150 ms
 * RTT): no Cornerstone, no DICOMweb library; before the first image only the page, the scripts, the
 * style sheet, the session (which carries the view), the first series' instance list and the image
 * itself travel. The logo, the thumbnails and the neighbouring images come after it.
 */
import { formatDateTime, formatDicomDate, formatPersonName, initI18n, languageSwitch, onLanguageChange, t } from '../i18n/i18n.js';
import { h } from '../ui/dom.js';
import { Gallery } from './gallery.js';
import { imageSeries, local, NOT_IMAGES, OPENED_KEY, openLink, seriesImages, type Opening, type OpenFailure, type SharedImage, type SharedView } from './share-api.js';

const root = document.getElementById('share') ?? document.body;
let redraw: () => void = () => undefined;
let firstImageShown = false;

interface Opened {
  view: SharedView;
  accessToken: string | undefined;
  /** The first image series' images, asked for as soon as the view was known (main.ts). */
  firstImages?: Promise<SharedImage[]> | undefined;
}

function notice(): HTMLElement {
  return h('p', { class: 'notice', id: 'not-for-diagnosis', role: 'note', text: t('share:notForDiagnosis') });
}

function header(view: SharedView | undefined): HTMLElement {
  const brand = h('div', { class: 'brand' });
  if (view?.hospital.logo != null && firstImageShown) brand.append(h('img', { class: 'logo', id: 'hospital-logo', src: local(view.hospital.logo), alt: '' }));
  brand.append(h('span', { class: 'hospital', id: 'hospital-name', text: view?.hospital.name ?? '' }));
  return h('header', { class: 'top' }, brand, languageSwitch());
}

function page(view: SharedView | undefined, ...content: HTMLElement[]): void {
  document.title = view === undefined ? t('share:pageTitle') : `${t('share:pageTitle')} – ${view.hospital.name}`;
  root.replaceChildren(header(view), notice(), ...content);
}

// ------------------------------------------------------------------------------------------ opening

function failureText(failure: OpenFailure): string {
  switch (failure.kind) {
    case 'gone':
      return t('share:linkGone');
    case 'invalid':
      return t('share:linkInvalid');
    case 'pin-invalid':
      return failure.triesLeft === undefined ? t('share:pinWrong') : t('share:pinInvalid', { count: failure.triesLeft });
    case 'pin-locked':
      return t('share:pinLocked', { minutes: Math.max(1, Math.ceil((failure.retryAfterSeconds ?? 900) / 60)) });
    case 'network':
      return t('share:networkError');
    case 'pin-required':
      return '';
  }
}

function showFailure(failure: OpenFailure): void {
  redraw = () => page(undefined, h('p', { class: 'failure', id: 'open-failure', role: 'alert', 'data-kind': failure.kind, text: failureText(failure) }));
  redraw();
}

function showPin(token: string, failure: OpenFailure | undefined): void {
  let typed = '';
  redraw = () => {
    const input = h('input', { id: 'pin', name: 'pin', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true, value: typed });
    input.addEventListener('input', () => {
      typed = input.value;
    });
    const message = h('p', { class: 'pin-message', id: 'pin-message', role: 'alert', 'data-kind': failure?.kind ?? '', text: failure === undefined ? '' : failureText(failure) });
    const button = h('button', { type: 'submit', id: 'pin-submit', text: t('share:pinOpen') });
    const form = h(
      'form',
      { class: 'pin-form', id: 'pin-form', novalidate: true },
      h('h1', { text: t('share:pinTitle') }),
      h('p', { class: 'muted', text: t('share:pinHelp') }),
      h('label', { for: 'pin', text: t('share:pinLabel') }),
      input,
      button,
      message,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const pin = input.value.replace(/\s/g, '');
      if (!/^[0-9]{6}$/.test(pin)) {
        message.textContent = t('share:pinFormat');
        message.dataset['kind'] = 'format';
        return;
      }
      button.disabled = true;
      void open(token, pin);
    });
    page(undefined, form);
    if (failure?.kind === 'pin-locked') {
      input.disabled = true;
      button.disabled = true;
    } else {
      input.focus();
    }
  };
  redraw();
}

async function open(token: string, pin?: string, opening?: Opening): Promise<void> {
  const result = opening ?? (await openLink(token, pin));
  if (result.ok) {
    try {
      sessionStorage.setItem(OPENED_KEY, `${token}|${result.session.view.linkId}`);
    } catch {
      // No storage (private mode): a reload asks again.
    }
    showView({ view: result.session.view, accessToken: result.session.accessToken, firstImages: opening?.ok === true ? opening.firstImages : undefined });
    return;
  }
  const failure = result.failure;
  if (failure.kind === 'pin-required' || failure.kind === 'pin-invalid' || (failure.kind === 'pin-locked' && pin !== undefined)) showPin(token, failure.kind === 'pin-required' ? undefined : failure);
  else if (failure.kind === 'pin-locked') showPin(token, failure);
  else showFailure(failure);
}

// ------------------------------------------------------------------------------------------ the view

function showView({ view, accessToken, firstImages }: Opened): void {
  const series = imageSeries(view);
  const images = new Map<string, Promise<SharedImage[]>>();
  if (firstImages !== undefined && series[0] !== undefined) {
    images.set(series[0].seriesInstanceUid, firstImages);
    firstImages.catch(() => images.delete(series[0]!.seriesInstanceUid));
  }
  let current = 0;
  const imagesOf = (i: number): Promise<SharedImage[]> => {
    const s = series[i]!;
    let list = images.get(s.seriesInstanceUid);
    if (list === undefined) {
      list = seriesImages(s.instances, accessToken);
      list.catch(() => images.delete(s.seriesInstanceUid));
      images.set(s.seriesInstanceUid, list);
    }
    return list;
  };
  const strip = h('div', { class: 'series-strip', id: 'series-strip' });
  const select = async (i: number, at = 0): Promise<void> => {
    current = i;
    for (const [n, button] of [...strip.children].entries()) button.setAttribute('aria-pressed', String(n === i));
    try {
      gallery.show(await imagesOf(i), at);
    } catch {
      gallery.show([]);
    }
  };
  const gallery = new Gallery({
    onEdge: (direction) => {
      const to = current + (direction === 'next' ? 1 : -1);
      if (to >= 0 && to < series.length) void select(to, direction === 'next' ? 0 : -1);
    },
    onFirstImage: () => {
      firstImageShown = true;
      performance.mark('share-first-image');
      document.body.dataset['firstImageMs'] = String(Math.round(performance.now()));
      // What waited for the first image: the logo, the series thumbnails.
      const logo = view.hospital.logo;
      const brand = root.querySelector('.brand');
      if (logo !== null && brand !== null && brand.querySelector('.logo') === null) brand.prepend(h('img', { class: 'logo', id: 'hospital-logo', src: local(logo), alt: '' }));
      for (const img of strip.querySelectorAll<HTMLImageElement>('img[data-src]')) img.src = img.dataset['src']!;
    },
  });

  redraw = () => {
    const study = view.study;
    // What was examined: the image modalities (the report's SR and PDF series are not an examination).
    const modalities = study.modalities.filter((m) => !NOT_IMAGES.has(m.toUpperCase()));
    const info = h(
      'dl',
      { class: 'study', id: 'study-info' },
      h('dt', { text: t('share:patient') }),
      h('dd', { id: 'patient-name', text: formatPersonName(study.patientName ?? '') }),
      h('dt', { text: t('share:studyDate') }),
      h('dd', { id: 'study-date', text: formatDicomDate(study.studyDate ?? '') }),
      ...(study.studyDescription === null && modalities.length === 0
        ? []
        : [h('dt', { text: t('share:study') }), h('dd', { id: 'study-description', text: [study.studyDescription, modalities.join(', ')].filter((s) => s !== null && s !== '').join(' · ') })]),
    );
    const reports =
      view.reports.length === 0
        ? undefined
        : h(
            'section',
            { class: 'reports', id: 'reports' },
            h('h2', { text: t('share:reports') }),
            ...view.reports.map((report) =>
              h(
                'p',
                {},
                h('a', { class: 'report-link button', href: local(report.pdf), target: '_blank', rel: 'noopener', 'data-report': report.id, text: t('share:reportPdf') }),
                h('span', { class: 'muted', text: ` ${report.title} · ${t('share:signedOn', { date: formatDateTime(report.signedAt) })}` }),
              ),
            ),
          );
    strip.replaceChildren(
      ...series.map((s, i) => {
        const thumb = h('img', { alt: '', width: 64, height: 64, 'data-src': local(s.thumbnail) });
        if (firstImageShown) thumb.src = thumb.dataset['src']!;
        const label = [s.seriesDescription ?? `${t('share:series')} ${s.seriesNumber ?? i + 1}`, t('share:images', { count: s.numberOfInstances })].join(' · ');
        const button = h('button', { type: 'button', class: 'series', 'data-series': s.seriesInstanceUid, 'aria-pressed': String(i === current) }, thumb, h('span', { text: label }));
        button.addEventListener('click', () => void select(i));
        return button;
      }),
    );
    const downloads = h(
      'section',
      { class: 'downloads', id: 'downloads' },
      h('h2', { text: t('share:download') }),
      h('p', {}, h('a', { class: 'button', id: 'download-images', href: '/share/view/download/images.zip', download: '', text: t('share:downloadImages') }), h('span', { class: 'muted', text: ` ${t('share:downloadImagesHelp')}` })),
      h('p', {}, h('a', { class: 'button', id: 'download-dicom', href: '/share/view/download/dicom.zip', download: '', text: t('share:downloadDicom') }), h('span', { class: 'muted', text: ` ${t('share:downloadDicomHelp')}` })),
    );
    const footer = h('footer', { class: 'muted', text: t('share:expires', { date: formatDateTime(view.expiresAt) }) });
    gallery.relabel();
    page(view, info, ...(reports === undefined ? [] : [reports]), gallery.element, ...(series.length > 1 ? [strip] : []), downloads, footer);
  };
  redraw();
  if (series.length === 0) gallery.show([]);
  else void select(0);
}

// ------------------------------------------------------------------------------------------ start

/**
 * Shows the page for the link `token` (undefined: the URL holds none), whose opening main.ts started
 * before this module arrived: a view from the cookie of an earlier opening in this tab (a reload), or
 * the answer of `POST /share/{token}/session`.
 */
export async function run(token: string | undefined, opening: Promise<Opening | { reload: SharedView; firstImages: Promise<SharedImage[]> | undefined }> | undefined): Promise<void> {
  initI18n();
  onLanguageChange(() => redraw());
  if (token === undefined || opening === undefined) {
    showFailure({ kind: 'invalid' });
    return;
  }
  redraw = () => page(undefined, h('p', { class: 'opening', id: 'opening', text: t('share:opening') }));
  redraw();
  const opened = await opening;
  if ('reload' in opened) {
    showView({ view: opened.reload, accessToken: undefined, firstImages: opened.firstImages });
    return;
  }
  await open(token, undefined, opened);
}
