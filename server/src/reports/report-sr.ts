/**
 * A signed report as a DICOM Comprehensive SR (PS3.3 A.35.3, SOP Class 1.2.840.10008.5.1.4.1.1.88.33),
 * following TID 2000 "Basic Diagnostic Imaging Report": the document title (LOINC, report-codes.ts), the
 * language (TID 1204), the observation context (TID 1001/1002: the signer as a person observer), the
 * procedure reported, then sections (CID 7001 headings) holding the report's items (CID 7002/7003),
 * coded where a standard code exists (report-codes.ts). What the report's kind adds:
 *
 * - endoscopy: the Boston Bowel Preparation Scale (NUMs), extent reached (CODE, SNOMED CT segment),
 *   caecal landmarks (CODE, INFERRED FROM their photo), withdrawal time (NUM, s), one "Finding" CONTAINER
 *   per lesion (tracking identifier, finding site, size NUM, Paris class, resection, histology, its
 *   images); an accepted AI finding is cited on its finding as INFERRED FROM the AI report (COMPOSITE:
 *   the detection SR's SOP Instance UID) and INFERRED FROM its box (SCOORD SELECTED FROM the frame).
 * - pathology: specimen, findings each with the annotation regions they rest on (COMPOSITE: the
 *   Microscopy Bulk Simple Annotations instance, UIDREF: the annotation group, NUM: the annotation's
 *   index), diagnosis and histologic grade in the Conclusions section.
 * - radiology: findings text and codes, measurements as TID 1400-like groups (NUM Length mm / Area mm²
 *   INFERRED FROM the SCOORD it was drawn as: an open POLYLINE of two points, or a closed POLYLINE
 *   outline, SELECTED FROM the image), impression.
 *
 * The document is VERIFIED by the signer (Verifying Observer Sequence), COMPLETE and FINAL; every image
 * and instance it references is listed in the Current Requested Procedure Evidence Sequence; an
 * amendment lists the SR it replaces in the Predecessor Documents Sequence. Patient and study attributes
 * are the study's (dicom/patient-study-attributes.ts).
 */
import type { AnnotationRegionRef, EndoscopyContent, ImageRef, PathologyContent, RadiologyContent, ReportContent, ReportKind } from '../contracts/reports.js';
import type { Code } from '../dicom/coded-concept.js';
import { dicomDate, dicomTime } from '../dicom/dicom-datetime.js';
import type { PatientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { writePart10 } from '../dicom/write-part10.js';
import { C, COLLECTION_CODE, DOCUMENT_TITLE, GRADE_CODE, HISTOLOGY_CODE, LANDMARK_CODE, LANGUAGE_CODE, localCode, SEGMENT_CODE } from './report-codes.js';

export const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';

type Item = Record<string, unknown>;

/** An instance the SR references (content tree and evidence). */
export interface ReferencedInstance {
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
}

export interface ReportDocumentInput {
  reportId: string;
  version: number;
  kind: ReportKind;
  /** Normalised content whose references carry their SOP Class UIDs (report-service.ts checks them). */
  content: ReportContent;
  signer: { name: string };
  signedAt: Date;
  contentSha256: string;
  amendmentReason: string | null;
  patientStudy: PatientStudyAttributes;
  studyInstanceUid: string;
  uids: { seriesInstanceUid: string; sopInstanceUid: string };
  /** The SR of the version this one replaces (amendments). */
  predecessor?: ReferencedInstance;
  /** Instances named by UID only in the content (AI reports, annotation instances), with their series and class. */
  instances: ReadonlyMap<string, ReferencedInstance>;
  institutionName?: string;
}

const text = (rel: string, concept: Code, value: string, children: Item[] = []): Item => ({
  RelationshipType: rel,
  ValueType: 'TEXT',
  ConceptNameCodeSequence: [concept],
  TextValue: value,
  ...(children.length === 0 ? {} : { ContentSequence: children }),
});
const codeItem = (rel: string, concept: Code, value: Code, children: Item[] = []): Item => ({
  RelationshipType: rel,
  ValueType: 'CODE',
  ConceptNameCodeSequence: [concept],
  ConceptCodeSequence: [value],
  ...(children.length === 0 ? {} : { ContentSequence: children }),
});
const num = (rel: string, concept: Code, value: number, unit: Code, children: Item[] = []): Item => ({
  RelationshipType: rel,
  ValueType: 'NUM',
  ConceptNameCodeSequence: [concept],
  MeasuredValueSequence: [{ NumericValue: decimalString(value), MeasurementUnitsCodeSequence: [unit] }],
  ...(children.length === 0 ? {} : { ContentSequence: children }),
});
const uidref = (rel: string, concept: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'UIDREF', ConceptNameCodeSequence: [concept], UID: value });
const pname = (rel: string, concept: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'PNAME', ConceptNameCodeSequence: [concept], PersonName: value });
const container = (rel: string, concept: Code, children: Item[]): Item => ({
  RelationshipType: rel,
  ValueType: 'CONTAINER',
  ConceptNameCodeSequence: [concept],
  ContinuityOfContent: 'SEPARATE',
  ContentSequence: children,
});

