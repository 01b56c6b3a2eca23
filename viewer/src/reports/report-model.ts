/**
 * What the report pages compute without the DOM (unit-tested in report-model.test.ts): the option
 * lists of the contract's enums with their labels, the Boston scale total, withdrawal times as m:ss,
 * the AI findings offered for a study merged with the decisions a draft holds, the content cleaned
 * before it is sent, and the quality figures as text.
 *
 * The wire types come from the server's contract (`import type`, erased at build). Its enum lists are
 * values and cannot be imported here: the lists below are checked against the contract's types, so
 * a value added to the contract and missing here is a compile error (`every`).
 */
import { t } from '../i18n/i18n.js';
import type { AiFindingDecision, ColonSegment, EndoscopyContent, HistologyType, ImageRef, KeyImage, Lesion, MedianMeasure, OfferedAiFinding, PathologyContent, RadiologyContent, RateMeasure, ReportContent, ReportKind, VersionStatus } from '../../../server/src/contracts/reports.js';

type Missing<T, L extends readonly unknown[]> = Exclude<T, L[number]>;
/** `list` as given, a compile error when it leaves out a member of the union `T`. */
const every =
  <T>() =>
  <const L extends readonly T[]>(list: L & ([Missing<T, L>] extends [never] ? unknown : { missing: Missing<T, L> })): L =>
    list;

type Indication = NonNullable<NonNullable<EndoscopyContent['indication']>['category']>;
type Landmark = NonNullable<EndoscopyContent['landmarks']>[number]['landmark'];
type Paris = NonNullable<Lesion['paris']>;
type ResectionMethod = NonNullable<Lesion['resection']>['method'];
type Completeness = NonNullable<NonNullable<Lesion['resection']>['completeness']>;
type Dysplasia = NonNullable<NonNullable<Lesion['histology']>['dysplasia']>;
type Grade = NonNullable<PathologyContent['grade']>;
type Collection = NonNullable<NonNullable<PathologyContent['specimen']>['collection']>;
type MeasurementType = NonNullable<RadiologyContent['measurements']>[number]['type'];

export const KINDS = every<ReportKind>()(['endoscopy', 'pathology', 'radiology']);
export const SEGMENTS = every<ColonSegment>()(['terminal-ileum', 'caecum', 'ascending', 'hepatic-flexure', 'transverse', 'splenic-flexure', 'descending', 'sigmoid', 'rectum']);
export const INDICATIONS = every<Indication>()(['screening', 'positive-fit', 'surveillance', 'symptoms', 'therapeutic', 'other']);
export const LANDMARKS = every<Landmark>()(['appendiceal-orifice', 'ileocaecal-valve', 'terminal-ileum']);
export const PARIS = every<Paris>()(['0-Ip', '0-Isp', '0-Is', '0-IIa', '0-IIb', '0-IIc', '0-III', '0-IIa+IIc', '0-IIa+Is']);
export const RESECTIONS = every<ResectionMethod>()(['not-resected', 'cold-snare', 'hot-snare', 'cold-forceps', 'hot-forceps', 'emr', 'piecemeal-emr', 'esd', 'biopsy-only']);
export const COMPLETENESS = every<Completeness>()(['complete', 'incomplete', 'unknown']);
export const HISTOLOGY = every<HistologyType>()([
  'adenoma',
  'tubular-adenoma',
  'tubulovillous-adenoma',
  'villous-adenoma',
  'traditional-serrated-adenoma',
  'sessile-serrated-lesion',
  'hyperplastic',
  'adenocarcinoma',
  'inflammatory',
  'hamartomatous',
  'normal-mucosa',
  'other',
]);
export const HISTOLOGY_STATUS = every<NonNullable<Lesion['histology']>['status']>()(['suspected', 'confirmed']);
export const DYSPLASIA = every<Dysplasia>()(['low-grade', 'high-grade']);
export const GRADES = every<Grade>()(['G1', 'G2', 'G3', 'G4', 'low-grade-dysplasia', 'high-grade-dysplasia']);
export const COLLECTIONS = every<Collection>()(['biopsy', 'polypectomy', 'excision', 'resection', 'cytology']);
export const MEASUREMENT_TYPES = every<MeasurementType>()(['length', 'area']);
/** The Boston Bowel Preparation Scale's segments, in the order they are scored. */
export const BBPS_SEGMENTS = ['right', 'transverse', 'left'] as const;

const SPECIAL_LABELS: Record<string, string> = {
  'positive-fit': 'Positive FIT',
  emr: 'EMR',
  'piecemeal-emr': 'Piecemeal EMR',
  esd: 'ESD',
  'appendiceal-orifice': 'Appendiceal orifice',
  'ileocaecal-valve': 'Ileocaecal valve',
  endoscopy: 'Endoscopy (colonoscopy)',
};

