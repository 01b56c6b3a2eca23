/**
 * Whole-slide viewer: a tiled 2D-canvas map viewer over the pyramid, tiles fetched as WADO-RS frames.
 *
 * Why not Cornerstone3D's WSIViewport: in 5.x it delegates to dicom-microscopy-viewer (OpenLayers,
 * ~38 MB installed, its own DICOMweb client and request scheduling), which gives us no hold on the
 * order of tile requests, on cancelling off-screen ones, or on drawing our own annotation layers
 * efficiently. A canvas map viewer is a few hundred lines: the coarsest level is fetched first (the
 * whole slide appears at once), then the visible tiles of the level matching the zoom, nearest the
 * centre first; tiles are cached (LRU) and requests for tiles that left the screen are aborted.
 * Coarser cached levels stay drawn under finer ones, so zooming never shows holes.
 */
import { seriesMetadata, retrieveInstance } from '../dicomweb/client.js';
import { str, TAG, values, type DicomJson } from '../dicomweb/dicom-json.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { Display } from '../viewer/display.js';
import { parseAnnotations, type Annotations } from './annotations.js';
import { buildPyramid, levelFor, niceLength, tileKey, type Level, type TileRef } from './pyramid.js';
import { analysisJob, listSlideModels, startSlideAnalysis } from '../ai/ai-client.js';
import { addSlideRegion, drawnOnSlides, onDrawnOnSlides, slideRegionDrawingOffered } from './slide-regions.js';
import { TileLoader } from './tile-loader.js';

export interface WsiOptions {
  study: string;
  series: string;
  instances: DicomJson[];
  seriesList: DicomJson[];
}

const ANNOTATION_COLOURS = ['#00e5ff', '#ff4081', '#76ff03', '#ffea00', '#e040fb', '#ff9100'];
/** Regions drawn with "Draw region" (slide-regions.ts), as the consult pages draw them. */
const REGION_COLOUR = '#ffd400';
/** A press moving less than this (CSS px) before release is a click (a corner), not a pan. */
const CLICK_SLOP = 5;

