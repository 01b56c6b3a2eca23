/**
 * Detections on one frame as a DICOM Comprehensive 3D SR (PS3.3 A.35.13) following TID 1500
 * "Measurement Report" (PS3.16): observer context is the algorithm as a device (TID 1002/1004), the
 * image library lists the source image and frame, and each detection is a TID 1410 "Planar ROI
 * Measurements" group: a tracking identifier and UID, the finding, the algorithm (TID 4019), the box as
 * a closed SCOORD POLYLINE SELECTED FROM the source image and frame (PS3.3 C.18.6: image pixel
 * coordinates, 0\0 = top-left corner of the top-left pixel), and the score as a NUM.
 *
 * UIDs are derived from (model, version, source instance, frame), so asking again for the same
 * detections finds the stored report instead of writing a duplicate.
 *
 * A recorded live session (`tracks`) has one measurement group per tracked finding instead: TID 4108
 * Tracking Identifier ("polyp track 2") and Tracking UID name the track, and its Image Region is one
 * SCOORD per frame it was seen on, each SELECTED FROM that frame of the recording — the 1-n image
 * regions of TID 1411 "Volumetric ROI Measurements" (regions of one finding on several frames), so the
 * first and last Referenced Frame Number are its frame range. Its score is the track's highest, and the
 * time offset is that of its first frame.
 */
