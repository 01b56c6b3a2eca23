/**
 * Endoscopy quality figures from final colonoscopy reports, per endoscopist and period, against the
 * targets of: Kaminski MF, Thomas-Gibson S, Bugajski M, et al. "Performance measures for lower
 * gastrointestinal endoscopy: a European Society of Gastrointestinal Endoscopy (ESGE) Quality
 * Improvement Initiative". Endoscopy 2017;49:378–397 (also United European Gastroenterology Journal
 * 2017;5:309–334). Its key performance measures give minimum standards for the rate of adequate bowel
 * preparation (90 %), the caecal intubation rate (90 %) and the adenoma detection rate (25 %); the
 * withdrawal time (≥ 6 minutes, measured in colonoscopies without intervention) is among its minor
 * measures. It sets no standard for the polyp detection rate, which is shown without a target.
 *
 * How each figure is counted (also returned as `definitions`):
 * - a procedure is the version in force of a final endoscopy report whose study date is in the period;
 *   its endoscopist is the signer of version 1 (an amendment adding histology does not move it);
 * - adenoma detection rate: procedures with at least one lesion whose histology is an adenoma (any
 *   conventional subtype or traditional serrated adenoma; confirmed, or suspected while pathology is
 *   awaited: `awaitingHistology` counts those) / procedures;
 * - polyp detection rate: procedures with at least one lesion or accepted AI finding / procedures;
 * - caecal intubation rate: procedures whose extent reached is the caecum or the terminal ileum /
 *   procedures (unadjusted: every procedure counts);
 * - adequate bowel preparation: Boston Bowel Preparation Scale total ≥ 6 with every segment ≥ 2 /
 *   procedures with a BBPS recorded;
 * - median withdrawal time: over procedures with a withdrawal time and no lesion resected.
 */
import type { EndoscopyContent, MedianMeasure, Person, QualityFigures, QualityReport, RateMeasure } from '../contracts/reports.js';
import { ADENOMA_TYPES } from './report-codes.js';
import type { FinalReportForQuality } from './report-store.js';

export const ESGE_2017 =
  'Kaminski MF, Thomas-Gibson S, Bugajski M, et al. Performance measures for lower gastrointestinal endoscopy: a European Society of Gastrointestinal Endoscopy (ESGE) Quality Improvement Initiative. Endoscopy 2017;49:378-397';

const TARGETS = {
  adenomaDetectionRate: { minimum: 0.25, source: 'ESGE 2017 key performance measure: adenoma detection rate, minimum standard 25 %' },
  polypDetectionRate: { minimum: null, source: 'ESGE 2017 sets no standard for the polyp detection rate' },
  caecalIntubationRate: { minimum: 0.9, source: 'ESGE 2017 key performance measure: caecal intubation rate, minimum standard 90 %' },
  adequateBowelPreparationRate: { minimum: 0.9, source: 'ESGE 2017 key performance measure: rate of adequate bowel preparation, minimum standard 90 %' },
  medianWithdrawalTimeSeconds: { minimum: 360, source: 'ESGE 2017 minor performance measure: withdrawal time at least 6 minutes' },
} as const;

export const DEFINITIONS: Record<string, string> = {
  procedure: 'the version in force of a final endoscopy report whose study date is in the period; the endoscopist is the signer of version 1',
  adenomaDetectionRate: 'procedures with at least one adenoma (conventional adenoma of any subtype or traditional serrated adenoma; confirmed, or suspected while histology is awaited) / procedures',
  polypDetectionRate: 'procedures with at least one lesion or accepted AI finding / procedures',
  caecalIntubationRate: 'procedures whose extent reached is the caecum or the terminal ileum / procedures (unadjusted)',
  adequateBowelPreparationRate: 'procedures with a Boston Bowel Preparation Scale total of at least 6 and every segment at least 2 / procedures with the scale recorded',
  medianWithdrawalTimeSeconds: 'median withdrawal time of the procedures with a withdrawal time and no lesion resected',
  awaitingHistology: 'procedures with a resected lesion whose histology is only suspected',
};

