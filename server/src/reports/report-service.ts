/**
 * The reports use cases (docs/architecture.md, "Reports"): drafts for a study, their checks against
 * what the study holds, signing, amendments, the PDF, the AI findings offered and the endoscopy quality
 * figures. Built once by the composition module (services.ts) with the archive and the report store; the
 * routes (reports.routes.ts) are given it.
 *
 * Finalising is two steps, in this order: the store marks the version final with its signature (the
 * signer from the token, the time, the SHA-256 of the content's canonical JSON) and the UIDs of its DICOM
 * objects, derived from report id and version; then the SR and the Encapsulated PDF are built from that
 * signed version alone and stored through the archive's ordinary ingest. Storing twice stores once (same
 * UIDs), so a failed store is retried by signing again, which re-stores without signing anew.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { StoredInstance } from '../catalog/catalog.js';
import type {
  AiFindingDecision,
  EndoscopyContent,
  ImageRef,
  OfferedAiFinding,
  PathologyContent,
  Person,
  QualityReport,
  ReportContent,
  ReportKind,
  WithdrawalTime,
} from '../contracts/reports.js';
import { derivedUid } from '../dicom/derived-uid.js';
import { dicomDate } from '../dicom/dicom-datetime.js';
import { firstString, type DicomJsonDataset } from '../dicom/dicom-json.js';
import { buildEncapsulatedPdf, ENCAPSULATED_PDF, readEncapsulatedPdf } from '../dicom/encapsulated-pdf.js';
import { withIdentityJson } from '../dicom/identity-rewrite.js';
import { patientStudyAttributes, type PatientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { AppError, isAppError, NotFoundError } from '../errors.js';
import { COMPREHENSIVE_3D_SR, readDetectionReport, type StoredDetectionReport } from '../inference/detection-report.js';
import { qualityReport } from './quality.js';
import { DOCUMENT_TITLE } from './report-codes.js';
import { contentSha256, emptyContent, normalizeContent } from './report-content.js';
import type { PdfImage } from './report-pdf.js';
import { buildReportSr, COMPREHENSIVE_SR, type ReferencedInstance } from './report-sr.js';
import type { ReportStore, StoredReport, StoredVersion, VersionDicom } from './report-store.js';

export const VIDEO_ENDOSCOPIC = '1.2.840.10008.5.1.4.1.1.77.1.1.1';
export const MICROSCOPY_BULK_SIMPLE_ANNOTATIONS = '1.2.840.10008.5.1.4.1.1.91.1';
const FRAME_TIME_VECTOR = '00181065';
const FRAME_TIME = '00181063';
const NUMBER_OF_FRAMES = '00280008';
const ANNOTATION_GROUP_SEQUENCE = '006A0002';

/** Who acts: the request's principal (auth/principal.ts). */
export interface ReportActor {
  subject: string;
  name?: string;
  permissions: ReadonlySet<string>;
}

/** A report with all its versions, oldest first. */
export interface ReportView {
  report: StoredReport;
  versions: StoredVersion[];
}

/** A version signed and stored in its study (for the EMR push: fhir/). */
export interface SignedReportEvent {
  report: StoredReport;
  version: StoredVersion;
}

export interface ReportServiceOptions {
  now?: () => number;
  /** Printed on the PDF and written as Institution Name. */
  institutionName?: string;
}

const personOf = (actor: ReportActor): Person => ({ subject: actor.subject, name: actor.name ?? null });