/**
 * `hepatic-flexure` → `Hepatic flexure` / `Đại tràng góc gan` (locales/reports.ts `value`); Paris classes
 * and grades stay as written; a value the texts do not know is spelled out from its words.
 */
export function label(value: string): string {
  if (/^0-|^G\d$/.test(value)) return value;
  const special = SPECIAL_LABELS[value];
  const words = value.replaceAll('-', ' ');
  return t(`reports:value.${value}`, { defaultValue: special ?? words.charAt(0).toUpperCase() + words.slice(1) });
}

/** A version's state in the page's language. */
export function versionStatusLabel(status: VersionStatus): string {
  return t(`reports:versionStatus.${status}`);
}


/** The BBPS total, or undefined until all three segments are scored. */
export function bbpsTotal(scores: Partial<Record<(typeof BBPS_SEGMENTS)[number], number | undefined>> | undefined): number | undefined {
  if (scores === undefined) return undefined;
  let total = 0;
  for (const s of BBPS_SEGMENTS) {
    const v = scores[s];
    if (v === undefined || !Number.isInteger(v)) return undefined;
    total += v;
  }
  return total;
}

/** 430 → `7:10`; null/undefined → ``. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** `7:10`, `7m10s`, `430` (seconds) → seconds; `` → null; anything else → undefined (invalid). */
export function parseDuration(text: string): number | null | undefined {
  const t = text.trim();
  if (t === '') return null;
  let m = /^(\d{1,3}):([0-5]?\d)$/.exec(t);
  if (m !== null) return Number(m[1]) * 60 + Number(m[2]);
  m = /^(?:(\d{1,3})\s*m(?:in)?)?\s*(?:(\d{1,4})\s*s(?:ec)?)?$/i.exec(t);
  if (m !== null && (m[1] !== undefined || m[2] !== undefined)) return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
  if (/^\d{1,5}$/.test(t)) return Number(t);
  return undefined;
}

export const findingKey = (f: { report: string; frame: number; index: number }) => `${f.report}|${f.frame}|${f.index}`;

/** An AI finding as the editor shows it: what the model found, and the decision of the draft. */
export interface AiFindingRow {
  key: string;
  offered: OfferedAiFinding | undefined;
  decision: AiFindingDecision;
}

/**
 * The study's AI findings (offered now) with the decisions the content holds. A finding stored after
 * the draft was made is added as `pending`; a decision whose finding is no longer offered stays (the
 * server checks it). Order: the offered list's (by report, frame, index), then the others.
 */
export function mergeAiFindings(offered: OfferedAiFinding[], decisions: AiFindingDecision[] | undefined): AiFindingRow[] {
  const byKey = new Map((decisions ?? []).map((d) => [findingKey(d), d]));
  const rows: AiFindingRow[] = offered.map((o) => {
    const key = findingKey({ report: o.report.sopInstanceUid, frame: o.frame, index: o.index });
    const decision = byKey.get(key) ?? { report: o.report.sopInstanceUid, frame: o.frame, index: o.index, decision: 'pending' as const };
    byKey.delete(key);
    return { key, offered: o, decision };
  });
  for (const [key, decision] of byKey) rows.push({ key, offered: undefined, decision });
  return rows;
}

const isBlank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

/** Drops blank optional text and empty objects the form leaves, so the content says what was entered. */
export function cleanContent(content: ReportContent): ReportContent {
  const c = structuredClone(content) as ReportContent;
  const prune = <T extends object>(o: T | undefined): T | undefined => {
    if (o === undefined) return undefined;
    for (const [k, v] of Object.entries(o)) if (isBlank(v)) delete (o as Record<string, unknown>)[k];
    return Object.keys(o).length === 0 ? undefined : o;
  };
  const set = <T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined) => {
    if (v === undefined) delete o[k];
    else o[k] = v;
  };
  for (const k of ['conclusion', 'recommendation', 'findings', 'impression', 'procedure', 'clinicalInformation'] as const) {
    const record = c as unknown as Record<string, unknown>;
    if (typeof record[k] === 'string' && isBlank(record[k])) delete record[k];
  }
  if (c.kind === 'endoscopy') {
    set(c, 'indication', prune(c.indication));
    if (c.extent !== undefined) set(c.extent, 'limitation', isBlank(c.extent.limitation) ? undefined : c.extent.limitation);
    for (const lesion of c.lesions ?? []) {
      if (isBlank(lesion.comment)) delete lesion.comment;
      if (lesion.sizeMm !== undefined && !Number.isFinite(lesion.sizeMm)) delete lesion.sizeMm;
    }
  } else if (c.kind === 'pathology') {
    set(c, 'specimen', prune(c.specimen));
    if (c.diagnosis !== undefined && isBlank(c.diagnosis.text) && c.diagnosis.code === undefined) delete c.diagnosis;
    c.findings = (c.findings ?? []).filter((f) => !isBlank(f.text) || (f.regions ?? []).length > 0);
  }
  for (const k of c.keyImages ?? []) if (isBlank(k.caption)) delete k.caption;
  return c;
}

