/**
 * The phone page's image view: one rendered JPEG at a time, fitted to the screen (device pixels, at
 * most 2× the CSS size so a phone at 3× does not fetch more than it shows), swiped left and right with
 * a finger (or the arrow buttons and keys), pinch-zoomed and panned (a CSS transform, gestures.ts),
 * reset with a double tap. When zoomed past 1.5× the image is fetched again at a larger size.
 * Pointer Events cover touch, pen and mouse alike; the stage takes every touch (`touch-action: none`)
 * so the browser neither scrolls nor zooms the page under the fingers.
 *
 * The images are plain `<img>` GETs: the share cookie carries the credentials; videos are a `<video>`
 * of the rendered resource (the stored bitstream).
 */
import { t } from '../i18n/i18n.js';
import { h } from '../ui/dom.js';
import { clamp, cssOf, IDENTITY, isDoubleTap, isZoomed, pan, pinch, swipeOf, TAP_PX, zoomAt, type Point, type Transform } from './gestures.js';
import { renderedUrl, videoUrl, type SharedImage } from './share-api.js';

/** JPEG quality of the rendered images (a phone screen; PS3.18 §8.3.5.1.3 `quality`). */
export const QUALITY = 80;
/** Device pixels per CSS pixel fetched at most (3× phones get 2×: a third fewer bytes, no visible loss). */
export const MAX_DPR = 2;
/** Largest side fetched when zoomed in. */
export const MAX_ZOOM_FETCH = 2048;

export interface GalleryEvents {
  /** Past the last image of the series (`next`) or before its first (`previous`). */
  onEdge: (direction: 'next' | 'previous') => void;
  /** The first image of the page is on screen (performance mark `share-first-image`). */
  onFirstImage: () => void;
}

export class Gallery {
  readonly element: HTMLElement;
  private readonly stage: HTMLElement;
  private readonly counter: HTMLElement;
  private readonly status: HTMLElement;
  private readonly prevButton: HTMLButtonElement;
  private readonly nextButton: HTMLButtonElement;
  private readonly help: HTMLElement;
  private media: HTMLImageElement | HTMLVideoElement | undefined;
  private images: SharedImage[] = [];
  private index = 0;
  private transform: Transform = IDENTITY;
  private firstShown = false;
  private hiRes = false;
  private readonly pointers = new Map<number, Point>();
  private gesture:
    | { kind: 'one'; from: Point; start: Transform; time: number; moved: boolean }
    | { kind: 'two'; from: [Point, Point]; start: Transform }
    | undefined;
  private lastTap: { at: Point; time: number } | undefined;

