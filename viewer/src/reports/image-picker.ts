/**
 * Frame thumbnails (WADO-RS `/frames/{n}/rendered`, fetched with the token when signed in) and the
 * key-image picker: every frame of the study's images as a button (a long recording or a slide level is
 * sampled, with a frame-number entry for any other frame); pressing one picks or unpicks it.
 */
import { setAuthorizedSource } from '../auth/http.js';
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { ImageRef } from '../../../server/src/contracts/reports.js';
import { describeImage } from './report-model.js';
import { frameUrl, type StudyImage, type StudyImages } from './study-images.js';

/** Frames shown per instance before the picker samples them. */
const ALL_FRAMES_UP_TO = 60;
const SAMPLED = 24;

export interface BoxOnFrame {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A frame's thumbnail; `box` (pixels of the frame, `image` giving its size) drawn on it. */
export function thumbnail(study: string, ref: ImageRef, options: { image?: StudyImage | undefined; box?: BoxOnFrame | undefined; size?: string; alt?: string } = {}): HTMLElement {
  const img = h('img', { alt: options.alt ?? '', loading: 'lazy', decoding: 'async' });
  const wrap = h('span', { class: 'report-thumb' }, img);
  img.addEventListener('error', () => img.replaceWith(h('span', { class: 'thumb-placeholder', text: t('reports:form.noPreview') })));
  setAuthorizedSource(img, frameUrl(study, ref, options.size));
  const { box, image } = options;
  if (box !== undefined && image?.columns !== undefined && image.rows !== undefined) {
    const pct = (v: number, of: number) => `${Math.max(0, Math.min(100, (v / of) * 100)).toFixed(2)}%`;
    // The rendered image keeps the frame's aspect ratio, so percentages of it place the box exactly.
    wrap.append(h('span', { class: 'report-box', style: `left:${pct(box.x, image.columns)};top:${pct(box.y, image.rows)};width:${pct(box.width, image.columns)};height:${pct(box.height, image.rows)}` }));
  }
  return wrap;
}

const refOf = (image: StudyImage, frame: number): ImageRef => ({ seriesInstanceUid: image.series, sopInstanceUid: image.sop, ...(image.frames > 1 ? { frame } : {}) });

function framesToShow(image: StudyImage): number[] {
  if (image.frames <= ALL_FRAMES_UP_TO) return Array.from({ length: image.frames }, (_, i) => i + 1);
  const step = image.frames / SAMPLED;
  return [...new Set(Array.from({ length: SAMPLED }, (_, i) => Math.min(image.frames, Math.round(i * step) + 1)))];
}

export interface Picker {
  element: HTMLElement;
  /** Marks the picked frames again (after a change elsewhere). */
  refresh(): void;
}

/** The study's frames to pick key images from; `toggle` adds or removes one. */
export function imagePicker(study: string, images: StudyImages, isPicked: (ref: ImageRef) => boolean, toggle: (ref: ImageRef) => void, what = t('reports:form.keyImagesWhat')): Picker {
  const grid = h('div', { class: 'picker-grid' });
  const buttons: Array<{ button: HTMLButtonElement; ref: ImageRef }> = [];
  const button = (image: StudyImage, frame: number) => {
    const ref = refOf(image, frame);
    const name = describeImage(ref, images.name);
    const b = h('button', { type: 'button', class: 'picker-item', 'aria-pressed': isPicked(ref) ? 'true' : 'false', title: name, 'data-sop': image.sop, 'data-frame': ref.frame ?? 1 }, thumbnail(study, ref, { image, size: '160,120' }), h('small', { text: image.frames > 1 ? t('reports:form.pickerFrame', { frame }) : t('reports:form.pickerImage', { number: image.instanceNumber ?? '' }) }));
    b.addEventListener('click', () => {
      toggle(ref);
      b.setAttribute('aria-pressed', isPicked(ref) ? 'true' : 'false');
    });
    buttons.push({ button: b, ref });
    return b;
  };
  const fill = () => {
    const usable = images.images.filter((i) => !i.video);
    if (usable.length === 0) {
      grid.replaceChildren(h('p', { class: 'muted', text: t('reports:form.noImages') }));
      return;
    }
    const groups: HTMLElement[] = [];
    for (const image of usable) {
      const frames = framesToShow(image);
      const items = h('div', { class: 'picker-items' }, ...frames.map((f) => button(image, f)));
      const title = h('div', { class: 'picker-title' }, h('strong', { text: t('reports:form.pickerTitle', { series: image.seriesLabel, number: image.instanceNumber ?? '' }) }), image.frames > 1 ? t('reports:form.pickerFrames', { frames: image.frames, shown: frames.length < image.frames ? t('reports:form.pickerShown', { count: frames.length }) : '' }) : '');
      if (frames.length < image.frames) {
        // Any other frame by its number (a long recording, a slide level with many tiles).
        const n = h('input', { type: 'number', min: 1, max: image.frames, step: 1, class: 'frame-number', 'aria-label': t('reports:form.frameNumber') });
        const add = h('button', { type: 'button', text: t('reports:form.showFrame') });
        add.addEventListener('click', () => {
          const f = Number(n.value);
          if (Number.isInteger(f) && f >= 1 && f <= image.frames && !buttons.some((x) => x.ref.sopInstanceUid === image.sop && x.ref.frame === f)) items.prepend(button(image, f));
        });
        title.append(' ', n, ' ', add);
      }
      groups.push(h('div', { class: 'picker-group' }, title, items));
    }
    grid.replaceChildren(...groups);
  };
  const details = h('details', { class: 'picker' }, h('summary', { text: t('reports:form.pick', { what }) }), grid);
  let filled = false;
  // Thumbnails are requested only once the picker is opened.
  details.addEventListener('toggle', () => {
    if (details.open && !filled) {
      filled = true;
      fill();
    }
  });
  return {
    element: details,
    refresh() {
      for (const { button: b, ref } of buttons) b.setAttribute('aria-pressed', isPicked(ref) ? 'true' : 'false');
    },
  };
}

