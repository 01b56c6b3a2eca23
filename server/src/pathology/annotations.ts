/**
 * Results of a slide analysis. Per unit, annotations are kept as packed float32 records (never one JS
 * object per point), then written as one Microscopy Bulk Simple Annotations instance (PS3.3 A.87,
 * C.37.1; SOP Class 1.2.840.10008.5.1.4.1.1.91.1) with one annotation group per label, POINT graphics
 * (each detection's centre) or, for tile classifiers, POLYGON graphics (each positive region's outline,
 * tile-regions.ts) in the 2D coordinates of the base level's total pixel matrix
 * (PixelOriginInterpretation VOLUME, 0\0 = top-left corner of the top-left pixel), and the score per
 * annotation as a measurement (FloatingPointValues). Also a GeoJSON view in the same coordinates.
 */
import { createHash } from 'node:crypto';
import dcmjs from 'dcmjs';
import { writePart10 } from '../dicom/write-part10.js';
import type { ModelSpec } from '../inference/model-manifest.js';
import type { Slide } from './slide.js';

const { DicomMetaDictionary, DicomMessage } = dcmjs.data;

export const MICROSCOPY_BULK_SIMPLE_ANNOTATIONS = '1.2.840.10008.5.1.4.1.1.91.1';
const LOCAL_SCHEME = '99FLMPACS';

/**
 * One annotation: centre x, y; box x0, y0, x1, y1 (base pixels); score; label index. For a tile
 * classifier, one positive window: column, row on the window grid; its core x0, y0, x1, y1 (base
 * pixels); positive score; group index.
 */
export const ANNOTATION_FLOATS = 8;

/** A growable float32 record list (amortised doubling; no per-annotation objects). */
export class AnnotationBuffer {
  private data = new Float32Array(ANNOTATION_FLOATS * 64);
  count = 0;

