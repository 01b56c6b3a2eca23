/**
 * Reads a Microscopy Bulk Simple Annotations instance (PS3.3 A.87) back with dcmjs: its references and,
 * per annotation group, the points (and polygon index list), scores and every measurement, as typed
 * arrays. The tests use it to check what ann-writer.ts wrote.
 */
import '../../dicom/dcmjs-fixes.js';
import dcmjs from 'dcmjs';

const { DicomMetaDictionary, DicomMessage } = dcmjs.data;

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
