/**
 * A study's identity as the archive keeps it once curation moved instances between studies (move,
 * split, merge; docs/architecture.md, "Curation"): the General Study attributes every instance of a
 * study carries (PS3.3 C.7.2.1: Study Instance UID, date, time, accession number, study ID,
 * description, referring physician) and, for a moved instance, the series it now belongs to. Like the
 * patient identity (patient-identity.ts) it lives in the index (the study row) and is applied where an
 * instance is read; the stored file keeps what the modality sent.
 */
import type { DicomJsonDataset } from './dicom-json.js';

export interface StudyIdentity {
  studyInstanceUid: string;
  /** DA 'YYYYMMDD'; null when unknown. */
  studyDate: string | null;
  /** TM 'HHMMSS[.F]'; null when unknown. */
  studyTime: string | null;
  accessionNumber: string | null;
  studyId: string | null;
  studyDescription: string | null;
  /** PN string form (`Family^Given`, groups `=`-separated); null when unknown. */
  referringPhysicianName: string | null;
}

/** Where a moved instance is now: the identity of record of its study, and its series. */
export interface StudyPlacement {
  study: StudyIdentity;
  seriesInstanceUid: string;
}

export const STUDY_TAGS = {
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  ReferringPhysicianName: '00080090',
  StudyDescription: '00081030',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
} as const;

function personName(value: string): Record<string, string> {
  const [alphabetic, ideographic, phonetic] = value.split('=');
  return {
    ...(alphabetic ? { Alphabetic: alphabetic } : {}),
    ...(ideographic ? { Ideographic: ideographic } : {}),
    ...(phonetic ? { Phonetic: phonetic } : {}),
  };
}

/**
 * The DICOM JSON elements (PS3.18 §F.2) a moved instance carries: the General Study module's identity
 * (Type 2 elements empty when unknown; Study Description, Type 3, without a value when unknown: the
 * rewrite leaves it out) and its Series Instance UID.
 */
export function placementElements(placement: StudyPlacement): DicomJsonDataset {
  const t = STUDY_TAGS;
  const s = placement.study;
  const str = (vr: string, value: string | null) => (value === null || value === '' ? { vr } : { vr, Value: [value] });
  return {
    [t.StudyDate]: str('DA', s.studyDate),
    [t.StudyTime]: str('TM', s.studyTime),
    [t.AccessionNumber]: str('SH', s.accessionNumber),
    [t.ReferringPhysicianName]: s.referringPhysicianName === null || s.referringPhysicianName === '' ? { vr: 'PN' } : { vr: 'PN', Value: [personName(s.referringPhysicianName)] },
    [t.StudyDescription]: str('LO', s.studyDescription),
    [t.StudyInstanceUID]: { vr: 'UI', Value: [s.studyInstanceUid] },
    [t.SeriesInstanceUID]: { vr: 'UI', Value: [placement.seriesInstanceUid] },
    [t.StudyID]: str('SH', s.studyId),
  } as DicomJsonDataset;
}

/** Type 3 study elements: left out rather than written empty when the study has no value. */
export const OPTIONAL_STUDY_TAGS: ReadonlySet<string> = new Set([STUDY_TAGS.StudyDescription]);
