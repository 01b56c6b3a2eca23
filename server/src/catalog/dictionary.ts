/**
 * Keyword ↔ tag ↔ VR lookups backed by dcmjs's data dictionary (PS3.6), so QIDO-RS keys such as
 * `PatientName` or `00100010` resolve without a hand-written table and every returned element gets its
 * proper VR.
 */

import dcmjs from 'dcmjs';

export interface DictionaryEntry {
  /** 8-digit upper-case hex tag. */
  tag: string;
  keyword: string;
  vr: string;
}

/** dcmjs marks ambiguous VRs in lower case; DICOM JSON needs one concrete VR (PS3.5 §6.2). */
const CONCRETE_VR: Record<string, string> = { ox: 'OW', xs: 'US', lt: 'OW', up: 'UL', na: 'UN' };

const byTag = new Map<string, DictionaryEntry>();
const byKeyword = new Map<string, DictionaryEntry>();
const byLowerKeyword = new Map<string, DictionaryEntry>();

for (const entry of Object.values(dcmjs.data.DicomMetaDictionary.nameMap)) {
  if (entry.name.startsWith('RETIRED_')) continue;
  const tag = entry.tag.replace(/[(),]/g, '').toUpperCase();
  if (!/^[0-9A-F]{8}$/.test(tag)) continue;
  const resolved: DictionaryEntry = { tag, keyword: entry.name, vr: CONCRETE_VR[entry.vr] ?? entry.vr };
  byTag.set(tag, resolved);
  byKeyword.set(entry.name, resolved);
  byLowerKeyword.set(entry.name.toLowerCase(), resolved);
}

/** Entry for an 8-hex tag (any case), or undefined for private / unknown tags. */
export function entryForTag(tag: string): DictionaryEntry | undefined {
  return byTag.get(tag.toUpperCase());
}

/** Entry for a keyword: exact spelling first, then case-insensitively (clients vary in casing). */
export function entryForKeyword(keyword: string): DictionaryEntry | undefined {
  return byKeyword.get(keyword) ?? byLowerKeyword.get(keyword.toLowerCase());
}

/** Tag for a keyword; throws for keywords the dictionary lacks (a programming error in our tables). */
export function tagOf(keyword: string): string {
  const entry = byKeyword.get(keyword);
  if (!entry) throw new Error(`Unknown DICOM keyword in catalog tables: ${keyword}`);
  return entry.tag;
}

/** VR of a tag, 'UN' when the dictionary does not know it. */
export function vrOf(tag: string): string {
  return entryForTag(tag)?.vr ?? 'UN';
}

/** Keyword for messages and warnings; falls back to the tag itself. */
export function keywordOrTag(tag: string): string {
  return entryForTag(tag)?.keyword ?? tag;
}
