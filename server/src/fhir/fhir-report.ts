/**
 * A signed report (reports/) as a FHIR R4 DiagnosticReport: only reports with a version in force (final
 * or amended) exist for FHIR; drafts are not results. Pure mapping, no I/O.
 *
 * | report                                  | DiagnosticReport |
 * |-----------------------------------------|------------------|
 * | id                                      | id, identifier (`PACS_FHIR_REPORT_ID_SYSTEM`, the push's conditional update key) |
 * | id + version in force                   | identifier (`…-version` system, value `{id}.{version}`): which version the EMR holds |
 * | status final / amended                  | status final / amended |
 * | kind                                    | category (v2-0074 GE gastroenterology, SP surgical pathology, RAD radiology), code (LOINC 18746-8 Colonoscopy study, 11526-1 Pathology study, 18748-4 Diagnostic imaging study; reports/report-codes.ts) |
 * | study (index)                           | subject (its patient), imagingStudy, effectiveDateTime (study date and time), basedOn (the order's placer number) |
 * | signature: signer, time                 | resultsInterpreter (display), issued, meta.lastUpdated |
 * | summary conclusion / coded conclusions  | conclusion, conclusionCode |
 * | the version's PDF                       | presentedForm (application/pdf, url, SHA-1 hash, title, language, creation) |
 *
 * Findings are not sent as separate Observations (`result`): they are coded in conclusionCode and, in
 * full, in the report's DICOM SR, which the ImagingStudy's Endpoint serves.
 */
import type { Attachment, DiagnosticReport, Reference } from 'fhir/r4.js';
import type { CodedJson, ReportKind } from '../contracts/reports.js';
import { summaryOf } from '../reports/report-content.js';
import type { StoredReport, StoredVersion } from '../reports/report-store.js';
import { codeableConcept } from './fhir-resources.js';

/** HL7 v2 table 0074 Diagnostic Service Section ID. */
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
const CATEGORY: Record<ReportKind, { code: string; display: string }> = {
  endoscopy: { code: 'GE', display: 'Gastroenterology' },
  pathology: { code: 'SP', display: 'Surgical Pathology' },
  radiology: { code: 'RAD', display: 'Radiology' },
};

/** The version in force of a report: the newest final one; undefined while nothing is signed. */
export function versionInForce(versions: readonly StoredVersion[]): StoredVersion | undefined {
  return [...versions].reverse().find((v) => v.status === 'final' && v.signature !== null);
}

/** DiagnosticReport.status of a report with a version in force: the first signature is final, a later one amended. */
export function reportStatus(inForce: StoredVersion): 'final' | 'amended' {
  return inForce.version > 1 || inForce.amends !== null ? 'amended' : 'final';
}

export interface ReportPdf {
  url: string;
  /** SHA-1 of the PDF bytes, base64 (FHIR Attachment.hash); absent when the bytes could not be read. */
  sha1Base64?: string;
  size?: number;
}

export interface DiagnosticReportInput {
  report: StoredReport;
  inForce: StoredVersion;
  subject: Reference;
  /** FHIR dateTime of the study (effective); the report's procedure date when the study has none. */
  effective: string | undefined;
  basedOn: Reference | undefined;
  pdf: ReportPdf;
  reportIdSystem: string;
}

function conclusionCode(code: CodedJson) {
  return codeableConcept({ value: code.value, scheme: code.scheme, meaning: code.meaning });
}

/** The identifier system of report versions, beside the report id system. */
export function reportVersionSystem(reportIdSystem: string): string {
  return `${reportIdSystem}-version`;
}

export function diagnosticReportResource(id: string, input: DiagnosticReportInput): DiagnosticReport {
  const { report, inForce } = input;
  const summary = summaryOf(inForce.content);
  const signedAt = new Date(inForce.signature!.signedAt).toISOString();
  const category = CATEGORY[report.kind];
  const language = (inForce.content as { language?: string }).language ?? 'vi';
  const effective = input.effective ?? (/^\d{8}$/.test(report.procedureDate) ? `${report.procedureDate.slice(0, 4)}-${report.procedureDate.slice(4, 6)}-${report.procedureDate.slice(6, 8)}` : undefined);
  const presentedForm: Attachment = {
    contentType: 'application/pdf',
    language,
    url: input.pdf.url,
    ...(input.pdf.size === undefined ? {} : { size: input.pdf.size }),
    ...(input.pdf.sha1Base64 === undefined ? {} : { hash: input.pdf.sha1Base64 }),
    title: `${summary.title} (v${inForce.version})`,
    creation: signedAt,
  };
  const signer = inForce.signature!.signer;
  return {
    resourceType: 'DiagnosticReport',
    id,
    meta: { lastUpdated: signedAt },
    identifier: [
      { use: 'official', system: input.reportIdSystem, value: report.id },
      { use: 'secondary', system: reportVersionSystem(input.reportIdSystem), value: `${report.id}.${inForce.version}` },
    ],
    ...(input.basedOn === undefined ? {} : { basedOn: [input.basedOn] }),
    status: reportStatus(inForce),
    category: [{ coding: [{ system: V2_0074, code: category.code, display: category.display }] }],
    code: conclusionCode(summary.code),
    subject: input.subject,
    ...(effective === undefined ? {} : { effectiveDateTime: effective }),
    issued: signedAt,
    resultsInterpreter: [{ display: signer.name ?? signer.subject }],
    imagingStudy: [{ reference: `ImagingStudy/${report.studyInstanceUid}` }],
    ...(summary.conclusion === null || summary.conclusion.trim() === '' ? {} : { conclusion: summary.conclusion }),
    ...(summary.codes.length === 0 ? {} : { conclusionCode: summary.codes.map(conclusionCode) }),
    presentedForm: [presentedForm],
  };
}
