/**
 * An answer's region drawn on its image: the image rendered by the archive (WADO-RS `/rendered`, full
 * size, PS3.18 §10.4.1.1.3) with the region above it as SVG in the image's own pixel coordinates
 * (viewBox = the rendered image's size; points are image pixels with 0,0 the top-left corner of the
 * top-left pixel, PS3.3 C.18.6.1.1): one point a dot, two a line, more a closed polygon.
 */
import { setAuthorizedSource } from '../auth/http.js';
import { instancePath, renderedUrl } from '../dicomweb/client.js';
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

/** A figure: the region's image with the region on it, and its label. */
export function regionFigure(study: string, region: ConsultRegion, index: number): HTMLElement {
  const url = region.frame === undefined ? renderedUrl(study, region.seriesInstanceUid, region.sopInstanceUid) : `${instancePath(study, region.seriesInstanceUid, region.sopInstanceUid)}/frames/${region.frame}/rendered`;
  const img = h('img', { alt: t('consult:regionAlt', { n: index + 1 }), class: 'region-image' });
  const overlay = svg('svg', { class: 'region-overlay', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  const box = h('div', { class: 'region-box' }, img);
  box.append(overlay);
  const caption = h('figcaption', { text: `${index + 1}. ${region.label ?? t('consult:regionNoLabel')}` });
  const figure = h('figure', { class: 'region-figure', 'data-region': String(index), 'data-series': region.seriesInstanceUid, 'data-sop': region.sopInstanceUid }, box, caption);
  img.addEventListener('load', () => {
    overlay.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    overlay.replaceChildren(regionShape(region.points));
    figure.dataset['loaded'] = 'true';
  });
  img.addEventListener('error', () => caption.append(' ', h('span', { class: 'muted', text: t('consult:regionImageFailed') })));
  setAuthorizedSource(img, url);
  return figure;
}
