/**
 * The only module of the viewer that imports Cornerstone3D. The UI drives a stack through the small
 * `StackView` command surface below (load, scroll, window presets, tools, cine, reset) and reads its
 * state and an image→screen transform for overlays; nothing else knows about Cornerstone.
 *
 * Images are WADO-RS frames (`wadors:` image ids) decoded by @cornerstonejs/dicom-image-loader in web
 * workers; metadata comes from WADO-RS series metadata. The frames themselves are fetched by the
 * series' FrameFetcher (dicomweb/frames.ts: full fidelity in the fewest bytes, measured transfer rate,
 * prefetch around the shown image within what the link moves, cancelled when the user moves on): the
 * `wadors` loader is ours, and hands the bytes to the image loader's `createImage` for decoding.
 */
import { Enums, RenderingEngine, eventTarget, imageLoader, init as coreInit, metaData, utilities, type Types } from '@cornerstonejs/core';
import { createImage, init as loaderInit, wadors } from '@cornerstonejs/dicom-image-loader';
import * as tools from '@cornerstonejs/tools';
import { authHeaders } from '../auth/http.js';
import { DICOMWEB_ROOT } from '../dicomweb/client.js';
import { num, pixelSpacing, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import type { FrameFetcher, FrameRef } from '../dicomweb/frames.js';
import { t } from '../i18n/i18n.js';

/** Image id → the fetcher and frame it stands for (set by StackView.load, removed by destroy). */
const frameSources = new Map<string, { fetcher: FrameFetcher; ref: FrameRef }>();

/** The `wadors` image loader: bytes from the series' FrameFetcher, decoded by the image loader. */
function loadFrame(imageId: string, options: Record<string, unknown> = {}): ReturnType<Types.ImageLoaderFn> {
  const source = frameSources.get(imageId);
  if (source === undefined) return wadors.loadImage(imageId, options) as ReturnType<Types.ImageLoaderFn>;
  const promise = source.fetcher.get(source.ref).then(async (frame) => {
    const image = (await createImage(imageId, frame.body, frame.transferSyntax, options as never)) as Types.IImage & { transferSyntaxUID?: string };
    image.transferSyntaxUID = frame.transferSyntax;
    image.imageQualityStatus = Enums.ImageQualityStatus.FULL_RESOLUTION;
    return image;
  });
  return { promise };
}

let initialised: Promise<void> | undefined;

export function initImaging(): Promise<void> {
  initialised ??= (async () => {
    await coreInit();
    loaderInit({
      maxWebWorkers: Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2))),
      // The loader fetches WADO-RS frames itself (XHR): the current access token on each request, so a
      // renewed token is used from the next frame on (nothing when sign-in is off).
      beforeSend: () => authHeaders(),
    });
    // After the image loader's own registration: frames come through the series' FrameFetcher.
    imageLoader.registerImageLoader('wadors', loadFrame);
    tools.init();
    for (const Tool of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool, tools.LengthTool, tools.PlanarFreehandROITool]) tools.addTool(Tool);
  })();
  return initialised;
}

/** Tools of the left mouse button; `length` and `area` draw measurements (see `StackView.measurements`). */
export type ToolName = 'windowLevel' | 'pan' | 'zoom' | 'length' | 'area';
const TOOL_NAMES: Record<ToolName, string> = {
  windowLevel: tools.WindowLevelTool.toolName,
  pan: tools.PanTool.toolName,
  zoom: tools.ZoomTool.toolName,
  length: tools.LengthTool.toolName,
  // A freehand outline, closed when the button is released: a polygon, as the report holds an area.
  area: tools.PlanarFreehandROITool.toolName,
};
const MEASURING: Record<string, 'length' | 'area'> = { [TOOL_NAMES.length]: 'length', [TOOL_NAMES.area]: 'area' };
const MEASUREMENT_EVENTS = [tools.Enums.Events.ANNOTATION_COMPLETED, tools.Enums.Events.ANNOTATION_MODIFIED, tools.Enums.Events.ANNOTATION_REMOVED];

/**
 * A measurement drawn on an image of the stack: its points in image pixels x1,y1,x2,y2,… (PS3.3
 * C.18.6.1.1: 0,0 is the top-left corner of the top-left pixel): the two ends of a length, the outline
 * of an area (a closed polygon, first point not repeated). Sizes are computed from these and the
 * image's pixel spacing (reports/measurement-report.ts), as the measurement tools show them.
 */
