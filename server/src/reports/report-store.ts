/**
 * Where reports and their versions are kept (kysely-report-store.ts: own tables in the index database,
 * SQLite or PostgreSQL; the contract every implementation meets is report-store.contract.ts). The store
 * enforces the state machine itself, each transition one conditional write, so two requests racing
 * (two saves, a save and a signature, two amendments) never both succeed:
 *
 *     draft ──sign──▶ final ──amend──▶ (new version: draft) ──sign──▶ final, the earlier final → superseded
 */
import type { Person, ReportContent, ReportKind, VersionStatus } from '../contracts/reports.js';

export interface StoredReport {
  id: string;
  studyInstanceUid: string;
  kind: ReportKind;
  /** YYYYMMDD: the study's date when the report was created (the period of the quality figures). */
  procedureDate: string;
  createdAt: number;
  createdBy: Person;
  /** Highest version number. */
  latestVersion: number;
}

/** The DICOM objects of a signed version (UIDs derived from report id and version). */
export interface VersionDicom {
  srSeriesInstanceUid: string;
  srSopInstanceUid: string;
  pdfSeriesInstanceUid: string;
  pdfSopInstanceUid: string;
  /** When both were stored in the archive; null while not yet. */
  storedAt: number | null;
}

export interface StoredSignature {
  signer: Person;
  signedAt: number;
  contentSha256: string;
}

export interface StoredVersion {
  reportId: string;
  version: number;
  status: VersionStatus;
  content: ReportContent;
  revision: number;
  createdAt: number;
  createdBy: Person;
  updatedAt: number;
  updatedBy: Person;
  amends: number | null;
  amendmentReason: string | null;
  signature: StoredSignature | null;
  supersededAt: number | null;
  supersededBy: number | null;
  dicom: VersionDicom | null;
}

export interface NewReport {
  id: string;
  studyInstanceUid: string;
  kind: ReportKind;
  procedureDate: string;
  content: ReportContent;
  by: Person;
  at: number;
}

/** A final endoscopy report as the quality figures count it. */
export interface FinalReportForQuality {
  report: StoredReport;
  /** The version in force. */
  version: StoredVersion;
  /** The signer of version 1: the endoscopist who reported the procedure (amendments may be signed by others). */
  endoscopist: Person;
}

export interface ReportStore {
  create(report: NewReport): Promise<{ report: StoredReport; version: StoredVersion }>;
  get(id: string): Promise<StoredReport | undefined>;
  /** Every version of a report, oldest first (empty when unknown). */
  versions(id: string): Promise<StoredVersion[]>;
  version(id: string, version: number): Promise<StoredVersion | undefined>;
  /** The reports of a study, oldest first. */
  ofStudy(studyInstanceUid: string): Promise<StoredReport[]>;
  /**
   * Replaces the content of the latest version while it is a draft. `expectedRevision`: refuse
   * (CONFLICT) when the draft was saved since. NOT_FOUND for an unknown report; CONFLICT when the latest
   * version is signed.
   */
  updateDraft(id: string, change: { content: ReportContent; expectedRevision?: number; by: Person; at: number }): Promise<StoredVersion>;
  /**
   * Signs the latest version (a draft): final, with the signature and the UIDs of its DICOM objects;
   * the version in force before it (when amending) becomes superseded, in the same transaction.
   */
  sign(id: string, change: { version: number; expectedRevision?: number; signature: StoredSignature; dicom: VersionDicom }): Promise<StoredVersion>;
  /** Records that the signed version's DICOM objects are in the archive. */
  markStored(id: string, version: number, at: number): Promise<void>;
  /** A new draft version copied from the final latest one (CONFLICT when the latest is a draft). */
  amend(id: string, change: { reason: string; by: Person; at: number }): Promise<StoredVersion>;
  /** Final endoscopy reports with a procedure date in [from, to] (YYYYMMDD, inclusive). */
  finalEndoscopyReports(from: string, to: string): Promise<FinalReportForQuality[]>;
  close(): Promise<void>;
}
