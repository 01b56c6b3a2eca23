/**
 * How one data element is encoded (PS3.5 §7.1): tag, VR (explicit syntaxes only) and length, 2-byte
 * lengths for the short VRs, 2 reserved bytes + 4-byte length for the others (§7.1.2), and the undefined
 * length of sequences, items and encapsulated values (§7.5, §A.4). Shared by the File Meta reader, the
 * data-set walker, the Pixel Data reader and the JSON conversion, along with how tags are written in
 * JSON keys and in error messages.
 */

/** Length field value of a sequence, item or encapsulated value ended by a delimiter (PS3.5 §7.5). */
export const UNDEFINED_LENGTH = 0xffffffff;

/** 2-character VR codes packed as (c0 << 8) | c1, so the walker compares numbers, not strings. */
const vrCode = (vr: string): number => (vr.charCodeAt(0) << 8) | vr.charCodeAt(1);

export const VR_SQ = vrCode('SQ');
export const VR_UN = vrCode('UN');
export const VR_OB = vrCode('OB');
export const VR_OW = vrCode('OW');
/** VRs added to PS3.5 after dcmjs 0.51's dictionary: it reads them as UN (walker notes them, header-json relabels). */
export const VRS_DCMJS_LACKS: ReadonlyMap<number, string> = new Map(['OL', 'OV', 'SV', 'UV'].map((vr) => [vrCode(vr), vr]));

/** VRs with the 2-byte length form (PS3.5 §7.1.2); every other VR, known or not, has the 4-byte form. */
export const SHORT_VRS: ReadonlySet<number> = new Set(
  ['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'].map(vrCode),
);

/** VRs with the 4-byte length form that PS3.5 §7.1.2 lists (with SHORT_VRS: every VR it knows). */
export const LONG_VRS: ReadonlySet<number> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'].map(vrCode));

/** A byte that can be part of a VR: VRs are two upper-case letters (PS3.5 §6.2). */
export const isVrByte = (c: number): boolean => c >= 0x41 && c <= 0x5a;

export const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

/** "(GGGG,EEEE)", as error messages and the dcmjs dictionary write a tag. */
export const tagText = (group: number, element: number): string => `(${hex4(group)},${hex4(element)})`;

/** "GGGGEEEE", the key of an element in DICOM JSON (PS3.18 §F.2.1). */
export const tagKey = (group: number, element: number): string => `${hex4(group)}${hex4(element)}`;