/** DS: at most 16 characters. */
function decimalString(value: number): string {
  for (let digits = 6; digits >= 0; digits -= 1) {
    const s = String(Number(value.toFixed(digits)));
    if (s.length <= 16) return s;
  }
  return value.toExponential(6);
}

/** A person's display name as a DICOM PN (one component group; ^ = \ are component/group/value delimiters). */
export function personName(display: string): string {
  return display.replace(/[\\^=]/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 64) || 'unknown';
}

class Evidence {
  private readonly bySeries = new Map<string, Map<string, string>>();
  add(ref: ReferencedInstance): void {
    const series = this.bySeries.get(ref.seriesInstanceUid) ?? new Map<string, string>();
    series.set(ref.sopInstanceUid, ref.sopClassUid);
    this.bySeries.set(ref.seriesInstanceUid, series);
  }
  sequence(studyInstanceUid: string): Item[] {
    if (this.bySeries.size === 0) return [];
    return [
      {
        StudyInstanceUID: studyInstanceUid,
        ReferencedSeriesSequence: [...this.bySeries.entries()].map(([series, instances]) => ({
          SeriesInstanceUID: series,
          ReferencedSOPSequence: [...instances.entries()].map(([sop, sopClass]) => ({ ReferencedSOPClassUID: sopClass, ReferencedSOPInstanceUID: sop })),
        })),
      },
    ];
  }
}

class TreeBuilder {
  readonly evidence = new Evidence();
  constructor(private readonly instances: ReadonlyMap<string, ReferencedInstance>) {}

  private sopOf(ref: ImageRef): ReferencedInstance {
    const known = this.instances.get(ref.sopInstanceUid);
    const sopClassUid = ref.sopClassUid ?? known?.sopClassUid;
    if (sopClassUid === undefined) throw new Error(`no SOP Class UID for a referenced image`);
    return { seriesInstanceUid: ref.seriesInstanceUid, sopInstanceUid: ref.sopInstanceUid, sopClassUid };
  }

  referencedSop(ref: ImageRef): Item {
    const sop = this.sopOf(ref);
    this.evidence.add(sop);
    return { ReferencedSOPClassUID: sop.sopClassUid, ReferencedSOPInstanceUID: sop.sopInstanceUid, ...(ref.frame === undefined ? {} : { ReferencedFrameNumber: String(ref.frame) }) };
  }

  image(rel: string, ref: ImageRef, concept?: Code): Item {
    return { RelationshipType: rel, ValueType: 'IMAGE', ...(concept === undefined ? {} : { ConceptNameCodeSequence: [concept] }), ReferencedSOPSequence: [this.referencedSop(ref)] };
  }

  composite(rel: string, sopInstanceUid: string): Item | undefined {
    const known = this.instances.get(sopInstanceUid);
    if (known === undefined) return undefined;
    this.evidence.add(known);
    return { RelationshipType: rel, ValueType: 'COMPOSITE', ReferencedSOPSequence: [{ ReferencedSOPClassUID: known.sopClassUid, ReferencedSOPInstanceUID: known.sopInstanceUid }] };
  }