  constructor(private readonly events: GalleryEvents) {
    this.stage = h('div', { class: 'stage', id: 'stage', 'data-index': 0, 'data-scale': '1' });
    this.counter = h('span', { class: 'counter', id: 'image-counter', 'aria-live': 'polite' });
    this.status = h('p', { class: 'stage-status', id: 'stage-status', hidden: true });
    this.prevButton = h('button', { type: 'button', class: 'nav prev', id: 'image-prev', text: '‹' });
    this.nextButton = h('button', { type: 'button', class: 'nav next', id: 'image-next', text: '›' });
    this.help = h('p', { class: 'gesture-help muted' });
    this.prevButton.addEventListener('click', () => this.go(-1));
    this.nextButton.addEventListener('click', () => this.go(1));
    this.element = h('section', { class: 'gallery', id: 'gallery' }, this.stage, h('div', { class: 'gallery-bar' }, this.prevButton, this.counter, this.nextButton), this.status, this.help);
    this.stage.tabIndex = 0;
    this.stage.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowRight') this.go(1);
      else if (event.key === 'ArrowLeft') this.go(-1);
      else return;
      event.preventDefault();
    });
    this.stage.addEventListener('pointerdown', (event) => this.down(event));
    this.stage.addEventListener('pointermove', (event) => this.move(event));
    this.stage.addEventListener('pointerup', (event) => this.up(event));
    this.stage.addEventListener('pointercancel', (event) => this.up(event, true));
    this.stage.addEventListener('wheel', (event) => {
      event.preventDefault();
      this.apply(zoomAt(this.transform, this.pointOf(event), event.deltaY < 0 ? 1.2 : 1 / 1.2, this.size()));
      this.maybeHiRes();
    }, { passive: false });
    window.addEventListener('resize', () => this.apply(clamp(this.transform, this.size())));
    this.relabel();
  }

  /** Texts in the current language (after a language switch). */
  relabel(): void {
    this.prevButton.setAttribute('aria-label', t('share:previous'));
    this.nextButton.setAttribute('aria-label', t('share:next'));
    this.help.textContent = t('share:gestures');
    this.stage.setAttribute('aria-label', this.images.length === 0 ? '' : t('share:imageOf', { index: this.index + 1, total: this.images.length }));
    this.updateCounter();
    if (!this.status.hidden && this.status.dataset.key !== undefined) this.status.textContent = t(this.status.dataset.key);
  }

  /** Shows a series' images from `index` (the last one with -1). */
  show(images: SharedImage[], index = 0): void {
    this.images = images;
    this.index = index < 0 ? Math.max(0, images.length - 1) : Math.min(index, Math.max(0, images.length - 1));
    this.display();
  }

  /** Moves by `step` images; past either end tells the page (the next or previous series). */
  go(step: 1 | -1): void {
    const to = this.index + step;
    if (to < 0 || to >= this.images.length) {
      this.apply(IDENTITY, true);
      this.events.onEdge(step > 0 ? 'next' : 'previous');
      return;
    }
    this.index = to;
    this.display();
  }

  private size(): { width: number; height: number } {
    const rect = this.stage.getBoundingClientRect();
    return { width: Math.max(1, rect.width), height: Math.max(1, rect.height) };
  }

  /** Device pixels of the stage, capped at MAX_DPR: the viewport asked of the server. */
  private box(factor = 1): { width: number; height: number } {
    const { width, height } = this.size();
    const dpr = Math.min(MAX_DPR, window.devicePixelRatio || 1) * factor;
    const cap = factor > 1 ? MAX_ZOOM_FETCH : Number.POSITIVE_INFINITY;
    return { width: Math.min(cap, Math.round(width * dpr)), height: Math.min(cap, Math.round(height * dpr)) };
  }

  private setStatus(key: string | undefined): void {
    if (key === undefined) {
      this.status.hidden = true;
      delete this.status.dataset.key;
      return;
    }
    this.status.dataset.key = key;
    this.status.textContent = t(key);
    this.status.hidden = false;
  }

  private updateCounter(): void {
    this.counter.textContent = this.images.length === 0 ? '' : t('share:imageOf', { index: this.index + 1, total: this.images.length });
  }

  private display(): void {
    this.transform = IDENTITY;
    this.hiRes = false;
    this.stage.dataset['index'] = String(this.index);
    this.stage.dataset['scale'] = '1';
    this.updateCounter();
    this.stage.setAttribute('aria-label', t('share:imageOf', { index: this.index + 1, total: this.images.length }));
    const image = this.images[this.index];
    this.media?.remove();
    this.media = undefined;
    if (image === undefined) {
      this.setStatus('share:noImages');
      return;
    }
    this.setStatus(undefined);
    this.stage.classList.add('loading');
    let media: HTMLImageElement | HTMLVideoElement;
    if (image.video) {
      media = h('video', { class: 'media', controls: true, playsinline: true, preload: 'metadata', src: videoUrl(image) });
      media.addEventListener('loadedmetadata', () => this.loaded(media), { once: true });
    } else {
      const img = h('img', { class: 'media', alt: t('share:imageOf', { index: this.index + 1, total: this.images.length }), draggable: 'false', decoding: 'async' });
      img.addEventListener('load', () => this.loaded(img), { once: true });
      img.src = renderedUrl(image, this.box(), QUALITY);
      media = img;
    }
    media.dataset['sop'] = image.sopInstanceUid;
    if (image.frame !== undefined) media.dataset['frame'] = String(image.frame);
    media.addEventListener('error', () => {
      this.stage.classList.remove('loading');
      this.setStatus('share:imageFailed');
    }, { once: true });
    media.style.transform = cssOf(this.transform);
    this.media = media;
    this.stage.append(media);
  }

  private loaded(media: HTMLImageElement | HTMLVideoElement): void {
    if (media !== this.media) return;
    this.stage.classList.remove('loading');
    media.dataset['loaded'] = 'true';
    if (!this.firstShown) {
      this.firstShown = true;
      this.events.onFirstImage();
    }
    this.prefetch();
  }

  /** The neighbours, so a swipe shows its image at once (after the first image: never in its way). */
  private prefetch(): void {
    for (const i of [this.index + 1, this.index - 1]) {
      const image = this.images[i];
      if (image === undefined || image.video) continue;
      const img = new Image();
      img.decoding = 'async';
      img.src = renderedUrl(image, this.box(), QUALITY);
    }
  }

  /** Zoomed past 1.5×: the same image fetched at twice the size, swapped in when it has arrived. */
  private maybeHiRes(): void {
    const image = this.images[this.index];
    const media = this.media;
    if (this.hiRes || image === undefined || image.video || !(media instanceof HTMLImageElement) || this.transform.scale < 1.5) return;
    this.hiRes = true;
    const big = new Image();
    big.decoding = 'async';
    big.addEventListener('load', () => {
      if (this.media === media) media.src = big.src;
    }, { once: true });
    big.src = renderedUrl(image, this.box(2), QUALITY);
  }

  private apply(next: Transform, animate = false): void {
    this.transform = next;
    this.stage.dataset['scale'] = next.scale.toFixed(2);
    if (this.media === undefined) return;
    this.media.classList.toggle('animate', animate);
    this.media.style.transform = cssOf(next);
  }

  private pointOf(event: { clientX: number; clientY: number }): Point {
    const rect = this.stage.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  private down(event: PointerEvent): void {
    if (this.media instanceof HTMLVideoElement && event.target === this.media) return; // the video's own controls
    this.stage.setPointerCapture?.(event.pointerId);
    this.pointers.set(event.pointerId, this.pointOf(event));
    const points = [...this.pointers.values()];
    if (points.length === 1) {
      this.gesture = { kind: 'one', from: points[0]!, start: this.transform, time: event.timeStamp, moved: false };
    } else if (points.length === 2) {
      this.gesture = { kind: 'two', from: [points[0]!, points[1]!], start: this.transform };
    }
  }

  private move(event: PointerEvent): void {
    if (!this.pointers.has(event.pointerId) || this.gesture === undefined) return;
    this.pointers.set(event.pointerId, this.pointOf(event));
    const points = [...this.pointers.values()];
    const stage = this.size();
    if (this.gesture.kind === 'two' && points.length >= 2) {
      this.apply(pinch(this.gesture.start, this.gesture.from, [points[0]!, points[1]!], stage));
      return;
    }
    if (this.gesture.kind === 'one') {
      const at = points[0]!;
      const dx = at.x - this.gesture.from.x;
      const dy = at.y - this.gesture.from.y;
      if (Math.hypot(dx, dy) > TAP_PX) this.gesture.moved = true;
      if (isZoomed(this.gesture.start)) this.apply(pan(this.gesture.start, this.gesture.from, at, stage));
      // At 1×, the image follows the finger sideways: the swipe is seen before it is decided.
      else if (this.media !== undefined) this.media.style.transform = cssOf({ scale: 1, x: dx, y: 0 });
    }
  }

  private up(event: PointerEvent, cancelled = false): void {
    if (!this.pointers.has(event.pointerId)) return;
    const at = this.pointOf(event);
    this.pointers.delete(event.pointerId);
    const gesture = this.gesture;
    if (gesture?.kind === 'two') {
      // One finger left after a pinch: it pans from here; none left: the zoom is kept.
      const rest = [...this.pointers.values()];
      this.gesture = rest.length === 1 ? { kind: 'one', from: rest[0]!, start: this.transform, time: event.timeStamp, moved: true } : undefined;
      this.maybeHiRes();
      return;
    }
    this.gesture = undefined;
    if (gesture === undefined || cancelled) {
      this.apply(this.transform, true);
      return;
    }
    if (!gesture.moved) {
      if (isDoubleTap(this.lastTap, at, event.timeStamp)) {
        this.lastTap = undefined;
        // Double tap: back to the whole image; on the whole image, 2× where tapped.
        this.apply(isZoomed(this.transform) ? IDENTITY : zoomAt(this.transform, at, 2, this.size()), true);
        this.maybeHiRes();
      } else {
        this.lastTap = { at, time: event.timeStamp };
      }
      return;
    }
    if (isZoomed(gesture.start)) return;
    const swipe = swipeOf(gesture.from, at, event.timeStamp - gesture.time);
    if (swipe === undefined) this.apply(IDENTITY, true);
    else this.go(swipe === 'next' ? 1 : -1);
  }
}
