/**
 * Microscopy Bulk Simple Annotations (PS3.3 A.87, C.37.1): groups of points, polylines, polygons,
 * rectangles and ellipses in the total pixel matrix (2D), decoded from the Part-10 instance (the
 * coordinate arrays are bulk data that DICOM JSON metadata may leave out). Parsed with dicom-parser.
 */
import dicomParser from 'dicom-parser';

export interface AnnotationGroup {
  label: string;
  graphicType: string;
  /** x,y pairs (column, row; 0,0 = top-left corner of the top-left pixel). */
  coordinates: Float64Array;
  /** Start (in points) of each primitive; for POINT one per point. */
  starts: number[];
  count: number;
}

export interface Annotations {
  sop: string;
  coordinateType: string;
  referencedSeries: string[];
  groups: AnnotationGroup[];
}

function typed(bytes: Uint8Array, el: dicomParser.Element, kind: 'f32' | 'f64' | 'u32'): Float64Array | Uint32Array {
  const copy = bytes.slice(el.dataOffset, el.dataOffset + el.length).buffer;
  if (kind === 'f32') return Float64Array.from(new Float32Array(copy));
  if (kind === 'f64') return new Float64Array(copy);
  return new Uint32Array(copy);
}

const POINTS_PER_PRIMITIVE: Record<string, number> = { POINT: 1, RECTANGLE: 4, ELLIPSE: 4 };

export function parseAnnotations(bytes: Uint8Array): Annotations {
  const ds = dicomParser.parseDicom(bytes);
  const coordinateType = ds.string('x006a0001') ?? '2D';
  const dims = coordinateType === '3D' ? 3 : 2;
  const referencedSeries = (ds.elements['x00081115']?.items ?? []).map((i) => i.dataSet?.string('x0020000e') ?? '').filter(Boolean);
  const groups: AnnotationGroup[] = [];
  for (const item of ds.elements['x006a0002']?.items ?? []) {
    const g = item.dataSet;
    if (g === undefined) continue;
    const graphicType = g.string('x00700023') ?? 'POINT';
    const f32 = g.elements['x00660016'];
    const f64 = g.elements['x00660022'];
    const raw = f32 !== undefined ? typed(bytes, f32, 'f32') : f64 !== undefined ? typed(bytes, f64, 'f64') : new Float64Array(0);
    // Keep x,y of each point (3D coordinates would need the slide's frame of reference: not drawn).
    const pointCount = Math.floor(raw.length / dims);
    const coordinates = new Float64Array(pointCount * 2);
    for (let i = 0; i < pointCount; i += 1) {
      coordinates[i * 2] = raw[i * dims] as number;
      coordinates[i * 2 + 1] = raw[i * dims + 1] as number;
    }
    const count = g.uint32('x006a000c') ?? 0;
    let starts: number[];
    const fixed = POINTS_PER_PRIMITIVE[graphicType];
    const indexEl = g.elements['x00660040'];
    if (fixed !== undefined) {
      starts = Array.from({ length: Math.floor(pointCount / fixed) }, (_, i) => i * fixed);
    } else if (indexEl !== undefined) {
      // One-based index of each primitive's first coordinate value (PS3.3 C.37.1.2.1.3.1).
      const idx = Array.from(typed(bytes, indexEl, 'u32'));
      const valueIndexed = idx.every((v) => (v - 1) % dims === 0) && Math.max(...idx) > pointCount;
      starts = idx.map((v) => (valueIndexed ? (v - 1) / dims : idx.every((w) => (w - 1) % dims === 0) ? (v - 1) / dims : v - 1));
    } else {
      starts = [0];
    }
    groups.push({ label: g.string('x006a0005') ?? graphicType.toLowerCase(), graphicType, coordinates, starts, count: count || starts.length });
  }
  return { sop: ds.string('x00080018') ?? '', coordinateType, referencedSeries, groups };
}