import '../dicom/dcmjs-fixes.js';
import dcmjs from 'dcmjs';
import { code, LOCAL_CODING_SCHEME, type Code } from '../dicom/coded-concept.js';
import { dicomDate, dicomTime } from '../dicom/dicom-datetime.js';
import { derivedUid } from '../dicom/derived-uid.js';
import type { PatientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { writePart10 } from '../dicom/write-part10.js';
import type { Detection } from './inference-engine.js';
import type { ModelSpec } from './model-manifest.js';

const { DicomMetaDictionary, DicomMessage } = dcmjs.data;

export const COMPREHENSIVE_3D_SR = '1.2.840.10008.5.1.4.1.1.88.34';

const CODES = {
  report: code('126000', 'DCM', 'Imaging Measurement Report'),
  language: code('121049', 'DCM', 'Language of Content Item and Descendants'),
  english: code('en-US', 'RFC5646', 'English (United States)'),
  observerType: code('121005', 'DCM', 'Observer Type'),
  device: code('121007', 'DCM', 'Device'),
  deviceUid: code('121012', 'DCM', 'Device Observer UID'),
  deviceName: code('121013', 'DCM', 'Device Observer Name'),
  deviceManufacturer: code('121014', 'DCM', 'Device Observer Manufacturer'),
  deviceModel: code('121015', 'DCM', 'Device Observer Model Name'),
  procedureReported: code('121058', 'DCM', 'Procedure reported'),
  colonoscopy: code('73761001', 'SCT', 'Colonoscopy'),
  imageLibrary: code('111028', 'DCM', 'Image Library'),
  imageLibraryGroup: code('126200', 'DCM', 'Image Library Group'),
  imagingMeasurements: code('126010', 'DCM', 'Imaging Measurements'),
  measurementGroup: code('125007', 'DCM', 'Measurement Group'),
  trackingId: code('112039', 'DCM', 'Tracking Identifier'),
  trackingUid: code('112040', 'DCM', 'Tracking Unique Identifier'),
  finding: code('121071', 'DCM', 'Finding'),
  algorithmName: code('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: code('111003', 'DCM', 'Algorithm Version'),
  algorithmParameters: code('111002', 'DCM', 'Algorithm Parameters'),
  imageRegion: code('111030', 'DCM', 'Image Region'),
  score: code('DETSCORE', LOCAL_CODING_SCHEME, 'Detection score'),
  noUnits: code('1', 'UCUM', 'no units'),
  timeOffset: code('TIMEOFFS', LOCAL_CODING_SCHEME, 'Time offset from first frame'),
  milliseconds: code('ms', 'UCUM', 'millisecond'),
} as const;

/** Video Endoscopic / Microscopic / Photographic Image Storage (PS3.4 B.5): the multi-frame sources a report may reference whole. */
const VIDEO_SOP_CLASSES = new Set(['1.2.840.10008.5.1.4.1.1.77.1.1.1', '1.2.840.10008.5.1.4.1.1.77.1.2.1', '1.2.840.10008.5.1.4.1.1.77.1.4.1']);

/** Findings per model label; labels without a standard code get a local one. */
const FINDING_BY_LABEL: Record<string, Code> = {
  polyp: code('68496003', 'SCT', 'Polyp of colon'),
};
const findingOf = (label: string): Code => FINDING_BY_LABEL[label] ?? code(label.toUpperCase().slice(0, 16), LOCAL_CODING_SCHEME, label);
const labelOf = (finding: Code): string =>
  Object.entries(FINDING_BY_LABEL).find(([, c]) => c.CodeValue === finding.CodeValue && c.CodingSchemeDesignator === finding.CodingSchemeDesignator)?.[0] ??
  finding.CodeMeaning;

export interface SourceFrame {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  frame: number;
}

export interface ReportUids {
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

/** The AI series of `model` in a study: every report of that model on that study's images goes there. */
export function aiSeriesUid(studyInstanceUid: string, modelId: string): string {
  return derivedUid('ai-series', studyInstanceUid, modelId);
}

/** Where the report of `model` on one frame lives: one AI series per study and model. */
export function reportUids(model: Pick<ModelSpec, 'id' | 'version'>, source: SourceFrame): ReportUids {
  return {
    seriesInstanceUid: aiSeriesUid(source.studyInstanceUid, model.id),
    sopInstanceUid: derivedUid('ai-report', model.id, model.version, source.sopInstanceUid, String(source.frame)),
  };
}

type Item = Record<string, unknown>;

const text = (rel: string, concept: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'TEXT', ConceptNameCodeSequence: [concept], TextValue: value });
const codeItem = (rel: string, concept: Code, value: Code): Item => ({ RelationshipType: rel, ValueType: 'CODE', ConceptNameCodeSequence: [concept], ConceptCodeSequence: [value] });
const uidref = (rel: string, concept: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'UIDREF', ConceptNameCodeSequence: [concept], UID: value });
const container = (rel: string, concept: Code, children: Item[], template?: string): Item => ({
  RelationshipType: rel,
  ValueType: 'CONTAINER',
  ConceptNameCodeSequence: [concept],
  ContinuityOfContent: 'SEPARATE',
  ...(template === undefined ? {} : { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: template }] }),
  // Content Sequence is Type 1C (PS3.3 C.17.3, Document Relationship Macro): absent, never empty, when a
  // container has no children (e.g. Imaging Measurements of a frame without findings).
  ...(children.length === 0 ? {} : { ContentSequence: children }),
});
/**
 * A reference to the source image. Referenced Frame Number is Type 1C (PS3.3 Table 10-3, Image SOP
 * Instance Reference Macro): present only for a multi-frame image, where it says which frame.
 */
const imageRef = (input: Pick<ReportInput, 'source' | 'multiFrame'>, frame: number | undefined): Item => ({
  ReferencedSOPClassUID: input.source.sopClassUid,
  ReferencedSOPInstanceUID: input.source.sopInstanceUid,
  ...(frame === undefined || !input.multiFrame ? {} : { ReferencedFrameNumber: String(frame) }),
});

/** The image the report is about (a single-frame image, or a multi-frame / video instance). */
export type SourceImage = Omit<SourceFrame, 'frame'>;

export interface ReportFrame {
  /** 1-based frame number in the source instance. */
  frame: number;
  /** Milliseconds since the first frame (recorded streams). */
  timeOffsetMs?: number;
  detections: Detection[];
}