/** The study as a report needs it: its instances and the patient/study attributes a derived instance copies. */
interface StudyContext {
  studyInstanceUid: string;
  instances: Map<string, StoredInstance>;
  attributes: DicomJsonDataset;
  patientStudy: PatientStudyAttributes;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function* oneChunk(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** The DICOM UIDs of a signed version: one SR series and one PDF series per report, one instance each per version. */
export function versionUids(reportId: string, version: number): Omit<VersionDicom, 'storedAt'> {
  return {
    srSeriesInstanceUid: derivedUid('report-sr-series', reportId),
    srSopInstanceUid: derivedUid('report-sr', reportId, String(version)),
    pdfSeriesInstanceUid: derivedUid('report-pdf-series', reportId),
    pdfSopInstanceUid: derivedUid('report-pdf', reportId, String(version)),
  };
}

export class ReportService {
  private readonly now: () => number;
  /** Parsed AI detection reports by SOP Instance UID (a stored instance never changes). */
  private readonly detectionReports = new LRUCache<string, { parsed: StoredDetectionReport | null }>({ max: 512 });
  private readonly signedListeners: Array<(event: SignedReportEvent) => void | Promise<void>> = [];
  private readonly shownListeners: Array<(studyInstanceUid: string, findings: OfferedAiFinding[]) => void | Promise<void>> = [];

  constructor(
    private readonly archive: Archive,
    private readonly store: ReportStore,
    private readonly log: Logger,
    private readonly options: ReportServiceOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async create(input: { studyInstanceUid: string; kind: ReportKind; content?: ReportContent }, actor: ReportActor): Promise<ReportView> {
    const study = await this.study(input.studyInstanceUid);
    let content = input.content ?? emptyContent(input.kind);
    if (input.content === undefined && content.kind === 'endoscopy') {
      // Offer every AI finding of the study's detection reports for review.
      const offered = await this.offeredAiFindings(study);
      await this.tellShown(study.studyInstanceUid, offered);
      content.aiFindings = offered.map((f) => ({ report: f.report.sopInstanceUid, frame: f.frame, index: f.index, decision: 'pending' as const }));
    }
    content = await this.resolve(input.kind, content, study);
    const at = this.now();
    const studyDate = firstString(study.attributes, '00080020');
    const procedureDate = studyDate !== undefined && /^\d{8}$/.test(studyDate) ? studyDate : dicomDate(new Date(at));
    const created = await this.store.create({ id: randomUUID(), studyInstanceUid: input.studyInstanceUid, kind: input.kind, procedureDate, content, by: personOf(actor), at });
    return { report: created.report, versions: [created.version] };
  }

  async get(id: string): Promise<ReportView> {
    const report = await this.store.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    return { report, versions: await this.store.versions(id) };
  }

  async ofStudy(studyInstanceUid: string): Promise<ReportView[]> {
    const reports = await this.store.ofStudy(studyInstanceUid);
    return Promise.all(reports.map(async (report) => ({ report, versions: await this.store.versions(report.id) })));
  }

  async version(id: string, version: number): Promise<{ report: StoredReport; version: StoredVersion }> {
    const report = await this.store.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    const found = await this.store.version(id, version);
    if (found === undefined) throw new NotFoundError(`The report has no version ${version}`);
    return { report, version: found };
  }

  async update(id: string, content: ReportContent, expectedRevision: number | undefined, actor: ReportActor): Promise<ReportView> {
    const report = await this.store.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    const resolved = await this.resolve(report.kind, content, await this.study(report.studyInstanceUid));
    await this.store.updateDraft(id, { content: resolved, ...(expectedRevision === undefined ? {} : { expectedRevision }), by: personOf(actor), at: this.now() });
    return this.get(id);
  }

  /**
   * Signs the latest version (only an actor with the `sign` permission; the route requires it too) and
   * stores its SR and PDF in the study. A final version whose DICOM objects are not stored yet is stored
   * again instead (retry).
   */
  async sign(id: string, expectedRevision: number | undefined, actor: ReportActor): Promise<ReportView> {
    if (!actor.permissions.has('sign')) throw new AppError('FORBIDDEN', 'Signing a report needs the sign permission');
    const report = await this.store.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    const latest = (await this.store.version(id, report.latestVersion))!;
    if (latest.status === 'final' && latest.dicom !== null && latest.dicom.storedAt === null) {
      await this.storeDicom(report, latest);
      return this.get(id);
    }
    if (latest.status !== 'draft') throw new AppError('CONFLICT', `Version ${latest.version} is signed already: amend the report to change it`);
    if (latest.content.kind === 'endoscopy') {
      const pending = (latest.content.aiFindings ?? []).filter((f) => f.decision === 'pending').length;
      if (pending > 0) throw new AppError('CONFLICT', `${pending} AI finding(s) are not reviewed: accept or reject each before signing`);
    }
    const signed = await this.store.sign(id, {
      version: latest.version,
      ...(expectedRevision === undefined ? {} : { expectedRevision }),
      signature: { signer: personOf(actor), signedAt: this.now(), contentSha256: contentSha256(latest.content) },
      dicom: { ...versionUids(id, latest.version), storedAt: null },
    });
    await this.storeDicom(report, signed);
    return this.get(id);
  }

  /**
   * Calls `listener` after each version is signed and stored in its study (also when a retried store
   * succeeds). A listener's failure is logged, never the signer's problem.
   */
  onSigned(listener: (event: SignedReportEvent) => void | Promise<void>): void {
    this.signedListeners.push(listener);
  }

  async amend(id: string, reason: string, actor: ReportActor): Promise<ReportView> {
    await this.store.amend(id, { reason, by: personOf(actor), at: this.now() });
    return this.get(id);
  }

  /** The PDF of a version (default: the version in force, else the draft): a signed one as stored in the study. */
  async pdf(id: string, versionNumber?: number): Promise<{ pdf: Buffer; version: StoredVersion }> {
    const report = await this.store.get(id);
    if (report === undefined) throw new NotFoundError('No report with this id');
    let version: StoredVersion | undefined;
    if (versionNumber !== undefined) {
      version = await this.store.version(id, versionNumber);
      if (version === undefined) throw new NotFoundError(`The report has no version ${versionNumber}`);
    } else {
      const versions = await this.store.versions(id);
      version = versions.filter((v) => v.status === 'final').at(-1) ?? versions.at(-1)!;
    }
    if (version.status !== 'draft' && version.dicom !== null && version.dicom.storedAt !== null) {
      const stored = await this.storedPdf(report, version.dicom);
      if (stored !== undefined) return { pdf: stored, version };
    }
    return { pdf: await this.renderPdf(report, version, await this.study(report.studyInstanceUid)), version };
  }

  /** AI findings of the study's stored detection reports (TID 1500 SRs), each frame's detections numbered from 1. */
  async aiFindings(studyInstanceUid: string): Promise<OfferedAiFinding[]> {
    const offered = await this.offeredAiFindings(await this.study(studyInstanceUid));
    await this.tellShown(studyInstanceUid, offered);
    return offered;
  }

  /**
   * Calls `listener` with the AI findings offered for review (a study's AI findings read, a new
   * endoscopy draft): "shown" of the AI usage figures (ai-usage/). A listener's failure is logged only.
   */
  onAiFindingsShown(listener: (studyInstanceUid: string, findings: OfferedAiFinding[]) => void | Promise<void>): void {
    this.shownListeners.push(listener);
  }

  private async tellShown(studyInstanceUid: string, findings: OfferedAiFinding[]): Promise<void> {
    if (findings.length === 0) return;
    for (const listener of this.shownListeners) {
      try {
        await listener(studyInstanceUid, findings);
      } catch (err) {
        this.log.error({ err: { type: err instanceof Error ? err.name : typeof err } }, 'a listener of AI findings shown failed');
      }
    }
  }

  async quality(from: string, to: string, endoscopist?: string): Promise<QualityReport> {
    if (from > to) throw new AppError('BAD_QUERY', 'Query parameter "from": must not be after "to"');
    return qualityReport(await this.store.finalEndoscopyReports(from, to), from, to, endoscopist);
  }

  // -------------------------------------------------------------------------------------------------

  private async study(studyInstanceUid: string): Promise<StudyContext> {
    const list = await this.archive.findInstances({ studyInstanceUid });
    const instances = new Map(list.map((i) => [i.sopInstanceUid, i]));
    const first = list[0]!;
    const [found] = await this.archive.findInstancesWithAttributes({ studyInstanceUid, seriesInstanceUid: first.seriesInstanceUid, sopInstanceUid: first.sopInstanceUid });
    const patient = found!.instance.patient;
    // The identity of record (the hospital link may have corrected the patient since the files came).
    const attributes = patient === undefined ? found!.attributes : withIdentityJson(found!.attributes, patient.identity);
    return { studyInstanceUid, instances, attributes, patientStudy: patientStudyAttributes(attributes) };
  }

  /** Normalises the content and checks and completes every reference against the study. */
  private async resolve(kind: ReportKind, input: ReportContent, study: StudyContext): Promise<ReportContent> {
    const content = normalizeContent(kind, input);
    const image = (ref: ImageRef, path: string) => this.resolveImage(ref, path, study);
    (content.keyImages ?? []).forEach((ref, i) => image(ref, `content.keyImages[${i}]`));
    if (content.kind === 'endoscopy') {
      (content.landmarks ?? []).forEach((l, i) => l.image !== undefined && image(l.image, `content.landmarks[${i}].image`));
      (content.lesions ?? []).forEach((l, i) => (l.images ?? []).forEach((ref, j) => image(ref, `content.lesions[${i}].images[${j}]`)));
      content.aiFindings = await this.resolveAiFindings(content.aiFindings ?? [], study);
      content.withdrawal = await this.withdrawal(content, study);
      if (content.withdrawal === undefined) delete content.withdrawal;
    } else if (content.kind === 'pathology') {
      await this.resolveRegions(content, study);
    } else {
      (content.measurements ?? []).forEach((m, i) => image(m.image, `content.measurements[${i}].image`));
    }
    return content;
  }

  private resolveImage(ref: ImageRef, path: string, study: StudyContext): void {
    const instance = study.instances.get(ref.sopInstanceUid);
    if (instance === undefined || instance.seriesInstanceUid !== ref.seriesInstanceUid) throw new AppError('BAD_REQUEST', `Body field "${path}": no such image in the study`);
    if (instance.pixelData === undefined) throw new AppError('BAD_REQUEST', `Body field "${path}": the instance has no pixel data`);
    ref.sopClassUid = instance.sopClassUid;
    if (instance.numberOfFrames > 1) {
      if (ref.frame !== undefined && ref.frame > instance.numberOfFrames) throw new AppError('BAD_REQUEST', `Body field "${path}.frame": the image has ${instance.numberOfFrames} frames`);
    } else {
      if (ref.frame !== undefined && ref.frame > 1) throw new AppError('BAD_REQUEST', `Body field "${path}.frame": the image has one frame`);
      // A single-frame image is referenced without a frame number (PS3.3 C.17.3.2.1 / dciodvfy).
      delete ref.frame;
    }
  }

  private async detectionReport(instance: StoredInstance): Promise<StoredDetectionReport | null> {
    const cached = this.detectionReports.get(instance.sopInstanceUid);
    if (cached !== undefined) return cached.parsed;
    let parsed: StoredDetectionReport | null = null;
    try {
      parsed = readDetectionReport(await readAll(await this.archive.openInstance(instance)));
    } catch (err) {
      if (isAppError(err) && err.code !== 'NOT_FOUND') throw err;
      parsed = null; // another kind of SR
    }
    this.detectionReports.set(instance.sopInstanceUid, { parsed });
    return parsed;
  }

  private async offeredAiFindings(study: StudyContext): Promise<OfferedAiFinding[]> {
    const offered: OfferedAiFinding[] = [];
    const srs = [...study.instances.values()].filter((i) => i.sopClassUid === COMPREHENSIVE_3D_SR);
    for (const sr of srs) {
      const parsed = await this.detectionReport(sr);
      if (parsed === null) continue;
      const source = study.instances.get(parsed.source.sopInstanceUid);
      const multiFrame = (source?.numberOfFrames ?? 1) > 1;
      for (const frame of parsed.frames) {
        frame.detections.forEach((d, i) => {
          offered.push({
            report: { seriesInstanceUid: parsed.report.seriesInstanceUid, sopInstanceUid: parsed.report.sopInstanceUid, contentDate: parsed.report.contentDate, contentTime: parsed.report.contentTime },
            model: parsed.model,
            source: {
              seriesInstanceUid: parsed.source.seriesInstanceUid,
              sopInstanceUid: parsed.source.sopInstanceUid,
              sopClassUid: parsed.source.sopClassUid,
              ...(multiFrame ? { frame: frame.frame } : {}),
            },
            frame: frame.frame,
            index: i + 1,
            label: d.label,
            score: d.score,
            box: d.box,
            timeOffsetMs: frame.timeOffsetMs ?? null,
          });
        });
      }
    }
    return offered;
  }

  private async resolveAiFindings(decisions: AiFindingDecision[], study: StudyContext): Promise<AiFindingDecision[]> {
    if (decisions.length === 0) return [];
    const offered = new Map((await this.offeredAiFindings(study)).map((f) => [`${f.report.sopInstanceUid}/${f.frame}/${f.index}`, f]));
    return decisions.map((decision, i) => {
      const found = offered.get(`${decision.report}/${decision.frame}/${decision.index}`);
      if (found === undefined) throw new AppError('BAD_REQUEST', `Body field "content.aiFindings[${i}]": the study has no such AI finding (report, frame, index)`);
      return {
        report: decision.report,
        frame: decision.frame,
        index: decision.index,
        decision: decision.decision,
        ...(decision.lesion === undefined ? {} : { lesion: decision.lesion }),
        reportSeriesInstanceUid: found.report.seriesInstanceUid,
        label: found.label,
        score: found.score,
        box: found.box,
        source: found.source,
        ...(found.timeOffsetMs === null ? {} : { timeOffsetMs: found.timeOffsetMs }),
        model: found.model,
      };
    });
  }

  /**
   * The withdrawal time from the study's live recording (a Video Endoscopic Image; the one a caecal
   * landmark photo is taken from, else the longest): the time on its capture clock (Frame Time Vector,
   * live/recording.ts) from the first caecal landmark photographed in it to its last frame. Without a
   * landmark frame in it the start of the withdrawal is unknown and the time stays empty (its duration
   * is shown, not taken: a recording usually holds the insertion too). Entered times are kept.
   */
  private async withdrawal(content: EndoscopyContent, study: StudyContext): Promise<WithdrawalTime | undefined> {
    const given = content.withdrawal;
    if (given !== undefined && given.source === 'manual') {
      const { recording: _ignored, ...manual } = given;
      return manual;
    }
    const videos = [...study.instances.values()].filter((i) => i.sopClassUid === VIDEO_ENDOSCOPIC && i.numberOfFrames > 0);
    const landmarkFrames = (content.landmarks ?? []).map((l) => l.image).filter((ref): ref is ImageRef => ref !== undefined && ref.frame !== undefined);
    const video =
      videos.find((v) => landmarkFrames.some((ref) => ref.sopInstanceUid === v.sopInstanceUid)) ??
      videos.sort((a, b) => b.numberOfFrames - a.numberOfFrames)[0];
    if (video === undefined) return given === undefined ? undefined : { seconds: null, source: 'recording' };
    const [found] = await this.archive.findInstancesWithAttributes({ studyInstanceUid: study.studyInstanceUid, seriesInstanceUid: video.seriesInstanceUid, sopInstanceUid: video.sopInstanceUid });
    const offsets = frameOffsetsMs(found!.attributes, video.numberOfFrames);
    const last = offsets.length;
    const starts = landmarkFrames.filter((ref) => ref.sopInstanceUid === video.sopInstanceUid).map((ref) => ref.frame!);
    const fromFrame = starts.length === 0 ? null : Math.min(...starts);
    const seconds = fromFrame === null ? null : Math.round((offsets[last - 1]! - offsets[fromFrame - 1]!) / 100) / 10;
    return {
      seconds,
      source: 'recording',
      recording: {
        seriesInstanceUid: video.seriesInstanceUid,
        sopInstanceUid: video.sopInstanceUid,
        fromFrame,
        toFrame: last,
        recordingSeconds: Math.round(offsets[last - 1]! / 100) / 10,
      },
    };
  }

  private async resolveRegions(content: PathologyContent, study: StudyContext): Promise<void> {
    const groupsOf = new Map<string, Array<Record<string, unknown>>>();
    for (const [i, finding] of (content.findings ?? []).entries()) {
      for (const [j, region] of (finding.regions ?? []).entries()) {
        const path = `content.findings[${i}].regions[${j}]`;
        const instance = study.instances.get(region.sopInstanceUid);
        if (instance === undefined || instance.seriesInstanceUid !== region.seriesInstanceUid || instance.sopClassUid !== MICROSCOPY_BULK_SIMPLE_ANNOTATIONS) {
          throw new AppError('BAD_REQUEST', `Body field "${path}": no such Microscopy Bulk Simple Annotations instance in the study`);
        }
        let groups = groupsOf.get(instance.sopInstanceUid);
        if (groups === undefined) {
          const [found] = await this.archive.findInstancesWithAttributes({ studyInstanceUid: study.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, sopInstanceUid: instance.sopInstanceUid });
          groups = (found!.attributes[ANNOTATION_GROUP_SEQUENCE]?.Value ?? []) as Array<Record<string, unknown>>;
          groupsOf.set(instance.sopInstanceUid, groups);
        }
        const group = groups.find((g) => firstString(g as DicomJsonDataset, '0040A180') === String(region.group));
        if (group === undefined) throw new AppError('BAD_REQUEST', `Body field "${path}.group": the annotation instance has no group ${region.group}`);
        const count = Number(firstString(group as DicomJsonDataset, '006A000C') ?? '0');
        if (region.annotation !== undefined && count > 0 && region.annotation > count) throw new AppError('BAD_REQUEST', `Body field "${path}.annotation": the group has ${count} annotations`);
        const uid = firstString(group as DicomJsonDataset, '006A0003');
        const label = firstString(group as DicomJsonDataset, '006A0005');
        const generation = firstString(group as DicomJsonDataset, '006A0007');
        if (uid !== undefined) region.groupUid = uid;
        else delete region.groupUid;
        if (label !== undefined) region.groupLabel = label;
        else delete region.groupLabel;
        region.ai = generation === 'AUTOMATIC' || generation === 'SEMIAUTOMATIC';
      }
    }
  }

  /** Builds the SR and the Encapsulated PDF of a signed version and stores both in the study. */
  private async storeDicom(report: StoredReport, version: StoredVersion): Promise<void> {
    const dicom = version.dicom!;
    try {
      const study = await this.study(report.studyInstanceUid);
      const institutionName = firstString(study.attributes, '00080080') ?? this.options.institutionName;
      const signature = version.signature!;
      const signedAt = new Date(signature.signedAt);
      let predecessor: ReferencedInstance | undefined;
      if (version.amends !== null) {
        const previous = await this.store.version(report.id, version.amends);
        if (previous?.dicom !== null && previous?.dicom !== undefined) {
          predecessor = { seriesInstanceUid: previous.dicom.srSeriesInstanceUid, sopInstanceUid: previous.dicom.srSopInstanceUid, sopClassUid: COMPREHENSIVE_SR };
        }
      }
      const sr = buildReportSr({
        reportId: report.id,
        version: version.version,
        kind: report.kind,
        content: version.content,
        signer: { name: signature.signer.name ?? signature.signer.subject },
        signedAt,
        contentSha256: signature.contentSha256,
        amendmentReason: version.amendmentReason,
        patientStudy: study.patientStudy,
        studyInstanceUid: report.studyInstanceUid,
        uids: { seriesInstanceUid: dicom.srSeriesInstanceUid, sopInstanceUid: dicom.srSopInstanceUid },
        ...(predecessor === undefined ? {} : { predecessor }),
        instances: this.referencedInstances(version.content, study),
        ...(institutionName === undefined ? {} : { institutionName }),
      });
      const pdf = await this.renderPdf(report, version, study);
      const title = DOCUMENT_TITLE[report.kind];
      const encapsulated = buildEncapsulatedPdf({
        pdf,
        patientStudy: study.patientStudy,
        studyInstanceUid: report.studyInstanceUid,
        seriesInstanceUid: dicom.pdfSeriesInstanceUid,
        sopInstanceUid: dicom.pdfSopInstanceUid,
        seriesNumber: '9202',
        instanceNumber: version.version,
        title: title.CodeMeaning,
        concept: title,
        createdAt: signedAt,
        source: { sopClassUid: COMPREHENSIVE_SR, sopInstanceUid: dicom.srSopInstanceUid },
        ...(institutionName === undefined ? {} : { institutionName }),
      });
      for (const bytes of [sr, encapsulated]) {
        const stored = await (await this.archive.scanAndStore(oneChunk(bytes), report.studyInstanceUid)).completion;
        if (!stored.ok) throw new AppError('STORAGE_FAILURE', stored.failure.message);
      }
      await this.store.markStored(report.id, version.version, this.now());
    } catch (err) {
      this.log.error({ err: { type: err instanceof Error ? err.name : typeof err, code: isAppError(err) ? err.code : undefined }, reportId: report.id, version: version.version }, 'a signed report could not be stored in its study');
      throw new AppError('STORAGE_FAILURE', `Version ${version.version} is signed, but its SR and PDF could not be stored in the study yet: sign again to retry`, { cause: err });
    }
    const stored = (await this.store.version(report.id, version.version)) ?? version;
    for (const listener of this.signedListeners) {
      try {
        await listener({ report, version: stored });
      } catch (err) {
        this.log.error({ err: { type: err instanceof Error ? err.name : typeof err }, reportId: report.id, version: version.version }, 'a listener of signed reports failed');
      }
    }
  }

  /** Instances the content names by UID only (AI detection reports, annotation instances). */
  private referencedInstances(content: ReportContent, study: StudyContext): Map<string, ReferencedInstance> {
    const map = new Map<string, ReferencedInstance>();
    const add = (sop: string) => {
      const instance = study.instances.get(sop);
      if (instance !== undefined) map.set(sop, { seriesInstanceUid: instance.seriesInstanceUid, sopInstanceUid: sop, sopClassUid: instance.sopClassUid });
    };
    if (content.kind === 'endoscopy') for (const f of content.aiFindings ?? []) if (f.decision === 'accepted') add(f.report);
    if (content.kind === 'pathology') for (const f of content.findings ?? []) for (const r of f.regions ?? []) add(r.sopInstanceUid);
    return map;
  }

  private async storedPdf(report: StoredReport, dicom: VersionDicom): Promise<Buffer | undefined> {
    try {
      const [instance] = await this.archive.findInstances({ studyInstanceUid: report.studyInstanceUid, seriesInstanceUid: dicom.pdfSeriesInstanceUid, sopInstanceUid: dicom.pdfSopInstanceUid });
      if (instance === undefined || instance.sopClassUid !== ENCAPSULATED_PDF) return undefined;
      return readEncapsulatedPdf(await readAll(await this.archive.openInstance(instance)));
    } catch (err) {
      if (isAppError(err) && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  private async renderPdf(report: StoredReport, version: StoredVersion, study: StudyContext): Promise<Buffer> {
    const images: PdfImage[] = [];
    for (const key of version.content.keyImages ?? []) {
      const instance = study.instances.get(key.sopInstanceUid);
      let jpeg: Buffer | null = null;
      if (instance !== undefined) {
        try {
          jpeg = (await this.archive.renderFrame(instance, { frame: key.frame ?? 1, format: 'jpeg', viewport: { width: 640, height: 480 }, quality: 85 })).body;
        } catch (err) {
          this.log.warn({ err: { type: err instanceof Error ? err.name : typeof err, code: isAppError(err) ? err.code : undefined } }, 'a key image of a report could not be rendered');
        }
      }
      images.push({ jpeg, caption: key.caption ?? (key.frame === undefined ? '' : `#${key.frame}`) });
    }
    const a = study.attributes;
    const signature = version.signature;
    // The PDF stack (pdfkit and its fonts) loads with the first PDF, not with the server: a started server
    // holds ~9 MiB less resident memory, and most servers of a cluster never make one (docs/benchmarks.md,
    // "What the JS heap holds"). The first PDF of a process waits for the load once.
    const { renderReportPdf } = await import('./report-pdf.js');
    return renderReportPdf({
      reportId: report.id,
      kind: report.kind,
      version: version.version,
      status: version.status,
      content: version.content,
      patient: { name: firstString(a, '00100010') ?? null, id: firstString(a, '00100020') ?? null, birthDate: firstString(a, '00100030') ?? null, sex: firstString(a, '00100040') ?? null },
      study: { date: firstString(a, '00080020') ?? null, accessionNumber: firstString(a, '00080050') ?? null, description: firstString(a, '00081030') ?? null },
      signature: signature === null ? null : { signerName: signature.signer.name ?? signature.signer.subject, signedAt: new Date(signature.signedAt), contentSha256: signature.contentSha256 },
      amends: version.amends,
      amendmentReason: version.amendmentReason,
      supersededBy: version.supersededBy,
      documentDate: new Date(signature?.signedAt ?? version.updatedAt),
      images,
      ...(this.options.institutionName === undefined ? {} : { institutionName: this.options.institutionName }),
    });
  }
}

/** Milliseconds from the first frame to each frame (Frame Time Vector: increments, the first 0; else Frame Time). */
export function frameOffsetsMs(attributes: DicomJsonDataset, numberOfFrames: number): number[] {
  const frames = Math.max(1, Number(firstString(attributes, NUMBER_OF_FRAMES) ?? numberOfFrames) || numberOfFrames);
  const vector = (attributes[FRAME_TIME_VECTOR]?.Value ?? []).map((v) => Number(v));
  const frameTime = Number(firstString(attributes, FRAME_TIME) ?? '0');
  const offsets: number[] = [];
  let total = 0;
  for (let i = 0; i < frames; i += 1) {
    const increment = i === 0 ? 0 : vector.length === frames ? vector[i]! : Number.isFinite(frameTime) ? frameTime : 0;
    total += Number.isFinite(increment) && increment > 0 ? increment : 0;
    offsets.push(total);
  }
  return offsets;
}