export const WsiDisplay = {
  async create(root: HTMLElement, options: WsiOptions): Promise<Display> {
    const levels = buildPyramid(options.instances);
    const base = levels[0];
    if (base === undefined) {
      root.replaceChildren(errorBox(t('wsi:noPyramid')));
      return { destroy: () => undefined };
    }
    const canvas = h('canvas', { class: 'wsi-canvas', tabindex: 0, 'aria-label': t('wsi:canvas') });
    const info = h('div', { class: 'info-overlay', 'data-testid': 'info' });
    const scaleBar = h('div', { class: 'scale-bar', 'data-testid': 'scale-bar' });
    const status = h('div', { class: 'display-status', role: 'status', 'aria-live': 'polite' });
    const box = h('div', { class: 'viewport wsi' }, canvas, info, scaleBar);
    const zoomIn = h('button', { type: 'button', text: t('wsi:zoomIn'), 'data-action': 'zoom-in' });
    const zoomOut = h('button', { type: 'button', text: t('wsi:zoomOut'), 'data-action': 'zoom-out' });
    const fit = h('button', { type: 'button', text: t('wsi:fit'), 'data-action': 'fit' });
    const annotationToggles = h('span', { class: 'annotation-toggles' });
    // "Analyse slide": the models that can run on slides (input.pixelSpacingMm), offered once listed.
    const analyseModel = h('select', { 'aria-label': t('wsi:analyseModel'), 'data-action': 'analyse-model', hidden: true });
    const analyse = h('button', { type: 'button', text: t('wsi:analyse'), disabled: true, title: t('wsi:notYet'), 'data-action': 'analyse' });
    // Region drawing, when the page asks for it (the consult page): a toggle.
    const drawToggle = slideRegionDrawingOffered()
      ? h('button', { type: 'button', text: t('wsi:drawRegion'), title: t('wsi:drawRegionHelp'), 'aria-pressed': 'false', 'data-action': 'draw-region' })
      : undefined;
    const drawHint = drawToggle === undefined ? undefined : h('span', { class: 'muted draw-hint', hidden: true, role: 'status', text: t('wsi:drawRegionHelp') });
    root.replaceChildren(h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': t('wsi:tools') }, zoomIn, zoomOut, fit, drawToggle, drawHint, annotationToggles, analyseModel, analyse), box, status);

    const loader = new TileLoader(options.study, options.series);
    // The overview: the coarsest level still about a screen tile in size (1×1-pixel levels show nothing).
    let overview = levels.length - 1;
    while (overview > 0 && Math.max((levels[overview] as Level).width, (levels[overview] as Level).height) < 256) overview -= 1;
    const annotationLayers: Array<{ annotations: Annotations; visible: boolean }> = [];
    // Region drawing: the corners placed so far and the pointer (base pixels), while the mode is on.
    const drawState = { on: false, corners: [] as number[], pointer: undefined as { x: number; y: number } | undefined };
    // View: centre in base pixels, scale = CSS px per base pixel.
    const view = { cx: base.width / 2, cy: base.height / 2, scale: 1 };
    let fitted = false;
    let frameRequested = false;
    let complete = false;

    const size = () => ({ w: canvas.clientWidth || 1, h: canvas.clientHeight || 1 });
    const fitView = () => {
      const { w, h: hh } = size();
      view.scale = Math.min(w / base.width, hh / base.height) * 0.95;
      view.cx = base.width / 2;
      view.cy = base.height / 2;
    };
    const clampScale = (s: number) => {
      const { w, h: hh } = size();
      const min = Math.min(w / base.width, hh / base.height) * 0.25;
      return Math.max(min, Math.min(s, 8 * (window.devicePixelRatio || 1)));
    };

    /**
     * Tiles of `level` intersecting the screen (`margin` 0), or the screen grown by `margin` screens on
     * every side, nearest the centre first.
     */
    const visibleTiles = (level: Level, margin = 0): Array<{ ref: TileRef; c: number; r: number }> => {
      const { w, h: hh } = size();
      const halfW = (w * (0.5 + margin)) / view.scale;
      const halfH = (hh * (0.5 + margin)) / view.scale;
      const left = (view.cx - halfW) / level.downsample;
      const top = (view.cy - halfH) / level.downsample;
      const right = (view.cx + halfW) / level.downsample;
      const bottom = (view.cy + halfH) / level.downsample;
      const c0 = Math.max(0, Math.floor(left / level.tileWidth));
      const r0 = Math.max(0, Math.floor(top / level.tileHeight));
      const c1 = Math.min(level.tilesAcross - 1, Math.floor(right / level.tileWidth));
      const r1 = Math.min(level.tilesDown - 1, Math.floor(bottom / level.tileHeight));
      const ccx = view.cx / level.downsample / level.tileWidth;
      const ccy = view.cy / level.downsample / level.tileHeight;
      const out: Array<{ ref: TileRef; c: number; r: number; d: number }> = [];
      for (let r = r0; r <= r1; r += 1) {
        for (let c = c0; c <= c1; c += 1) {
          const ref = level.tiles.get(tileKey(c, r));
          if (ref !== undefined) out.push({ ref, c, r, d: (c + 0.5 - ccx) ** 2 + (r + 0.5 - ccy) ** 2 });
        }
      }
      return out.sort((a, b) => a.d - b.d);
    };

    const dpr = () => window.devicePixelRatio || 1;
    const target = () => levelFor(levels, view.scale * dpr());

    const draw = () => {
      frameRequested = false;
      const started = performance.now();
      const { w, h: hh } = size();
      const ratio = dpr();
      if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(hh * ratio)) {
        canvas.width = Math.round(w * ratio);
        canvas.height = Math.round(hh * ratio);
      }
      if (!fitted) {
        fitView();
        fitted = true;
      }
      const ctx = canvas.getContext('2d');
      if (ctx === null) return;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      // base pixel → device pixel
      const s = view.scale * ratio;
      const ox = canvas.width / 2 - view.cx * s;
      const oy = canvas.height / 2 - view.cy * s;
      ctx.save();
      ctx.beginPath();
      ctx.rect(ox, oy, base.width * s, base.height * s);
      ctx.clip();
      ctx.fillStyle = '#fff';
      ctx.fillRect(ox, oy, base.width * s, base.height * s);
      ctx.imageSmoothingEnabled = true;
      const t = target();
      // Coarsest first, the target level last: finer tiles cover coarser ones.
      for (let li = Math.max(overview, t); li >= t; li -= 1) {
        const level = levels[li] as Level;
        for (const { ref, c, r } of visibleTiles(level)) {
          const bitmap = loader.get(ref);
          if (bitmap === undefined) continue;
          const x = c * level.tileWidth * level.downsample;
          const y = r * level.tileHeight * level.downsample;
          // Edge tiles may be padded: draw only the part inside the matrix.
          const tw = Math.min(level.tileWidth, level.width - c * level.tileWidth);
          const th = Math.min(level.tileHeight, level.height - r * level.tileHeight);
          ctx.drawImage(bitmap, 0, 0, tw, th, ox + x * s, oy + y * s, tw * level.downsample * s + 0.5, th * level.downsample * s + 0.5);
        }
      }
      ctx.restore();
      paintAnnotations(ctx, s, ox, oy);
      paintRegions(ctx, s, ox, oy);
      updateInfo(t);
      // The visible tiles of the target level first, nearest the centre first: they make the screen. Once
      // they are here, the coarsest level whole, drawn under finer levels wherever their tiles are still
      // missing (zoom, pan). (Intermediate levels are drawn when cached but not fetched.)
      const screen = t === overview ? [...(levels[overview] as Level).tiles.values()] : visibleTiles(levels[t] as Level).map((v) => v.ref);
      const coarse = t < overview ? [...(levels[overview] as Level).tiles.values()] : [];
      // The next pan: tiles up to one screen around this one, nearest first, fetched at low priority
      // once the screen is complete and only as many as the measured rate allows (tile-loader.ts).
      const onScreen = new Set(screen.map((ref) => `${ref.sop}:${ref.frame}`));
      const around = t === overview ? [] : visibleTiles(levels[t] as Level, 1).filter((v) => !onScreen.has(`${v.ref.sop}:${v.ref.frame}`)).map((v) => v.ref);
      loader.want(screen, coarse, around);
      const screenDone = loader.counters.loaded > 0 && screen.every((ref) => loader.settled(ref));
      // After want(): it is what aborts the requests of tiles that left the screen. Set before it, the
      // counters stayed stale until the next draw, which never comes when every wanted tile is cached.
      box.dataset['pending'] = String(loader.pending);
      box.dataset['requested'] = String(loader.counters.requested);
      box.dataset['loaded'] = String(loader.counters.loaded);
      box.dataset['aborted'] = String(loader.counters.aborted);
      // Duration of this frame's drawing (tiles + annotations), for the benchmark.
      box.dataset['drawMs'] = (performance.now() - started).toFixed(2);
      if (screenDone && box.dataset['firstScreenMs'] === undefined) {
        // Time to the first complete screen (every visible tile of the level matching the zoom drawn),
        // from navigation start (for the benchmark).
        box.dataset['firstScreenMs'] = performance.now().toFixed(0);
      }
      // Every time the screen becomes complete after a move (the benchmark times a pan with it).
      if (screenDone && !complete) {
        complete = true;
        box.dataset['completeMs'] = performance.now().toFixed(0);
        box.dataset['completeCount'] = String(Number(box.dataset['completeCount'] ?? '0') + 1);
      } else if (!screenDone) complete = false;
      box.dataset['prefetched'] = String(loader.counters.prefetched);
    };

    /**
     * Annotations are drawn into a cache canvas covering the screen plus half a screen on each side, at
     * the current scale; panning only copies from it, and it is redrawn when the view leaves it, the
     * scale changes (while zooming, the stale cache is shown scaled until the zoom pauses) or a layer
     * is toggled. Thousands of polygons then cost one redraw per zoom step, not one per frame.
     */
    let annCache: { canvas: HTMLCanvasElement; s: number; x0: number; y0: number; w: number; h: number; version: number } | undefined;
    let annVersion = 0;
    let lastZoom = 0;
    let settleTimer: ReturnType<typeof setTimeout> | undefined;
    const paintAnnotations = (ctx: CanvasRenderingContext2D, s: number, ox: number, oy: number) => {
      if (!annotationLayers.some((l) => l.visible)) return;
      const W = ctx.canvas.width;
      const H = ctx.canvas.height;
      const vx = -ox;
      const vy = -oy;
      const c = annCache;
      const fresh = c !== undefined && c.version === annVersion;
      if (fresh && c.s === s && vx >= c.x0 && vy >= c.y0 && vx + W <= c.x0 + c.w && vy + H <= c.y0 + c.h) {
        ctx.drawImage(c.canvas, vx - c.x0, vy - c.y0, W, H, 0, 0, W, H);
        return;
      }
      if (fresh && c.s !== s && performance.now() - lastZoom < 250) {
        const k = s / c.s;
        ctx.drawImage(c.canvas, ox + c.x0 * k, oy + c.y0 * k, c.w * k, c.h * k);
        clearTimeout(settleTimer);
        settleTimer = setTimeout(schedule, 260);
        return;
      }
      const canvas2 = c?.canvas ?? document.createElement('canvas');
      const next = { canvas: canvas2, s, x0: Math.round(vx - W / 2), y0: Math.round(vy - H / 2), w: W * 2, h: H * 2, version: annVersion };
      canvas2.width = next.w;
      canvas2.height = next.h;
      const cctx = canvas2.getContext('2d');
      if (cctx === null) return;
      cctx.clearRect(0, 0, next.w, next.h);
      drawAnnotations(cctx, s, -next.x0, -next.y0);
      annCache = next;
      ctx.drawImage(canvas2, vx - next.x0, vy - next.y0, W, H, 0, 0, W, H);
    };

    const drawAnnotations = (ctx: CanvasRenderingContext2D, s: number, ox: number, oy: number) => {
      const ratio = dpr();
      annotationLayers.forEach((layer, li) => {
        if (!layer.visible) return;
        const colour = ANNOTATION_COLOURS[li % ANNOTATION_COLOURS.length] as string;
        ctx.strokeStyle = colour;
        ctx.fillStyle = colour;
        // One device pixel: the rasteriser's fast hairline path.
        ctx.lineWidth = ratio;
        for (const group of layer.annotations.groups) {
          const xy = group.coordinates;
          const n = xy.length / 2;
          if (group.graphicType === 'POINT') {
            const r = 3 * ratio;
            ctx.beginPath();
            for (let i = 0; i < n; i += 1) {
              const x = ox + (xy[i * 2] as number) * s;
              const y = oy + (xy[i * 2 + 1] as number) * s;
              if (x < -r || y < -r || x > ctx.canvas.width + r || y > ctx.canvas.height + r) continue;
              ctx.moveTo(x + r, y);
              ctx.arc(x, y, r, 0, Math.PI * 2);
            }
            ctx.fill();
            continue;
          }
          // One path for the whole group: thousands of primitives are one stroke call.
          ctx.beginPath();
          const closed = group.graphicType !== 'POLYLINE';
          group.starts.forEach((start, pi) => {
            const end = group.starts[pi + 1] ?? n;
            if (group.graphicType === 'ELLIPSE' && end - start === 4) {
              // Endpoints of the major then the minor axis.
              const p = (k: number) => [ox + (xy[(start + k) * 2] as number) * s, oy + (xy[(start + k) * 2 + 1] as number) * s] as const;
              const [a0, a1, b0, b1] = [p(0), p(1), p(2), p(3)];
              const cx = (a0[0] + a1[0]) / 2;
              const cy = (a0[1] + a1[1]) / 2;
              const rx = Math.hypot(a1[0] - a0[0], a1[1] - a0[1]) / 2;
              const ry = Math.hypot(b1[0] - b0[0], b1[1] - b0[1]) / 2;
              ctx.moveTo(cx + rx, cy);
              ctx.ellipse(cx, cy, rx, ry, Math.atan2(a1[1] - a0[1], a1[0] - a0[0]), 0, Math.PI * 2);
              return;
            }
            for (let i = start; i < end; i += 1) {
              const x = ox + (xy[i * 2] as number) * s;
              const y = oy + (xy[i * 2 + 1] as number) * s;
              if (i === start) ctx.moveTo(x, y);
              else ctx.lineTo(x, y);
            }
            if (closed) ctx.closePath();
          });
          ctx.stroke();
        }
      });
    };

    /** The regions drawn on this slide, and the one being drawn (its corners, and a line to the pointer). */
    const paintRegions = (ctx: CanvasRenderingContext2D, s: number, ox: number, oy: number) => {
      const mine = drawnOnSlides().filter((r) => r.series === options.series);
      box.dataset['regions'] = String(mine.length);
      if (mine.length === 0 && drawState.corners.length === 0) return;
      const ratio = dpr();
      const path = (xy: readonly number[]) => {
        ctx.beginPath();
        for (let i = 0; i + 1 < xy.length; i += 2) {
          const x = ox + (xy[i] as number) * s;
          const y = oy + (xy[i + 1] as number) * s;
          if (i === 0) ctx.moveTo(x, y);
          else ctx.lineTo(x, y);
        }
      };
      ctx.save();
      ctx.strokeStyle = REGION_COLOUR;
      ctx.lineWidth = 2 * ratio;
      ctx.fillStyle = 'rgba(255, 212, 0, 0.15)';
      for (const region of mine) {
        path(region.points);
        ctx.closePath();
        ctx.fill();
        ctx.stroke();
      }
      if (drawState.corners.length > 0) {
        const pointer = drawState.pointer;
        path(pointer === undefined ? drawState.corners : [...drawState.corners, pointer.x, pointer.y]);
        ctx.setLineDash([6 * ratio, 4 * ratio]);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = REGION_COLOUR;
        for (let i = 0; i + 1 < drawState.corners.length; i += 2) {
          ctx.beginPath();
          ctx.arc(ox + (drawState.corners[i] as number) * s, oy + (drawState.corners[i + 1] as number) * s, 3 * ratio, 0, Math.PI * 2);
          ctx.fill();
        }
      }
      ctx.restore();
    };

    const updateInfo = (shown: number) => {
      const level = levels[shown] as Level;
      const spacing = base.pixelSpacing;
      info.replaceChildren(
        h('div', { text: t('wsi:slide', { width: base.width, height: base.height, levels: levels.length }) }),
        h('div', { text: t('wsi:level', { level: shown + 1, levels: levels.length, width: level.width, height: level.height, downsample: level.downsample.toFixed(level.downsample < 10 ? 1 : 0) }) }),
        h('div', { text: t('wsi:zoom', { percent: (view.scale * 100).toFixed(view.scale < 0.1 ? 2 : 0) }) }),
        ...(loader.reencoded ? [h('div', { 'data-testid': 'tiles-lossy', text: t('wsi:lossy') })] : []),
      );
      box.dataset['level'] = String(shown);
      box.dataset['levelWidth'] = String(level.width);
      if (spacing === undefined) {
        scaleBar.replaceChildren(h('span', { text: t('wsi:noSpacing') }));
        return;
      }
      // µm per CSS px, along columns.
      const umPerPx = (spacing[1] * 1000) / view.scale;
      const um = niceLength(umPerPx * 150);
      const px = um / umPerPx;
      scaleBar.replaceChildren(h('div', { style: `width:${px.toFixed(1)}px` }), h('span', { text: um >= 1000 ? `${um / 1000} mm` : `${um} µm` }));
      scaleBar.dataset['um'] = String(um);
      scaleBar.dataset['px'] = px.toFixed(2);
    };

    const schedule = () => {
      if (frameRequested) return;
      frameRequested = true;
      requestAnimationFrame(draw);
    };
    loader.onLoaded = schedule;
    loader.onError = (message) => status.replaceChildren(errorBox(message));

    const zoomAt = (factor: number, sx?: number, sy?: number) => {
      const { w, h: hh } = size();
      const px = sx ?? w / 2;
      const py = sy ?? hh / 2;
      // Keep the base pixel under (px, py) in place.
      const bx = view.cx + (px - w / 2) / view.scale;
      const by = view.cy + (py - hh / 2) / view.scale;
      view.scale = clampScale(view.scale * factor);
      lastZoom = performance.now();
      view.cx = bx - (px - w / 2) / view.scale;
      view.cy = by - (py - hh / 2) / view.scale;
      schedule();
    };
    canvas.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const r = canvas.getBoundingClientRect();
        zoomAt(Math.exp(-e.deltaY / 300), e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false },
    );
    // A page point → base pixels (the total pixel matrix of level 0), kept within the slide.
    const toBase = (clientX: number, clientY: number) => {
      const r = canvas.getBoundingClientRect();
      const { w, h: hh } = size();
      const round = (v: number, max: number) => Math.round(Math.min(max, Math.max(0, v)) * 100) / 100;
      return { x: round(view.cx + (clientX - r.left - w / 2) / view.scale, base.width), y: round(view.cy + (clientY - r.top - hh / 2) / view.scale, base.height) };
    };
    let drag: { x: number; y: number } | undefined;
    // Where a press began (page and base pixels): a release near it places a corner there.
    let press: { clientX: number; clientY: number; at: { x: number; y: number } } | undefined;
    canvas.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY };
      press = { clientX: e.clientX, clientY: e.clientY, at: toBase(e.clientX, e.clientY) };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (drawState.on) {
        drawState.pointer = toBase(e.clientX, e.clientY);
        if (drawState.corners.length > 0) schedule();
      }
      if (drag === undefined) return;
      view.cx -= (e.clientX - drag.x) / view.scale;
      view.cy -= (e.clientY - drag.y) / view.scale;
      drag = { x: e.clientX, y: e.clientY };
      schedule();
    });
    canvas.addEventListener('pointerup', () => (drag = undefined));
    canvas.addEventListener('keydown', (e) => {
      const step = 80 / view.scale;
      if (e.key === 'ArrowLeft') view.cx -= step;
      else if (e.key === 'ArrowRight') view.cx += step;
      else if (e.key === 'ArrowUp') view.cy -= step;
      else if (e.key === 'ArrowDown') view.cy += step;
      else if (e.key === '+' || e.key === '=') return zoomAt(1.5);
      else if (e.key === '-') return zoomAt(1 / 1.5);
      else if (e.key === '0' || e.key === 'r' || e.key === 'R') fitView();
      else return;
      e.preventDefault();
      schedule();
    });
    // Region drawing: a click places a corner (a drag still pans), a double-click or Enter closes the
    // polygon (three corners at least), Backspace takes the last corner back, Escape drops the polygon
    // (and, with none begun, leaves the mode).
    const setDrawing = (on: boolean) => {
      drawState.on = on;
      drawState.corners = [];
      drawState.pointer = undefined;
      canvas.style.cursor = on ? 'crosshair' : '';
      box.dataset['drawing'] = String(on);
      drawToggle?.setAttribute('aria-pressed', String(on));
      drawToggle?.classList.toggle('active', on);
      if (drawHint !== undefined) drawHint.hidden = !on;
      schedule();
    };
    const closeRegion = () => {
      if (drawState.corners.length >= 6) {
        const sop = base.instances[0];
        if (sop !== undefined) addSlideRegion({ series: options.series, sop, points: drawState.corners });
      }
      drawState.corners = [];
      schedule();
    };
    drawToggle?.addEventListener('click', () => {
      setDrawing(!drawState.on);
      canvas.focus();
    });
    canvas.addEventListener('click', (e) => {
      const p = press;
      if (!drawState.on || p === undefined || Math.hypot(e.clientX - p.clientX, e.clientY - p.clientY) >= CLICK_SLOP) return;
      // The second click of a double-click closes (dblclick below): its corner is the first click's.
      if (e.detail > 1) return;
      const last = drawState.corners.length;
      if (last >= 2 && drawState.corners[last - 2] === p.at.x && drawState.corners[last - 1] === p.at.y) return;
      drawState.corners.push(p.at.x, p.at.y);
      schedule();
    });
    canvas.addEventListener('dblclick', (e) => {
      if (!drawState.on) return;
      e.preventDefault();
      closeRegion();
    });
    canvas.addEventListener('keydown', (e) => {
      if (!drawState.on) return;
      if (e.key === 'Enter') closeRegion();
      else if (e.key === 'Backspace') {
        drawState.corners.splice(-2, 2);
        schedule();
      } else if (e.key === 'Escape') {
        if (drawState.corners.length > 0) {
          drawState.corners = [];
          schedule();
        } else setDrawing(false);
      } else return;
      e.preventDefault();
      e.stopPropagation();
    });
    // Regions removed (or drawn) elsewhere: the page's list.
    const stopRegions = onDrawnOnSlides(schedule);
    zoomIn.addEventListener('click', () => zoomAt(2));
    zoomOut.addEventListener('click', () => zoomAt(0.5));
    fit.addEventListener('click', () => {
      fitView();
      schedule();
    });
    const resize = new ResizeObserver(schedule);
    resize.observe(canvas);

    /** Retrieves one Bulk Annotations instance and draws it as a layer with its own toggle (once per SOP). */
    const addAnnotationLayer = async (annSeries: string, sop: string): Promise<number> => {
      const known = annotationLayers.find((l) => l.annotations.sop === sop);
      if (known !== undefined) return known.annotations.groups.reduce((n, g) => n + g.count, 0);
      const annotations = parseAnnotations(await retrieveInstance(options.study, annSeries, sop));
      if (annotations.coordinateType !== '2D') {
        status.append(errorBox(t('wsi:annotations3d')));
        return 0;
      }
      const layer = { annotations, visible: true };
      annotationLayers.push(layer);
      annVersion += 1;
      const colour = ANNOTATION_COLOURS[(annotationLayers.length - 1) % ANNOTATION_COLOURS.length] as string;
      const total = annotations.groups.reduce((n, g) => n + g.count, 0);
      const cb = h('input', { type: 'checkbox', checked: true, 'data-annotation': sop });
      cb.addEventListener('change', () => {
        layer.visible = cb.checked;
        annVersion += 1;
        schedule();
      });
      annotationToggles.append(h('label', { style: `color:${colour}` }, cb, ` ${annotations.groups.map((g) => g.label).join(', ')} (${total})`));
      box.dataset['annotations'] = String(annotationLayers.reduce((n, l) => n + l.annotations.groups.reduce((m, g) => m + g.count, 0), 0));
      schedule();
      return total;
    };

    // "Analyse slide": start a job with the chosen model, follow its progress, then draw its result
    // (a Bulk Annotations instance: points for detectors, region POLYGONs for tile classifiers).
    let analysing = false;
    void listSlideModels()
      .then((models) => {
        if (models.length === 0) {
          analyse.title = t('wsi:noSlideModels');
          return;
        }
        analyseModel.replaceChildren(...models.map((m) => h('option', { value: m.id, text: `${m.id} ${m.version}` })));
        analyseModel.hidden = false;
        analyse.disabled = false;
        analyse.title = '';
      })
      .catch((err: unknown) => {
        analyse.title = messageOf(err);
      });
    analyse.addEventListener('click', () => {
      const model = analyseModel.value;
      if (analysing || model === '') return;
      analysing = true;
      analyse.disabled = true;
      const progress = h('span', { class: 'muted', 'data-testid': 'analysis-progress', text: t('wsi:analysing', { model, percent: 0 }) });
      status.append(progress);
      void (async () => {
        try {
          let job = await startSlideAnalysis(options.study, options.series, model);
          while (!['completed', 'failed', 'cancelled'].includes(job.state)) {
            progress.textContent = t('wsi:analysing', { model, percent: Math.round(job.progress.fraction * 100) });
            await new Promise((resolve) => setTimeout(resolve, 1000));
            job = await analysisJob(job.id);
          }
          if (job.state !== 'completed' || job.result === null) {
            progress.replaceWith(errorBox(t('wsi:analysisFailed', { reason: job.reason ?? job.state })));
            return;
          }
          const count = await addAnnotationLayer(job.result.seriesInstanceUid, job.result.sopInstanceUid);
          progress.textContent = t('wsi:analysed', { model, count });
        } catch (err) {
          progress.replaceWith(errorBox(messageOf(err)));
        } finally {
          analysing = false;
          analyse.disabled = false;
        }
      })();
    });

    // Bulk annotations of this slide: ANN series of the study that reference it (or, when they name no
    // series, share its container / frame of reference).
    void (async () => {
      const container = str(options.instances[0], TAG.ContainerIdentifier);
      for (const s of options.seriesList.filter((x) => values(x, TAG.Modality).includes('ANN'))) {
        const annSeries = str(s, TAG.SeriesInstanceUID);
        if (annSeries === undefined) continue;
        try {
          for (const inst of await seriesMetadata(options.study, annSeries)) {
            const sop = str(inst, TAG.SOPInstanceUID);
            if (sop === undefined) continue;
            const refs = values(inst, TAG.ReferencedSeriesSequence).map((r) => str(r as DicomJson, TAG.SeriesInstanceUID));
            const related = refs.length > 0 ? refs.includes(options.series) : str(inst, TAG.ContainerIdentifier) === container;
            if (!related) continue;
            await addAnnotationLayer(annSeries, sop);
          }
        } catch (err) {
          status.append(errorBox(t('wsi:annotationsFailed', { message: messageOf(err) })));
        }
      }
      box.dataset['annotationsDone'] = 'true';
    })();

    schedule();
    canvas.focus();
    // Expose the view for tests and the benchmark (no patient data: geometry and counters).
    const panBy = (dx: number, dy: number) => {
      complete = false;
      view.cx += dx / view.scale;
      view.cy += dy / view.scale;
      schedule();
    };
    // Base pixels → CSS px in the canvas (tests place region corners with it).
    const toCanvas = (x: number, y: number) => {
      const { w, h: hh } = size();
      return { x: w / 2 + (x - view.cx) * view.scale, y: hh / 2 + (y - view.cy) * view.scale };
    };
    (box as HTMLElement & { wsiView?: unknown }).wsiView = { view, levels: levels.length, zoomAt, panBy, toCanvas, base: { width: base.width, height: base.height, sop: base.instances[0] } };
    return {
      destroy() {
        stopRegions();
        resize.disconnect();
        loader.destroy();
      },
    };
  },
};
