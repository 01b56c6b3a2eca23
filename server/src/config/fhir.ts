/**
 * FHIR R4 section (PACS_FHIR_*): the `/fhir` API (identifier systems, page sizes) and the push of
 * results to the hospital's EMR (a FHIR server, OAuth2 client credentials, the outbox's retries).
 */
import type { EnvReader } from './env-reader.js';

/** The EMR the results are pushed to (server/src/fhir/fhir-push.ts); null in `FhirConfig.push`: no push. */
export interface FhirPushConfig {
  /** PACS_FHIR_PUSH_URL: the FHIR server's base URL (no trailing slash), e.g. https://emr.example.org/fhir. */
  url: string;
  /**
   * OAuth2 client credentials (RFC 6749 §4.4) for the bearer token: PACS_FHIR_PUSH_TOKEN_URL,
   * _CLIENT_ID, _CLIENT_SECRET, _SCOPE. null: requests go without a token (a server on loopback or
   * behind a proxy that authenticates this host).
   */
  oauth: { tokenUrl: string; clientId: string; clientSecret: string; scope: string } | null;
  /** PACS_FHIR_PUSH_ON_STUDY: also push the ImagingStudy when a study arrives (after it settled). */
  onStudy: boolean;
  /** PACS_FHIR_PUSH_STUDY_DELAY_SECONDS: a study is pushed this long after its last instance arrived. */
  studyDelaySeconds: number;
  /** PACS_FHIR_PUSH_MAX_ATTEMPTS: tries before an entry is `failed` (shown to administrators). */
  maxAttempts: number;
  /** PACS_FHIR_PUSH_BACKOFF_SECONDS / _BACKOFF_MAX_SECONDS: first retry delay, doubled per try up to the maximum. */
  backoffSeconds: number;
  backoffMaxSeconds: number;
  /** PACS_FHIR_PUSH_TIMEOUT_SECONDS: one HTTP request to the EMR or the token endpoint. */
  timeoutSeconds: number;
  /** PACS_FHIR_PUSH_POLL_SECONDS: how often the outbox is read for entries that are due (retries, other processes' entries). */
  pollSeconds: number;
  /** PACS_FHIR_PUSH_CONCURRENCY: entries this process sends at once. */
  concurrency: number;
  /**
   * PACS_FHIR_PUSH_CREATE_PATIENT: a patient the EMR does not know (search by identifier) is created
   * there by conditional create (If-None-Exist); false: the resources name the patient by identifier only.
   */
  createPatient: boolean;
}

export interface FhirConfig {
  /** PACS_FHIR_ENABLED: serve the FHIR R4 API at /fhir. */
  enabled: boolean;
  /**
   * Identifier systems (URIs) of the patient ID issuers (dicom/patient-identity.ts `issuer`, HL7
   * assigning authority): PACS_FHIR_PATIENT_ID_SYSTEM for the hospital record number (issuer
   * PACS_HIS_PATIENT_ID_ISSUER), PACS_FHIR_NATIONAL_ID_SYSTEM for the national citizen ID (issuer
   * PACS_HIS_NATIONAL_ID_ISSUER), PACS_FHIR_ISSUER_SYSTEMS for others (`ISSUER=uri,…`).
   */
  patientIdSystem: string;
  nationalIdSystem: string;
  /** Issuer → system, the two above included (filled in by loadConfig from the HL7 section's issuers). */
  issuerSystems: Readonly<Record<string, string>>;
  /** Issuers no system is configured for get `issuerSystemPrefix` + the percent-encoded issuer. */
  issuerSystemPrefix: string;
  /** PACS_FHIR_ACCESSION_SYSTEM: system of accession numbers (ImagingStudy.identifier of type ACSN); '' none. */
  accessionSystem: string;
  /** PACS_FHIR_PLACER_ORDER_SYSTEM: system of the HIS's placer order numbers (basedOn ServiceRequest identifier); '' none. */
  placerOrderSystem: string;
  /** PACS_FHIR_REPORT_ID_SYSTEM: system of our report identifiers (DiagnosticReport.identifier, the push's conditional update key). */
  reportIdSystem: string;
  /** PACS_FHIR_DEFAULT_COUNT / PACS_FHIR_MAX_COUNT: search page size when `_count` is absent, and its upper bound. */
  defaultCount: number;
  maxCount: number;
  push: FhirPushConfig | null;
}

const URI = /^[a-z][a-z0-9+.-]*:\S+$/i;

