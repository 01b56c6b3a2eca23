/**
 * "AI in use, measured" (docs/api.md, "AI in use"): every AI finding a user was shown, and every
 * decision a clinician made on one, summed per model id + version so that administrators see a model
 * that does worse in this hospital than on its test set. Built once by the composition module
 * (services.ts) with the archive, its store and the models the server runs; told of findings shown
 * (ReportService.onAiFindingsShown, the AI routes' frame detections) and of signed reports
 * (ReportService.onSigned).
 *
 * Definitions (also returned with the figures):
 * - **shown**: a finding is shown once, the first time the server hands it to a user: offered by
 *   `GET /reports/studies/{study}/ai-findings` or a new endoscopy draft, returned by the AI panel's
 *   `GET`/`POST /ai/studies/…/frames/{frame}/detections`, or when a decision names it (a decision
 *   implies it was seen). Counted in the period it was first shown in.
 * - **accepted / rejected**: the finding's latest decision: an endoscopy report signed with the finding
 *   accepted or rejected; an AI annotation group cited in a signed pathology report (accepted); or a
 *   verdict `right` (accepted) / `wrong` (rejected) through `POST /ai/findings/{sop}/{item}/verdict`.
 *   Counted in the period the latest decision was made in; a later decision replaces an earlier one (an
 *   amendment, a second opinion), every one is kept in the history.
 * - **acceptance rate**: accepted / (accepted + rejected), compared with the model card's precision
 *   at its operating threshold on its test split.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { StoredInstance } from '../catalog/catalog.js';
import type { ModelUsage, UsageReport, VerdictBody, VerdictResult } from '../contracts/ai-usage.js';
import type { OfferedAiFinding } from '../contracts/reports.js';
import { firstString, type DicomJsonDataset } from '../dicom/dicom-json.js';
import { AppError, isAppError, NotFoundError } from '../errors.js';
import { COMPREHENSIVE_3D_SR, readDetectionReport, type StoredDetectionReport } from '../inference/detection-report.js';
import type { FrameReport } from '../inference/frame-detections.js';
import type { ModelSpec } from '../inference/model-manifest.js';
import type { SignedReportEvent } from '../reports/report-service.js';
import type { AiDecisionInput, AiFindingFacts, AiUsageStore } from './ai-usage-store.js';

export const BULK_ANNOTATIONS = '1.2.840.10008.5.1.4.1.1.91.1';
const ANNOTATION_GROUP_SEQUENCE = '006A0002';
const ANNOTATION_GROUP_NUMBER = '0040A180';
const ANNOTATION_GROUP_LABEL = '006A0005';
const ANNOTATION_GROUP_GENERATION_TYPE = '006A0007';
const ANNOTATION_GROUP_ALGORITHM = '006A0008';
const NUMBER_OF_ANNOTATIONS = '006A000C';
const ALGORITHM_NAME = '00660036';
const ALGORITHM_VERSION = '00660031';

export const USAGE_DEFINITIONS: Readonly<Record<string, string>> = {
  shown: 'AI findings first handed to a user in the period: offered in a report editor (a study\'s AI findings, a new endoscopy draft), returned to the viewer\'s AI panel (a frame\'s detections), or named by a decision.',
  accepted: 'Findings whose latest decision, made in the period, is accepted: accepted in a signed endoscopy report, an AI region cited in a signed pathology report, or marked right.',
  rejected: 'Findings whose latest decision, made in the period, is rejected: rejected in a signed endoscopy report, or marked wrong.',
  acceptanceRate: 'accepted / (accepted + rejected). Compare with the test set\'s precision at the operating threshold (the model card): clearly lower here means the model does worse in this hospital.',
};

/** Who acts: the request's principal. */
export interface AiUsageActor {
  subject: string;
  name?: string;
}

export interface AiUsageServiceOptions {
  /** The models this server runs (their manifest entries: card and test-set metrics). */
  models?: () => readonly ModelSpec[];
  now?: () => number;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `YYYYMMDD` as the start of that day (or of `plusDays` later) in the server's local time (epoch ms); undefined when not a date. */
function localDayStart(date: string, plusDays = 0): number | undefined {
  const y = Number(date.slice(0, 4));
  const m = Number(date.slice(4, 6));
  const d = Number(date.slice(6, 8));
  const at = new Date(y, m - 1, d);
  if (at.getFullYear() !== y || at.getMonth() !== m - 1 || at.getDate() !== d) return undefined;
  return new Date(y, m - 1, d + plusDays).getTime();
}

const numberOr = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

export class AiUsageService {
  private readonly now: () => number;
  /** Parsed detection reports by SOP Instance UID (a stored instance never changes). */
  private readonly detectionReports = new LRUCache<string, { parsed: StoredDetectionReport | null }>({ max: 256 });