  /** A region drawn on an image frame: SCOORD in image pixel coordinates, SELECTED FROM the image. */
  scoord(rel: string, concept: Code, graphicType: 'POLYLINE', points: number[], on: ImageRef): Item {
    return {
      RelationshipType: rel,
      ValueType: 'SCOORD',
      ConceptNameCodeSequence: [concept],
      GraphicType: graphicType,
      GraphicData: points,
      ContentSequence: [this.image('SELECTED FROM', on)],
    };
  }

  keyImages(content: ReportContent): Item[] {
    const images = (content.keyImages ?? []).map((key) => {
      const { caption, ...ref } = key;
      return caption === undefined || caption.trim() === ''
        ? this.image('CONTAINS', ref, C.bestIllustration)
        : text('CONTAINS', C.keyObjectDescription, caption, [this.image('INFERRED FROM', ref)]);
    });
    return images.length === 0 ? [] : [container('CONTAINS', C.keyImages, images)];
  }

  endoscopy(content: EndoscopyContent): Item[] {
    const sections: Item[] = [];
    const indication = content.indication;
    if (indication !== undefined && (indication.category !== undefined || (indication.text ?? '') !== '')) {
      sections.push(
        container('CONTAINS', C.indicationsSection, [
          ...(indication.category === undefined ? [] : [codeItem('CONTAINS', C.indication, localCode(indication.category, `Indication: ${indication.category}`))]),
          ...((indication.text ?? '') === '' ? [] : [text('CONTAINS', C.indication, indication.text!)]),
        ]),
      );
    }
    const findings: Item[] = [];
    const prep = content.bowelPreparation;
    if (prep !== undefined) {
      findings.push(
        container('CONTAINS', C.bowelPreparation, [
          num('CONTAINS', C.bbpsRight, prep.right, C.score),
          num('CONTAINS', C.bbpsTransverse, prep.transverse, C.score),
          num('CONTAINS', C.bbpsLeft, prep.left, C.score),
          num('CONTAINS', C.bbpsTotal, prep.total ?? prep.right + prep.transverse + prep.left, C.score),
        ]),
      );
    }
    if (content.extent !== undefined) {
      findings.push(codeItem('CONTAINS', C.extentReached, SEGMENT_CODE[content.extent.reached]));
      if ((content.extent.limitation ?? '') !== '') findings.push(text('CONTAINS', C.extentLimitation, content.extent.limitation!));
    }
    for (const landmark of content.landmarks ?? []) {
      findings.push(codeItem('CONTAINS', C.landmark, LANDMARK_CODE[landmark.landmark], landmark.image === undefined ? [] : [this.image('INFERRED FROM', landmark.image)]));
    }
    if (content.withdrawal !== undefined && content.withdrawal.seconds !== null) findings.push(num('CONTAINS', C.withdrawalTime, content.withdrawal.seconds, C.seconds));
    const ai = content.aiFindings ?? [];
    (content.lesions ?? []).forEach((lesion, i) => {
      const cited = ai.filter((f) => f.decision === 'accepted' && f.lesion === i + 1);
      const items: Item[] = [
        text('HAS OBS CONTEXT', C.trackingId, `Lesion ${i + 1}`),
        codeItem('CONTAINS', C.finding, C.polypOfColon, cited.flatMap((f) => this.aiEvidence(f))),
        codeItem('HAS CONCEPT MOD', C.findingSite, SEGMENT_CODE[lesion.location]),
      ];
      if (lesion.sizeMm !== undefined) items.push(num('CONTAINS', C.polypSize, lesion.sizeMm, C.mm));
      if (lesion.paris !== undefined) items.push(codeItem('CONTAINS', C.paris, localCode(`PARIS-${lesion.paris.slice(2)}`, `Paris ${lesion.paris}`)));
      if (lesion.resection !== undefined) {
        items.push(codeItem('CONTAINS', C.resectionMethod, localCode(lesion.resection.method, `Resection: ${lesion.resection.method}`)));
        if (lesion.resection.completeness !== undefined) items.push(codeItem('CONTAINS', C.resectionCompleteness, localCode(lesion.resection.completeness, `Resection ${lesion.resection.completeness}`)));
        if (lesion.resection.retrieved !== undefined) items.push(codeItem('CONTAINS', C.retrieved, lesion.resection.retrieved ? C.yes : C.no));
      }
      if (lesion.histology !== undefined) {
        items.push(codeItem('CONTAINS', lesion.histology.status === 'confirmed' ? C.histology : C.suspectedHistology, HISTOLOGY_CODE[lesion.histology.type]));
        if (lesion.histology.dysplasia !== undefined) items.push(codeItem('CONTAINS', C.dysplasia, GRADE_CODE[`${lesion.histology.dysplasia}-dysplasia`]!));
      }
      for (const image of lesion.images ?? []) items.push(this.image('CONTAINS', image));
      if ((lesion.comment ?? '') !== '') items.push(text('CONTAINS', C.comment, lesion.comment!));
      findings.push(container('CONTAINS', C.finding, items));
    });
    ai.filter((f) => f.decision === 'accepted' && f.lesion === undefined).forEach((f, i) => {
      findings.push(container('CONTAINS', C.finding, [text('HAS OBS CONTEXT', C.trackingId, `AI finding ${i + 1}`), codeItem('CONTAINS', C.finding, C.polypOfColon, this.aiEvidence(f))]));
    });
    if (ai.length > 0) {
      const accepted = ai.filter((f) => f.decision === 'accepted').length;
      const rejected = ai.filter((f) => f.decision === 'rejected').length;
      findings.push(text('CONTAINS', C.comment, `AI findings reviewed: ${accepted} accepted, ${rejected} rejected, ${ai.length - accepted - rejected} not reviewed, of ${ai.length} offered`));
    }
    if (findings.length > 0) sections.push(container('CONTAINS', C.findingsSection, findings));
    const conclusions = [
      ...((content.conclusion ?? '') === '' ? [] : [text('CONTAINS', C.conclusion, content.conclusion!)]),
      ...((content.recommendation ?? '') === '' ? [] : [text('CONTAINS', C.recommendation, content.recommendation!)]),
    ];
    if (conclusions.length > 0) sections.push(container('CONTAINS', C.conclusionsSection, conclusions));
    return sections;
  }