/** What must be fixed before the content can be saved (the form's own checks; the server checks all). */
export function problemsOf(content: ReportContent): string[] {
  const problems: string[] = [];
  if (content.kind === 'endoscopy') {
    const b = content.bowelPreparation as Partial<Record<(typeof BBPS_SEGMENTS)[number], number>> | undefined;
    if (b !== undefined && bbpsTotal(b) === undefined) problems.push(t('reports:problem.bbps'));
    (content.lesions ?? []).forEach((l, i) => {
      if (l.sizeMm !== undefined && (l.sizeMm < 0 || l.sizeMm > 300)) problems.push(t('reports:problem.lesionSize', { n: i + 1 }));
    });
  }
  if (content.kind === 'radiology') {
    (content.measurements ?? []).forEach((m, i) => {
      const n = m.points.length;
      if (m.type === 'length' && n !== 4) problems.push(t('reports:problem.lengthPoints', { n: i + 1 }));
      if (m.type === 'area' && (n < 6 || n % 2 !== 0)) problems.push(t('reports:problem.areaPoints', { n: i + 1 }));
      if (!Number.isFinite(m.value) || m.value < 0) problems.push(t('reports:problem.value', { n: i + 1 }));
    });
  }
  if ((content.keyImages ?? []).length > 24) problems.push(t('reports:problem.keyImages'));
  return problems;
}

/** `12.5, 30 40;50` → [12.5, 30, 40, 50]; undefined when something is not a number. */
export function parsePoints(text: string): number[] | undefined {
  const parts = text.split(/[\s,;]+/).filter((p) => p !== '');
  const values = parts.map(Number);
  return values.every(Number.isFinite) ? values : undefined;
}

export const sameImage = (a: ImageRef, b: ImageRef) => a.sopInstanceUid === b.sopInstanceUid && (a.frame ?? 1) === (b.frame ?? 1);

/** How an image reference is named in the page (no patient data: series/instance numbers and frame). */
export function describeImage(ref: ImageRef | KeyImage, names?: (ref: ImageRef) => string | undefined): string {
  const base = names?.(ref) ?? t('reports:image', { uid: ref.sopInstanceUid.slice(-6) });
  return ref.frame === undefined ? base : t('reports:imageFrame', { image: base, frame: ref.frame });
}

// ---------------------------------------------------------------------------------------------------
// Quality figures

export function percent(value: number | null): string {
  if (value === null) return '–';
  const p = Math.round(value * 1000) / 10;
  return `${Number.isInteger(p) ? p.toFixed(0) : p.toFixed(1)} %`;
}

export interface MeasureText {
  value: string;
  detail: string;
  target: string;
  /** met / not met / no target (PDR) / no data (nothing to count). */
  state: 'met' | 'not-met' | 'no-target' | 'no-data';
}

export function rateText(m: RateMeasure): MeasureText {
  return {
    value: percent(m.value),
    detail: `${m.numerator}/${m.denominator}`,
    target: m.target.minimum === null ? t('reports:quality.targetNone') : `≥ ${percent(m.target.minimum)}`,
    state: measureState(m),
  };
}

export function medianText(m: MedianMeasure): MeasureText {
  return {
    value: m.value === null ? '–' : formatDuration(m.value),
    detail: `n = ${m.count}`,
    target: m.target.minimum === null ? t('reports:quality.targetNone') : `≥ ${formatDuration(m.target.minimum)}`,
    state: measureState(m),
  };
}

function measureState(m: { value: number | null; target: { minimum: number | null }; met: boolean | null }): MeasureText['state'] {
  if (m.target.minimum === null) return 'no-target';
  if (m.value === null || m.met === null) return 'no-data';
  return m.met ? 'met' : 'not-met';
}

/** `2026-01-05` → `20260105` (invalid → undefined). */
export function dicomDateOf(iso: string): string | undefined {
  return /^\d{4}-\d{2}-\d{2}$/.test(iso) ? iso.replaceAll('-', '') : undefined;
}

/** The default period of the quality figures: the 12 months up to `today`, as `YYYY-MM-DD`. */
export function defaultPeriod(today = new Date()): { from: string; to: string } {
  const iso = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  const from = new Date(today.getFullYear() - 1, today.getMonth(), today.getDate() + 1);
  return { from: iso(from), to: iso(today) };
}