  constructor(
    private readonly archive: Archive,
    private readonly store: AiUsageStore,
    private readonly log: Logger,
    private readonly options: AiUsageServiceOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** A clinician's verdict on one stored finding: `right` counts as accepted, `wrong` as rejected. */
  async verdict(sopInstanceUid: string, item: string, body: VerdictBody, actor: AiUsageActor): Promise<VerdictResult> {
    const finding = await this.finding(sopInstanceUid, item);
    const at = this.now();
    const decision = body.verdict === 'right' ? 'accepted' : 'rejected';
    const by = { subject: actor.subject, name: actor.name ?? null };
    await this.store.recordDecisions([{ finding, decision, by, at, source: 'verdict', ...(body.comment === undefined ? {} : { comment: body.comment }) }]);
    return { finding, decision, decidedAt: new Date(at).toISOString(), decidedBy: by };
  }

  /** The figures per model id + version for the days `from` … `to` (YYYYMMDD, inclusive, the server's local days). */
  async usage(from: string, to: string): Promise<UsageReport> {
    const start = localDayStart(from);
    const last = localDayStart(to);
    if (start === undefined) throw new AppError('BAD_QUERY', 'Query parameter "from": must be a date YYYYMMDD');
    if (last === undefined) throw new AppError('BAD_QUERY', 'Query parameter "to": must be a date YYYYMMDD');
    if (start > last) throw new AppError('BAD_QUERY', 'Query parameter "from": must not be after "to"');
    const end = localDayStart(to, 1)!;
    const specs = this.options.models?.() ?? [];
    const rows = await this.store.usage(start, end);
    const models: ModelUsage[] = rows.map((row) => {
      const decided = row.accepted + row.rejected;
      const spec = specs.find((s) => s.id === row.model.id && s.version === row.model.version);
      const metrics = spec?.metrics ?? {};
      return {
        ...row,
        acceptanceRate: decided === 0 ? null : Math.round((row.accepted / decided) * 10000) / 10000,
        testSet:
          spec === undefined
            ? null
            : { split: typeof metrics['split'] === 'string' ? metrics['split'] : null, precisionAtThreshold: numberOr(metrics['precisionAtThreshold']), card: spec.card ?? null },
      };
    });
    return { from, to, models, definitions: { ...USAGE_DEFINITIONS } };
  }

  /** The findings a report editor offered (`GET /reports/studies/{study}/ai-findings`, a new endoscopy draft). */
  async offered(studyInstanceUid: string, findings: readonly OfferedAiFinding[]): Promise<void> {
    await this.shown(
      findings.map((f) => ({
        sopInstanceUid: f.report.sopInstanceUid,
        item: `${f.frame}-${f.index}`,
        studyInstanceUid,
        seriesInstanceUid: f.report.seriesInstanceUid,
        model: f.model,
        label: f.label,
      })),
    );
  }

  /** The detections of stored frames returned to the viewer's AI panel. */
  async returned(reports: readonly FrameReport[]): Promise<void> {
    await this.shown(
      reports.flatMap((r) =>
        r.detections.map((d, i) => ({
          sopInstanceUid: r.report.sopInstanceUid,
          item: `${r.source.frame}-${i + 1}`,
          studyInstanceUid: r.report.studyInstanceUid,
          seriesInstanceUid: r.report.seriesInstanceUid,
          model: r.model,
          label: d.label,
        })),
      ),
    );
  }

  /**
   * The decisions of a signed version: an endoscopy report's AI findings accepted or rejected; the AI
   * annotation groups a pathology report cites, accepted.
   */
  async signed(event: SignedReportEvent): Promise<void> {
    const { report, version } = event;
    const signature = version.signature;
    if (signature === null) return;
    const base = { by: { subject: signature.signer.subject, name: signature.signer.name }, at: signature.signedAt, source: 'report' as const, reportId: report.id, reportVersion: version.version };
    const decisions: AiDecisionInput[] = [];
    const content = version.content;
    if (content.kind === 'endoscopy') {
      for (const f of content.aiFindings ?? []) {
        if (f.decision === 'pending' || f.model === undefined) continue;
        decisions.push({
          ...base,
          decision: f.decision,
          finding: {
            sopInstanceUid: f.report,
            item: `${f.frame}-${f.index}`,
            studyInstanceUid: report.studyInstanceUid,
            seriesInstanceUid: f.reportSeriesInstanceUid ?? '',
            model: f.model,
            label: f.label ?? '',
          },
        });
      }
    } else if (content.kind === 'pathology') {
      const cited = new Set<string>();
      for (const finding of content.findings ?? []) for (const r of finding.regions ?? []) if (r.ai === true) cited.add(`${r.sopInstanceUid}/${r.group}${r.annotation === undefined ? '' : `-${r.annotation}`}`);
      for (const key of cited) {
        const [sop, item] = key.split('/') as [string, string];
        try {
          decisions.push({ ...base, decision: 'accepted', finding: await this.finding(sop, item) });
        } catch (err) {
          if (!isAppError(err) || err.code !== 'NOT_FOUND') throw err;
        }
      }
    }
    await this.store.recordDecisions(decisions);
  }

  /** The findings of the store's history (tests, support). */
  decisions(sopInstanceUid: string, item: string) {
    return this.store.decisions(sopInstanceUid, item);
  }

  /**
   * The stored finding `item` of the AI result `sopInstanceUid`: its study, series, model and label.
   * NotFoundError when no such AI result or item is stored.
   */
  async finding(sopInstanceUid: string, item: string): Promise<AiFindingFacts> {
    const instance = await this.instance(sopInstanceUid);
    const parts = item.split('-').map(Number);
    if (instance.sopClassUid === COMPREHENSIVE_3D_SR) {
      const parsed = await this.detectionReport(instance);
      if (parsed === null) throw new NotFoundError('The instance is not an AI detection report');
      if (parts.length !== 2) throw new NotFoundError(`A detection report's findings are {frame}-{index}: "${item}" names none`);
      const [frameNumber, index] = parts as [number, number];
      const detection = parsed.frames.find((f) => f.frame === frameNumber)?.detections[index - 1];
      if (detection === undefined) throw new NotFoundError(`The detection report has no finding ${item} (frame ${frameNumber}, detection ${index})`);
      return { sopInstanceUid, item, studyInstanceUid: instance.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, model: parsed.model, label: detection.label };
    }
    if (instance.sopClassUid === BULK_ANNOTATIONS) {
      const [found] = await this.archive.findInstancesWithAttributes({ studyInstanceUid: instance.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, sopInstanceUid });
      const groups = (found?.attributes[ANNOTATION_GROUP_SEQUENCE]?.Value ?? []) as DicomJsonDataset[];
      const [groupNumber, annotation] = parts as [number, number | undefined];
      const group = groups.find((g) => firstString(g, ANNOTATION_GROUP_NUMBER) === String(groupNumber));
      if (group === undefined) throw new NotFoundError(`The annotation instance has no group ${groupNumber}`);
      const generation = firstString(group, ANNOTATION_GROUP_GENERATION_TYPE);
      const algorithm = ((group[ANNOTATION_GROUP_ALGORITHM]?.Value ?? []) as DicomJsonDataset[])[0];
      if ((generation !== 'AUTOMATIC' && generation !== 'SEMIAUTOMATIC') || algorithm === undefined) throw new NotFoundError(`Annotation group ${groupNumber} was not made by an AI model`);
      const count = Number(firstString(group, NUMBER_OF_ANNOTATIONS) ?? '0');
      if (annotation !== undefined && (annotation < 1 || annotation > count)) throw new NotFoundError(`Annotation group ${groupNumber} has ${count} annotations: there is no annotation ${annotation}`);
      return {
        sopInstanceUid,
        item,
        studyInstanceUid: instance.studyInstanceUid,
        seriesInstanceUid: instance.seriesInstanceUid,
        model: { id: firstString(algorithm, ALGORITHM_NAME) ?? '', version: firstString(algorithm, ALGORITHM_VERSION) ?? '' },
        label: firstString(group, ANNOTATION_GROUP_LABEL) ?? '',
      };
    }
    throw new NotFoundError('The instance is not a stored AI result (a detection report or bulk annotations)');
  }

  // -------------------------------------------------------------------------------------------------

  private async shown(findings: AiFindingFacts[]): Promise<void> {
    try {
      await this.store.recordShown(findings, this.now());
    } catch (err) {
      // Counting must never fail what the user asked for; the figure is then short, and the log says so.
      this.log.error({ err: { type: err instanceof Error ? err.name : typeof err }, findings: findings.length }, 'AI findings shown could not be counted');
    }
  }

  private async instance(sopInstanceUid: string): Promise<StoredInstance> {
    const { matches } = await this.archive.search({ level: 'instance', matches: [{ tag: '00080018', value: sopInstanceUid }], includeFields: [], limit: 1, offset: 0, fuzzyMatching: false });
    const match = matches[0];
    const study = match === undefined ? undefined : firstString(match, '0020000D');
    const series = match === undefined ? undefined : firstString(match, '0020000E');
    if (study === undefined || series === undefined) throw new NotFoundError('No stored AI result with this SOP Instance UID');
    try {
      const [instance] = await this.archive.findInstances({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid });
      if (instance !== undefined) return instance;
    } catch (err) {
      if (!isAppError(err) || err.code !== 'NOT_FOUND') throw err;
    }
    throw new NotFoundError('No stored AI result with this SOP Instance UID');
  }

  private async detectionReport(instance: StoredInstance): Promise<StoredDetectionReport | null> {
    const cached = this.detectionReports.get(instance.sopInstanceUid);
    if (cached !== undefined) return cached.parsed;
    let parsed: StoredDetectionReport | null = null;
    try {
      parsed = readDetectionReport(await readAll(await this.archive.openInstance(instance)));
    } catch (err) {
      if (isAppError(err)) throw err;
      parsed = null; // another kind of SR
    }
    this.detectionReports.set(instance.sopInstanceUid, { parsed });
    return parsed;
  }
}
