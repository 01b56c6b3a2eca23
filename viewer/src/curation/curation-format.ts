/**
 * Pure helpers of the curation pages (no DOM, no requests; curation-format.test.ts): the rejection
 * reasons (CID 7011) in the page's language, rejected instances grouped by their rejection note, who
 * rejected them (from the audit trail's `reject` records), and the recent curation actions merged from
 * the audit trail. Patients are never named here: the audit records name studies by UID.
 */
import { t } from '../i18n/i18n.js';
import type { RejectedJson } from '../../../server/src/contracts/curation.js';
import type { AuditRecordJson } from '../../../server/src/contracts/audit.js';

export type { AuditRecordJson };

/** IOCM rejection note titles (CID 7011, DCM), in the order offered. */
export const REASONS = ['113001', '113037', '113038', '113039'] as const;
export type Reason = (typeof REASONS)[number];

/** A reason's meaning in the page's language (`113037` → "Rejected for Patient Safety Reasons"). */
export function reasonText(code: string, fallback?: string): string {
  return (REASONS as readonly string[]).includes(code) ? t(`curation:reason.${code}`) : (fallback ?? code);
}

/** One rejection note's rejected instances: what the curation page lists as one row. */
export interface RejectionGroup {
  noteUid: string;
  studyInstanceUid: string;
  seriesInstanceUids: string[];
  reason: RejectedJson['reason'];
  rejectedAt: string;
  purgeAfter: string;
  instances: RejectedJson[];
}

/** Rejected instances (not voided notes) grouped by the note that rejects them, newest first. */
export function groupByNote(entries: readonly RejectedJson[]): RejectionGroup[] {
  const groups = new Map<string, RejectionGroup>();
  for (const e of entries) {
    if (e.kind !== 'rejected') continue;
    let g = groups.get(e.noteUid);
    if (g === undefined) {
      g = { noteUid: e.noteUid, studyInstanceUid: e.studyInstanceUid, seriesInstanceUids: [], reason: e.reason, rejectedAt: e.rejectedAt, purgeAfter: e.purgeAfter, instances: [] };
      groups.set(e.noteUid, g);
    }
    g.instances.push(e);
    if (!g.seriesInstanceUids.includes(e.seriesInstanceUid)) g.seriesInstanceUids.push(e.seriesInstanceUid);
    if (e.rejectedAt > g.rejectedAt) g.rejectedAt = e.rejectedAt;
    if (e.purgeAfter < g.purgeAfter) g.purgeAfter = e.purgeAfter;
  }
  return [...groups.values()].sort((a, b) => (a.rejectedAt < b.rejectedAt ? 1 : a.rejectedAt > b.rejectedAt ? -1 : 0));
}

/** Who a record names: the token's display name, else its subject. */
export function whoOf(record: AuditRecordJson): string {
  return record.who.name ?? record.who.subject;
}

/** Note UID → who wrote it, from the audit trail's successful `reject` records (`detail.noteUid`). */
export function rejectersByNote(records: readonly AuditRecordJson[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of records) {
    const note = r.detail?.['noteUid'];
    if (r.action === 'reject' && r.status < 300 && typeof note === 'string' && !out.has(note)) out.set(note, whoOf(r));
  }
  return out;
}

/** Several actions' records merged, newest first, at most `limit`; audit-trail reads left out. */
export function recentActions(lists: ReadonlyArray<readonly AuditRecordJson[]>, limit: number): AuditRecordJson[] {
  const seen = new Set<string>();
  const all: AuditRecordJson[] = [];
  for (const list of lists) {
    for (const r of list) {
      const key = r.id === undefined ? `${r.time}|${r.route}|${r.who.subject}` : String(r.id);
      if (seen.has(key)) continue;
      seen.add(key);
      all.push(r);
    }
  }
  return all.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : (b.id ?? 0) - (a.id ?? 0))).slice(0, limit);
}

/** A record's facts as `key value` pairs for the page (counts, reason, studies); nothing about patients. */
export function detailText(record: AuditRecordJson): string {
  const d = record.detail ?? {};
  const parts: string[] = [];
  if (typeof d['reason'] === 'string') parts.push(reasonText(d['reason']));
  for (const key of ['rejected', 'restored', 'instancesRemoved', 'series', 'instances', 'purged'] as const) {
    if (typeof d[key] === 'number') parts.push(t(`curation:detail.${key}`, { count: d[key] }));
  }
  if (typeof d['toStudy'] === 'string' && d['toStudy'] !== d['fromStudy']) parts.push(t('curation:detail.toStudy', { uid: d['toStudy'] }));
  if (d['patientChanged'] === true) parts.push(t('curation:detail.patientChanged'));
  if (d['sourceRemoved'] === true) parts.push(t('curation:detail.sourceRemoved'));
  return parts.join(' · ');
}

/** Words a user types to confirm a deletion must match this, ignoring case and spaces around. */
export function confirmsDeletion(typed: string, word: string): boolean {
  return typed.trim().toLocaleUpperCase() === word.trim().toLocaleUpperCase() && word.trim() !== '';
}

/** A UID typed into a search box (digits and dots, at least one dot), else undefined (an accession number). */
export function asUid(text: string): string | undefined {
  const v = text.trim();
  return /^[0-9]+(\.[0-9]+)+$/.test(v) && v.length <= 64 ? v : undefined;
}