  /** An accepted AI finding's citation: the detection report and the box on its frame. */
  private aiEvidence(finding: NonNullable<EndoscopyContent['aiFindings']>[number]): Item[] {
    const items: Item[] = [];
    const report = this.composite('INFERRED FROM', finding.report);
    if (report !== undefined) items.push(report);
    if (finding.box !== undefined && finding.source !== undefined) {
      const { x, y, width, height } = finding.box;
      items.push(this.scoord('INFERRED FROM', C.imageRegion, 'POLYLINE', [x, y, x + width, y, x + width, y + height, x, y + height, x, y], finding.source));
    }
    return items;
  }

  pathology(content: PathologyContent): Item[] {
    const sections: Item[] = [];
    const findings: Item[] = [];
    const specimen = content.specimen;
    if (specimen !== undefined) {
      if ((specimen.identifier ?? '') !== '') findings.push(text('CONTAINS', C.specimenIdentifier, specimen.identifier!));
      if ((specimen.description ?? '') !== '') findings.push(text('CONTAINS', C.specimenDescription, specimen.description!));
      if (specimen.collection !== undefined) findings.push(codeItem('CONTAINS', C.specimenCollection, COLLECTION_CODE[specimen.collection]!));
      if (specimen.site !== undefined) findings.push(codeItem('CONTAINS', C.findingSite, fromJson(specimen.site)));
      if ((specimen.siteText ?? '') !== '') findings.push(text('CONTAINS', C.findingSite, specimen.siteText!));
    }
    for (const finding of content.findings ?? []) {
      const items: Item[] = [text('CONTAINS', C.finding, finding.text)];
      if (finding.code !== undefined) items.push(codeItem('CONTAINS', C.finding, fromJson(finding.code)));
      for (const region of finding.regions ?? []) items.push(container('CONTAINS', C.annotationGroup, this.region(region)));
      findings.push(container('CONTAINS', C.finding, items));
    }
    if (findings.length > 0) sections.push(container('CONTAINS', C.findingsSection, findings));
    const conclusions: Item[] = [];
    if (content.diagnosis !== undefined) {
      conclusions.push(text('CONTAINS', C.conclusion, content.diagnosis.text));
      if (content.diagnosis.code !== undefined) conclusions.push(codeItem('CONTAINS', C.conclusion, fromJson(content.diagnosis.code)));
    }
    if (content.grade !== undefined) conclusions.push(codeItem('CONTAINS', C.histologicGrade, GRADE_CODE[content.grade]!));
    if ((content.conclusion ?? '') !== '') conclusions.push(text('CONTAINS', C.comment, content.conclusion!));
    if (conclusions.length > 0) sections.push(container('CONTAINS', C.conclusionsSection, conclusions));
    return sections;
  }

