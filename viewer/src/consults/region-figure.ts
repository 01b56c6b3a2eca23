/**
 * An answer's region drawn on its image: the image rendered by the archive (WADO-RS `/rendered`, full
 * size, PS3.18 §10.4.1.1.3) with the region above it as SVG in the image's own pixel coordinates
 * (viewBox = the rendered image's size; points are image pixels with 0,0 the top-left corner of the
 * top-left pixel, PS3.3 C.18.6.1.1): one point a dot, two a line, more a closed polygon.
 *
 * A region on a whole-slide image (no frame; its points in the instance's total pixel matrix,
 * wsi/slide-regions.ts) shows the part of the slide around it instead, composed from the tiles of the
 * pyramid level that fits it (wsi/slide-region-view.ts), the SVG's viewBox being that part in the
 * region's coordinates. Which one: the instance's metadata (Total Pixel Matrix Columns present).
 */
import { setAuthorizedSource } from '../auth/http.js';
import { instancePath, renderedUrl, request } from '../dicomweb/client.js';
import { num, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { t } from '../i18n/i18n.js';
import { h } from '../ui/dom.js';
import type { ConsultRegion } from './consults-client.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The shape of a region's points (x1,y1,x2,y2,…), in the SVG of its image. */
export function regionShape(points: readonly number[]): SVGElement {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i + 1 < points.length; i += 2) pairs.push([points[i]!, points[i + 1]!]);
  const style = { fill: 'none', stroke: '#ffd400', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', class: 'region-shape' };
  if (pairs.length === 1) return svg('circle', { ...style, cx: pairs[0]![0], cy: pairs[0]![1], r: 3, fill: '#ffd400' });
  const list = pairs.map(([x, y]) => `${x},${y}`).join(' ');
  return pairs.length === 2 ? svg('polyline', { ...style, points: list }) : svg('polygon', { ...style, points: list, fill: 'rgba(255, 212, 0, 0.15)' });
}

/** Whether the region's instance is a tiled whole-slide image (its metadata has a total pixel matrix). */
async function onSlide(study: string, region: ConsultRegion): Promise<boolean> {
  if (region.frame !== undefined) return false;
  const res = await request(`${instancePath(study, region.seriesInstanceUid, region.sopInstanceUid)}/metadata`, { what: t('consult:whatRegionImage'), headers: { Accept: 'application/dicom+json' } });
  const [instance] = (await res.json()) as DicomJson[];
  return num(instance, TAG.TotalPixelMatrixColumns) !== undefined && num(instance, TAG.TotalPixelMatrixRows) !== undefined;
}

/** A figure: the region's image (or the part of the slide around it) with the region on it, and its label. */
export function regionFigure(study: string, region: ConsultRegion, index: number): HTMLElement {
  const overlay = svg('svg', { class: 'region-overlay', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  const box = h('div', { class: 'region-box' });
  const caption = h('figcaption', { text: `${index + 1}. ${region.label ?? t('consult:regionNoLabel')}` });
  const figure = h('figure', { class: 'region-figure', 'data-region': String(index), 'data-series': region.seriesInstanceUid, 'data-sop': region.sopInstanceUid }, box, caption);
  const failed = () => caption.append(' ', h('span', { class: 'muted', text: t('consult:regionImageFailed') }));
  const showImage = () => {
    const url = region.frame === undefined ? renderedUrl(study, region.seriesInstanceUid, region.sopInstanceUid) : `${instancePath(study, region.seriesInstanceUid, region.sopInstanceUid)}/frames/${region.frame}/rendered`;
    const img = h('img', { alt: t('consult:regionAlt', { n: index + 1 }), class: 'region-image' });
    box.replaceChildren(img, overlay);
    img.addEventListener('load', () => {
      overlay.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
      overlay.replaceChildren(regionShape(region.points));
      figure.dataset['loaded'] = 'true';
    });
    img.addEventListener('error', failed);
    setAuthorizedSource(img, url);
  };
  const showSlide = async () => {
    const { slideRegionCrop } = await import('../wsi/slide-region-view.js');
    const crop = await slideRegionCrop(study, region.seriesInstanceUid, region.sopInstanceUid, region.points);
    if (crop === undefined) return failed();
    crop.canvas.className = 'region-image';
    crop.canvas.setAttribute('role', 'img');
    crop.canvas.setAttribute('aria-label', t('consult:regionSlideAlt', { n: index + 1 }));
    figure.dataset['kind'] = 'slide';
    figure.dataset['level'] = String(crop.level);
    overlay.setAttribute('viewBox', crop.viewBox);
    overlay.replaceChildren(regionShape(region.points));
    box.replaceChildren(crop.canvas, overlay);
    await crop.done;
    figure.dataset['loaded'] = 'true';
  };
  void onSlide(study, region)
    .catch(() => false)
    .then((slide) => (slide ? showSlide() : showImage()))
    .catch(failed);
  return figure;
}
