/**
 * Association negotiation (PS3.8 §9.3, PS3.7 Annex D): who may associate, and which presentation
 * contexts we accept with which transfer syntax. Everything we cannot serve is refused per presentation
 * context (abstract syntax or transfer syntaxes not supported), never by failing the association.
 */
import * as ts from '../dicom/transfer-syntax.js';
import { constants, type Association } from './dimse-lib.js';

export const VERIFICATION = '1.2.840.10008.1.1';
export const PATIENT_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.1.1';
export const PATIENT_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.1.2';
export const PATIENT_ROOT_GET = '1.2.840.10008.5.1.4.1.2.1.3';
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
export const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
export const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';

/** Modality Worklist Information Model – FIND (PS3.4 Annex K) and Modality Performed Procedure Step (PS3.4 Annex F). */
export const MODALITY_WORKLIST_FIND = '1.2.840.10008.5.1.4.31';
export const MODALITY_PERFORMED_PROCEDURE_STEP = '1.2.840.10008.3.1.2.3.3';
/** Offered only when the hospital link's store is given to the DIMSE server (`AssociationPolicy.hospitalLink`). */
export const HOSPITAL_LINK_SOP_CLASSES: ReadonlySet<string> = new Set([MODALITY_WORKLIST_FIND, MODALITY_PERFORMED_PROCEDURE_STEP]);

export const QUERY_RETRIEVE_SOP_CLASSES: ReadonlySet<string> = new Set([
  PATIENT_ROOT_FIND,
  PATIENT_ROOT_MOVE,
  PATIENT_ROOT_GET,
  STUDY_ROOT_FIND,
  STUDY_ROOT_MOVE,
  STUDY_ROOT_GET,
]);

/** Storage SOP classes dcmjs-dimse knows, plus every class under the Storage root of PS3.4 Annex B. */
const KNOWN_STORAGE_CLASSES: ReadonlySet<string> = new Set(Object.values(constants.StorageClass as Record<string, string>));
const STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';

/** Storage SOP classes whose C-STORE we accept: the archive keeps any composite instance, as STOW-RS does. */
export function isStorageSopClass(uid: string): boolean {
  return KNOWN_STORAGE_CLASSES.has(uid) || (uid.startsWith(STORAGE_ROOT) && /^[0-9.]+$/.test(uid));
}

/**
 * Transfer syntaxes the archive keeps as received (the Part-10 scanner walks them and indexes their
 * frames). JPIP-referenced syntaxes (pixel data held elsewhere) and private syntaxes are refused.
 */
export const STORABLE_TRANSFER_SYNTAXES: readonly string[] = [
  ts.EXPLICIT_VR_LITTLE_ENDIAN,
  ts.IMPLICIT_VR_LITTLE_ENDIAN,
  ts.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  ts.EXPLICIT_VR_BIG_ENDIAN,
  ts.ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LITTLE_ENDIAN,
  ts.JPEG_BASELINE_8BIT,
  ts.JPEG_EXTENDED_12BIT,
  ts.JPEG_LOSSLESS,
  ts.JPEG_LOSSLESS_SV1,
  ts.JPEG_LS_LOSSLESS,
  ts.JPEG_LS_NEAR_LOSSLESS,
  ts.JPEG_2000_LOSSLESS,
  ts.JPEG_2000,
  ts.JPEG_2000_MC_LOSSLESS,
  ts.JPEG_2000_MC,
  ts.HTJ2K_LOSSLESS,
  ts.HTJ2K_LOSSLESS_RPCL,
  ts.HTJ2K,
  ts.JPEG_XL_LOSSLESS,
  ts.JPEG_XL_JPEG_RECOMPRESSION,
  ts.JPEG_XL,
  ts.MPEG2_MPML,
  ts.MPEG2_MPML_FRAGMENTABLE,
  ts.MPEG2_MPHL,
  ts.MPEG2_MPHL_FRAGMENTABLE,
  ts.MPEG4_HP41,
  ts.MPEG4_HP41_FRAGMENTABLE,
  ts.MPEG4_HP41_BD,
  ts.MPEG4_HP41_BD_FRAGMENTABLE,
  ts.MPEG4_HP42_2D,
  ts.MPEG4_HP42_2D_FRAGMENTABLE,
  ts.MPEG4_HP42_3D,
  ts.MPEG4_HP42_3D_FRAGMENTABLE,
  ts.MPEG4_HP42_STEREO,
  ts.MPEG4_HP42_STEREO_FRAGMENTABLE,
  ts.HEVC_MP51,
  ts.HEVC_M10P51,
  ts.RLE_LOSSLESS,
  ts.DEFLATED_IMAGE_FRAME_COMPRESSION,
];
const STORABLE: ReadonlySet<string> = new Set(STORABLE_TRANSFER_SYNTAXES);

