/**
 * Regions drawn on whole-slide images: the slide viewer's "Draw region" mode (wsi-display.ts), offered
 * only while a page asks for it (the consult page, for the specialist's answer; consults/consult-page.ts).
 *
 * A region is a closed polygon in the coordinates of the slide's TOTAL PIXEL MATRIX (PS3.3 C.8.12.4.1:
 * the image pixel coordinates of a tiled whole-slide image refer to its total pixel matrix, not to a
 * tile; 0,0 the top-left corner of the top-left pixel, as for the bulk annotations), at the pyramid's
 * base level (full resolution). It is reported with the SOP Instance UID of the base level's first
 * instance (every instance of that level shares its total pixel matrix) and no frame: a frame is one
 * tile, and the region may span many. The server checks it against that instance's Total Pixel Matrix
 * Columns and Rows (docs/api.md "Consults").
 *
 * Kept here, not in a display: changing series or zoom recreates nothing of what was drawn, and the
 * page reads and removes regions wherever they were drawn.
 */

export interface SlideRegion {
  uid: string;
  series: string;
  /** The base level's instance whose total pixel matrix `points` are in. */
  sop: string;
  /** x1,y1,x2,y2,… in total pixel matrix coordinates of `sop`. */
  points: number[];
}

let offered = false;
const regions = new Map<string, SlideRegion>();
const listeners = new Set<() => void>();
let counter = 0;

const notify = () => {
  for (const listener of [...listeners]) listener();
};

/** A page turns drawing on (slide displays created from now on offer it) or off (what was drawn is dropped). */
export function offerSlideRegionDrawing(on: boolean): void {
  offered = on;
  if (!on && regions.size > 0) {
    regions.clear();
    notify();
  }
}

export function slideRegionDrawingOffered(): boolean {
  return offered;
}

/** Every region drawn on any slide, in the order drawn. */
export function drawnOnSlides(): SlideRegion[] {
  return [...regions.values()];
}

export function addSlideRegion(region: Omit<SlideRegion, 'uid'>): SlideRegion {
  counter += 1;
  const added = { ...region, points: [...region.points], uid: `slide-region-${counter}` };
  regions.set(added.uid, added);
  notify();
  return added;
}

export function removeSlideRegion(uid: string): void {
  if (regions.delete(uid)) notify();
}

/** Called when a region is drawn or removed; returns the unsubscribe. */
export function onDrawnOnSlides(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
