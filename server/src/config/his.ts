/** Hospital link section (PACS_HIS_*): what the archive accepts from the hospital information system. */
import type { EnvReader } from './env-reader.js';

/** The hospital link (server/src/his): orders and patients from the HIS (HL7 v2 or the orders REST API). */
export interface HisConfig {
  /**
   * PACS_HIS_PATIENT_ID_ISSUERS: the Issuer of Patient ID values (HL7 PID-3.4 assigning authorities) a
   * patient identifier may carry, e.g. the hospital's record number authority and the national citizen
   * ID authority. A command naming another issuer is refused whole. Empty: any issuer (and none) is accepted.
   */
  patientIdIssuers: readonly string[];
}

export function readHisConfig(read: EnvReader): HisConfig {
  const patientIdIssuers = read.list('PACS_HIS_PATIENT_ID_ISSUERS', []);
  for (const issuer of patientIdIssuers) {
    // LO (PS3.5 6.2): at most 64 characters, no backslash or control characters.
    if (issuer.length > 64 || /[\\\u0000-\u001f]/.test(issuer)) {
      read.problems.push(`PACS_HIS_PATIENT_ID_ISSUERS must list issuers of at most 64 characters without backslashes, got "${issuer.slice(0, 80)}"`);
    }
  }
  return { patientIdIssuers };
}