export interface StackMeasurement {
  uid: string;
  type: 'length' | 'area';
  sop: string;
  frame: number;
  points: number[];
}

/** CT window presets (center, width) in HU. */
export const CT_PRESETS: Record<string, { center: number; width: number }> = {
  'Soft tissue': { center: 40, width: 400 },
  Lung: { center: -600, width: 1500 },
  Bone: { center: 400, width: 1800 },
  Brain: { center: 40, width: 80 },
};

export interface StackFrame {
  sop: string;
  frame: number;
}

export interface StackState {
  index: number;
  count: number;
  current: StackFrame | undefined;
  window: { center: number; width: number } | undefined;
  zoom: number;
  columns: number;
  rows: number;
}

let viewCounter = 0;

/** Every stack view on the page: a consult's answer (consults/) takes what is drawn on any of them. */
const liveViews = new Set<StackView>();

/** The series shown in stack views on the page, and the measurements drawn on them, each with its series. */
export function drawnOnStacks(): { series: string[]; measurements: Array<StackMeasurement & { series: string }> } {
  const views = [...liveViews];
  return { series: views.map((view) => view.series), measurements: views.flatMap((view) => view.measurements().map((m) => ({ ...m, series: view.series }))) };
}

/** Called when a measurement is drawn, changed or removed on any stack; returns the unsubscribe. */
export function onDrawnOnStacks(listener: () => void): () => void {
  for (const type of MEASUREMENT_EVENTS) eventTarget.addEventListener(type, listener);
  return () => {
    for (const type of MEASUREMENT_EVENTS) eventTarget.removeEventListener(type, listener);
  };
}

/** Removes a drawn measurement wherever it is (also from a stack no longer shown). */
export function removeDrawn(uid: string): void {
  tools.annotation.state.removeAnnotation(uid);
  for (const view of liveViews) view.removeMeasurement(uid);
}

export class StackView {
  private readonly engine: RenderingEngine;
  private readonly viewportId: string;
  private readonly toolGroupId: string;
  private frames: StackFrame[] = [];
  private imageIds: string[] = [];
  /** The series loaded (`load`). */
  series = '';
  private cineTimer: ReturnType<typeof setInterval> | undefined;
  private fetcher: FrameFetcher | undefined;
  private prefetchedFor = -1;
  private listeners = new Set<() => void>();
  private errorListeners = new Set<(message: string) => void>();
  private measurementListeners = new Set<() => void>();
  private readonly onMeasurement = () => {
    for (const l of this.measurementListeners) l();
  };
  private readonly onEvent = () => {
    this.emit();
    const index = this.viewport.getCurrentImageIdIndex();
    if (index !== this.prefetchedFor && this.fetcher !== undefined) this.prefetchAround(index);
  };
  private readonly onLoadError = (evt: Event) => {
    const detail = (evt as CustomEvent<{ imageId?: string; error?: unknown }>).detail;
    if (detail?.imageId === undefined || !this.imageIds.includes(detail.imageId)) return;
    const message = describeError(detail.error);
    for (const l of this.errorListeners) l(t('stack:undecodable', { message }));
  };

