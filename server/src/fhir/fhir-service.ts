/**
 * The FHIR read model: Patient, ImagingStudy and DiagnosticReport resources read and searched from the
 * index (fhir-index.ts), the hospital link's store (patients, orders) and the report store, for the
 * `/fhir` API (fhir.routes.ts) and the push to the EMR (fhir-push.ts). Builds nothing; services.ts
 * gives it its parts.
 */
import { createHash } from 'node:crypto';
import type { DiagnosticReport, ImagingStudy, Patient, Reference } from 'fhir/r4.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { BadQueryError } from '../errors.js';
import type { HisStore } from '../his/his-store.js';
import type { Order } from '../his/his-model.js';
import type { StoredReport, StoredVersion } from '../reports/report-store.js';
import { FHIR_ID, IdentifierSystems, parsePatientId, patientIdOf, patientIdOfRow } from './fhir-ids.js';
import type { FhirIndex, IndexPatient, StudyDetail, StudyIdentifier, StudySummary } from './fhir-index.js';
import { diagnosticReportResource, reportVersionSystem, versionInForce, type ReportPdf } from './fhir-report.js';
import { DICOM_UID_SYSTEM, imagingStudyResource, patientResource, serviceRequestReference, type StudyOrder } from './fhir-resources.js';
import { checkParameters, dayRangesOf, dicomDateTime, instantRangesOf, referencesOf, tokensOf, valuesOf, type DayRange, type InstantRange, type RawQuery, type Token } from './fhir-search.js';
import type { FhirStore } from './fhir-store.js';

/** What the FHIR link reads of the report store (reports/report-store.ts). */
export interface ReportSource {
  get(id: string): Promise<StoredReport | undefined>;
  versions(id: string): Promise<StoredVersion[]>;
  ofStudy(studyInstanceUid: string): Promise<StoredReport[]>;
}

/** The PDF of a signed version, for the DiagnosticReport's presentedForm hash (undefined: not available). */
export type ReportPdfBytes = (reportId: string, version: number) => Promise<Buffer | undefined>;

export interface FhirServiceOptions {
  systems: IdentifierSystems;
  accessionSystem: string;
  placerOrderSystem: string;
  reportIdSystem: string;
  /** The URL path of a report version's PDF below the base URL, e.g. `/reports/{id}/versions/{version}/pdf`. */
  reportPdfPath: (reportId: string, version: number) => string;
  reportPdf?: ReportPdfBytes;
}

/** Absolute URLs of this request (or of PACS_PUBLIC_BASE_URL for the push). */
export interface BaseUrls {
  /** The server's origin (and path prefix) clients use: https://pacs.example.org */
  base: string;
  dicomweb: string;
}

export interface SearchPage {
  count: number;
  offset: number;
}

export interface SearchResult<T> {
  total: number;
  resources: T[];
  /** The parameters that were used (for the Bundle's self link): supported ones only. */
  used: string[];
}

export const PATIENT_SEARCH = ['identifier'] as const;
export const IMAGING_STUDY_SEARCH = ['patient', 'subject', 'identifier', 'started'] as const;
export const DIAGNOSTIC_REPORT_SEARCH = ['patient', 'subject', 'identifier', 'date', 'issued', 'status', 'category', 'code'] as const;

/** Reports of patients are gathered study by study: at most this many studies per patient search. */
const MAX_STUDIES_PER_REPORT_SEARCH = 5000;

function usedOf(query: RawQuery, supported: readonly string[]): string[] {
  return [...supported, '_id', '_lastUpdated'].filter((name) => query[name] !== undefined);
}

function intersect(groups: string[][]): string[] | undefined {
  if (groups.length === 0) return undefined;
  return groups.reduce((acc, group) => acc.filter((id) => group.includes(id)));
}

/** The order of a study among the hospital link's orders: by Study Instance UID, else by accession number. */
function orderOf(study: StudySummary, orders: readonly Order[]): StudyOrder | undefined {
  return orders.find((o) => o.studyInstanceUid === study.studyInstanceUid) ?? orders.find((o) => study.accessionNumber !== null && o.accessionNumber === study.accessionNumber);
}

