/**
 * Curation of the archive (docs/architecture.md, "Curation"; issue 21): IHE IOCM rejection, DELETE,
 * and move / split / merge, over the archive's use cases (archive/archive.ts), which change the index
 * in one transaction each and drop this process's cached lookups of the studies concerned.
 *
 * - **Reject** (`reject`): the server writes a Key Object Selection rejection note (TID 2010, title of
 *   CID 7011; dicom/rejection-note.ts) into the study and stores it through the ordinary ingest, which
 *   recognises it and hides the instances it names, exactly as for a note received by STOW-RS or
 *   C-STORE. The note stays visible: it is the record, and systems that receive the study see the same
 *   rejection.
 * - **Restore** (`restore`, `restoreNote`): the rejection of the chosen instances is lifted. The note
 *   that rejected them is voided (hidden itself, purged later) so that no system that receives the
 *   study later is told to reject them; when it still rejects other instances, a new note naming only
 *   those is written first (same title), so the visible notes always name exactly what is rejected.
 * - **Purge** (`purgeDue`, on a timer in the server): rejected instances whose time has come
 *   (PACS_REJECTION_PURGE_DAYS after their rejection; 113039 "Data Retention Policy Expired" at the
 *   next sweep) are removed for good: row first, blob after (archive.purgeDue). Each purge is audited
 *   as DICOM Study Deleted by the system.
 * - **Delete** (`deleteInstances`), **move** (`move`, `split`, `merge`): archive.deleteInstances and
 *   archive.moveInstances; the routes' audit records say what changed.
 *
 * Received rejection notes (STOW-RS, C-STORE) are audited here too (`noteApplied`, the archive's
 * `rejectionApplied` hook): the request that stored the note is audited as a store, this adds a
 * `reject` record naming what the note hid.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { StoredItem } from '../archive/stow-outcome.js';
import type { AuditObject, AuditRecord } from '../audit/audit-record.js';
import type { AppliedRejection, InstanceSelection, MoveOutcome, MoveTarget, PatientTarget, RejectedEntry, RejectedFilter, StoredInstance, StudyAttributesInput } from '../catalog/catalog.js';
import { derivedUid } from '../dicom/derived-uid.js';
import type { PatientKey } from '../dicom/patient-identity.js';
import { KEY_OBJECT_SELECTION, REJECTION_TITLES, isRejectionCode, writeRejectionNote, type RejectedReference, type RejectionCode } from '../dicom/rejection-note.js';
import { AppError, NotFoundError } from '../errors.js';

/** Where the service's own audit records go (audit/audit-trail.ts's AuditTrail). */
export interface CurationAuditSink {
  record(record: AuditRecord): void;
}

export interface CurationOptions {
  /** How long a rejected instance stays before the purge (PACS_REJECTION_PURGE_DAYS). */
  purgeDelayMs: number;
  /** How often the server sweeps for due purges (PACS_REJECTION_PURGE_INTERVAL_SECONDS); 0: no timer. */
  purgeIntervalMs: number;
}

export interface RejectRequest {
  studyInstanceUid: string;
  seriesInstanceUids?: readonly string[];
  sopInstanceUids?: readonly string[];
  reason: string;
  description?: string;
}

export interface RejectOutcome {
  note: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string };
  code: RejectionCode;
  /** The instances rejected (as the audit record names them). */
  rejected: RejectedReference[];
  purgeAfter: string;
}

export interface RestoreOutcome {
  restored: RejectedEntry[];
  voidedNotes: string[];
  reissuedNotes: Array<{ studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }>;
  studies: string[];
}

export interface MoveRequestInput {
  from: InstanceSelection;
  to: { studyInstanceUid: string } | { newStudy: { attributes?: StudyAttributesInput; patient?: PatientTarget } } | { patient: PatientTarget };
}

/** The audit object of a patient: HL7 CX `ID^^^ISSUER` (as the hospital link names patients). */
export function patientObject(key: PatientKey): AuditObject {
  return { patient: key.issuer === '' ? key.patientId : `${key.patientId}^^^${key.issuer}` };
}

/** A fresh UID under 2.25 (PS3.5 B.2) from a random UUID. */
function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}

/** The series the server's rejection notes go in, one per study. */
export function notesSeriesUid(studyInstanceUid: string): string {
  return derivedUid('filmless-pacs', 'rejection-notes', studyInstanceUid);
}

const SYSTEM = { subject: 'filmless-pacs', kind: 'system' as const };

export class CurationService {
  /** Notes this service is storing: their rejection is audited by the request, not again by noteApplied. */
  private readonly ownNotes = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private first: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private closed = false;