/** One tracked finding of a recorded stream (live/tracker.ts TrackRecord). */
export interface ReportTrack {
  id: number;
  label: string;
  peakScore: number;
  /** The frames it was seen on, in order, with its box on each. */
  regions: Array<{ frame: number; box: Detection['box'] }>;
  /** Milliseconds from the first frame of the recording to the track's first frame. */
  firstTimeOffsetMs?: number;
}

export interface ReportInput {
  model: Pick<ModelSpec, 'id' | 'version' | 'sha256'>;
  source: SourceImage;
  /** The source has several frames (a multi-frame image, a video): references name the frame. */
  multiFrame: boolean;
  /** The frames analysed, each with its detections. */
  frames: ReportFrame[];
  /** Tracked findings (a recorded live session): one measurement group each, after those of `frames`. */
  tracks?: ReportTrack[];
  /** Patient and study attributes (dcmjs-naturalized; dicom/patient-study-attributes.ts of the source instance). */
  patientStudy: PatientStudyAttributes;
  minScore: number;
  /** Default: derived from model, version, source and (single) frame, which makes the report idempotent. */
  uids?: ReportUids;
  seriesDescription?: string;
  now?: Date;
}

function measurementGroup(detection: Detection, index: number, frame: ReportFrame, input: ReportInput, uids: ReportUids): Item {
  const { x, y, width, height } = detection.box;
  const polygon = [x, y, x + width, y, x + width, y + height, x, y + height, x, y];
  return container(
    'CONTAINS',
    CODES.measurementGroup,
    [
      text('HAS OBS CONTEXT', CODES.trackingId, `${detection.label} ${index + 1}`),
      uidref('HAS OBS CONTEXT', CODES.trackingUid, derivedUid('ai-finding', uids.sopInstanceUid, String(index))),
      codeItem('CONTAINS', CODES.finding, findingOf(detection.label)),
      text('HAS CONCEPT MOD', CODES.algorithmName, input.model.id),
      text('HAS CONCEPT MOD', CODES.algorithmVersion, input.model.version),
      text('HAS CONCEPT MOD', CODES.algorithmParameters, `minScore=${input.minScore}; sha256=${input.model.sha256}`),
      {
        RelationshipType: 'CONTAINS',
        ValueType: 'SCOORD',
        ConceptNameCodeSequence: [CODES.imageRegion],
        GraphicType: 'POLYLINE',
        GraphicData: polygon,
        ContentSequence: [{ RelationshipType: 'SELECTED FROM', ValueType: 'IMAGE', ReferencedSOPSequence: [imageRef(input, frame.frame)] }],
      },
      {
        RelationshipType: 'CONTAINS',
        ValueType: 'NUM',
        ConceptNameCodeSequence: [CODES.score],
        MeasuredValueSequence: [{ NumericValue: String(detection.score), MeasurementUnitsCodeSequence: [CODES.noUnits] }],
      },
      ...(frame.timeOffsetMs === undefined
        ? []
        : [
            {
              RelationshipType: 'HAS OBS CONTEXT',
              ValueType: 'NUM',
              ConceptNameCodeSequence: [CODES.timeOffset],
              MeasuredValueSequence: [{ NumericValue: String(Math.round(frame.timeOffsetMs)), MeasurementUnitsCodeSequence: [CODES.milliseconds] }],
            },
          ]),
    ],
    '1410',
  );
}

const polygonOf = ({ x, y, width, height }: Detection['box']) => [x, y, x + width, y, x + width, y + height, x, y + height, x, y];

