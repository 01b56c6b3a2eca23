/** Reading DICOM JSON (PS3.18 Annex F) data sets: tags are 8 upper-case hex digits. */
import { formatDicomDate, formatPersonName as formatPn } from '../i18n/i18n.js';

export interface DicomJsonElement {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type DicomJson = Record<string, DicomJsonElement | undefined>;

export const TAG = {
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  TransferSyntaxUID: '00020010',
  AvailableTransferSyntaxUID: '00083002',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  SamplesPerPixel: '00280002',
  PhotometricInterpretation: '00280004',
  PixelSpacing: '00280030',
  ImagerPixelSpacing: '00181164',
  ImageType: '00080008',
  TotalPixelMatrixColumns: '00480006',
  TotalPixelMatrixRows: '00480007',
  DimensionOrganizationType: '00209311',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  PixelMeasuresSequence: '00289110',
  PlanePositionSlideSequence: '0048021A',
  ColumnPositionInTotalImagePixelMatrix: '0048021E',
  RowPositionInTotalImagePixelMatrix: '0048021F',
  ImagedVolumeWidth: '00480001',
  ImagedVolumeHeight: '00480002',
  ReferencedSeriesSequence: '00081115',
  ReferencedImageSequence: '00081140',
  ContainerIdentifier: '00400512',
  FrameOfReferenceUID: '00200052',
} as const;

export const SOP_CLASS = {
  wsi: '1.2.840.10008.5.1.4.1.1.77.1.6',
  bulkAnnotations: '1.2.840.10008.5.1.4.1.1.91.1',
  videoEndoscopic: '1.2.840.10008.5.1.4.1.1.77.1.1.1',
  videoMicroscopic: '1.2.840.10008.5.1.4.1.1.77.1.2.1',
  videoPhotographic: '1.2.840.10008.5.1.4.1.1.77.1.4.1',
} as const;

/** MPEG-2, MPEG-4 AVC, HEVC transfer syntaxes: one bitstream per instance, shown by a <video>. */
export const isVideoTransferSyntax = (uid: string | undefined): boolean =>
  uid !== undefined && /^1\.2\.840\.10008\.1\.2\.4\.(10[0-9]|11[0-9])$/.test(uid);

export function values(ds: DicomJson | undefined, tag: string): unknown[] {
  return ds?.[tag]?.Value ?? [];
}

export function str(ds: DicomJson | undefined, tag: string): string | undefined {
  const v = values(ds, tag)[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string };
    return pn.Alphabetic;
  }
  return String(v);
}

export function num(ds: DicomJson | undefined, tag: string): number | undefined {
  const v = values(ds, tag)[0];
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function nums(ds: DicomJson | undefined, tag: string): number[] {
  return values(ds, tag).map(Number).filter(Number.isFinite);
}

export function seq(ds: DicomJson | undefined, tag: string): DicomJson[] {
  return values(ds, tag) as DicomJson[];
}

/** Physical size of a pixel in mm: between rows (vertical) and between columns (horizontal). */
export interface PixelSpacing {
  row: number;
  column: number;
  /** PixelSpacing (in the patient; also from a multi-frame image's functional groups) or ImagerPixelSpacing (at the detector of a projection radiograph, no magnification correction). */
  source: 'PixelSpacing' | 'ImagerPixelSpacing';
}

/**
 * The pixel spacing of an image (or a frame of a multi-frame one): Pixel Spacing, else that of the
 * frame's Pixel Measures (per-frame, then shared functional groups), else Imager Pixel Spacing;
 * undefined when none is there (sizes then stay in pixels).
 */
export function pixelSpacing(ds: DicomJson | undefined, frame = 1): PixelSpacing | undefined {
  const pair = (v: number[]): [number, number] | undefined => (v.length >= 2 && v[0]! > 0 && v[1]! > 0 ? [v[0]!, v[1]!] : undefined);
  const measures = (group: DicomJson | undefined) => pair(nums(seq(group, TAG.PixelMeasuresSequence)[0], TAG.PixelSpacing));
  const patient =
    pair(nums(ds, TAG.PixelSpacing)) ?? measures(seq(ds, TAG.PerFrameFunctionalGroupsSequence)[frame - 1]) ?? measures(seq(ds, TAG.SharedFunctionalGroupsSequence)[0]);
  if (patient !== undefined) return { row: patient[0], column: patient[1], source: 'PixelSpacing' };
  const imager = pair(nums(ds, TAG.ImagerPixelSpacing));
  return imager === undefined ? undefined : { row: imager[0], column: imager[1], source: 'ImagerPixelSpacing' };
}

/** A PN attribute as a name is written in Vietnam: `NGUYỄN^AN^VĂN` → `NGUYỄN VĂN AN` (i18n formatPersonName). */
export function personName(ds: DicomJson | undefined, tag: string): string {
  return formatPersonName(str(ds, tag) ?? '');
}

/** A PN string, family name first (i18n/i18n.ts). */
export const formatPersonName = (raw: string): string => formatPn(raw);

/** A DA in the page's language: `02/01/2024` (vi), `2 Jan 2024` (en) (i18n formatDicomDate). */
export function formatDate(da: string | undefined): string {
  return formatDicomDate(da);
}

/** Base64 InlineBinary → bytes. */
export function inlineBinary(el: DicomJsonElement | undefined): Uint8Array | undefined {
  if (el?.InlineBinary === undefined) return undefined;
  const bin = atob(el.InlineBinary);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}
