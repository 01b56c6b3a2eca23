/**
 * Logical ids of the resources the FHIR API serves, and the identifier systems of patient IDs.
 *
 * - ImagingStudy: the Study Instance UID itself (digits and dots, at most 64: a valid FHIR id).
 * - Patient: the patient's key (Issuer of Patient ID + Patient ID, the key of the HIS store and of the
 *   index's patient rows), reversibly encoded: `p` + base32 (RFC 4648, lower case, no padding) of the UTF-8
 *   of `issuer\patientId` (neither may hold a backslash, DICOM LO). A key too long for the 64 characters
 *   of an id (over 39 bytes) is `x` + 40 hex digits of its SHA-256, resolved through an alias table
 *   (fhir-store.ts). Index patients without a Patient ID (never merged, one row per study) are `r` + the
 *   index row id.
 * - DiagnosticReport: the report's id (reports/), see fhir-report.ts.
 */
import { createHash } from 'node:crypto';
import type { PatientKey } from '../dicom/patient-identity.js';

/** FHIR R4 id: [A-Za-z0-9\-\.]{1,64}. */
export const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function fromBase32(text: string): Buffer | undefined {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    const digit = BASE32.indexOf(char);
    if (digit < 0) return undefined;
    value = ((value << 5) | digit) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

/** Longest key (issuer + separator + ID, UTF-8 bytes) that fits the 63 characters after the prefix. */
const MAX_ENCODED_BYTES = 39;

export type PatientRef =
  /** A patient with an ID (HIS store or index row). */
  | { kind: 'key'; key: PatientKey }
  /** An index row without a Patient ID. */
  | { kind: 'row'; rowId: number }
  /** A long key, to be looked up in the alias table. */
  | { kind: 'alias'; id: string };

/** The logical id of a patient key; `long` is true when the id is a hash that needs an alias row. */
export function patientIdOf(key: PatientKey): { id: string; long: boolean } {
  const bytes = Buffer.from(`${key.issuer}\\${key.patientId}`, 'utf8');
  if (bytes.length <= MAX_ENCODED_BYTES) return { id: `p${base32(bytes)}`, long: false };
  return { id: `x${createHash('sha256').update(bytes).digest('hex').slice(0, 40)}`, long: true };
}

export function patientIdOfRow(rowId: number): string {
  return `r${rowId}`;
}

/** What a Patient logical id names; undefined for an id this server never makes (404). */
export function parsePatientId(id: string): PatientRef | undefined {
  if (!FHIR_ID.test(id)) return undefined;
  if (/^r[1-9]\d{0,15}$/.test(id)) return { kind: 'row', rowId: Number(id.slice(1)) };
  if (/^x[0-9a-f]{40}$/.test(id)) return { kind: 'alias', id };
  if (!/^p[a-z2-7]+$/.test(id)) return undefined;
  const bytes = fromBase32(id.slice(1));
  if (bytes === undefined) return undefined;
  const text = bytes.toString('utf8');
  const separator = text.indexOf('\\');
  if (separator < 0 || text.slice(separator + 1) === '') return undefined;
  // Only the canonical encoding is an id (no second spelling of the same patient).
  const key = { issuer: text.slice(0, separator), patientId: text.slice(separator + 1) };
  return patientIdOf(key).id === id ? { kind: 'key', key } : undefined;
}

/** HL7 v2 table 0203 identifier types (FHIR `http://terminology.hl7.org/CodeSystem/v2-0203`). */
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** How issuers of patient IDs become identifier systems (config/fhir.ts) and back. */
export class IdentifierSystems {
  private readonly byIssuer: ReadonlyMap<string, string>;
  private readonly bySystem: ReadonlyMap<string, string[]>;

  constructor(
    issuerSystems: Readonly<Record<string, string>>,
    private readonly prefix: string,
    private readonly recordNumberSystem: string,
    private readonly nationalIdSystem: string,
  ) {
    this.byIssuer = new Map(Object.entries(issuerSystems));
    const bySystem = new Map<string, string[]>();
    for (const [issuer, system] of Object.entries(issuerSystems)) bySystem.set(system, [...(bySystem.get(system) ?? []), issuer]);
    this.bySystem = bySystem;
  }

  /** The system of an issuer; undefined for IDs without an issuer that no setting names. */
  systemOf(issuer: string): string | undefined {
    const configured = this.byIssuer.get(issuer);
    if (configured !== undefined) return configured;
    return issuer === '' ? undefined : `${this.prefix}${encodeURIComponent(issuer)}`;
  }

  /**
   * The issuers a system names (the record number system: the hospital's issuer and IDs without
   * issuer); empty when the system is not one of ours.
   */
  issuersOf(system: string): string[] {
    const configured = this.bySystem.get(system);
    if (configured !== undefined) return configured;
    if (!system.startsWith(this.prefix)) return [];
    try {
      const issuer = decodeURIComponent(system.slice(this.prefix.length));
      return issuer === '' ? [] : [issuer];
    } catch {
      return [];
    }
  }

  /** The DICOM issuer to name for an identifier of this system (audit records): the first configured one. */
  issuerOf(system: string): string | undefined {
    return this.issuersOf(system).find((issuer) => issuer !== '') ?? this.issuersOf(system)[0];
  }

  /** Issuers with a configured system (searches for an identifier without system try each). */
  configuredIssuers(): string[] {
    return [...this.byIssuer.keys()];
  }

  /** The v2-0203 type of an identifier of this system: MR (medical record number), NI (national identifier). */
  typeOf(system: string | undefined): { code: string; display: string } | undefined {
    if (system === undefined) return undefined;
    if (system === this.recordNumberSystem) return { code: 'MR', display: 'Medical record number' };
    if (system === this.nationalIdSystem) return { code: 'NI', display: 'National unique individual identifier' };
    return undefined;
  }
}
