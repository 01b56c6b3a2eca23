import type { PatientIdentity } from '../dicom/patient-identity.js';

/** Consulted by the archive at ingest (STOW-RS, C-STORE): orders known to the hospital link. */
export interface OrderReconciliation {
  /** The identity an instance with this accession number must be indexed under (its order's patient), or undefined. */
  identityFor(accessionNumber: string): Promise<PatientIdentity | undefined>;
  /** After an instance was indexed with an accession number: its series is linked to the order. Never throws. */
  stored(accessionNumber: string, studyInstanceUid: string, seriesInstanceUid: string): void;
}