function inRange(day: string | undefined, range: DayRange): boolean {
  if (day === undefined) return range.prefix === 'ne';
  switch (range.prefix) {
    case 'eq':
    case 'ap':
      return day >= range.from && day <= range.to;
    case 'ne':
      return day < range.from || day > range.to;
    case 'gt':
    case 'sa':
      return day > range.to;
    case 'lt':
    case 'eb':
      return day < range.from;
    case 'ge':
      return day >= range.from;
    case 'le':
      return day <= range.to;
  }
}

function inInstantRange(iso: string, range: InstantRange): boolean {
  switch (range.prefix) {
    case 'eq':
    case 'ap':
      return iso >= range.from && iso < range.to;
    case 'ne':
      return iso < range.from || iso >= range.to;
    case 'gt':
    case 'sa':
      return iso >= range.to;
    case 'lt':
    case 'eb':
      return iso < range.from;
    case 'ge':
      return iso >= range.from;
    case 'le':
      return iso < range.to;
  }
}

function tokenMatches(tokens: Token[], codings: ReadonlyArray<{ system?: string; code?: string }>): boolean {
  return tokens.some((t) => codings.some((c) => c.code === t.value && (t.system === undefined || (t.system === '' ? c.system === undefined : c.system === t.system))));
}

export class FhirService {
  readonly systems: IdentifierSystems;

  constructor(
    private readonly index: FhirIndex,
    private readonly store: FhirStore,
    private readonly his: HisStore | undefined,
    private readonly reports: ReportSource | undefined,
    private readonly options: FhirServiceOptions,
  ) {
    this.systems = options.systems;
  }

