/**
 * Video instances (MPEG-2 / MPEG-4 AVC / HEVC, e.g. Video Endoscopic): a <video> over the WADO-RS
 * rendered resource, which serves the stored bitstream as video/mp4 with byte ranges (seeking).
 */
import { releaseSource, setAuthorizedSource } from '../auth/http.js';
import { renderedUrl } from '../dicomweb/client.js';
import { str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { errorBox, h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { Display } from './display.js';

export const VideoDisplay = {
  create(root: HTMLElement, study: string, series: string, instances: DicomJson[]): Display {
    let index = 0;
    const video = h('video', { controls: true, autoplay: true, muted: true, playsinline: true, preload: 'auto', 'data-testid': 'video' });
    const status = h('div', { class: 'display-status', role: 'status' });
    const picker = h('select', { 'aria-label': t('study:video.instance') });
    instances.forEach((inst, i) => picker.append(h('option', { value: i, text: t('study:video.item', { n: i + 1 }) })));
    const show = () => {
      const sop = str(instances[index], TAG.SOPInstanceUID);
      if (sop === undefined) return;
      status.replaceChildren();
      setAuthorizedSource(video, renderedUrl(study, series, sop));
    };
    video.addEventListener('error', () => {
      const code = video.error?.code;
      status.replaceChildren(
        errorBox(code === 4 ? t('study:video.unsupported') : t('study:video.failed', { code: code ?? '?' })),
      );
    });
    picker.addEventListener('change', () => {
      index = Number(picker.value);
      show();
    });
    root.replaceChildren(h('div', { class: 'toolbar' }, instances.length > 1 ? picker : h('span', { text: t('study:video.label') })), h('div', { class: 'video-box' }, video), status);
    show();
    return {
      destroy() {
        video.pause();
        video.removeAttribute('src');
        video.load();
        releaseSource(video);
      },
    };
  },
};
