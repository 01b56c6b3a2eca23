/**
 * What a report can point at in its study, read over DICOMweb like the rest of the viewer: the images
 * (and frames of multi-frame images: video frames, slide tiles) for key images, landmark photos and
 * measurements, and the annotation groups of Microscopy Bulk Simple Annotations for pathology findings
 * (from series metadata: the groups' headers, not their coordinates). Also the study's header line.
 */
import { instancePath, searchSeries, seriesMetadata, studyAttributes } from '../dicomweb/client.js';
import { t } from '../i18n/i18n.js';
import { formatDate, isVideoTransferSyntax, num, personName, seq, SOP_CLASS, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import type { ImageRef } from '../../../server/src/contracts/reports.js';

const DOCUMENT_MODALITIES = ['SR', 'ANN', 'KO', 'PR', 'SEG', 'RTSTRUCT', 'DOC'];

export interface StudyImage {
  series: string;
  sop: string;
  sopClass: string | undefined;
  seriesLabel: string;
  instanceNumber: number | undefined;
  frames: number;
  rows: number | undefined;
  columns: number | undefined;
  /** A video bitstream (MPEG): its frames cannot be rendered as images by the archive. */
  video: boolean;
  /** A whole-slide level (tiles as frames). */
  slide: boolean;
}

export interface AnnotationGroupInfo {
  series: string;
  sop: string;
  group: number;
  label: string;
  count: number | undefined;
  ai: boolean;
}

export interface StudyImages {
  header: { patient: string; patientId: string; date: string; description: string; modalities: string[] };
  images: StudyImage[];
  annotationGroups: AnnotationGroupInfo[];
  /** A short name of an image of the study (`ES 1 · image 1`), or undefined if not one of them. */
  name(ref: ImageRef): string | undefined;
  find(ref: ImageRef): StudyImage | undefined;
}

/** A frame as a consumer image: `/rendered` of the frame, fitted in `size`. */
export function frameUrl(study: string, ref: ImageRef, size = '192,144'): string {
  return `${instancePath(study, ref.seriesInstanceUid, ref.sopInstanceUid)}/frames/${ref.frame ?? 1}/rendered?viewport=${size}`;
}

export async function loadStudyImages(study: string): Promise<StudyImages> {
  const [attrs, seriesList] = await Promise.all([studyAttributes(study), searchSeries(study)]);
  if (attrs === undefined) throw new Error(t('study:notFound'));
  seriesList.sort((a, b) => (num(a, TAG.SeriesNumber) ?? 0) - (num(b, TAG.SeriesNumber) ?? 0));
  const images: StudyImage[] = [];
  const annotationGroups: AnnotationGroupInfo[] = [];
  const wanted = seriesList.filter((s) => {
    const modality = str(s, TAG.Modality) ?? '';
    return modality === 'ANN' || !DOCUMENT_MODALITIES.includes(modality);
  });
  const metadata = await Promise.all(wanted.map(async (s) => ({ s, instances: await seriesMetadata(study, str(s, TAG.SeriesInstanceUID) ?? '') })));
  for (const { s, instances } of metadata) {
    const series = str(s, TAG.SeriesInstanceUID) ?? '';
    const modality = str(s, TAG.Modality) ?? '';
    const seriesLabel = `${modality} ${num(s, TAG.SeriesNumber) ?? ''}`.trim() + (str(s, TAG.SeriesDescription) ? ` ${str(s, TAG.SeriesDescription)}` : '');
    instances.sort((a, b) => (num(a, TAG.InstanceNumber) ?? 0) - (num(b, TAG.InstanceNumber) ?? 0));
    for (const i of instances) {
      const sop = str(i, TAG.SOPInstanceUID);
      if (sop === undefined) continue;
      const sopClass = str(i, TAG.SOPClassUID);
      if (sopClass === SOP_CLASS.bulkAnnotations) {
        annotationGroups.push(...groupsOf(series, sop, i));
        continue;
      }
      if (num(i, TAG.Rows) === undefined) continue;
      const ts = str(i, TAG.TransferSyntaxUID) ?? str(i, TAG.AvailableTransferSyntaxUID);
      images.push({
        series,
        sop,
        sopClass,
        seriesLabel,
        instanceNumber: num(i, TAG.InstanceNumber),
        frames: num(i, TAG.NumberOfFrames) ?? 1,
        rows: num(i, TAG.Rows),
        columns: num(i, TAG.Columns),
        video: isVideoTransferSyntax(ts),
        slide: sopClass === SOP_CLASS.wsi,
      });
    }
  }
  const find = (ref: ImageRef) => images.find((i) => i.sop === ref.sopInstanceUid);
  return {
    header: {
      patient: personName(attrs, TAG.PatientName) || t('reports:noName'),
      patientId: str(attrs, TAG.PatientID) ?? '',
      date: formatDate(str(attrs, TAG.StudyDate)),
      description: str(attrs, TAG.StudyDescription) ?? '',
      modalities: seriesList.map((s) => str(s, TAG.Modality) ?? '').filter((m) => m !== ''),
    },
    images,
    annotationGroups,
    find,
    name(ref) {
      const image = find(ref);
      if (image === undefined) return undefined;
      return t('reports:form.imageOption', { series: image.seriesLabel, number: image.instanceNumber ?? '?' });
    },
  };
}

const AnnotationGroupSequence = '006A0002';
const AnnotationGroupNumber = '0040A180';
const AnnotationGroupLabel = '006A0005';
const AnnotationGroupGenerationType = '006A0007';
const NumberOfAnnotations = '006A000C';

function groupsOf(series: string, sop: string, instance: DicomJson): AnnotationGroupInfo[] {
  return seq(instance, AnnotationGroupSequence).map((g, i) => {
    const generation = str(g, AnnotationGroupGenerationType) ?? '';
    return {
      series,
      sop,
      group: num(g, AnnotationGroupNumber) ?? i + 1,
      label: str(g, AnnotationGroupLabel) ?? t('reports:form.group', { n: i + 1 }),
      count: num(g, NumberOfAnnotations),
      ai: generation === 'AUTOMATIC' || generation === 'SEMIAUTOMATIC',
    };
  });
}