export function readFhirConfig(read: EnvReader, publicBaseUrl: string): FhirConfig {
  const uri = (name: string, fallback: string): string => {
    const value = read.string(name, fallback).trim();
    if (value !== '' && !URI.test(value)) read.problems.push(`${name} must be an absolute URI (e.g. urn:oid:1.2.3 or https://example.org/sid/mrn), got "${value}"`);
    return value;
  };
  const patientIdSystem = uri('PACS_FHIR_PATIENT_ID_SYSTEM', 'urn:filmless-pacs:patient-id');
  const nationalIdSystem = uri('PACS_FHIR_NATIONAL_ID_SYSTEM', 'urn:filmless-pacs:national-id');
  const issuerSystems: Record<string, string> = {};
  for (const entry of read.list('PACS_FHIR_ISSUER_SYSTEMS', [])) {
    const match = /^([^=]+)=(.+)$/.exec(entry);
    if (!match || !URI.test(match[2]!.trim())) {
      read.problems.push(`PACS_FHIR_ISSUER_SYSTEMS must list ISSUER=uri entries separated by commas, got "${entry}"`);
      continue;
    }
    issuerSystems[match[1]!.trim()] = match[2]!.trim();
  }
  const defaultCount = read.integer('PACS_FHIR_DEFAULT_COUNT', 20, 1, 1000);
  const maxCount = read.integer('PACS_FHIR_MAX_COUNT', 200, 1, 1000);
  if (defaultCount > maxCount) read.problems.push(`PACS_FHIR_DEFAULT_COUNT (${defaultCount}) must not exceed PACS_FHIR_MAX_COUNT (${maxCount})`);
  return {
    enabled: read.boolean('PACS_FHIR_ENABLED', true),
    patientIdSystem,
    nationalIdSystem,
    issuerSystems,
    issuerSystemPrefix: uri('PACS_FHIR_ISSUER_SYSTEM_PREFIX', 'urn:filmless-pacs:issuer:'),
    accessionSystem: uri('PACS_FHIR_ACCESSION_SYSTEM', ''),
    placerOrderSystem: uri('PACS_FHIR_PLACER_ORDER_SYSTEM', ''),
    reportIdSystem: uri('PACS_FHIR_REPORT_ID_SYSTEM', 'urn:filmless-pacs:report'),
    defaultCount,
    maxCount,
    push: readFhirPushConfig(read, publicBaseUrl),
  };
}

function httpUrl(read: EnvReader, name: string, raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
    read.problems.push(`${name} must be an http(s) URL without query or fragment, got "${raw}"`);
    return '';
  }
  return raw.replace(/\/+$/, '');
}

function readFhirPushConfig(read: EnvReader, publicBaseUrl: string): FhirPushConfig | null {
  const raw = read.string('PACS_FHIR_PUSH_URL', '').trim();
  if (raw === '') return null;
  const url = httpUrl(read, 'PACS_FHIR_PUSH_URL', raw);
  // The pushed resources point back at us (the DICOMweb Endpoint, the report's PDF): a base URL the EMR can reach.
  if (publicBaseUrl === '') read.problems.push('PACS_PUBLIC_BASE_URL is required when PACS_FHIR_PUSH_URL is set (the pushed ImagingStudy and DiagnosticReport link to it)');
  const tokenUrlRaw = read.string('PACS_FHIR_PUSH_TOKEN_URL', '').trim();
  let oauth: FhirPushConfig['oauth'] = null;
  if (tokenUrlRaw !== '') {
    oauth = {
      tokenUrl: httpUrl(read, 'PACS_FHIR_PUSH_TOKEN_URL', tokenUrlRaw),
      clientId: read.required('PACS_FHIR_PUSH_CLIENT_ID', 'PACS_FHIR_PUSH_TOKEN_URL is set'),
      clientSecret: read.required('PACS_FHIR_PUSH_CLIENT_SECRET', 'PACS_FHIR_PUSH_TOKEN_URL is set'),
      scope: read.string('PACS_FHIR_PUSH_SCOPE', '').trim(),
    };
  }
  const backoffSeconds = read.integer('PACS_FHIR_PUSH_BACKOFF_SECONDS', 10, 1, 86_400);
  const backoffMaxSeconds = read.integer('PACS_FHIR_PUSH_BACKOFF_MAX_SECONDS', 3600, 1, 7 * 86_400);
  if (backoffSeconds > backoffMaxSeconds) read.problems.push(`PACS_FHIR_PUSH_BACKOFF_SECONDS (${backoffSeconds}) must not exceed PACS_FHIR_PUSH_BACKOFF_MAX_SECONDS (${backoffMaxSeconds})`);
  return {
    url,
    oauth,
    onStudy: read.boolean('PACS_FHIR_PUSH_ON_STUDY', false),
    studyDelaySeconds: read.integer('PACS_FHIR_PUSH_STUDY_DELAY_SECONDS', 60, 0, 86_400),
    maxAttempts: read.integer('PACS_FHIR_PUSH_MAX_ATTEMPTS', 12, 1, 1000),
    backoffSeconds,
    backoffMaxSeconds,
    timeoutSeconds: read.integer('PACS_FHIR_PUSH_TIMEOUT_SECONDS', 30, 1, 600),
    pollSeconds: read.integer('PACS_FHIR_PUSH_POLL_SECONDS', 5, 1, 3600),
    concurrency: read.integer('PACS_FHIR_PUSH_CONCURRENCY', 2, 1, 64),
    createPatient: read.boolean('PACS_FHIR_PUSH_CREATE_PATIENT', true),
  };
}

/**
 * The hospital record number and national ID issuers (PACS_HIS_PATIENT_ID_ISSUER,
 * PACS_HIS_NATIONAL_ID_ISSUER, read by the HL7 section) get their systems; a Patient ID without issuer
 * (modalities often send none) is taken as a hospital record number too. An explicit
 * PACS_FHIR_ISSUER_SYSTEMS entry for the same issuer wins.
 */
export function withIssuerSystems(fhir: FhirConfig, patientIdIssuer: string, nationalIdIssuer: string): FhirConfig {
  return {
    ...fhir,
    issuerSystems: { '': fhir.patientIdSystem, [patientIdIssuer]: fhir.patientIdSystem, ...(nationalIdIssuer === '' ? {} : { [nationalIdIssuer]: fhir.nationalIdSystem }), ...fhir.issuerSystems },
  };
}