function trackGroup(track: ReportTrack, input: ReportInput, uids: ReportUids): Item {
  return container(
    'CONTAINS',
    CODES.measurementGroup,
    [
      text('HAS OBS CONTEXT', CODES.trackingId, `${track.label} track ${track.id}`),
      uidref('HAS OBS CONTEXT', CODES.trackingUid, derivedUid('ai-track', uids.sopInstanceUid, String(track.id))),
      codeItem('CONTAINS', CODES.finding, findingOf(track.label)),
      text('HAS CONCEPT MOD', CODES.algorithmName, input.model.id),
      text('HAS CONCEPT MOD', CODES.algorithmVersion, input.model.version),
      text('HAS CONCEPT MOD', CODES.algorithmParameters, `minScore=${input.minScore}; sha256=${input.model.sha256}; tracked`),
      ...track.regions.map(({ frame, box }) => ({
        RelationshipType: 'CONTAINS',
        ValueType: 'SCOORD',
        ConceptNameCodeSequence: [CODES.imageRegion],
        GraphicType: 'POLYLINE',
        GraphicData: polygonOf(box),
        ContentSequence: [{ RelationshipType: 'SELECTED FROM', ValueType: 'IMAGE', ReferencedSOPSequence: [imageRef(input, frame)] }],
      })),
      {
        RelationshipType: 'CONTAINS',
        ValueType: 'NUM',
        ConceptNameCodeSequence: [CODES.score],
        MeasuredValueSequence: [{ NumericValue: String(track.peakScore), MeasurementUnitsCodeSequence: [CODES.noUnits] }],
      },
      ...(track.firstTimeOffsetMs === undefined
        ? []
        : [
            {
              RelationshipType: 'HAS OBS CONTEXT',
              ValueType: 'NUM',
              ConceptNameCodeSequence: [CODES.timeOffset],
              MeasuredValueSequence: [{ NumericValue: String(Math.round(track.firstTimeOffsetMs)), MeasurementUnitsCodeSequence: [CODES.milliseconds] }],
            },
          ]),
    ],
    '1411',
  );
}

/** The report as a Part-10 file (Explicit VR Little Endian). */
export function buildDetectionReport(input: ReportInput): { part10: Buffer; uids: ReportUids } {
  const single = input.frames.length === 1 ? input.frames[0]! : undefined;
  const uids = input.uids ?? reportUids(input.model, { ...input.source, frame: single?.frame ?? 1 });
  const now = input.now ?? new Date();
  const date = dicomDate(now);
  const time = dicomTime(now);
  const dataset: Record<string, unknown> = { ...input.patientStudy };
  const deviceUid = derivedUid('ai-device', input.model.id, input.model.version);

  Object.assign(dataset, {
    SOPClassUID: COMPREHENSIVE_3D_SR,
    SOPInstanceUID: uids.sopInstanceUid,
    SpecificCharacterSet: 'ISO_IR 192',
    Modality: 'SR',
    SeriesInstanceUID: uids.seriesInstanceUid,
    SeriesNumber: '9001',
    SeriesDescription: (input.seriesDescription ?? `AI ${input.model.id}`).slice(0, 64),
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: 'filmless-pacs',
    InstanceNumber: String(single?.frame ?? 1),
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentDate: date,
    ContentTime: time,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [
      {
        StudyInstanceUID: input.source.studyInstanceUid,
        ReferencedSeriesSequence: [
          {
            SeriesInstanceUID: input.source.seriesInstanceUid,
            ReferencedSOPSequence: [{ ReferencedSOPClassUID: input.source.sopClassUid, ReferencedSOPInstanceUID: input.source.sopInstanceUid }],
          },
        ],
      },
    ],
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [CODES.report],
    ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '1500' }],
    ContentSequence: [
      codeItem('HAS CONCEPT MOD', CODES.language, CODES.english),
      codeItem('HAS OBS CONTEXT', CODES.observerType, CODES.device),
      uidref('HAS OBS CONTEXT', CODES.deviceUid, deviceUid),
      text('HAS OBS CONTEXT', CODES.deviceName, input.model.id),
      text('HAS OBS CONTEXT', CODES.deviceManufacturer, 'filmless-pacs'),
      text('HAS OBS CONTEXT', CODES.deviceModel, `${input.model.id} ${input.model.version}`),
      codeItem('HAS CONCEPT MOD', CODES.procedureReported, CODES.colonoscopy),
      container('CONTAINS', CODES.imageLibrary, [
        container('CONTAINS', CODES.imageLibraryGroup, [{ RelationshipType: 'CONTAINS', ValueType: 'IMAGE', ReferencedSOPSequence: [imageRef(input, single?.frame)] }]),
      ]),
      container(
        'CONTAINS',
        CODES.imagingMeasurements,
        [
          ...input.frames.flatMap((frame) => frame.detections.map((d) => ({ d, frame }))).map(({ d, frame }, i) => measurementGroup(d, i, frame, input, uids)),
          ...(input.tracks ?? []).filter((t) => t.regions.length > 0).map((t) => trackGroup(t, input, uids)),
        ],
      ),
    ],
  });
  return { part10: writePart10(dataset), uids };
}

