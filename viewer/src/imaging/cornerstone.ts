/**
 * The only module of the viewer that imports Cornerstone3D. The UI drives a stack through the small
 * `StackView` command surface below (load, scroll, window presets, tools, cine, reset) and reads its
 * state and an image→screen transform for overlays; nothing else knows about Cornerstone.
 *
 * Images are WADO-RS frames (`wadors:` image ids) decoded by @cornerstonejs/dicom-image-loader in web
 * workers from the stored bitstream (`transfer-syntax=*`); metadata comes from WADO-RS series metadata.
 */
import { Enums, RenderingEngine, eventTarget, init as coreInit, metaData, utilities, type Types } from '@cornerstonejs/core';
import { init as loaderInit, wadors } from '@cornerstonejs/dicom-image-loader';
import * as tools from '@cornerstonejs/tools';
import { authHeaders } from '../auth/http.js';
import { DICOMWEB_ROOT } from '../dicomweb/client.js';
import { num, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';

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
    tools.init();
    for (const Tool of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool]) tools.addTool(Tool);
  })();
  return initialised;
}

export type ToolName = 'windowLevel' | 'pan' | 'zoom';
const TOOL_NAMES: Record<ToolName, string> = {
  windowLevel: tools.WindowLevelTool.toolName,
  pan: tools.PanTool.toolName,
  zoom: tools.ZoomTool.toolName,
};

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

export class StackView {
  private readonly engine: RenderingEngine;
  private readonly viewportId: string;
  private readonly toolGroupId: string;
  private frames: StackFrame[] = [];
  private imageIds: string[] = [];
  private cineTimer: ReturnType<typeof setInterval> | undefined;
  private listeners = new Set<() => void>();
  private errorListeners = new Set<(message: string) => void>();
  private readonly onEvent = () => this.emit();
  private readonly onLoadError = (evt: Event) => {
    const detail = (evt as CustomEvent<{ imageId?: string; error?: unknown }>).detail;
    if (detail?.imageId === undefined || !this.imageIds.includes(detail.imageId)) return;
    const message = describeError(detail.error);
    for (const l of this.errorListeners) l(`This image cannot be decoded or loaded: ${message}`);
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
    element.addEventListener(Enums.Events.IMAGE_RENDERED, this.onEvent);
    element.addEventListener(Enums.Events.CAMERA_MODIFIED, this.onEvent);
    element.addEventListener(Enums.Events.VOI_MODIFIED, this.onEvent);
    element.addEventListener('contextmenu', (e) => e.preventDefault());
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, this.onLoadError);
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_FAILED, this.onLoadError);
  }

  static async create(element: HTMLDivElement): Promise<StackView> {
    await initImaging();
    return new StackView(element);
  }

  private get viewport(): Types.IStackViewport {
    return this.engine.getViewport(this.viewportId) as Types.IStackViewport;
  }

  /** Loads the frames of the given instances (series metadata, ordered) and shows the first. */
  async load(study: string, series: string, instances: DicomJson[]): Promise<void> {
    this.stopCine();
    this.frames = [];
    this.imageIds = [];
    for (const instance of instances) {
      const sop = str(instance, TAG.SOPInstanceUID);
      if (sop === undefined) continue;
      const count = num(instance, TAG.NumberOfFrames) ?? 1;
      for (let frame = 1; frame <= count; frame += 1) {
        const imageId = `wadors:${new URL(`${DICOMWEB_ROOT}/studies/${study}/series/${series}/instances/${sop}/frames/${frame}`, location.href).href}`;
        wadors.metaDataManager.add(imageId, instance as never);
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
    } catch (err) {
      throw new Error(`This image cannot be decoded or loaded: ${describeError(err)}`);
    } finally {
      stopWatching();
      failed.catch(() => undefined);
    }
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
    this.stopCine();
    this.listeners.clear();
    this.errorListeners.clear();
    eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_ERROR, this.onLoadError);
    eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_FAILED, this.onLoadError);
    tools.ToolGroupManager.destroyToolGroup(this.toolGroupId);
    this.engine.destroy();
  }
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
