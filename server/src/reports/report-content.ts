/**
 * Pure rules about report content: the empty content of each kind, normalisation (lists always
 * present, the Boston Bowel Preparation Scale total computed), the hash that a signature records
 * (SHA-256 of the content as canonical JSON, RFC 8785 "JSON Canonicalization Scheme": object keys sorted
 * by UTF-16 code units, no white space, numbers and strings as ECMAScript's JSON.stringify writes them),
 * and the summary a FHIR DiagnosticReport or a list shows (title, conclusion, coded conclusions).
 */
import { createHash } from 'node:crypto';
import type { CodedJson, EndoscopyContent, PathologyContent, RadiologyContent, ReportContent, ReportKind, ReportSummary } from '../contracts/reports.js';
import { AppError } from '../errors.js';
import type { Code } from '../dicom/coded-concept.js';
import { C, DOCUMENT_TITLE, GRADE_CODE, HISTOLOGY_CODE } from './report-codes.js';

/** RFC 8785 canonical JSON of a JSON value (no undefined, functions or non-finite numbers inside). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new AppError('BAD_REQUEST', 'A number in the report is not finite');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new AppError('BAD_REQUEST', 'The report holds a value that is not JSON');
}

/** SHA-256 (hex) of the content's canonical JSON: what a signature records. */
export function contentSha256(content: ReportContent): string {
  return createHash('sha256').update(canonicalJson(content), 'utf8').digest('hex');
}

export function emptyContent(kind: ReportKind): ReportContent {
  switch (kind) {
    case 'endoscopy':
      return { kind, procedure: 'colonoscopy', landmarks: [], lesions: [], aiFindings: [], keyImages: [] };
    case 'pathology':
      return { kind, findings: [], keyImages: [] };
    case 'radiology':
      return { kind, findingCodes: [], measurements: [], keyImages: [] };
  }
}

/**
 * The content as it is stored: every list present, derived values computed (the BBPS total; a total
 * sent that disagrees with the segments is refused). Throws BAD_REQUEST naming the field.
 */
export function normalizeContent(kind: ReportKind, content: ReportContent): ReportContent {
  if (content.kind !== kind) throw new AppError('BAD_REQUEST', `Body field "content.kind": this is a ${kind} report, the content says ${content.kind}`);
  const copy = structuredClone(content) as ReportContent;
  copy.keyImages ??= [];
  if (copy.kind === 'endoscopy') {
    copy.procedure ??= 'colonoscopy';
    copy.landmarks ??= [];
    copy.lesions ??= [];
    copy.aiFindings ??= [];
    const prep = copy.bowelPreparation;
    if (prep !== undefined) {
      const total = prep.right + prep.transverse + prep.left;
      if (prep.total !== undefined && prep.total !== total) {
        throw new AppError('BAD_REQUEST', 'Body field "content.bowelPreparation.total": must be the sum of the three segment scores (or left out)');
      }
      prep.total = total;
    }
    copy.lesions.forEach((lesion, i) => {
      if (lesion.resection?.method === 'not-resected' && lesion.resection.completeness !== undefined) {
        throw new AppError('BAD_REQUEST', `Body field "content.lesions[${i}].resection.completeness": a lesion that was not resected has no completeness`);
      }
    });
    copy.aiFindings.forEach((finding, i) => {
      if (finding.lesion !== undefined && finding.decision !== 'accepted') {
        throw new AppError('BAD_REQUEST', `Body field "content.aiFindings[${i}].lesion": only an accepted AI finding is recorded as a lesion`);
      }
      if (finding.lesion !== undefined && finding.lesion > copy.lesions!.length) {
        throw new AppError('BAD_REQUEST', `Body field "content.aiFindings[${i}].lesion": there is no lesion ${finding.lesion}`);
      }
    });
    const seen = new Set<string>();
    copy.aiFindings.forEach((finding, i) => {
      const key = `${finding.report}/${finding.frame}/${finding.index}`;
      if (seen.has(key)) throw new AppError('BAD_REQUEST', `Body field "content.aiFindings[${i}]": the same AI finding is listed twice`);
      seen.add(key);
    });
  } else if (copy.kind === 'pathology') {
    copy.findings ??= [];
    for (const finding of copy.findings) finding.regions ??= [];
  } else {
    copy.findingCodes ??= [];
    copy.measurements ??= [];
    copy.measurements.forEach((m, i) => {
      const n = m.points.length;
      if (n % 2 !== 0) throw new AppError('BAD_REQUEST', `Body field "content.measurements[${i}].points": must be x,y pairs`);
      if (m.type === 'length' && n !== 4) throw new AppError('BAD_REQUEST', `Body field "content.measurements[${i}].points": a length has two points (x1,y1,x2,y2)`);
      if (m.type === 'area' && n < 6) throw new AppError('BAD_REQUEST', `Body field "content.measurements[${i}].points": an area is a polygon of at least three points`);
    });
  }
  return copy;
}

const json = (c: Code): CodedJson => ({ value: c.CodeValue, scheme: c.CodingSchemeDesignator, meaning: c.CodeMeaning });

/** Title, conclusion and coded conclusions (for lists, the PDF and a FHIR DiagnosticReport). */
export function summaryOf(content: ReportContent): ReportSummary {
  const title = DOCUMENT_TITLE[content.kind];
  const base = { title: title.CodeMeaning, code: json(title) };
  switch (content.kind) {
    case 'endoscopy':
      return { ...base, conclusion: content.conclusion ?? null, codes: endoscopyCodes(content) };
    case 'pathology':
      return { ...base, conclusion: pathologyConclusion(content), codes: pathologyCodes(content) };
    case 'radiology':
      return { ...base, conclusion: content.impression ?? null, codes: radiologyCodes(content) };
  }
}

function unique(codes: CodedJson[]): CodedJson[] {
  const seen = new Set<string>();
  return codes.filter((c) => {
    const key = `${c.scheme}|${c.value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function endoscopyCodes(content: EndoscopyContent): CodedJson[] {
  const codes: CodedJson[] = [];
  const lesions = content.lesions ?? [];
  const acceptedAlone = (content.aiFindings ?? []).filter((f) => f.decision === 'accepted' && f.lesion === undefined);
  if (lesions.length > 0 || acceptedAlone.length > 0) codes.push(json(C.polypOfColon));
  for (const lesion of lesions) if (lesion.histology !== undefined) codes.push(json(HISTOLOGY_CODE[lesion.histology.type]));
  return unique(codes);
}

function pathologyConclusion(content: PathologyContent): string | null {
  const parts = [content.diagnosis?.text, content.conclusion].filter((p): p is string => p !== undefined && p.trim() !== '');
  return parts.length === 0 ? null : parts.join('\n');
}

function pathologyCodes(content: PathologyContent): CodedJson[] {
  const codes: CodedJson[] = [];
  if (content.diagnosis?.code !== undefined) codes.push(content.diagnosis.code);
  if (content.grade !== undefined) codes.push(json(GRADE_CODE[content.grade]!));
  for (const finding of content.findings ?? []) if (finding.code !== undefined) codes.push(finding.code);
  return unique(codes);
}

function radiologyCodes(content: RadiologyContent): CodedJson[] {
  return unique([...(content.findingCodes ?? [])]);
}