  constructor(
    private readonly archive: Archive,
    private readonly audit: CurationAuditSink | undefined,
    private readonly log: Logger,
    private readonly options: CurationOptions,
  ) {}

  /** Starts the purge timer (the server; a first sweep soon after start, then every interval). */
  start(): void {
    if (this.options.purgeIntervalMs <= 0 || this.timer !== undefined) return;
    const tick = () => {
      if (this.closed || this.sweeping !== undefined) return;
      this.sweeping = this.purgeDue()
        .catch((err: unknown) => this.log.warn({ err: { type: (err as Error)?.name, code: (err as { code?: unknown })?.code } }, 'the purge of rejected instances failed; it is tried again at the next sweep'))
        .finally(() => (this.sweeping = undefined));
    };
    this.timer = setInterval(tick, this.options.purgeIntervalMs);
    this.timer.unref();
    this.first = setTimeout(tick, Math.min(5000, this.options.purgeIntervalMs));
    this.first.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.first !== undefined) clearTimeout(this.first);
    this.timer = undefined;
    this.first = undefined;
    await this.sweeping;
  }

  // -------------------------------------------------------------------------------------------------
  // Rejection

  async reject(request: RejectRequest): Promise<RejectOutcome> {
    if (!isRejectionCode(request.reason)) throw new AppError('BAD_REQUEST', 'The reason must be one of the rejection titles of CID 7011: 113001, 113037, 113038, 113039');
    const code = request.reason;
    const study = await this.archive.studyOf(request.studyInstanceUid);
    if (study === undefined) throw new NotFoundError('Study not found');
    const visible = await this.archive.listInstances({ studyInstanceUid: request.studyInstanceUid });
    // Notes that reject are records, not content: a whole study or series rejected leaves them.
    const notes = new Set((await this.archive.listRejected({ studyInstanceUid: request.studyInstanceUid, state: 'all', limit: 100_000, offset: 0 })).map((e) => e.noteUid));
    let chosen: StoredInstance[];
    if (request.sopInstanceUids !== undefined) {
      const wanted = new Set(request.sopInstanceUids);
      chosen = visible.filter((i) => wanted.has(i.sopInstanceUid));
      if (chosen.length !== wanted.size) throw new NotFoundError(`${wanted.size - chosen.length} of the instances named are not (visible) in the study`);
    } else if (request.seriesInstanceUids !== undefined) {
      const wanted = new Set(request.seriesInstanceUids);
      chosen = visible.filter((i) => wanted.has(i.seriesInstanceUid) && !notes.has(i.sopInstanceUid));
      const found = new Set(visible.map((i) => i.seriesInstanceUid));
      const missing = [...wanted].filter((uid) => !found.has(uid)).length;
      if (missing > 0) throw new NotFoundError(`${missing} of the series named are not (visible) in the study`);
    } else {
      chosen = visible.filter((i) => !notes.has(i.sopInstanceUid));
    }
    if (chosen.length === 0) throw new AppError('BAD_REQUEST', 'Nothing to reject: the selection holds no instance but rejection notes');
    const references = chosen.map((i) => ({ studyInstanceUid: i.studyInstanceUid, seriesInstanceUid: i.seriesInstanceUid, sopInstanceUid: i.sopInstanceUid, sopClassUid: i.sopClassUid, image: i.rows !== undefined || i.pixelData !== undefined }));
    const note = await this.storeNote(code, request.studyInstanceUid, references, request.description);
    const [entry] = await this.archive.listRejected({ noteUid: note.sopInstanceUid, limit: 1, offset: 0 });
    return { note, code, rejected: references.map(({ image: _image, ...ref }) => ref), purgeAfter: entry?.purgeAfter ?? '' };
  }

  /** Writes a rejection note into the study and stores it through the ingest, which applies it. */
  private async storeNote(code: RejectionCode, studyInstanceUid: string, references: ReadonlyArray<RejectedReference & { image: boolean }>, description?: string) {
    const study = await this.archive.studyOf(studyInstanceUid);
    if (study === undefined) throw new NotFoundError('Study not found');
    const seriesInstanceUid = notesSeriesUid(studyInstanceUid);
    const sopInstanceUid = newUid();
    const existing = await this.archive.listInstances({ studyInstanceUid, seriesInstanceUid }, { includeRejected: true });
    const file = writeRejectionNote({
      code,
      references,
      ...(description === undefined ? {} : { description }),
      patient: study.patient,
      study: study.study,
      seriesInstanceUid,
      sopInstanceUid,
      instanceNumber: existing.length + 1,
      createdAt: new Date(),
    });
    this.ownNotes.add(sopInstanceUid);
    try {
      const scanned = await this.archive.scanAndStore(
        (async function* () {
          yield file;
        })(),
        { studyInstanceUid, sopClassUid: KEY_OBJECT_SELECTION, sopInstanceUid },
      );
      const result = await scanned.completion;
      if (!result.ok) throw new AppError('INDEX_FAILURE', `The rejection note could not be stored: ${result.failure.message ?? 'unknown failure'}`);
    } finally {
      this.ownNotes.delete(sopInstanceUid);
    }
    return { studyInstanceUid, seriesInstanceUid, sopInstanceUid };
  }

  /** The archive's `rejectionApplied` hook: a note received by STOW-RS or C-STORE is audited as a rejection. */
  noteApplied(event: { note: StoredItem; rejection: AppliedRejection }): void {
    if (this.ownNotes.has(event.note.sopInstanceUid) || this.audit === undefined) return;
    const { note, rejection } = event;
    this.audit.record({
      time: Date.now(),
      action: 'reject',
      outcome: 0,
      status: 200,
      who: SYSTEM,
      clientAddress: '',
      interface: 'curation',
      route: 'IOCM rejection note received',
      objects: [{ study: note.studyInstanceUid, series: note.seriesInstanceUid, instance: note.sopInstanceUid, sopClass: note.sopClassUid }, ...rejection.studies.filter((s) => s !== note.studyInstanceUid).map((study) => ({ study }))],
      detail: { reason: rejection.code, noteUid: rejection.noteUid, named: rejection.named, hidden: rejection.hidden },
    });
  }

  listRejected(filter: RejectedFilter): Promise<RejectedEntry[]> {
    return this.archive.listRejected(filter);
  }

  // -------------------------------------------------------------------------------------------------
  // Restore

  /** Lifts the rejection of these instances (see the module comment for what happens to their notes). */
  async restore(sopInstanceUids: readonly string[]): Promise<RestoreOutcome> {
    const wanted = [...new Set(sopInstanceUids)];
    const entries = (await this.archive.listRejected({ sopInstanceUids: wanted, state: 'all', limit: wanted.length + 1, offset: 0 })).filter((e) => e.kind === 'rejected');
    const active = entries.filter((e) => e.purgedAt === null);
    if (active.length < wanted.length) {
      const purged = entries.filter((e) => e.purgedAt !== null).length;
      if (purged > 0) throw new AppError('CONFLICT', `${purged} of these instances were purged already: they cannot be restored`);
      throw new NotFoundError(`${wanted.length - active.length} of these instances are not rejected`);
    }
    const restoring = new Set(wanted);
    const reissuedNotes: RestoreOutcome['reissuedNotes'] = [];
    for (const noteUid of new Set(active.map((e) => e.noteUid))) {
      const named = await this.archive.listRejected({ noteUid, state: 'active', limit: 100_000, offset: 0 });
      const remaining = named.filter((e) => e.kind === 'rejected' && !restoring.has(e.sopInstanceUid));
      if (remaining.length === 0) continue;
      const code = remaining[0]!.reasonCode;
      if (!isRejectionCode(code)) continue;
      // One new note per study, naming what the old note still rejects there.
      const byStudy = new Map<string, RejectedEntry[]>();
      for (const entry of remaining) byStudy.set(entry.studyInstanceUid, [...(byStudy.get(entry.studyInstanceUid) ?? []), entry]);
      for (const [studyInstanceUid, refs] of byStudy) {
        if ((await this.archive.studyOf(studyInstanceUid)) === undefined) continue;
        const stored = new Map((await this.archive.listInstances({ studyInstanceUid }, { includeRejected: true })).map((i) => [i.sopInstanceUid, i]));
        const references = refs.map((e) => {
          const instance = stored.get(e.sopInstanceUid);
          return {
            studyInstanceUid: e.studyInstanceUid,
            seriesInstanceUid: e.seriesInstanceUid,
            sopInstanceUid: e.sopInstanceUid,
            sopClassUid: e.sopClassUid,
            image: instance === undefined ? true : instance.rows !== undefined || instance.pixelData !== undefined,
          };
        });
        reissuedNotes.push(await this.storeNote(code, studyInstanceUid, references, `Reissued after a restore: replaces the rejection note ${noteUid}`.slice(0, 1024)));
      }
    }
    const outcome = await this.archive.restoreRejected(wanted);
    return { restored: outcome.restored, voidedNotes: outcome.voidedNotes, reissuedNotes, studies: outcome.studies };
  }

  /** Lifts every rejection a note made (the note is voided). */
  async restoreNote(noteUid: string): Promise<RestoreOutcome> {
    const named = (await this.archive.listRejected({ noteUid, state: 'active', limit: 100_000, offset: 0 })).filter((e) => e.kind === 'rejected');
    if (named.length === 0) throw new NotFoundError('No rejection note with this SOP Instance UID rejects anything at the moment');
    return this.restore(named.map((e) => e.sopInstanceUid));
  }

  // -------------------------------------------------------------------------------------------------
  // Purge

  /** Purges every rejection whose time has come; each study's purge is audited as DICOM Study Deleted. */
  async purgeDue(now: Date = new Date()): Promise<{ purged: number; instancesRemoved: number }> {
    let purged = 0;
    let instancesRemoved = 0;
    for (;;) {
      const batch = await this.archive.purgeDue(500, now);
      purged += batch.length;
      const removed = batch.flatMap((p) => (p.removed === undefined ? [] : [p.removed]));
      instancesRemoved += removed.length;
      const byStudy = new Map<string, typeof batch>();
      for (const p of batch) byStudy.set(p.entry.studyInstanceUid, [...(byStudy.get(p.entry.studyInstanceUid) ?? []), p]);
      for (const [study, items] of byStudy) {
        const gone = items.flatMap((p) => (p.removed === undefined ? [] : [p.removed]));
        this.audit?.record({
          time: Date.now(),
          action: 'delete',
          outcome: 0,
          status: 200,
          who: SYSTEM,
          clientAddress: '',
          interface: 'curation',
          route: 'purge of rejected instances',
          objects: gone.length > 0 ? gone.map((r) => ({ study: r.studyInstanceUid, series: r.seriesInstanceUid, instance: r.sopInstanceUid, sopClass: r.sopClassUid })) : [{ study }],
          detail: { purged: items.length, instancesRemoved: gone.length, reasons: [...new Set(items.map((p) => p.entry.reasonCode))].join(',') },
        });
      }
      if (batch.length < 500) break;
    }
    await this.archive.finishBlobDeletes();
    if (purged > 0) this.log.info({ purged, instancesRemoved }, 'rejected instances purged');
    return { purged, instancesRemoved };
  }

  // -------------------------------------------------------------------------------------------------
  // Delete, move

  deleteInstances(scope: { studyInstanceUid: string; seriesInstanceUid?: string; sopInstanceUid?: string }) {
    return this.archive.deleteInstances(scope);
  }

  /** Move instances, series or a study to another study (existing or new) or patient. */
  async move(request: MoveRequestInput): Promise<MoveOutcome> {
    const { from, to } = request;
    const selection = from.seriesInstanceUids !== undefined || from.sopInstanceUids !== undefined;
    let target: MoveTarget;
    if ('studyInstanceUid' in to) target = { kind: 'study', studyInstanceUid: to.studyInstanceUid };
    else if ('newStudy' in to) {
      target = {
        kind: 'new-study',
        studyInstanceUid: newUid(),
        ...(to.newStudy.attributes === undefined ? {} : { attributes: to.newStudy.attributes }),
        ...(to.newStudy.patient === undefined ? {} : { patient: to.newStudy.patient }),
      };
    } else {
      // The whole study changes patient; series or instances go to a new study of that patient.
      target = selection ? { kind: 'new-study', studyInstanceUid: newUid(), patient: to.patient } : { kind: 'patient', patient: to.patient };
    }
    return this.archive.moveInstances({ from, to: target });
  }

  /** Chosen series of a study to a new study (under the same patient, or `patient`). */
  split(studyInstanceUid: string, seriesInstanceUids: readonly string[], attributes?: StudyAttributesInput, patient?: PatientTarget): Promise<MoveOutcome> {
    return this.move({
      from: { studyInstanceUid, seriesInstanceUids },
      to: { newStudy: { ...(attributes === undefined ? {} : { attributes }), ...(patient === undefined ? {} : { patient }) } },
    });
  }

  /** A whole study into another: it is gone, its series read as the target's. */
  merge(studyInstanceUid: string, into: string): Promise<MoveOutcome> {
    return this.move({ from: { studyInstanceUid }, to: { studyInstanceUid: into } });
  }
}

/** The document title of a reason code, as the API answers it. */
export function reasonOf(code: string): { code: string; scheme: string; meaning: string } {
  return { code, scheme: 'DCM', meaning: isRejectionCode(code) ? REJECTION_TITLES[code] : 'Unknown rejection title' };
}