  private region(region: AnnotationRegionRef): Item[] {
    const items: Item[] = [];
    const ann = this.composite('CONTAINS', region.sopInstanceUid);
    if (ann !== undefined) items.push(ann);
    if (region.groupUid !== undefined) items.push(uidref('CONTAINS', C.annotationGroup, region.groupUid));
    items.push(text('CONTAINS', C.annotationGroup, `Group ${region.group}${region.groupLabel === undefined ? '' : ` ${region.groupLabel}`}${region.ai === true ? ' (AI)' : ''}`));
    if (region.annotation !== undefined) items.push(num('CONTAINS', C.annotationIndex, region.annotation, code1()));
    return items;
  }

  radiology(content: RadiologyContent): Item[] {
    const sections: Item[] = [];
    const history = [
      ...((content.procedure ?? '') === '' ? [] : [text('CONTAINS', CURRENT_PROCEDURE, content.procedure!)]),
      ...((content.clinicalInformation ?? '') === '' ? [] : [text('CONTAINS', C.history, content.clinicalInformation!)]),
    ];
    if (history.length > 0) sections.push(container('CONTAINS', C.historySection, history));
    const findings: Item[] = [];
    if ((content.findings ?? '') !== '') findings.push(text('CONTAINS', C.finding, content.findings!));
    for (const coded of content.findingCodes ?? []) findings.push(codeItem('CONTAINS', C.finding, fromJson(coded)));
    (content.measurements ?? []).forEach((m, i) => {
      const length = m.type === 'length';
      const points = length ? m.points : closedPolygon(m.points);
      findings.push(
        container('CONTAINS', C.measurementGroup, [
          text('HAS OBS CONTEXT', C.trackingId, m.label ?? `Measurement ${i + 1}`),
          num('CONTAINS', length ? C.length : C.area, m.value, length ? C.mm : C.mm2, [this.scoord('INFERRED FROM', C.imageRegion, 'POLYLINE', points, m.image)]),
        ]),
      );
    });
    if (findings.length > 0) sections.push(container('CONTAINS', C.findingsSection, findings));
    if ((content.impression ?? '') !== '') sections.push(container('CONTAINS', C.impressionsSection, [text('CONTAINS', C.impression, content.impression!)]));
    return sections;
  }
}