function rate(numerator: number, denominator: number, target: { minimum: number | null; source: string }): RateMeasure {
  const value = denominator === 0 ? null : numerator / denominator;
  return { value, numerator, denominator, target: { ...target }, met: value === null || target.minimum === null ? null : value >= target.minimum };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const resected = (content: EndoscopyContent) => (content.lesions ?? []).some((l) => l.resection !== undefined && l.resection.method !== 'not-resected');

export function figuresOf(procedures: readonly EndoscopyContent[]): QualityFigures {
  const n = procedures.length;
  const adenoma = procedures.filter((c) => (c.lesions ?? []).some((l) => l.histology !== undefined && ADENOMA_TYPES.has(l.histology.type))).length;
  const polyp = procedures.filter((c) => (c.lesions ?? []).length > 0 || (c.aiFindings ?? []).some((f) => f.decision === 'accepted')).length;
  const caecum = procedures.filter((c) => c.extent?.reached === 'caecum' || c.extent?.reached === 'terminal-ileum').length;
  const withPrep = procedures.filter((c) => c.bowelPreparation !== undefined);
  const adequate = withPrep.filter((c) => {
    const p = c.bowelPreparation!;
    return p.right + p.transverse + p.left >= 6 && p.right >= 2 && p.transverse >= 2 && p.left >= 2;
  }).length;
  const withdrawals = procedures.filter((c) => !resected(c) && c.withdrawal?.seconds !== undefined && c.withdrawal.seconds !== null).map((c) => c.withdrawal!.seconds!);
  const medianSeconds = median(withdrawals);
  const target = TARGETS.medianWithdrawalTimeSeconds;
  const withdrawal: MedianMeasure = {
    value: medianSeconds,
    count: withdrawals.length,
    target: { ...target },
    met: medianSeconds === null ? null : medianSeconds >= target.minimum,
  };
  const awaiting = procedures.filter((c) => (c.lesions ?? []).some((l) => l.resection !== undefined && l.resection.method !== 'not-resected' && l.histology?.status !== 'confirmed')).length;
  return {
    procedures: n,
    adenomaDetectionRate: rate(adenoma, n, TARGETS.adenomaDetectionRate),
    polypDetectionRate: rate(polyp, n, TARGETS.polypDetectionRate),
    caecalIntubationRate: rate(caecum, n, TARGETS.caecalIntubationRate),
    adequateBowelPreparationRate: rate(adequate, withPrep.length, TARGETS.adequateBowelPreparationRate),
    medianWithdrawalTimeSeconds: withdrawal,
    awaitingHistology: awaiting,
  };
}

/** The figures of each endoscopist (by subject, in name order) and of all of them together. */
export function qualityReport(reports: readonly FinalReportForQuality[], from: string, to: string, endoscopist?: string): QualityReport {
  const chosen = reports.filter((r) => r.version.content.kind === 'endoscopy' && (endoscopist === undefined || r.endoscopist.subject === endoscopist));
  const bySubject = new Map<string, { person: Person; contents: EndoscopyContent[] }>();
  for (const r of chosen) {
    const entry = bySubject.get(r.endoscopist.subject) ?? { person: r.endoscopist, contents: [] };
    entry.contents.push(r.version.content as EndoscopyContent);
    bySubject.set(r.endoscopist.subject, entry);
  }
  const endoscopists = [...bySubject.values()]
    .sort((a, b) => (a.person.name ?? a.person.subject).localeCompare(b.person.name ?? b.person.subject))
    .map((e) => ({ endoscopist: e.person, figures: figuresOf(e.contents) }));
  return {
    from,
    to,
    source: ESGE_2017,
    definitions: { ...DEFINITIONS },
    endoscopists,
    overall: figuresOf(chosen.map((r) => r.version.content as EndoscopyContent)),
  };
}