  /** Whether DiagnosticReport is served (a report store is wired). */
  get hasReports(): boolean {
    return this.reports !== undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Patient

  /** The logical id of a patient (an index row, or a key), remembering hashed ids. */
  async patientIdOf(patient: IndexPatient | PatientKey): Promise<string> {
    const key: PatientKey = 'rowId' in patient ? patient.identity : patient;
    if ('rowId' in patient && key.patientId === '') return patientIdOfRow(patient.rowId);
    const { id, long } = patientIdOf({ patientId: key.patientId, issuer: key.issuer });
    if (long) await this.store.rememberPatientAlias(id, key);
    return id;
  }

  /** The identity of record of a Patient id: the hospital link's when it knows the patient, else the index row's. */
  async patientIdentity(id: string): Promise<{ identity: PatientIdentity; rowIds: number[] } | undefined> {
    const ref = parsePatientId(id);
    if (ref === undefined) return undefined;
    if (ref.kind === 'row') {
      const row = await this.index.patientByRowId(ref.rowId);
      return row === undefined || row.identity.patientId !== '' ? undefined : { identity: row.identity, rowIds: [row.rowId] };
    }
    const key = ref.kind === 'key' ? ref.key : await this.store.patientAlias(ref.id);
    if (key === undefined) return undefined;
    const rows = await this.index.patientsByKey(key);
    const fromHis = await this.his?.getPatient(key);
    const identity = fromHis ?? rows[0]?.identity;
    return identity === undefined ? undefined : { identity, rowIds: rows.map((r) => r.rowId) };
  }

  async readPatient(id: string): Promise<Patient | undefined> {
    const found = await this.patientIdentity(id);
    return found === undefined ? undefined : patientResource(id, found.identity, this.systems);
  }

  /** Patients with an identifier (Patient ID or other ID) of that system and value. */
  private async patientsWithIdentifier(token: Token): Promise<Map<string, PatientIdentity>> {
    const found = new Map<string, PatientIdentity>();
    const addRow = async (row: IndexPatient) => {
      const id = await this.patientIdOf(row);
      if (!found.has(id)) found.set(id, row.identity);
    };
    const addHis = async (identity: PatientIdentity | undefined) => {
      if (identity !== undefined) found.set(await this.patientIdOf(identity), identity);
    };
    let issuers: Array<string | undefined>;
    if (token.system === undefined) issuers = [undefined];
    else if (token.system === '') issuers = this.systems.systemOf('') === undefined ? [''] : [];
    else issuers = this.systems.issuersOf(token.system);
    for (const issuer of issuers) {
      for (const row of await this.index.patientsByIdentifier(token.value, issuer)) await addRow(row);
      for (const candidate of issuer === undefined ? this.systems.configuredIssuers() : [issuer]) await addHis(await this.his?.findPatientByIdentifier(token.value, candidate));
    }
    // The hospital link's identity is the identity of record.
    for (const [id, identity] of found) {
      if (identity.patientId === '') continue;
      const fromHis = await this.his?.getPatient(identity);
      if (fromHis !== undefined) found.set(id, fromHis);
    }
    return found;
  }

  async searchPatients(query: RawQuery, page: SearchPage, strict: boolean): Promise<SearchResult<Patient>> {
    checkParameters(query, PATIENT_SEARCH, strict);
    const groups: Array<Map<string, PatientIdentity>> = [];
    for (const alternatives of tokensOf(query, 'identifier')) {
      const union = new Map<string, PatientIdentity>();
      for (const token of alternatives) for (const [id, identity] of await this.patientsWithIdentifier(token)) union.set(id, identity);
      groups.push(union);
    }
    for (const raw of valuesOf(query, '_id')) {
      const union = new Map<string, PatientIdentity>();
      for (const id of raw.split(',')) {
        const found = await this.patientIdentity(id);
        if (found !== undefined) union.set(id, found.identity);
      }
      groups.push(union);
    }
    if (groups.length === 0) throw new BadQueryError('identifier', 'a Patient search needs identifier (system|value) or _id: listing every patient is not offered');
    const ids = intersect(groups.map((g) => [...g.keys()]))!;
    const resources = ids.sort().map((id) => patientResource(id, groups[0]!.get(id)!, this.systems));
    return { total: resources.length, resources: resources.slice(page.offset, page.offset + page.count), used: usedOf(query, PATIENT_SEARCH) };
  }

  // ---------------------------------------------------------------------------------------------
  // ImagingStudy

  private async ordersOf(studies: readonly StudySummary[]): Promise<Order[]> {
    if (this.his === undefined || studies.length === 0) return [];
    const orders = await this.his.ordersOfStudies(studies.map((s) => s.studyInstanceUid));
    // Orders matched by accession number only (a modality that did not use the order's Study Instance UID).
    for (const study of studies) {
      if (study.accessionNumber === null || orders.some((o) => o.studyInstanceUid === study.studyInstanceUid)) continue;
      const item = await this.his.findOrderByAccession(study.accessionNumber);
      if (item !== undefined) orders.push(item.order);
    }
    return orders;
  }

  private async imagingStudyOf(study: StudyDetail, orders: readonly Order[], urls: BaseUrls): Promise<ImagingStudy> {
    const subject: Reference = { reference: `Patient/${await this.patientIdOf(study.patient)}` };
    return imagingStudyResource(study, subject, orderOf(study, orders), {
      links: { dicomweb: urls.dicomweb },
      accessionSystem: this.options.accessionSystem,
      placerOrderSystem: this.options.placerOrderSystem,
    });
  }

  async readImagingStudy(id: string, urls: BaseUrls): Promise<ImagingStudy | undefined> {
    if (!/^[0-9]+(\.[0-9]+)*$/.test(id) || id.length > 64) return undefined;
    const study = await this.index.study(id);
    if (study === undefined) return undefined;
    return this.imagingStudyOf(study, await this.ordersOf([study]), urls);
  }

  /** Index patient rows a Patient reference names (none for an unknown id). */
  private async patientRowsOf(id: string): Promise<number[]> {
    return (await this.patientIdentity(id))?.rowIds ?? [];
  }

  private studyIdentifiers(tokens: Token[]): StudyIdentifier[] {
    const out: StudyIdentifier[] = [];
    for (const token of tokens) {
      const uid = /^urn:oid:([0-9]+(\.[0-9]+)*)$/.exec(token.value)?.[1];
      if (token.system === DICOM_UID_SYSTEM) {
        if (uid !== undefined) out.push({ studyUid: uid });
      } else if (token.system === undefined) {
        out.push(uid !== undefined ? { studyUid: uid } : { accession: token.value });
      } else if (token.system === this.options.accessionSystem || (token.system === '' && this.options.accessionSystem === '')) {
        out.push({ accession: token.value });
      }
    }
    return out;
  }

  async searchImagingStudies(query: RawQuery, page: SearchPage, urls: BaseUrls, strict: boolean): Promise<SearchResult<ImagingStudy>> {
    checkParameters(query, IMAGING_STUDY_SEARCH, strict);
    const patientRowIds: number[][] = [];
    for (const name of ['patient', 'subject']) {
      for (const alternatives of referencesOf(query, name, 'Patient')) {
        const rows: number[] = [];
        for (const id of alternatives) rows.push(...(await this.patientRowsOf(id)));
        patientRowIds.push(rows);
      }
    }
    const identifiers = tokensOf(query, 'identifier').map((alternatives) => this.studyIdentifiers(alternatives));
    for (const raw of valuesOf(query, '_id')) identifiers.push(raw.split(',').filter((id) => FHIR_ID.test(id)).map((id) => ({ studyUid: id })));
    const { total, studies } = await this.index.searchStudies(
      { patientRowIds, identifiers, started: dayRangesOf(query, 'started'), lastUpdated: instantRangesOf(query, '_lastUpdated') },
      page,
    );
    const orders = await this.ordersOf(studies);
    const resources: ImagingStudy[] = [];
    for (const summary of studies) {
      const detail = await this.index.study(summary.studyInstanceUid);
      if (detail !== undefined) resources.push(await this.imagingStudyOf(detail, orders, urls));
    }
    return { total, resources, used: usedOf(query, IMAGING_STUDY_SEARCH) };
  }

  // ---------------------------------------------------------------------------------------------
  // DiagnosticReport

  /** A report's FHIR id: its own id when that is a valid FHIR id (reports/ makes them so). */
  private reportIdValid(id: string): boolean {
    return FHIR_ID.test(id);
  }

  private async pdfOf(report: StoredReport, inForce: StoredVersion, urls: BaseUrls): Promise<ReportPdf> {
    const url = `${urls.base}${this.options.reportPdfPath(report.id, inForce.version)}`;
    const bytes = await this.options.reportPdf?.(report.id, inForce.version).catch(() => undefined);
    return bytes === undefined ? { url } : { url, size: bytes.length, sha1Base64: createHash('sha1').update(bytes).digest('base64') };
  }

  /** The parts of a DiagnosticReport (the push replaces the references by the EMR's). */
  async reportParts(id: string): Promise<{ report: StoredReport; inForce: StoredVersion; study: StudySummary | undefined; order: StudyOrder | undefined } | undefined> {
    if (this.reports === undefined || !this.reportIdValid(id)) return undefined;
    const report = await this.reports.get(id);
    if (report === undefined) return undefined;
    const inForce = versionInForce(await this.reports.versions(id));
    if (inForce === undefined) return undefined;
    const study = await this.index.study(report.studyInstanceUid);
    const order = study === undefined ? undefined : orderOf(study, await this.ordersOf([study]));
    return { report, inForce, study, order };
  }

  private async diagnosticReportOf(id: string, urls: BaseUrls, parts: NonNullable<Awaited<ReturnType<FhirService['reportParts']>>>): Promise<DiagnosticReport | undefined> {
    const { report, inForce, study, order } = parts;
    // The subject is the study's patient; a report whose study left the index has none to name.
    if (study === undefined) return undefined;
    return diagnosticReportResource(id, {
      report,
      inForce,
      subject: { reference: `Patient/${await this.patientIdOf(study.patient)}` },
      effective: dicomDateTime(study.studyDate, study.studyTime, study.timezoneOffset),
      basedOn: order === undefined ? undefined : serviceRequestReference(order, this.options.placerOrderSystem),
      pdf: await this.pdfOf(report, inForce, urls),
      reportIdSystem: this.options.reportIdSystem,
    });
  }

  async readDiagnosticReport(id: string, urls: BaseUrls): Promise<DiagnosticReport | undefined> {
    const parts = await this.reportParts(id);
    return parts === undefined ? undefined : this.diagnosticReportOf(id, urls, parts);
  }

  async searchDiagnosticReports(query: RawQuery, page: SearchPage, urls: BaseUrls, strict: boolean): Promise<SearchResult<DiagnosticReport>> {
    checkParameters(query, DIAGNOSTIC_REPORT_SEARCH, strict);
    const groups: string[][] = [];
    for (const name of ['patient', 'subject']) {
      for (const alternatives of referencesOf(query, name, 'Patient')) {
        const rows: number[] = [];
        for (const id of alternatives) rows.push(...(await this.patientRowsOf(id)));
        const ids: string[] = [];
        if (rows.length > 0 && this.reports !== undefined) {
          const { studies } = await this.index.searchStudies({ patientRowIds: [rows] }, { count: MAX_STUDIES_PER_REPORT_SEARCH, offset: 0 });
          for (const study of studies) for (const report of await this.reports.ofStudy(study.studyInstanceUid)) ids.push(report.id);
        }
        groups.push(ids);
      }
    }
    for (const alternatives of tokensOf(query, 'identifier')) {
      groups.push(
        alternatives.flatMap((t) => {
          if (t.system === undefined || t.system === this.options.reportIdSystem) return [t.value];
          if (t.system === reportVersionSystem(this.options.reportIdSystem)) return [t.value.replace(/\.\d+$/, '')];
          return [];
        }),
      );
    }
    for (const raw of valuesOf(query, '_id')) groups.push(raw.split(','));
    if (groups.length === 0) {
      throw new BadQueryError('patient', 'a DiagnosticReport search needs patient (or subject), identifier or _id: listing every report is not offered');
    }
    const ids = intersect(groups)!;
    const dates = dayRangesOf(query, 'date');
    const issued = instantRangesOf(query, 'issued');
    const lastUpdated = instantRangesOf(query, '_lastUpdated');
    const statuses = tokensOf(query, 'status');
    const categories = tokensOf(query, 'category');
    const codes = tokensOf(query, 'code');
    const resources: DiagnosticReport[] = [];
    for (const id of [...new Set(ids)]) {
      const parts = await this.reportParts(id);
      if (parts === undefined) continue;
      const resource = await this.diagnosticReportOf(id, urls, parts);
      if (resource === undefined) continue;
      const day = resource.effectiveDateTime?.slice(0, 10).replace(/-/g, '');
      if (!dates.every((range) => inRange(day, range))) continue;
      if (!issued.every((range) => inInstantRange(resource.issued!, range))) continue;
      if (!lastUpdated.every((range) => inInstantRange(resource.meta!.lastUpdated!, range))) continue;
      if (!statuses.every((alternatives) => alternatives.some((t) => t.value === resource.status))) continue;
      if (!categories.every((alternatives) => tokenMatches(alternatives, resource.category!.flatMap((c) => c.coding ?? [])))) continue;
      if (!codes.every((alternatives) => tokenMatches(alternatives, resource.code.coding ?? []))) continue;
      resources.push(resource);
    }
    // Newest first.
    resources.sort((a, b) => (b.issued ?? '').localeCompare(a.issued ?? '') || (a.id ?? '').localeCompare(b.id ?? ''));
    return { total: resources.length, resources: resources.slice(page.offset, page.offset + page.count), used: usedOf(query, DIAGNOSTIC_REPORT_SEARCH) };
  }

  // ---------------------------------------------------------------------------------------------
  // For the push

  /** A study's ImagingStudy and its patient's identity (the push resolves the subject at the EMR). */
  async studyForPush(studyInstanceUid: string, urls: BaseUrls): Promise<{ identity: PatientIdentity; patient: Patient; imagingStudy: ImagingStudy } | undefined> {
    const study = await this.index.study(studyInstanceUid);
    if (study === undefined) return undefined;
    const patientId = await this.patientIdOf(study.patient);
    const identity = (await this.patientIdentity(patientId))?.identity ?? study.patient.identity;
    return { identity, patient: patientResource(patientId, identity, this.systems), imagingStudy: await this.imagingStudyOf(study, await this.ordersOf([study]), urls) };
  }

  async reportForPush(reportId: string, urls: BaseUrls): Promise<{ diagnosticReport: DiagnosticReport; studyInstanceUid: string; version: number } | undefined> {
    const parts = await this.reportParts(reportId);
    if (parts === undefined) return undefined;
    const resource = await this.diagnosticReportOf(reportId, urls, parts);
    return resource === undefined ? undefined : { diagnosticReport: resource, studyInstanceUid: parts.report.studyInstanceUid, version: parts.inForce.version };
  }
}
