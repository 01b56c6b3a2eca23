/**
 * A patient's identity as the archive keeps and corrects it: the Patient ID with its issuer, the other
 * IDs with theirs (the hospital's record number and the national citizen ID are both identifiers of one
 * person, PS3.3 C.7.1.1 Patient Module: Issuer of Patient ID, Other Patient IDs Sequence), name, birth
 * date and sex. The hospital information system is the source of truth (HL7 PID); the DICOM elements
 * below are what an instance carries once the identity is applied to it (coercion at ingest, or a
 * patient update or merge applied on read).
 */
import type { DicomJsonDataset } from './dicom-json.js';

export interface OtherPatientId {
  id: string;
  /** Issuer of Patient ID (0010,0021) of this identifier, e.g. the national citizen ID authority. */
  issuer: string;
  /** Type of Patient ID (0010,0022): TEXT, RFID, BARCODE. */
  type?: string;
}

export interface PatientKey {
  patientId: string;
  /** '' when the ID has no issuer. */
  issuer: string;
}

export interface PatientIdentity extends PatientKey {
  /** PN in its DICOM string form (`Family^Given^Middle^Prefix^Suffix`, groups `=`-separated); null when unknown. */
  name: string | null;
  /** DA 'YYYYMMDD'; null when unknown. */
  birthDate: string | null;
  /** CS M, F or O; null when unknown. */
  sex: string | null;
  otherIds: OtherPatientId[];
}

/** Tags of the attributes an identity decides (PS3.6 keywords in the comments). */
export const IDENTITY_TAGS = {
  PatientName: '00100010',
  PatientID: '00100020',
  IssuerOfPatientID: '00100021',
  TypeOfPatientID: '00100022',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  OtherPatientIDsSequence: '00101002',
} as const;

/** A PN string form as its DICOM JSON object (PS3.18 §F.2.2: one key per component group present). */
function personName(value: string): Record<string, string> {
  const [alphabetic, ideographic, phonetic] = value.split('=');
  return {
    ...(alphabetic ? { Alphabetic: alphabetic } : {}),
    ...(ideographic ? { Ideographic: ideographic } : {}),
    ...(phonetic ? { Phonetic: phonetic } : {}),
  };
}

/** The DICOM JSON elements (PS3.18 §F.2) of an identity: what an instance says about its patient once corrected. */
export function identityElements(identity: PatientIdentity): DicomJsonDataset {
  const t = IDENTITY_TAGS;
  const str = (vr: string, value: string | null) => (value === null || value === '' ? { vr } : { vr, Value: [value] });
  return {
    [t.PatientName]: identity.name === null || identity.name === '' ? { vr: 'PN' } : { vr: 'PN', Value: [personName(identity.name)] },
    [t.PatientID]: str('LO', identity.patientId),
    [t.IssuerOfPatientID]: str('LO', identity.issuer),
    [t.PatientBirthDate]: str('DA', identity.birthDate),
    [t.PatientSex]: str('CS', identity.sex),
    [t.OtherPatientIDsSequence]:
      identity.otherIds.length === 0
        ? { vr: 'SQ' }
        : {
            vr: 'SQ',
            Value: identity.otherIds.map((other) => ({
              [t.PatientID]: { vr: 'LO', Value: [other.id] },
              [t.IssuerOfPatientID]: str('LO', other.issuer),
              [t.TypeOfPatientID]: { vr: 'CS', Value: [other.type ?? 'TEXT'] },
            })),
          },
  } as DicomJsonDataset;
}