/** Syntaxes for Verification and Query/Retrieve (command-like identifiers), in our order of preference. */
export const UNCOMPRESSED_TRANSFER_SYNTAXES: readonly string[] = [ts.EXPLICIT_VR_LITTLE_ENDIAN, ts.IMPLICIT_VR_LITTLE_ENDIAN];

export interface AssociationPolicy {
  /** Calling AE titles allowed; empty: any. */
  allowedCallingAeTitles: readonly string[];
  /** What each calling AE may do; empty: every allowed AE may do everything, else an AE not listed is refused. */
  aePermissions: Readonly<Record<string, readonly string[]>>;
  /** Modality Worklist and MPPS are offered (the hospital link's store was given); otherwise refused like any unknown class. */
  hospitalLink?: boolean;
}

/** DIMSE has no tokens: the calling AE title is the identity (PS3.8 does not authenticate it: use it with network segmentation). */
export type DimsePermission = 'read' | 'store';

/** `store` for C-STORE and MPPS N-CREATE / N-SET, `read` for C-FIND (worklist included) / C-MOVE / C-GET. */
export function aeMay(policy: AssociationPolicy, callingAeTitle: string, permission: DimsePermission): boolean {
  if (Object.keys(policy.aePermissions).length === 0) return true;
  return policy.aePermissions[callingAeTitle]?.includes(permission) ?? false;
}

export type AssociationDecision =
  | { accept: true; accepted: number; refused: number }
  /** PS3.8 Table 9-21: result 1 (rejected-permanent), source 1 (service-user), reason 3 (calling AE title not recognized). */
  | { accept: false; result: number; source: number; reason: number; why: string };

const Result = constants.PresentationContextResult as Record<string, number>;

/**
 * Decides the association and sets every presentation context's result in place (the library writes the
 * A-ASSOCIATE-AC from them). An association with no acceptable context is still accepted (each context
 * refused), as PS3.8 allows; the peer then releases it.
 */
export function negotiate(association: Association, policy: AssociationPolicy): AssociationDecision {
  const calling = association.getCallingAeTitle().trim();
  if (policy.allowedCallingAeTitles.length > 0 && !policy.allowedCallingAeTitles.includes(calling)) {
    return { accept: false, result: 1, source: 1, reason: 3, why: 'calling AE title not allowed' };
  }
  if (Object.keys(policy.aePermissions).length > 0 && !Object.hasOwn(policy.aePermissions, calling)) {
    return { accept: false, result: 1, source: 1, reason: 3, why: 'calling AE title has no permissions (PACS_DIMSE_AE_PERMISSIONS)' };
  }
  let accepted = 0;
  let refused = 0;
  for (const { context } of association.getPresentationContexts()) {
    const abstract = context.getAbstractSyntaxUid();
    const proposed = context.getTransferSyntaxUids();
    let candidates: readonly string[];
    if (abstract === VERIFICATION || QUERY_RETRIEVE_SOP_CLASSES.has(abstract) || (policy.hospitalLink === true && HOSPITAL_LINK_SOP_CLASSES.has(abstract))) {
      candidates = UNCOMPRESSED_TRANSFER_SYNTAXES.filter((uid) => proposed.includes(uid));
    } else if (isStorageSopClass(abstract)) {
      // Store as received: the peer's first proposed syntax that the archive keeps.
      candidates = proposed.filter((uid) => STORABLE.has(uid));
    } else {
      context.setResult(Result['RejectAbstractSyntaxNotSupported']!);
      refused++;
      continue;
    }
    if (candidates.length === 0) {
      context.setResult(Result['RejectTransferSyntaxesNotSupported']!);
      refused++;
      continue;
    }
    context.setResult(Result['Accept']!, candidates[0]);
    accepted++;
  }
  return { accept: true, accepted, refused };
}
