/**
 * The first image of an image series, before the imaging code (Cornerstone3D, ~730 kB compressed) has
 * arrived: on a 4 Mbit/s link that code alone takes 1.5 s, so the first image must not wait for it.
 *
 * - Frames stored as colour JPEG Baseline (endoscopy, photographs) are shown as stored: the frame is
 *   fetched through the series' FrameFetcher (the request and bytes Cornerstone then uses: nothing is
 *   fetched twice) and decoded by the browser. This is the original, not a preview.
 * - Anything else (CT, MR, 16-bit, other syntaxes) is shown first as a light JPEG the archive renders
 *   (WADO-RS `/frames/1/rendered`, `quality` and `viewport` of PS3.18 §8.3.5), labelled on screen
 *   "Preview (lossy) — loading full quality…" until the full-fidelity frame, decoded by Cornerstone,
 *   replaces it (`finish`).
 *
 * The box made here is the stack display's viewport box (stack-display.ts takes it over), so the page's
 * timing marks (data-first-image-ms, data-full-quality-ms) stay on one element.
 */
import { instancePath, request } from '../dicomweb/client.js';
import { num, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import type { FrameFetcher } from '../dicomweb/frames.js';
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';

const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
/** JPEG quality of the rendered preview: legible, a fraction of the full frame. */
export const PREVIEW_QUALITY = 60;
export const PREVIEW_LABEL = (): string => t('stack:previewLabel');

export interface PreviewOptions {
  study: string;
  series: string;
  instances: DicomJson[];
  fetcher: FrameFetcher;
}

export class StackPreview {
  /** The viewport box (`.viewport`), handed to the stack display. */
  readonly box: HTMLDivElement;
  /** Resolves once the first image is on screen, or could not be (then the full image is waited for). */
  readonly shown: Promise<void>;
  private readonly layer: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly controller = new AbortController();
  private bitmap: ImageBitmap | undefined;
  private readonly resize = new ResizeObserver(() => this.draw());

  private constructor(root: HTMLElement, options: PreviewOptions) {
    this.canvas = h('canvas', { class: 'preview-canvas' });
    this.layer = h('div', { class: 'stack-preview', 'data-testid': 'stack-preview' }, this.canvas);
    this.box = h('div', { class: 'viewport', tabindex: 0, 'aria-label': t('stack:viewport') }, this.layer);
    root.replaceChildren(h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': t('stack:tools') }), this.box);
    this.resize.observe(this.box);
    this.shown = this.load(options).catch(() => undefined);
  }

  static show(root: HTMLElement, options: PreviewOptions): StackPreview {
    return new StackPreview(root, options);
  }

  private async load({ study, series, instances, fetcher }: PreviewOptions): Promise<void> {
    const first = instances[0];
    const sop = str(first, TAG.SOPInstanceUID);
    if (sop === undefined) return;
    const colourJpeg = str(first, TAG.TransferSyntaxUID) === JPEG_BASELINE && (num(first, '00280002') ?? 1) === 3;
    let blob: Blob | undefined;
    let lossy = false;
    if (colourJpeg) {
      try {
        const frame = await fetcher.get({ sop, frame: 1 });
        blob = new Blob([frame.body as BlobPart], { type: 'image/jpeg' });
      } catch (err) {
        if ((err as Error).name === 'AbortError') return;
      }
    }
    if (blob === undefined) {
      const ratio = window.devicePixelRatio || 1;
      const w = Math.max(64, Math.min(2048, Math.round((this.box.clientWidth || 512) * ratio)));
      const hh = Math.max(64, Math.min(2048, Math.round((this.box.clientHeight || 512) * ratio)));
      const url = `${instancePath(study, series, sop)}/frames/1/rendered?quality=${PREVIEW_QUALITY}&viewport=${w},${hh}`;
      const res = await request(url, { what: t('common:what.preview'), headers: { Accept: 'image/jpeg' }, signal: this.controller.signal, priority: 'high' } as RequestInit & { what: string });
      blob = await res.blob();
      lossy = true;
    }
    this.bitmap = await createImageBitmap(blob);
    if (this.controller.signal.aborted) return;
    this.draw();
    this.box.dataset['preview'] = lossy ? 'lossy' : 'original';
    // What the first image on screen was, kept when the full-quality image replaces it (tests, benchmark).
    this.box.dataset['firstImage'] ??= lossy ? 'lossy' : 'original';
    if (lossy) this.layer.append(h('div', { class: 'preview-label', role: 'status', 'data-testid': 'preview-label', text: PREVIEW_LABEL() }));
    // Time to the first image on screen, from navigation start (for the benchmark).
    this.box.dataset['firstImageMs'] ??= performance.now().toFixed(0);
  }

  /** The image, fitted inside the box (aspect kept), as Cornerstone fits it. */
  private draw(): void {
    const bitmap = this.bitmap;
    if (bitmap === undefined || !this.layer.isConnected) return;
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.box.clientWidth * ratio));
    const hh = Math.max(1, Math.round(this.box.clientHeight * ratio));
    this.canvas.width = w;
    this.canvas.height = hh;
    const ctx = this.canvas.getContext('2d');
    if (ctx === null) return;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, w, hh);
    const scale = Math.min(w / bitmap.width, hh / bitmap.height);
    const dw = bitmap.width * scale;
    const dh = bitmap.height * scale;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, (w - dw) / 2, (hh - dh) / 2, dw, dh);
  }

  /** The full-quality image is on screen: the preview and its label go. */
  finish(): void {
    this.box.dataset['fullQualityMs'] ??= performance.now().toFixed(0);
    this.box.dataset['preview'] = 'replaced';
    this.dispose();
  }

  destroy(): void {
    this.controller.abort();
    this.dispose();
  }

  private dispose(): void {
    this.resize.disconnect();
    this.layer.remove();
    this.bitmap?.close();
    this.bitmap = undefined;
  }
}