  private constructor(readonly element: HTMLDivElement) {
    viewCounter += 1;
    this.viewportId = `stack-${viewCounter}`;
    this.toolGroupId = `tools-${viewCounter}`;
    this.engine = new RenderingEngine(`engine-${viewCounter}`);
    this.engine.enableElement({ viewportId: this.viewportId, type: Enums.ViewportType.STACK, element, defaultOptions: { background: [0, 0, 0] as Types.Point3 } });
    const group = tools.ToolGroupManager.createToolGroup(this.toolGroupId);
    if (group === undefined) throw new Error('tool group could not be created');
    for (const name of Object.values(TOOL_NAMES)) group.addTool(name);
    group.addTool(tools.StackScrollTool.toolName);
    group.addViewport(this.viewportId, this.engine.id);
    const { MouseBindings } = tools.Enums;
    group.setToolActive(tools.StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
    group.setToolActive(tools.PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    group.setToolActive(tools.ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    group.setToolActive(tools.WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    // Measurements are drawn only while their tool is chosen; passive, the drawn ones show and can be moved.
    group.setToolConfiguration(TOOL_NAMES.area, { allowOpenContours: false });
    for (const name of [TOOL_NAMES.length, TOOL_NAMES.area]) group.setToolPassive(name);
    for (const type of MEASUREMENT_EVENTS) eventTarget.addEventListener(type, this.onMeasurement);
    element.addEventListener(Enums.Events.IMAGE_RENDERED, this.onEvent);
    element.addEventListener(Enums.Events.CAMERA_MODIFIED, this.onEvent);
    element.addEventListener(Enums.Events.VOI_MODIFIED, this.onEvent);
    element.addEventListener('contextmenu', (e) => e.preventDefault());
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, this.onLoadError);
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_FAILED, this.onLoadError);
    liveViews.add(this);
  }

  static async create(element: HTMLDivElement): Promise<StackView> {
    await initImaging();
    return new StackView(element);
  }

  private get viewport(): Types.IStackViewport {
    return this.engine.getViewport(this.viewportId) as Types.IStackViewport;
  }

  /**
   * Loads the frames of the given instances (series metadata, ordered), fetched by `fetcher`, and shows
   * the first; the frames around the shown one are prefetched from then on (as far as the link allows).
   */
  async load(study: string, series: string, instances: DicomJson[], fetcher: FrameFetcher): Promise<void> {
    this.stopCine();
    this.releaseFrames();
    this.series = series;
    // Prefetching starts once the first image is shown: it comes before the rest.
    this.fetcher = undefined;
    for (const instance of instances) {
      const sop = str(instance, TAG.SOPInstanceUID);
      if (sop === undefined) continue;
      const count = num(instance, TAG.NumberOfFrames) ?? 1;
      for (let frame = 1; frame <= count; frame += 1) {
        const imageId = `wadors:${new URL(`${DICOMWEB_ROOT}/studies/${study}/series/${series}/instances/${sop}/frames/${frame}`, location.href).href}`;
        wadors.metaDataManager.add(imageId, withImagerSpacing(instance) as never);
        frameSources.set(imageId, { fetcher, ref: { sop, frame } });
        this.imageIds.push(imageId);
        this.frames.push({ sop, frame });
      }
    }
    if (this.imageIds.length === 0) throw new Error('the series has no frames');
    // A first image that fails to load or decode may leave setStack pending or resolved on an empty
    // viewport: race it against the loader's failure events and check that an image is there.
    let stopWatching = () => undefined as void;
    const failed = new Promise<never>((_, reject) => {
      const onFail = (evt: Event) => {
        const detail = (evt as CustomEvent<{ imageId?: string; error?: unknown }>).detail;
        if (detail?.imageId === this.imageIds[0]) reject(detail.error ?? new Error('image load failed'));
      };
      eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_FAILED, onFail);
      eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, onFail);
      stopWatching = () => {
        eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_FAILED, onFail);
        eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_ERROR, onFail);
      };
    });
    try {
      await Promise.race([this.viewport.setStack(this.imageIds, 0), failed]);
      if (this.viewport.getImageData() === undefined) throw new Error('no image data');
      this.viewport.render();
      this.fetcher = fetcher;
      this.prefetchAround(0);
    } catch (err) {
      throw new Error(t('stack:undecodable', { message: describeError(err) }));
    } finally {
      stopWatching();
      failed.catch(() => undefined);
    }
  }

  /**
   * Prefetch order around the shown image: mostly ahead (the way a stack is read), some behind; the
   * fetcher takes as many as the measured rate allows and aborts those that fell out of the list.
   */
  private prefetchAround(index: number): void {
    if (this.fetcher === undefined) return;
    this.prefetchedFor = index;
    const order: FrameRef[] = [];
    for (let d = 1; order.length < this.frames.length - 1 && d < this.frames.length; d += 1) {
      const ahead = this.frames[index + d];
      if (ahead !== undefined) order.push(ahead);
      const behind = d % 3 === 0 ? this.frames[index - d / 3] : undefined;
      if (behind !== undefined) order.push(behind);
      if (order.length >= 64) break;
    }
    this.fetcher.prefetch(order);
  }

  private releaseFrames(): void {
    for (const id of this.imageIds) frameSources.delete(id);
    this.frames = [];
    this.imageIds = [];
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onError(listener: (message: string) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }

  state(): StackState {
    const vp = this.viewport;
    const index = vp.getCurrentImageIdIndex();
    const props = vp.getProperties();
    const range = props.voiRange;
    const image = vp.getImageData?.();
    const dims = image?.dimensions ?? [0, 0, 0];
    let window: StackState['window'];
    if (range !== undefined) {
      const { windowCenter, windowWidth } = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
      window = { center: windowCenter, width: windowWidth };
    }
    return { index, count: this.imageIds.length, current: this.frames[index], window, zoom: vp.getZoom(), columns: dims[0], rows: dims[1] };
  }

  isColour(): boolean {
    const id = this.imageIds[this.viewport.getCurrentImageIdIndex()];
    const pixel = id === undefined ? undefined : (metaData.get('imagePixelModule', id) as { samplesPerPixel?: number } | undefined);
    return (pixel?.samplesPerPixel ?? 1) > 1;
  }

  async setIndex(index: number): Promise<void> {
    const clamped = Math.max(0, Math.min(this.imageIds.length - 1, index));
    await this.viewport.setImageIdIndex(clamped);
  }

  async scroll(delta: number): Promise<void> {
    await this.setIndex(this.viewport.getCurrentImageIdIndex() + delta);
  }

  setWindow(center: number, width: number): void {
    this.viewport.setProperties({ voiRange: utilities.windowLevel.toLowHighRange(width, center) });
    this.viewport.render();
  }

  setPrimaryTool(tool: ToolName): void {
    const group = tools.ToolGroupManager.getToolGroup(this.toolGroupId);
    if (group === undefined) return;
    const { MouseBindings } = tools.Enums;
    // Middle and right buttons keep pan and zoom; the left button gets the chosen tool.
    for (const [name, toolName] of Object.entries(TOOL_NAMES) as [ToolName, string][]) {
      const bindings = [
        ...(name === tool ? [{ mouseButton: MouseBindings.Primary }] : []),
        ...(name === 'pan' ? [{ mouseButton: MouseBindings.Auxiliary }] : []),
        ...(name === 'zoom' ? [{ mouseButton: MouseBindings.Secondary }] : []),
      ];
      if (bindings.length > 0) group.setToolActive(toolName, { bindings });
      else group.setToolPassive(toolName);
    }
  }

  /** The measurements drawn on this stack's images, or on one of them (`on`). */
  measurements(on?: StackFrame): StackMeasurement[] {
    const index = new Map(this.imageIds.map((id, i) => [id, i]));
    const out: StackMeasurement[] = [];
    for (const a of tools.annotation.state.getAllAnnotations()) {
      const type = MEASURING[a.metadata?.toolName ?? ''];
      const imageId = a.metadata?.referencedImageId;
      const frame = imageId === undefined ? undefined : this.frames[index.get(imageId) ?? -1];
      if (type === undefined || imageId === undefined || frame === undefined || a.annotationUID === undefined) continue;
      if (on !== undefined && (on.sop !== frame.sop || on.frame !== frame.frame)) continue;
      const contour = (a.data as { contour?: { polyline?: Types.Point3[]; closed?: boolean } }).contour;
      const world = type === 'length' ? a.data.handles?.points : contour?.closed === true ? contour.polyline : undefined;
      if (world === undefined || world.length < (type === 'length' ? 2 : 3)) continue;
      const toPixels = imagePixels(imageId);
      out.push({ uid: a.annotationUID, type, sop: frame.sop, frame: frame.frame, points: world.slice(0, type === 'length' ? 2 : undefined).flatMap(toPixels) });
    }
    return out;
  }

  /** Called when a measurement is drawn, changed or removed. */
  onMeasurementsChange(listener: () => void): () => void {
    this.measurementListeners.add(listener);
    return () => this.measurementListeners.delete(listener);
  }

  removeMeasurement(uid: string): void {
    tools.annotation.state.removeAnnotation(uid);
    this.viewport.render();
  }

  zoomBy(factor: number): void {
    const vp = this.viewport;
    vp.setZoom(vp.getZoom() * factor);
    vp.render();
  }

  reset(): void {
    const vp = this.viewport;
    vp.resetCamera();
    vp.resetProperties();
    vp.render();
  }

  playCine(fps: number): void {
    this.stopCine();
    this.cineTimer = setInterval(() => {
      const vp = this.viewport;
      const next = (vp.getCurrentImageIdIndex() + 1) % this.imageIds.length;
      void vp.setImageIdIndex(next).catch(() => undefined);
    }, 1000 / Math.max(1, Math.min(60, fps)));
  }

  stopCine(): void {
    if (this.cineTimer !== undefined) clearInterval(this.cineTimer);
    this.cineTimer = undefined;
  }

  get playing(): boolean {
    return this.cineTimer !== undefined;
  }

  /**
   * Image pixel coordinates (PS3.3 C.18.6.1.1: 0,0 is the top-left corner of the top-left pixel) to
   * CSS pixels relative to the viewport element, for the current image.
   */
  imageToCanvas(x: number, y: number): [number, number] | undefined {
    const id = this.imageIds[this.viewport.getCurrentImageIdIndex()];
    if (id === undefined) return undefined;
    // Cornerstone's image coordinates put pixel centres on integers.
    const world = utilities.imageToWorldCoords(id, [x - 0.5, y - 0.5]);
    if (world === undefined) return undefined;
    const [cx, cy] = this.viewport.worldToCanvas(world as Types.Point3);
    return [cx, cy];
  }

  resize(): void {
    this.engine.resize(true, true);
  }

  destroy(): void {
    liveViews.delete(this);
    this.stopCine();
    this.fetcher?.prefetch([]);
    this.fetcher = undefined;
    this.releaseFrames();
    this.listeners.clear();
    this.errorListeners.clear();
    this.measurementListeners.clear();
    for (const type of MEASUREMENT_EVENTS) eventTarget.removeEventListener(type, this.onMeasurement);
    eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_ERROR, this.onLoadError);
    eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_FAILED, this.onLoadError);
    tools.ToolGroupManager.destroyToolGroup(this.toolGroupId);
    this.engine.destroy();
  }
}

