/**
 * The key images of a report (any kind): the picked frames with their captions, and the picker of
 * the study's frames (key tiles of a slide are frames of a slide level). At most 24 (the contract's).
 */
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { ImageRef, KeyImage } from '../../../server/src/contracts/reports.js';
import { smallButton, type Kit } from './form-kit.js';
import { imagePicker, thumbnail } from './image-picker.js';
import { describeImage, sameImage } from './report-model.js';
import type { StudyImages } from './study-images.js';

export const MAX_KEY_IMAGES = 24;

export interface KeyImagesSection {
  element: HTMLElement;
  /** Re-renders the list (after a change made elsewhere, e.g. an AI finding's frame added). */
  render(): void;
  add(ref: ImageRef): void;
}

/** `list` is the content's own array: it is changed in place. `onChange` runs after each change. */
export function keyImagesSection(kit: Kit, study: string, images: StudyImages, list: KeyImage[], onChange: () => void, what = t('reports:form.keyImagesWhat')): KeyImagesSection {
  const items = h('ol', { class: 'key-images' });
  const note = h('p', { class: 'muted', role: 'status' });
  const isPicked = (ref: ImageRef) => list.some((k) => sameImage(k, ref));
  const toggle = (ref: ImageRef) => {
    const at = list.findIndex((k) => sameImage(k, ref));
    if (at >= 0) list.splice(at, 1);
    else if (list.length >= MAX_KEY_IMAGES) {
      note.textContent = t('reports:form.atMost', { max: MAX_KEY_IMAGES, what });
      return;
    } else list.push({ ...ref });
    note.textContent = '';
    kit.changed();
    render();
    onChange();
  };
  const picker = kit.readOnly ? undefined : imagePicker(study, images, isPicked, toggle, what);
  const render = () => {
    if (list.length === 0) {
      items.replaceChildren(h('li', { class: 'muted', text: kit.readOnly ? t('reports:form.noneReadOnly') : t('reports:form.noneYet') }));
    } else {
      items.replaceChildren(
        ...list.map((k, i) => {
          const caption = h('input', { type: 'text', name: 'caption', maxlength: 200, placeholder: t('reports:form.caption'), disabled: kit.readOnly, 'aria-label': t('reports:form.captionOf', { n: i + 1 }) });
          caption.value = k.caption ?? '';
          caption.addEventListener('input', () => {
            k.caption = caption.value;
            kit.changed();
          });
          return h(
            'li',
            { class: 'key-image', 'data-sop': k.sopInstanceUid, 'data-frame': k.frame ?? 1 },
            thumbnail(study, k, { image: images.find(k), size: '160,120' }),
            h('div', {}, h('div', { class: 'muted', text: `${i + 1}. ${describeImage(k, images.name)}` }), caption, kit.readOnly ? undefined : smallButton(t('common:remove'), () => toggle(k), { class: 'remove-key-image' })),
          );
        }),
      );
    }
    picker?.refresh();
  };
  render();
  return {
    element: h('div', {}, items, note, picker?.element),
    render,
    add(ref) {
      if (!isPicked(ref)) toggle(ref);
    },
  };
}
