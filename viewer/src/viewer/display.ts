/**
 * The contract between the study view and the displays it chooses (stack, video, slide, document):
 * a display is destroyed when another series is shown, and reads the study's AI results from the
 * study context. Its own module so that the displays and the study view do not import each other.
 */
import type { SrResult } from '../overlays/sr-detections.js';

export interface Display {
  destroy(): void;
}

/** What every display can use of the study: its AI results and how to find them again. */
export class StudyContext {
  results: SrResult[] = [];
  readonly hidden = new Set<string>();
  private listeners = new Set<() => void>();
  constructor(readonly study: string) {}

  visibleResults(): SrResult[] {
    return this.results.filter((r) => !this.hidden.has(r.sop));
  }
  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  changed(): void {
    for (const l of this.listeners) l();
  }
}