/**
 * World (patient) coordinates → image pixels of `imageId` (0,0 the top-left pixel's top-left corner),
 * by the image plane the stack viewport places the image with (its position is the first pixel's centre).
 */
function imagePixels(imageId: string): (p: Types.Point3) => [number, number] {
  const plane = metaData.get('imagePlaneModule', imageId) as { imagePositionPatient?: number[]; rowCosines?: number[]; columnCosines?: number[]; rowPixelSpacing?: number; columnPixelSpacing?: number } | undefined;
  const origin = (plane?.imagePositionPatient ?? [0, 0, 0]).map(Number);
  const row = (plane?.rowCosines ?? [1, 0, 0]).map(Number);
  const column = (plane?.columnCosines ?? [0, 1, 0]).map(Number);
  const dot = (p: Types.Point3, v: number[]) => (p[0] - origin[0]!) * v[0]! + (p[1] - origin[1]!) * v[1]! + (p[2] - origin[2]!) * v[2]!;
  return (p) => [dot(p, row) / (plane?.columnPixelSpacing || 1) + 0.5, dot(p, column) / (plane?.rowPixelSpacing || 1) + 0.5];
}

/**
 * A projection radiograph with Imager Pixel Spacing and no Pixel Spacing: the former as the latter, so
 * that the measurement tools measure in mm (at the detector) as the report's values are computed.
 */
function withImagerSpacing(instance: DicomJson): DicomJson {
  const spacing = pixelSpacing(instance);
  return spacing?.source !== 'ImagerPixelSpacing' ? instance : { ...instance, [TAG.PixelSpacing]: { vr: 'DS', Value: [spacing.row, spacing.column] } };
}

function describeError(err: unknown): string {
  if (err === undefined || err === null) return 'unknown error';
  if (err instanceof Error) return err.message;
  if (err instanceof Event) return 'the browser could not decode the image data (corrupt, or a format it cannot decode)';
  if (typeof err === 'object') {
    const e = err as { message?: string; error?: { message?: string }; status?: number };
    return e.message ?? e.error?.message ?? (e.status !== undefined ? `HTTP ${e.status}` : JSON.stringify(err).slice(0, 200));
  }
  return String(err);
}
