/**
 * Writes the result of a slide analysis as one Microscopy Bulk Simple Annotations instance (PS3.3 A.87,
 * C.37.1; SOP Class 1.2.840.10008.5.1.4.1.1.91.1) with one annotation group per label, POINT graphics
 * (each detection's centre) or, for tile classifiers, POLYGON graphics (each positive region's outline,
 * tile-regions.ts) in the 2D coordinates of the base level's total pixel matrix
 * (PixelOriginInterpretation VOLUME, 0\0 = top-left corner of the top-left pixel), and the score per
 * annotation as a measurement (FloatingPointValues). Its UIDs derive from the job id (idempotent).
 */
import type { Code } from '../../dicom/coded-concept.js';
import { dicomDate, dicomTime } from '../../dicom/dicom-datetime.js';
import { derivedUid } from '../../dicom/derived-uid.js';
import type { PatientStudyAttributes } from '../../dicom/patient-study-attributes.js';
import { writePart10 } from '../../dicom/write-part10.js';
import type { ModelSpec } from '../../inference/model-manifest.js';
import type { Slide } from '../slide.js';
import { CODES, MICROSCOPY_BULK_SIMPLE_ANNOTATIONS, propertyOf } from './codes.js';
import type { LabelGroup } from './groups.js';

/** UIDs of a job's result: a new series per job in the slide's study, derived from the job id (idempotent). */
export function resultUids(jobId: string): { seriesInstanceUid: string; sopInstanceUid: string } {
  return { seriesInstanceUid: derivedUid('slide-analysis-series', jobId), sopInstanceUid: derivedUid('slide-analysis-ann', jobId) };
}

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
  /** Patient and study attributes of the slide (dicom/patient-study-attributes.ts). */
  patientStudy: PatientStudyAttributes;
  now?: Date;
}

/** The Part-10 file (Explicit VR Little Endian) of a job's annotations. */
export function buildAnnotationInstance(input: AnnotationInput): { part10: Buffer; seriesInstanceUid: string; sopInstanceUid: string } {
  const { slide, model } = input;
  const uids = resultUids(input.jobId);
  const now = input.now ?? new Date();
  const date = dicomDate(now);
  const time = dicomTime(now);
  const dataset: Record<string, unknown> = {
    ...input.patientStudy,
    SOPClassUID: MICROSCOPY_BULK_SIMPLE_ANNOTATIONS,
    SOPInstanceUID: uids.sopInstanceUid,
    SpecificCharacterSet: 'ISO_IR 192',
    Modality: 'ANN',
    // General Series Laterality (Type 2C) is required unless the body part is known to be unpaired; the
    // annotation names no body part, so it is present and empty (dciodvfy asks for it).
    Laterality: '',
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
        // AnnotationAppliesToAllZPlanes is Type 1C, only for 3D coordinates (PS3.3 C.37.1.2): absent in 2D.
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
