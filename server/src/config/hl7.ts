/**
 * HL7 v2 listener section (PACS_HL7_*, and the two issuers PID-3 is read with): where the MLLP listener
 * listens, which sending applications it accepts, how large a message may be, and which assigning
 * authority of a PID-3 repetition is the hospital's record number and which the national citizen ID.
 */
import { MiB, type EnvReader } from './env-reader.js';

/** One allowed sender: MSH-3 (sending application) and, when given, MSH-4 (sending facility). */
export interface Hl7Sender {
  application: string;
  /** null: any facility. */
  facility: string | null;
}

/** The HL7 v2.5.1 listener over MLLP (server/src/hl7): off by default; when on, loopback unless told otherwise. */
export interface Hl7Config {
  enabled: boolean;
  /** Address it listens on (only that one). */
  host: string;
  port: number;
  /** Sending applications (MSH-3, optionally with MSH-4) whose messages are accepted; empty: any. */
  allowedSenders: readonly Hl7Sender[];
  /** Largest MLLP frame (message bytes between <VT> and <FS>); beyond it the message is refused (AR) and the connection closed. */
  maxMessageBytes: number;
  /**
   * PACS_HIS_PATIENT_ID_ISSUER: the assigning authority (PID-3 CX-4) of the hospital's record number,
   * which becomes Patient ID + Issuer of Patient ID; also the issuer of a record number sent without
   * one. '' (unset): the repetition whose identifier type (CX-5) is MR, with the issuer it carries.
   */
  patientIdIssuer: string;
  /**
   * PACS_HIS_NATIONAL_ID_ISSUER: the assigning authority of the national citizen ID, which becomes an
   * item of Other Patient IDs Sequence; also the issuer of a national ID (CX-5 NI or NNxxx) sent without one.
   */
  nationalIdIssuer: string;
}

export function readHl7Config(read: EnvReader): Hl7Config {
  return {
    enabled: read.boolean('PACS_HL7_ENABLED', false),
    host: read.string('PACS_HL7_HOST', '127.0.0.1'),
    port: read.integer('PACS_HL7_PORT', 2575, 0, 65535),
    allowedSenders: readSenders(read, 'PACS_HL7_ALLOWED_SENDERS'),
    maxMessageBytes: read.integer('PACS_HL7_MAX_MESSAGE_BYTES', MiB, 1024, 64 * MiB),
    patientIdIssuer: readIssuer(read, 'PACS_HIS_PATIENT_ID_ISSUER'),
    nationalIdIssuer: readIssuer(read, 'PACS_HIS_NATIONAL_ID_ISSUER'),
  };
}

/** `APP,APP2^FACILITY`: MSH-3 namespace IDs, each optionally with the MSH-4 namespace ID it must come with. */
function readSenders(read: EnvReader, name: string): Hl7Sender[] {
  const senders: Hl7Sender[] = [];
  for (const item of read.list(name, [])) {
    const [application = '', facility, extra] = item.split('^').map((part) => part.trim());
    // HD namespace IDs (IS, 20 characters in v2.5.1; up to 227 tolerated) without HL7 delimiters or control characters.
    const valid = (part: string) => part.length >= 1 && part.length <= 227 && !/[|^~\\&\u0000-\u001f\u007f]/.test(part);
    if (!valid(application) || (facility !== undefined && !valid(facility)) || extra !== undefined) {
      read.problems.push(`${name} must list sending applications (MSH-3) such as HIS or HIS^HOSPITAL (application^facility), comma-separated, got "${item.slice(0, 80)}"`);
      continue;
    }
    senders.push({ application, facility: facility ?? null });
  }
  return senders;
}

/** An Issuer of Patient ID (LO: at most 64 characters, no backslash or control characters); '' when unset. */
function readIssuer(read: EnvReader, name: string): string {
  const value = read.string(name, '').trim();
  if (value.length > 64 || /[\\^&~|\u0000-\u001f\u007f]/.test(value)) {
    read.problems.push(`${name} must be an issuer of at most 64 characters without backslashes, HL7 delimiters or control characters, got "${value.slice(0, 80)}"`);
    return '';
  }
  return value;
}
