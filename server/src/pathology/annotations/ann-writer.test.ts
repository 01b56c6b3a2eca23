/** The Microscopy Bulk Simple Annotations writer at slide scale, checked by reading its output back. */
import { describe, expect, it } from 'vitest';
import dcmjs from 'dcmjs';
import type { Slide } from '../slide.js';
import { readAnnotationInstance } from './ann-reader.js';
import { buildAnnotationInstance } from './ann-writer.js';
import { MICROSCOPY_BULK_SIMPLE_ANNOTATIONS } from './codes.js';
import { groupByLabel, polygonGroups } from './groups.js';
import { AnnotationBuffer, recordsOf } from './records.js';

const slide = {
  studyInstanceUid: '1.2.3',
  seriesInstanceUid: '1.2.3.4',
  levels: [],
  baseInstance: { sopClassUid: '1.2.840.10008.5.1.4.1.1.77.1.6', sopInstanceUid: '1.2.3.4.5' },
  baseAttributes: {},
  frameOfReferenceUid: '1.2.3.9',
  allInstances: [
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.77.1.6', sopInstanceUid: '1.2.3.4.5' },
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.77.1.6', sopInstanceUid: '1.2.3.4.6' },
  ],
} as unknown as Slide;
const model = { id: 'dark-spot', version: '1.0.0', sha256: 'a'.repeat(64), operatingThreshold: 0.5 };

async function* units(...list: Float32Array[]): AsyncGenerator<Float32Array> {
  yield* list;
}

describe('slide annotation instance', () => {
  it('writes 60,000 points in one instance as float32 data, one group per label, and reads them back', async () => {
    const a = new AnnotationBuffer();
    const b = new AnnotationBuffer();
    for (let i = 0; i < 30_000; i += 1) {
      a.push(i % 2000, Math.floor(i / 2000), 0, 0, 1, 1, 0.6, 0);
      b.push(i % 1000, 100 + Math.floor(i / 1000), 0, 0, 1, 1, 0.9, i % 10 === 0 ? 1 : 0);
    }
    const groups = await groupByLabel(['nucleus', 'mitosis'], units(recordsOf(a.toBuffer()), recordsOf(b.toBuffer())));
    expect(groups.map((g) => g.scores.length)).toEqual([57_000, 3_000]);
    const started = performance.now();
    const { part10, sopInstanceUid } = buildAnnotationInstance({ jobId: 'job-1', slide, model, groups, patientStudy: { StudyInstanceUID: '1.2.3', PatientName: '' } });
    expect(performance.now() - started).toBeLessThan(5000);
    // Points (2 × 4 bytes) and scores (4 bytes) dominate: no per-point text.
    expect(part10.length).toBeLessThan(60_000 * 12 + 20_000);
    const read = readAnnotationInstance(part10);
    expect(read).toMatchObject({ sopClassUid: MICROSCOPY_BULK_SIMPLE_ANNOTATIONS, sopInstanceUid, coordinateType: '2D', frameOfReferenceUid: '1.2.3.9' });
    expect(read.referencedImage).toEqual({ sopClassUid: '1.2.840.10008.5.1.4.1.1.77.1.6', sopInstanceUid: '1.2.3.4.5' });
    expect(read.referencedSeries).toEqual([{ seriesInstanceUid: '1.2.3.4', instances: ['1.2.3.4.5', '1.2.3.4.6'] }]);
    expect(read.groups.map((g) => [g.number, g.label, g.count, g.points.length, g.scores.length])).toEqual([
      [1, 'nucleus', 57_000, 114_000, 57_000],
      [2, 'mitosis', 3_000, 6_000, 3_000],
    ]);
    expect(read.groups[1]!.points[1]).toBe(100);
    expect(read.groups[1]!.scores[0]).toBeCloseTo(0.9, 5);
  });

  it('gives the same UIDs for the same job (storing twice is idempotent) and new ones for another job', async () => {
    const groups = await groupByLabel(['nucleus'], units());
    const first = buildAnnotationInstance({ jobId: 'job-1', slide, model, groups, patientStudy: {} });
    const again = buildAnnotationInstance({ jobId: 'job-1', slide, model, groups, patientStudy: {} });
    const other = buildAnnotationInstance({ jobId: 'job-2', slide, model, groups, patientStudy: {} });
    expect(again.sopInstanceUid).toBe(first.sopInstanceUid);
    expect(other.sopInstanceUid).not.toBe(first.sopInstanceUid);
    expect(other.seriesInstanceUid).not.toBe(first.seriesInstanceUid);
    expect(readAnnotationInstance(first.part10).groups[0]!.count).toBe(0);
  });

  it('writes tile regions as POLYGON groups: coordinates of all outlines, the 1-based index of each first value, mean/max probability and tiles', async () => {
    const regions = [
      { group: 0, outer: [0, 0, 20, 0, 20, 10, 0, 10], holes: [], windows: 2, meanScore: 0.7, maxScore: 0.9 },
      { group: 0, outer: [40, 40, 50, 40, 50, 60, 30, 60, 30, 50, 40, 50], holes: [], windows: 3, meanScore: 0.6, maxScore: 0.65 },
      { group: 1, outer: [100, 100, 110, 100, 110, 110], holes: [], windows: 1, meanScore: 0.55, maxScore: 0.55 },
    ];
    const groups = polygonGroups(['lesion', 'neoplastic', 'empty'], regions);
    const { part10 } = buildAnnotationInstance({ jobId: 'job-poly', slide, model, groups, patientStudy: {} });
    const read = readAnnotationInstance(part10);
    expect(read.groups.map((g) => [g.label, g.graphicType, g.count])).toEqual([
      ['lesion', 'POLYGON', 2],
      ['neoplastic', 'POLYGON', 1],
      ['empty', 'POLYGON', 0],
    ]);
    const [lesion] = read.groups;
    expect([...lesion!.points]).toEqual([...regions[0]!.outer, ...regions[1]!.outer]);
    // Index of the first value (not pair) of each polygon, counted from 1 (PS3.3 C.37.1.2; as highdicom).
    expect([...lesion!.pointIndex!]).toEqual([1, 9]);
    expect(lesion!.scores[0]).toBeCloseTo(0.7, 5);
    expect(lesion!.measurements['Maximum positive tile probability']![1]).toBeCloseTo(0.65, 5);
    expect([...lesion!.measurements['Number of tiles']!]).toEqual([2, 3]);
    // The raw data set: OL index list, OF coordinates, the Neoplasm property type for "neoplastic".
    const file = dcmjs.data.DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer);
    const items = file.dict['006A0002']!.Value as Array<Record<string, { vr: string; Value: any[] }>>;
    expect(items[0]!['00660016']!.vr).toBe('OF');
    // (0066,0040) is encoded with VR OL (explicit VR: tag, "OL", 2 reserved bytes, 32-bit length), once per group.
    const ol = Buffer.from([0x66, 0x00, 0x40, 0x00, 0x4f, 0x4c, 0x00, 0x00]);
    const found: number[] = [];
    for (let at = part10.indexOf(ol); at >= 0; at = part10.indexOf(ol, at + 1)) found.push(part10.readUInt32LE(at + 8));
    expect(found).toEqual([8, 4, 0]);
    const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict) as any;
    const neoplastic = [natural.AnnotationGroupSequence].flat()[1];
    expect([neoplastic.AnnotationPropertyTypeCodeSequence].flat()[0]).toMatchObject({ CodeValue: '108369006', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Neoplasm' });
  });
});
