/**
 * A transparent canvas over a viewport on which detections are drawn in screen space (so lines stay
 * 2 px whatever the zoom). The drawn boxes are also published in `data-boxes` (CSS pixels, relative to
 * the canvas) for tests and assistive tooling.
 */
import type { SrDetection } from './sr-detections.js';

export const OVERLAY_COLOUR = '#ffff00';

export class OverlayCanvas {
  readonly canvas: HTMLCanvasElement;

  constructor(parent: HTMLElement) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'overlay-canvas';
    this.canvas.setAttribute('aria-hidden', 'true');
    parent.appendChild(this.canvas);
  }

  draw(detections: SrDetection[], toScreen: (x: number, y: number) => [number, number] | undefined): void {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const ctx = this.canvas.getContext('2d');
    if (ctx === null) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, rect.width, rect.height);
    const published: Array<{ x: number; y: number; width: number; height: number; label: string }> = [];
    ctx.lineWidth = 2;
    ctx.strokeStyle = OVERLAY_COLOUR;
    ctx.fillStyle = OVERLAY_COLOUR;
    ctx.font = '13px system-ui, sans-serif';
    for (const d of detections) {
      const screen: Array<[number, number]> = [];
      for (let i = 0; i + 1 < d.points.length; i += 2) {
        const p = toScreen(d.points[i] as number, d.points[i + 1] as number);
        if (p !== undefined) screen.push(p);
      }
      if (screen.length === 0) continue;
      ctx.beginPath();
      if (d.graphicType === 'POINT' || screen.length === 1) {
        const [x, y] = screen[0] as [number, number];
        ctx.arc(x, y, 4, 0, Math.PI * 2);
      } else {
        screen.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
        if (d.graphicType === 'POLYGON') ctx.closePath();
      }
      ctx.stroke();
      const xs = screen.map((p) => p[0]);
      const ys = screen.map((p) => p[1]);
      const box = { x: Math.min(...xs), y: Math.min(...ys), width: Math.max(...xs) - Math.min(...xs), height: Math.max(...ys) - Math.min(...ys) };
      const text = d.score === undefined ? d.label : `${d.label} ${(d.score * 100).toFixed(0)}%`;
      const ty = box.y > 16 ? box.y - 4 : box.y + box.height + 14;
      ctx.lineWidth = 3;
      ctx.strokeStyle = 'rgba(0,0,0,0.8)';
      ctx.strokeText(text, box.x, ty);
      ctx.fillText(text, box.x, ty);
      ctx.lineWidth = 2;
      ctx.strokeStyle = OVERLAY_COLOUR;
      published.push({ ...box, label: text });
    }
    this.canvas.dataset['boxes'] = JSON.stringify(published);
  }
}