export interface StoredDetectionReport {
  model: { id: string; version: string };
  source: SourceImage;
  report: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string; contentDate: string; contentTime: string };
  /** Frames with detections, in frame order (a single-frame report lists its frame even when empty). */
  frames: ReportFrame[];
  /** Tracked findings (a recorded live session's report): id, label, highest score and frame range. */
  tracks: Array<{ id: number; label: string; trackingUid: string; peakScore: number; firstFrame: number; lastFrame: number; frames: number }>;
}

const asList = (value: unknown): Item[] => (Array.isArray(value) ? (value as Item[]) : value === undefined ? [] : [value as Item]);
const conceptOf = (item: Item): Code | undefined => asList(item['ConceptNameCodeSequence'])[0] as Code | undefined;
const isConcept = (item: Item, c: Code) => {
  const concept = conceptOf(item);
  return concept?.CodeValue === c.CodeValue && concept.CodingSchemeDesignator === c.CodingSchemeDesignator;
};
const child = (item: Item, c: Code) => asList(item['ContentSequence']).find((i) => isConcept(i, c));

/**
 * Reads a report written by `buildDetectionReport` back into JSON (the boxes from the SCOORD
 * polygons, the scores from the NUMs). Throws if the file is not such a report.
 */
export function readDetectionReport(part10: Buffer): StoredDetectionReport {
  const file = DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer);
  const ds = DicomMetaDictionary.naturalizeDataset(file.dict) as Item;
  if (ds['SOPClassUID'] !== COMPREHENSIVE_3D_SR || !isConcept(ds, CODES.report)) throw new Error('not a TID 1500 measurement report');
  const library = child(ds, CODES.imageLibrary);
  const group = library === undefined ? undefined : child(library, CODES.imageLibraryGroup);
  const image = group === undefined ? undefined : asList(group['ContentSequence']).find((i) => i['ValueType'] === 'IMAGE');
  const ref = image === undefined ? undefined : asList(image['ReferencedSOPSequence'])[0];
  if (ref === undefined) throw new Error('the report has no image library entry');
  const evidence = asList(ds['CurrentRequestedProcedureEvidenceSequence'])[0];
  const evidenceSeries = evidence === undefined ? undefined : asList(evidence['ReferencedSeriesSequence'])[0];
  const frames = new Map<number, ReportFrame>();
  const libraryFrame = ref['ReferencedFrameNumber'];
  if (libraryFrame !== undefined) frames.set(Number(libraryFrame), { frame: Number(libraryFrame), detections: [] });
  // A single-frame image is referenced without a frame number (the writer's imageRef): its one frame is 1.
  // A video (a recorded session's report of tracks) is referenced whole, without frames of its own.
  else if (!VIDEO_SOP_CLASSES.has(String(ref['ReferencedSOPClassUID']))) frames.set(1, { frame: 1, detections: [] });
  let modelId = '';
  let modelVersion = '';
  const measurements = child(ds, CODES.imagingMeasurements);
  const tracks: StoredDetectionReport['tracks'] = [];
  for (const g of asList(measurements?.['ContentSequence']).filter((i) => isConcept(i, CODES.measurementGroup))) {
    const finding = child(g, CODES.finding);
    const score = child(g, CODES.score);
    const time = child(g, CODES.timeOffset);
    modelId = String(child(g, CODES.algorithmName)?.['TextValue'] ?? modelId);
    modelVersion = String(child(g, CODES.algorithmVersion)?.['TextValue'] ?? modelVersion);
    const measured = asList(score?.['MeasuredValueSequence'])[0];
    const label = labelOf(asList(finding?.['ConceptCodeSequence'])[0] as unknown as Code);
    const timeValue = asList(time?.['MeasuredValueSequence'])[0]?.['NumericValue'];
    const round = (v: number) => Math.round(v * 100) / 100;
    // One region per group (a detection), or one per frame (a tracked finding, TID 1411-style).
    const regions = asList(g['ContentSequence']).filter((i) => isConcept(i, CODES.imageRegion));
    const regionFrames: number[] = [];
    regions.forEach((region, r) => {
      const points = (region['GraphicData'] as number[] | undefined) ?? [];
      const xs = points.filter((_, i) => i % 2 === 0);
      const ys = points.filter((_, i) => i % 2 === 1);
      const selectedFrom = asList(asList(region['ContentSequence'])[0]?.['ReferencedSOPSequence'])[0];
      const frameNumber = Number(selectedFrom?.['ReferencedFrameNumber'] ?? 1);
      regionFrames.push(frameNumber);
      const frame = frames.get(frameNumber) ?? { frame: frameNumber, detections: [] };
      frames.set(frameNumber, frame);
      if (timeValue !== undefined && r === 0) frame.timeOffsetMs = Number(timeValue);
      frame.detections.push({
        label,
        score: Number(measured?.['NumericValue']),
        box: { x: round(Math.min(...xs)), y: round(Math.min(...ys)), width: round(Math.max(...xs) - Math.min(...xs)), height: round(Math.max(...ys) - Math.min(...ys)) },
      });
    });
    const template = asList(g['ContentTemplateSequence'])[0]?.['TemplateIdentifier'];
    const trackingId = String(child(g, CODES.trackingId)?.['TextValue'] ?? '');
    const trackNumber = /track (\d+)$/.exec(trackingId)?.[1];
    if (template === '1411' && trackNumber !== undefined && regionFrames.length > 0) {
      tracks.push({
        id: Number(trackNumber),
        label,
        trackingUid: String(child(g, CODES.trackingUid)?.['UID'] ?? ''),
        peakScore: Number(measured?.['NumericValue']),
        firstFrame: Math.min(...regionFrames),
        lastFrame: Math.max(...regionFrames),
        frames: regionFrames.length,
      });
    }
  }
  const deviceModel = String(child(ds, CODES.deviceModel)?.['TextValue'] ?? '');
  if (modelId === '') [modelId = '', modelVersion = ''] = deviceModel.split(' ');
  return {
    model: { id: modelId, version: modelVersion },
    source: {
      studyInstanceUid: String(evidence?.['StudyInstanceUID'] ?? ds['StudyInstanceUID']),
      seriesInstanceUid: String(evidenceSeries?.['SeriesInstanceUID'] ?? ''),
      sopInstanceUid: String(ref['ReferencedSOPInstanceUID']),
      sopClassUid: String(ref['ReferencedSOPClassUID']),
    },
    report: {
      studyInstanceUid: String(ds['StudyInstanceUID']),
      seriesInstanceUid: String(ds['SeriesInstanceUID']),
      sopInstanceUid: String(ds['SOPInstanceUID']),
      contentDate: String(ds['ContentDate'] ?? ''),
      contentTime: String(ds['ContentTime'] ?? ''),
    },
    frames: [...frames.values()].sort((a, b) => a.frame - b.frame),
    tracks,
  };
}
