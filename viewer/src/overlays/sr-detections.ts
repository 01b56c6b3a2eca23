/**
 * Detections from TID 1500 measurement reports (DICOM JSON, e.g. WADO-RS metadata of an SR): every
 * SCOORD (closed POLYLINE / POLYGON, also POINT, CIRCLE, ELLIPSE) SELECTED FROM an image and frame,
 * with the label of its measurement group's Finding (or Tracking Identifier) and its score NUM.
 * Works for reports from any producer that follows TID 1500/1410; ours are described in docs/api.md.
 */
import { num, seq, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { t } from '../i18n/i18n.js';

const SR = {
  ValueType: '0040A040',
  ConceptNameCodeSequence: '0040A043',
  ConceptCodeSequence: '0040A168',
  ContentSequence: '0040A730',
  TextValue: '0040A160',
  MeasuredValueSequence: '0040A300',
  NumericValue: '0040A30A',
  GraphicType: '00700023',
  GraphicData: '00700022',
  ReferencedSOPSequence: '00081199',
  ReferencedSOPInstanceUID: '00081155',
  ReferencedFrameNumber: '00081160',
  CodeValue: '00080100',
  CodingSchemeDesignator: '00080102',
  CodeMeaning: '00080104',
  ContentTemplateSequence: '0040A504',
  TemplateIdentifier: '0040DB00',
} as const;

export interface SrDetection {
  /** Referenced image and frame (1-based; 1 when the reference names no frame). */
  sop: string;
  frame: number;
  graphicType: string;
  /** Points in image pixel coordinates, x,y pairs. */
  points: number[];
  label: string;
  score: number | undefined;
}

export interface SrResult {
  /** The report instance. */
  study: string;
  series: string;
  sop: string;
  /** Who made it: the algorithm / device name, else the series description. */
  title: string;
  detections: SrDetection[];
}

const concept = (item: DicomJson) => seq(item, SR.ConceptNameCodeSequence)[0];
const codeValue = (c: DicomJson | undefined) => str(c, SR.CodeValue);
const meaning = (c: DicomJson | undefined) => str(c, SR.CodeMeaning);
const children = (item: DicomJson) => seq(item, SR.ContentSequence);
const valueType = (item: DicomJson) => str(item, SR.ValueType);

function imageRefs(scoord: DicomJson): Array<{ sop: string; frames: number[] }> {
  const refs: Array<{ sop: string; frames: number[] }> = [];
  for (const child of children(scoord)) {
    if (valueType(child) !== 'IMAGE') continue;
    for (const ref of seq(child, SR.ReferencedSOPSequence)) {
      const sop = str(ref, SR.ReferencedSOPInstanceUID);
      if (sop === undefined) continue;
      const frames = (ref[SR.ReferencedFrameNumber]?.Value ?? []).map(Number).filter((n) => Number.isInteger(n) && n > 0);
      refs.push({ sop, frames: frames.length > 0 ? frames : [1] });
    }
  }
  return refs;
}

function groupInfo(group: DicomJson): { label: string | undefined; score: number | undefined } {
  let label: string | undefined;
  let tracking: string | undefined;
  let score: number | undefined;
  for (const item of children(group)) {
    const c = concept(item);
    const vt = valueType(item);
    if (vt === 'CODE' && codeValue(c) === '121071') label = meaning(seq(item, SR.ConceptCodeSequence)[0]);
    else if (vt === 'TEXT' && codeValue(c) === '112039') tracking = str(item, SR.TextValue);
    else if (vt === 'NUM' && score === undefined) {
      const v = num(seq(item, SR.MeasuredValueSequence)[0], SR.NumericValue);
      // Our detector's score (99FLMPACS DETSCORE); another producer's first NUM otherwise.
      if (v !== undefined && (codeValue(c) === 'DETSCORE' || /score|probab|confidence/i.test(meaning(c) ?? ''))) score = v;
    }
  }
  return { label: label ?? tracking, score };
}

/** All detections of one SR (DICOM JSON of the whole instance, as WADO-RS metadata returns it). */
export function parseSrDetections(instance: DicomJson): SrResult | undefined {
  const study = str(instance, TAG.StudyInstanceUID);
  const series = str(instance, TAG.SeriesInstanceUID);
  const sop = str(instance, TAG.SOPInstanceUID);
  if (study === undefined || series === undefined || sop === undefined) return undefined;
  if (children(instance).length === 0) return undefined;
  // Only measurement reports (TID 1500, titled 126000 "Imaging Measurement Report"): a signed clinical
  // report (TID 2000) in the same study is not an AI result.
  const template = str(seq(instance, SR.ContentTemplateSequence)[0], SR.TemplateIdentifier);
  if (codeValue(concept(instance)) !== '126000' && template !== '1500') return undefined;
  const detections: SrDetection[] = [];
  let device: string | undefined;
  const walk = (item: DicomJson, group: DicomJson | undefined) => {
    for (const child of children(item)) {
      const vt = valueType(child);
      const c = concept(child);
      if (vt === 'TEXT' && (codeValue(c) === '121013' || codeValue(c) === '111001')) device ??= str(child, SR.TextValue);
      if (vt === 'CONTAINER') walk(child, codeValue(c) === '125007' ? child : group);
      else if (vt === 'SCOORD') {
        const graphicType = str(child, SR.GraphicType) ?? 'POLYLINE';
        const points = (child[SR.GraphicData]?.Value ?? []).map(Number);
        const info = group === undefined ? { label: undefined, score: undefined } : groupInfo(group);
        for (const ref of imageRefs(child)) {
          for (const frame of ref.frames) {
            detections.push({ sop: ref.sop, frame, graphicType, points, label: info.label ?? meaning(c) ?? t('ai:finding'), score: info.score });
          }
        }
      }
    }
  };
  walk(instance, undefined);
  return { study, series, sop, title: device ?? str(instance, TAG.SeriesDescription) ?? t('ai:report'), detections };
}
