/**
 * The outcome of a STOW-RS request as a value, turned into the response of PS3.18 §10.5.3
 * (Table 10.5.3-1 status codes, Store Instances Response Module attributes).
 */
import type { DicomJsonDataset } from '../dicom/dicom-json.js';

/** Failure Reason (0008,1197) values used here; PS3.18 Table 10.5.3-2 and PS3.4 Annex B.2.3. */
export const FailureReason = {
  /** 0xA700: Refused, out of resources (storage or index unavailable). */
  OutOfResources: 0xa700,
  /** 0xA900: Data set does not match SOP class; also used when the Study Instance UID differs from the one in the request path. */
  DataSetMismatch: 0xa900,
  /** 0xC000: Cannot understand (not a Part-10 file, malformed, required UID missing). */
  CannotUnderstand: 0xc000,
  /** 0x0110: Processing failure. */
  ProcessingFailure: 0x0110,
  /** 0x0111: Duplicate SOP instance (same SOP Instance UID already stored under another study/series). */
  DuplicateSopInstance: 0x0111,
} as const;

export interface StoredItem {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

export interface FailedItem {
  sopClassUid?: string;
  sopInstanceUid?: string;
  failureReason: number;
  /** Why, for the client: never contains patient names or IDs. */
  message: string;
}

export class StowOutcome {
  readonly stored: StoredItem[] = [];
  readonly failed: FailedItem[] = [];

  /** HTTP status per PS3.18 Table 10.5.3-1: 200 all stored, 202 some failed, 409 none stored. */
  httpStatus(): 200 | 202 | 409 {
    if (this.failed.length === 0) return 200;
    return this.stored.length > 0 ? 202 : 409;
  }

  /** The Store Instances Response (DICOM JSON) with RetrieveURLs rooted at `dicomwebBaseUrl`. */
  toDicomJson(dicomwebBaseUrl: string, requestStudyUid?: string): DicomJsonDataset {
    const response: DicomJsonDataset = {};
    const studyUid = requestStudyUid ?? uniqueStudyUid(this.stored);
    if (studyUid) {
      response['00081190'] = { vr: 'UR', Value: [`${dicomwebBaseUrl}/studies/${studyUid}`] };
    }
    if (this.failed.length > 0) {
      response['00081198'] = { vr: 'SQ', Value: this.failed.map(failedItemJson) };
    }
    if (this.stored.length > 0) {
      response['00081199'] = {
        vr: 'SQ',
        Value: this.stored.map((item) => storedItemJson(item, dicomwebBaseUrl)),
      };
    }
    return response;
  }
}

function uniqueStudyUid(items: StoredItem[]): string | undefined {
  const uids = new Set(items.map((item) => item.studyInstanceUid));
  return uids.size === 1 ? [...uids][0] : undefined;
}

function storedItemJson(item: StoredItem, base: string): DicomJsonDataset {
  return {
    '00081150': { vr: 'UI', Value: [item.sopClassUid] },
    '00081155': { vr: 'UI', Value: [item.sopInstanceUid] },
    '00081190': {
      vr: 'UR',
      Value: [`${base}/studies/${item.studyInstanceUid}/series/${item.seriesInstanceUid}/instances/${item.sopInstanceUid}`],
    },
  };
}

function failedItemJson(item: FailedItem): DicomJsonDataset {
  const json: DicomJsonDataset = {};
  if (item.sopClassUid) json['00081150'] = { vr: 'UI', Value: [item.sopClassUid] };
  if (item.sopInstanceUid) json['00081155'] = { vr: 'UI', Value: [item.sopInstanceUid] };
  json['00081197'] = { vr: 'US', Value: [item.failureReason] };
  // Error Comment (0000,0902) is a command-set attribute; STOW has no standard text field, so the
  // human-readable reason travels in Text Value (0040,A160), which every DICOM JSON reader passes through.
  json['0040A160'] = { vr: 'UT', Value: [item.message] };
  return json;
}
