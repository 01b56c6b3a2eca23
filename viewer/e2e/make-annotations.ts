/**
 * A Microscopy Bulk Simple Annotations instance (PS3.3 A.87) with many polygons, for tests and the
 * benchmark: `count` small closed polygons (hexagons) scattered over a slide of `width`×`height`
 * pixels, in one annotation group, 2D coordinates (OF) and a Long Primitive Point Index List (OL).
 * dcmjs 0.51 has no OL writer and writes that element as UN (same bytes; readers that go by tag, like
 * the viewer's, read it the same).
 */
import dcmjs from 'dcmjs';
import { IMPLEMENTATION_CLASS_UID } from '../../server/src/dicom/write-part10.js';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
const ANN_CLASS = '1.2.840.10008.5.1.4.1.1.91.1';
const el = (vr: string, ...Value: unknown[]) => ({ vr, Value });

export interface PolygonAnnotations {
  part10: Buffer;
  /** The polygons' points (x, y pairs; each polygon 6 points, not repeated closing point). */
  polygons: Float32Array;
}

export function makePolygonAnnotations(opts: { study: string; slideSeries: string; width: number; height: number; count: number; seed?: number }): PolygonAnnotations {
  let state = opts.seed ?? 7;
  const rnd = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const points = new Float32Array(opts.count * 6 * 2);
  const index = new Uint32Array(opts.count);
  for (let i = 0; i < opts.count; i += 1) {
    const cx = 20 + rnd() * (opts.width - 40);
    const cy = 20 + rnd() * (opts.height - 40);
    const r = 4 + rnd() * 8;
    for (let k = 0; k < 6; k += 1) {
      points[(i * 6 + k) * 2] = cx + r * Math.cos((k * Math.PI) / 3);
      points[(i * 6 + k) * 2 + 1] = cy + r * Math.sin((k * Math.PI) / 3);
    }
    // One-based index of the first coordinate value of each polygon.
    index[i] = i * 12 + 1;
  }
  const sop = DicomMetaDictionary.uid() as string;
  const dict: Record<string, unknown> = {
    '00080016': el('UI', ANN_CLASS),
    '00080018': el('UI', sop),
    '00080020': el('DA', '20260101'),
    '00080060': el('CS', 'ANN'),
    '00100010': el('PN', { Alphabetic: 'SLIDE^TEST' }),
    '00100020': el('LO', 'SLIDE-1'),
    '0020000D': el('UI', opts.study),
    '0020000E': el('UI', DicomMetaDictionary.uid()),
    '00200011': el('IS', '99'),
    '00200013': el('IS', '1'),
    '0008103E': el('LO', 'Nuclei (synthetic)'),
    '00081115': el('SQ', { '0020000E': el('UI', opts.slideSeries) }),
    '006A0001': el('CS', '2D'),
    '006A0002': el('SQ', {
      '00700023': el('CS', 'POLYGON'),
      '006A0003': el('UI', DicomMetaDictionary.uid()),
      '006A0005': el('LO', 'nuclei'),
      '006A0007': el('CS', 'AUTOMATIC'),
      '0040A180': el('US', 1), // Annotation Group Number (PS3.3 C.37.1.2)
      '006A000C': el('UL', opts.count),
      '00660016': el('OF', points.buffer),
      '00660040': el('OL', index.buffer),
    }),
  };
  const meta = {
    '00020001': el('OB', new Uint8Array([0, 1]).buffer),
    '00020002': el('UI', ANN_CLASS),
    '00020003': el('UI', sop),
    '00020010': el('UI', '1.2.840.10008.1.2.1'),
    '00020012': el('UI', IMPLEMENTATION_CLASS_UID),
  };
  const file = new DicomDict(meta as never);
  file.dict = dict as never;
  return { part10: Buffer.from(file.write() as ArrayBuffer), polygons: points };
}