const CURRENT_PROCEDURE: Code = { CodeValue: '121064', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Current Procedure Descriptions' };
const code1 = (): Code => ({ CodeValue: '1', CodingSchemeDesignator: 'UCUM', CodeMeaning: 'no units' });
const fromJson = (c: { value: string; scheme: string; meaning: string }): Code => ({ CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning });

/** An area outline: a 2D SCOORD has no POLYGON type; a closed POLYLINE ends where it starts (PS3.3 C.18.6.1.2). */
function closedPolygon(points: number[]): number[] {
  const n = points.length;
  return points[0] === points[n - 2] && points[1] === points[n - 1] ? points : [...points, points[0]!, points[1]!];
}

/** The DICOM SR of a signed version, as a Part-10 file (Explicit VR Little Endian). */
export function buildReportSr(input: ReportDocumentInput): Buffer {
  const tree = new TreeBuilder(input.instances);
  const { content } = input;
  const sections = content.kind === 'endoscopy' ? tree.endoscopy(content) : content.kind === 'pathology' ? tree.pathology(content) : tree.radiology(content);
  const keyImages = tree.keyImages(content);
  const date = dicomDate(input.signedAt);
  const time = dicomTime(input.signedAt);
  const signer = personName(input.signer.name);
  const procedure = content.kind === 'endoscopy' ? C.colonoscopy : content.kind === 'radiology' && content.procedureCode !== undefined ? fromJson(content.procedureCode) : undefined;
  const amendment = input.amendmentReason === null ? [] : [text('CONTAINS', C.comment, `Amended version ${input.version}: ${input.amendmentReason}`)];
  const hash = text('CONTAINS', C.comment, `Signed content SHA-256 (RFC 8785 canonical JSON): ${input.contentSha256}`);
  const dataset: Record<string, unknown> = {
    ...input.patientStudy,
    StudyInstanceUID: input.studyInstanceUid,
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: COMPREHENSIVE_SR,
    SOPInstanceUID: input.uids.sopInstanceUid,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    TimezoneOffsetFromUTC: '+0000',
    Modality: 'SR',
    SeriesInstanceUID: input.uids.seriesInstanceUid,
    SeriesNumber: '9201',
    SeriesDescription: `Report ${DOCUMENT_TITLE[input.kind].CodeMeaning}`.slice(0, 64),
    SeriesDate: date,
    SeriesTime: time,
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: 'filmless-pacs',
    ...(input.institutionName === undefined ? {} : { InstitutionName: input.institutionName }),
    InstanceNumber: String(input.version),
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'VERIFIED',
    PreliminaryFlag: 'FINAL',
    ContentDate: date,
    ContentTime: time,
    VerifyingObserverSequence: [
      {
        VerifyingObserverName: signer,
        VerifyingObserverIdentificationCodeSequence: [],
        // Type 1: the institution (the study's Institution Name, else the configured one).
        VerifyingOrganization: (input.institutionName ?? '').trim() === '' ? 'Unknown' : input.institutionName!.slice(0, 64),
        VerificationDateTime: `${date}${time}`,
      },
    ],
    ...(input.predecessor === undefined
      ? {}
      : {
          PredecessorDocumentsSequence: [
            {
              StudyInstanceUID: input.studyInstanceUid,
              ReferencedSeriesSequence: [
                {
                  SeriesInstanceUID: input.predecessor.seriesInstanceUid,
                  ReferencedSOPSequence: [{ ReferencedSOPClassUID: input.predecessor.sopClassUid, ReferencedSOPInstanceUID: input.predecessor.sopInstanceUid }],
                },
              ],
            },
          ],
        }),
    PerformedProcedureCodeSequence: procedure === undefined ? [] : [procedure],
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [DOCUMENT_TITLE[input.kind]],
    ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '2000' }],
    ContentSequence: [
      codeItem('HAS CONCEPT MOD', C.language, LANGUAGE_CODE[content.language ?? 'vi']),
      codeItem('HAS OBS CONTEXT', C.observerType, C.person),
      pname('HAS OBS CONTEXT', C.personObserverName, signer),
      ...(procedure === undefined ? [] : [codeItem('HAS CONCEPT MOD', C.procedureReported, procedure)]),
      ...sections,
      ...keyImages,
      ...amendment,
      hash,
    ],
  };
  const evidence = tree.evidence.sequence(input.studyInstanceUid);
  if (evidence.length > 0) dataset['CurrentRequestedProcedureEvidenceSequence'] = evidence;
  return writePart10(dataset);
}