  push(cx: number, cy: number, x0: number, y0: number, x1: number, y1: number, score: number, label: number): void {
    if ((this.count + 1) * ANNOTATION_FLOATS > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set([cx, cy, x0, y0, x1, y1, score, label], this.count * ANNOTATION_FLOATS);
    this.count += 1;
  }

  /** Little-endian bytes (every supported platform is little-endian; checked at start). */
  toBuffer(): Buffer {
    return Buffer.from(this.data.buffer, 0, this.count * ANNOTATION_FLOATS * 4);
  }
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('slide analysis results assume a little-endian platform');

/** The float32 records stored for one unit. */
export function recordsOf(bytes: Buffer | null): Float32Array {
  if (bytes === null || bytes.length === 0) return new Float32Array(0);
  // Copy into an aligned buffer: a Buffer from the database may start at any byte offset.
  const aligned = new Float32Array(bytes.length / 4);
  new Uint8Array(aligned.buffer).set(bytes);
  return aligned;
}

interface Code {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
}
const code = (value: string, scheme: string, meaning: string): Code => ({ CodeValue: value, CodingSchemeDesignator: scheme, CodeMeaning: meaning });

/** Annotation property category and type per model label (CID 7150 / 7151 where DICOM has them). */
const PROPERTY_BY_LABEL: Record<string, { category: Code; type: Code }> = {
  nucleus: { category: code('91723000', 'SCT', 'Anatomical structure'), type: code('84640000', 'SCT', 'Nucleus') },
  cell: { category: code('91723000', 'SCT', 'Anatomical structure'), type: code('4421005', 'SCT', 'Cell') },
  lesion: { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code('52988006', 'SCT', 'Lesion') },
  neoplastic: { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code('108369006', 'SCT', 'Neoplasm') },
};
const propertyOf = (label: string) =>
  PROPERTY_BY_LABEL[label] ?? { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code(label.toUpperCase().slice(0, 16), LOCAL_SCHEME, label) };

const CODES = {
  artificialIntelligence: code('123109', 'DCM', 'Artificial Intelligence'),
  score: code('DETSCORE', LOCAL_SCHEME, 'Detection score'),
  meanTileScore: code('TILEMEAN', LOCAL_SCHEME, 'Mean positive tile probability'),
  maxTileScore: code('TILEMAX', LOCAL_SCHEME, 'Maximum positive tile probability'),
  tiles: code('TILES', LOCAL_SCHEME, 'Number of tiles'),
  noUnits: code('1', 'UCUM', 'no units'),
};

/** A UID under 2.25 from a SHA-256 of the parts (as detection-report.ts). */
export function derivedUid(...parts: string[]): string {
  const bytes = createHash('sha256').update(parts.join('\u0000')).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/** UIDs of a job's result: a new series per job in the slide's study, derived from the job id (idempotent). */
export function resultUids(jobId: string): { seriesInstanceUid: string; sopInstanceUid: string } {
  return { seriesInstanceUid: derivedUid('slide-analysis-series', jobId), sopInstanceUid: derivedUid('slide-analysis-ann', jobId) };
}

export interface LabelGroup {
  label: string;
  /** POINT (default): one x, y pair per annotation. POLYGON: each annotation's outline, `pointIndex` says where each starts. */
  graphicType?: 'POINT' | 'POLYGON';
  /** x, y pairs in base pixels. */
  points: Float32Array;
  /**
   * POLYGON: per annotation, the 1-based index into `points` (counted in values, not pairs) of its
   * first coordinate, as LongPrimitivePointIndexList (PS3.3 C.37.1.2; highdicom writes it so).
   */
  pointIndex?: Int32Array;
  /** POINT: detection score. POLYGON: mean positive probability of the region's tiles. */
  scores: Float32Array;
  /** POLYGON: the highest tile probability and the number of tiles of each region. */
  maxScores?: Float32Array;
  tiles?: Float32Array;
}

/** One POLYGON group per label from merged tile regions (tile-regions.ts), regions in the order given. */
export function polygonGroups(labels: readonly string[], regions: ReadonlyArray<{ group: number; outer: number[]; windows: number; meanScore: number; maxScore: number }>): LabelGroup[] {
  return labels.map((label, index) => {
    const mine = regions.filter((r) => r.group === index);
    const points = new Float32Array(mine.reduce((n, r) => n + r.outer.length, 0));
    const pointIndex = new Int32Array(mine.length);
    let offset = 0;
    mine.forEach((r, i) => {
      pointIndex[i] = offset + 1;
      points.set(r.outer, offset);
      offset += r.outer.length;
    });
    return {
      label,
      graphicType: 'POLYGON' as const,
      points,
      pointIndex,
      scores: Float32Array.from(mine, (r) => r.meanScore),
      maxScores: Float32Array.from(mine, (r) => r.maxScore),
      tiles: Float32Array.from(mine, (r) => r.windows),
    };
  });
}

/** Splits packed records (from every unit, in order) into one group per label. */
export async function groupByLabel(labels: readonly string[], units: AsyncIterable<Float32Array>): Promise<LabelGroup[]> {
  const points = labels.map(() => new GrowableFloats());
  const scores = labels.map(() => new GrowableFloats());
  for await (const records of units) {
    for (let i = 0; i + ANNOTATION_FLOATS <= records.length; i += ANNOTATION_FLOATS) {
      const label = Math.min(labels.length - 1, Math.max(0, Math.round(records[i + 7]!)));
      points[label]!.push(records[i]!, records[i + 1]!);
      scores[label]!.push(records[i + 6]!);
    }
  }
  return labels.map((label, i) => ({ label, points: points[i]!.values(), scores: scores[i]!.values() }));
}

class GrowableFloats {
  private data = new Float32Array(256);
  private length = 0;
  push(...values: number[]): void {
    if (this.length + values.length > this.data.length) {
      const grown = new Float32Array(Math.max(this.data.length * 2, this.length + values.length));
      grown.set(this.data);
      this.data = grown;
    }
    for (const v of values) this.data[this.length++] = v;
  }
  values(): Float32Array {
    return this.data.slice(0, this.length);
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const arrayBufferOf = (a: Float32Array | Int32Array): ArrayBuffer => a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength) as ArrayBuffer;
const measurement = (concept: Code, values: Float32Array) => ({
  ConceptNameCodeSequence: [concept],
  MeasurementUnitsCodeSequence: [CODES.noUnits],
  MeasurementValuesSequence: [{ FloatingPointValues: arrayBufferOf(values) }],
});

export interface AnnotationInput {
  jobId: string;
  slide: Slide;
  model: Pick<ModelSpec, 'id' | 'version' | 'sha256' | 'operatingThreshold'>;
  groups: LabelGroup[];
  patientStudy: Record<string, unknown>;
  now?: Date;
}

/** The Part-10 file (Explicit VR Little Endian) of a job's annotations. */
export function buildAnnotationInstance(input: AnnotationInput): { part10: Buffer; seriesInstanceUid: string; sopInstanceUid: string } {
  const { slide, model } = input;
  const uids = resultUids(input.jobId);
  const now = input.now ?? new Date();
  const date = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}`;
  const time = `${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`;
  const dataset: Record<string, unknown> = {
    ...input.patientStudy,
    SOPClassUID: MICROSCOPY_BULK_SIMPLE_ANNOTATIONS,
    SOPInstanceUID: uids.sopInstanceUid,
    SpecificCharacterSet: 'ISO_IR 192',
    Modality: 'ANN',
    SeriesInstanceUID: uids.seriesInstanceUid,
    SeriesNumber: '9101',
    SeriesDescription: `AI ${model.id} ${model.version}`.slice(0, 64),
    // The slide's frame of reference; a slide without one (e.g. Orthanc WSI output) gets a derived UID.
    FrameOfReferenceUID: slide.frameOfReferenceUid ?? derivedUid('slide-frame-of-reference', slide.seriesInstanceUid),
    PositionReferenceIndicator: 'SLIDE_CORNER',
    Manufacturer: 'filmless-pacs',
    ManufacturerModelName: model.id.slice(0, 64),
    DeviceSerialNumber: model.sha256.slice(0, 16),
    SoftwareVersions: model.version,
    InstanceNumber: '1',
    ContentLabel: 'AI_ANALYSIS',
    ContentDescription: `Automatic annotations by ${model.id} ${model.version}`.slice(0, 64),
    ContentCreatorName: '',
    ContentDate: date,
    ContentTime: time,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    AnnotationCoordinateType: '2D',
    PixelOriginInterpretation: 'VOLUME',
    ReferencedImageSequence: [{ ReferencedSOPClassUID: slide.baseInstance.sopClassUid, ReferencedSOPInstanceUID: slide.baseInstance.sopInstanceUid }],
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: slide.seriesInstanceUid,
        ReferencedInstanceSequence: slide.allInstances.map((i) => ({ ReferencedSOPClassUID: i.sopClassUid, ReferencedSOPInstanceUID: i.sopInstanceUid })),
      },
    ],
    AnnotationGroupSequence: input.groups.map((group, index) => {
      const property = propertyOf(group.label);
      const count = group.scores.length;
      const polygon = group.graphicType === 'POLYGON';
      return {
        AnnotationGroupNumber: index + 1,
        AnnotationGroupUID: derivedUid('slide-analysis-group', input.jobId, group.label),
        AnnotationGroupLabel: group.label.slice(0, 64),
        AnnotationGroupDescription: (polygon
          ? `${group.label} regions by ${model.id} ${model.version} (tile p >= ${model.operatingThreshold})`
          : `${group.label} found by ${model.id} ${model.version} (score >= ${model.operatingThreshold})`
        ).slice(0, 64),
        AnnotationGroupGenerationType: 'AUTOMATIC',
        AnnotationGroupAlgorithmIdentificationSequence: [
          {
            AlgorithmFamilyCodeSequence: [CODES.artificialIntelligence],
            AlgorithmName: model.id.slice(0, 64),
            AlgorithmVersion: model.version,
            AlgorithmParameters: `minScore=${model.operatingThreshold}; sha256=${model.sha256}`,
          },
        ],
        AnnotationPropertyCategoryCodeSequence: [property.category],
        AnnotationPropertyTypeCodeSequence: [property.type],
        NumberOfAnnotations: count,
        AnnotationAppliesToAllOpticalPaths: 'YES',
        AnnotationAppliesToAllZPlanes: 'YES',
        GraphicType: polygon ? 'POLYGON' : 'POINT',
        PointCoordinatesData: arrayBufferOf(group.points),
        // OL. dcmjs 0.51 has no OL writer (it would write UL, with a 16-bit length): written as OB,
        // which has the same explicit-VR layout, then relabelled OL by `relabelIndexLists`.
        ...(polygon ? { LongPrimitivePointIndexList: arrayBufferOf(group.pointIndex ?? new Int32Array(0)), _vrMap: { LongPrimitivePointIndexList: 'OB' } } : {}),
        MeasurementsSequence: polygon
          ? [
              measurement(CODES.meanTileScore, group.scores),
              measurement(CODES.maxTileScore, group.maxScores ?? group.scores),
              measurement(CODES.tiles, group.tiles ?? new Float32Array(count)),
            ]
          : [measurement(CODES.score, group.scores)],
      };
    }),
  };
  const part10 = writePart10(dataset);
  relabelIndexLists(part10, input.groups.filter((g) => g.graphicType === 'POLYGON').map((g) => (g.pointIndex?.length ?? 0) * 4));
  return { part10, ...uids };
}

/**
 * Turns the VR of each (0066,0040) Long Primitive Point Index List written as OB into OL, in place: the
 * element is found as its tag, "OB", 2 reserved bytes and the expected value length, in group order.
 */
function relabelIndexLists(part10: Buffer, lengths: number[]): void {
  const header = Buffer.from([0x66, 0x00, 0x40, 0x00, 0x4f, 0x42, 0x00, 0x00]);
  let from = 0;
  for (const length of lengths) {
    for (;;) {
      const at = part10.indexOf(header, from);
      if (at < 0) throw new Error('annotation writer: Long Primitive Point Index List not found in the encoded instance');
      from = at + header.length;
      if (part10.readUInt32LE(at + 8) === length) {
        part10.write('OL', at + 4, 'latin1');
        from = at + 12 + length;
        break;
      }
    }
  }
}

export interface ReadAnnotationGroup {
  number: number;
  uid: string;
  label: string;
  graphicType: string;
  count: number;
  points: Float32Array;
  /** POLYGON: LongPrimitivePointIndexList (1-based value index of each polygon's first coordinate). */
  pointIndex: Int32Array | undefined;
  /** The first measurement's values. */
  scores: Float32Array;
  /** Every measurement, by its concept's meaning. */
  measurements: Record<string, Float32Array>;
  algorithmName: string;
  algorithmVersion: string;
  generationType: string;
}

export interface ReadAnnotations {
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
  frameOfReferenceUid: string;
  coordinateType: string;
  referencedImage: { sopClassUid: string; sopInstanceUid: string } | undefined;
  referencedSeries: { seriesInstanceUid: string; instances: string[] }[];
  groups: ReadAnnotationGroup[];
}

type Item = Record<string, unknown>;
const list = (v: unknown): Item[] => (Array.isArray(v) ? (v as Item[]) : v === undefined ? [] : [v as Item]);
const floats = (v: unknown): Float32Array => {
  const first = Array.isArray(v) ? v[0] : v;
  if (first instanceof ArrayBuffer) return new Float32Array(first.slice(0));
  if (ArrayBuffer.isView(first)) return new Float32Array(first.buffer.slice(first.byteOffset, first.byteOffset + first.byteLength));
  return new Float32Array(0);
};

/** Parses an annotation instance (dcmjs) back into groups of points and scores. */
export function readAnnotationInstance(part10: Buffer): ReadAnnotations {
  const file = DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer);
  const ds = DicomMetaDictionary.naturalizeDataset(file.dict) as Item;
  const image = list(ds['ReferencedImageSequence'])[0];
  return {
    sopClassUid: String(ds['SOPClassUID']),
    sopInstanceUid: String(ds['SOPInstanceUID']),
    seriesInstanceUid: String(ds['SeriesInstanceUID']),
    studyInstanceUid: String(ds['StudyInstanceUID']),
    frameOfReferenceUid: String(ds['FrameOfReferenceUID']),
    coordinateType: String(ds['AnnotationCoordinateType']),
    referencedImage: image === undefined ? undefined : { sopClassUid: String(image['ReferencedSOPClassUID']), sopInstanceUid: String(image['ReferencedSOPInstanceUID']) },
    referencedSeries: list(ds['ReferencedSeriesSequence']).map((s) => ({
      seriesInstanceUid: String(s['SeriesInstanceUID']),
      instances: list(s['ReferencedInstanceSequence']).map((i) => String(i['ReferencedSOPInstanceUID'])),
    })),
    groups: list(ds['AnnotationGroupSequence']).map((g) => {
      const algorithm = list(g['AnnotationGroupAlgorithmIdentificationSequence'])[0] ?? {};
      const measurementItems = list(g['MeasurementsSequence']);
      const values = list(measurementItems[0]?.['MeasurementValuesSequence'])[0];
      const measurements: Record<string, Float32Array> = {};
      for (const m of measurementItems) {
        const concept = list(m['ConceptNameCodeSequence'])[0];
        measurements[String(concept?.['CodeMeaning'] ?? '')] = floats(list(m['MeasurementValuesSequence'])[0]?.['FloatingPointValues']);
      }
      const indexList = g['LongPrimitivePointIndexList'];
      return {
        number: Number(g['AnnotationGroupNumber']),
        uid: String(g['AnnotationGroupUID']),
        label: String(g['AnnotationGroupLabel']),
        graphicType: String(g['GraphicType']),
        count: Number(g['NumberOfAnnotations']),
        points: floats(g['PointCoordinatesData']),
        pointIndex: indexList === undefined ? undefined : Array.isArray(indexList) && typeof indexList[0] !== 'object' ? Int32Array.from(indexList as number[]) : new Int32Array(floats(indexList).buffer),
        scores: floats(values?.['FloatingPointValues']),
        measurements,
        algorithmName: String(algorithm['AlgorithmName'] ?? ''),
        algorithmVersion: String(algorithm['AlgorithmVersion'] ?? ''),
        generationType: String(g['AnnotationGroupGenerationType']),
      };
    }),
  };
}

/**
 * The GeoJSON FeatureCollection of a job's annotations, as text chunks (one per unit, so a slide with
 * tens of thousands of features is never one string in memory). Coordinates are base-level slide pixels
 * (x right, y down; not geographic): Point = the detection's centre, `box` = [x0, y0, x1, y1].
 */
export async function* geoJsonChunks(labels: readonly string[], header: Record<string, unknown>, units: AsyncIterable<Float32Array>): AsyncGenerator<string> {
  const head = JSON.stringify({ type: 'FeatureCollection', ...header, features: [] });
  yield head.slice(0, -2);
  let first = true;
  const r = (v: number) => Math.round(v * 100) / 100;
  for await (const records of units) {
    const parts: string[] = [];
    for (let i = 0; i + ANNOTATION_FLOATS <= records.length; i += ANNOTATION_FLOATS) {
      const label = labels[Math.min(labels.length - 1, Math.max(0, Math.round(records[i + 7]!)))]!;
      parts.push(
        JSON.stringify({
          type: 'Feature',
          geometry: { type: 'Point', coordinates: [r(records[i]!), r(records[i + 1]!)] },
          properties: { label, score: Math.round(records[i + 6]! * 10_000) / 10_000, box: [r(records[i + 2]!), r(records[i + 3]!), r(records[i + 4]!), r(records[i + 5]!)] },
        }),
      );
    }
    if (parts.length === 0) continue;
    yield (first ? '' : ',') + parts.join(',');
    first = false;
  }
  yield ']}';
}

/**
 * The GeoJSON FeatureCollection of a classification job: one `Polygon` feature per positive region, in
 * base-level slide pixels (x right, y down; not geographic). Its first ring is the outline (the POLYGON of
 * the annotation instance, closed here as GeoJSON requires), the others its holes (enclosed negative tiles).
 */
export async function* geoJsonRegionChunks(
  labels: readonly string[],
  header: Record<string, unknown>,
  regions: ReadonlyArray<{ group: number; outer: number[]; holes: number[][]; windows: number; meanScore: number; maxScore: number }>,
): AsyncGenerator<string> {
  const head = JSON.stringify({ type: 'FeatureCollection', ...header, features: [] });
  yield head.slice(0, -2);
  const r = (v: number) => Math.round(v * 100) / 100;
  const ring = (flat: number[]) => {
    const points: number[][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) points.push([r(flat[i]!), r(flat[i + 1]!)]);
    if (points.length > 0) points.push(points[0]!);
    return points;
  };
  let first = true;
  for (const region of regions) {
    const feature = {
      type: 'Feature',
      geometry: { type: 'Polygon', coordinates: [ring(region.outer), ...region.holes.map(ring)] },
      properties: {
        label: labels[region.group] ?? labels[0],
        score: Math.round(region.meanScore * 10_000) / 10_000,
        maxScore: Math.round(region.maxScore * 10_000) / 10_000,
        tiles: region.windows,
      },
    };
    yield (first ? '' : ',') + JSON.stringify(feature);
    first = false;
  }
  yield ']}';
}
