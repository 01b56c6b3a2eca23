/**
 * What the "Correct" menu (correct-menu.ts) and its dialogs (curation-dialogs.ts) share: the study
 * view's context, the message of the last action shown on the next rendering, and the navigation that
 * renders a page again. Its own module so that the menu and the dialogs do not import each other.
 */
import type { DicomJson } from '../dicomweb/dicom-json.js';

/** What the menu may know of the study view (viewer/study-view.ts `StudyViewActions`). */
export interface CorrectContext {
  study: string;
  seriesList: () => DicomJson[];
  shownSeries: string | undefined;
  shownInstance: () => string | undefined;
}

export type CorrectAction = 'reject-series' | 'reject-instance' | 'move' | 'split' | 'merge' | 'delete';

interface Flash {
  study: string;
  text: string;
  link?: { href: string; text: string };
}
let flash: Flash | undefined;

/** The message for `study`'s page, once (then forgotten). */
export function takeFlash(study: string): Flash | undefined {
  const out = flash?.study === study ? flash : undefined;
  flash = undefined;
  return out;
}

/** A message for the next rendering of `study`'s page (what the last action did). */
export function setFlash(next: Flash): void {
  flash = next;
}

/** Shows `hash`, rendering it again when it is already the page's (the router listens to hashchange). */
export function goTo(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

