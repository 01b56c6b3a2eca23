/**
 * The push of results to the EMR (docs/architecture.md, "FHIR", outbox design): when a report is signed
 * (and, with PACS_FHIR_PUSH_ON_STUDY, when a study arrives and has settled) an outbox row is written
 * (fhir-store.ts); the row, not the queue, is the durable record. Rows that are due go through the
 * archive's job queue (pathology/job-queue.ts: in-process, or BullMQ on Redis shared by several
 * processes) as `{ kind: 'fhir-push', jobId: <outbox id> }`; a poller puts due rows on the queue every
 * PACS_FHIR_PUSH_POLL_SECONDS (retries, rows of other processes, rows left by a killed process once
 * their lease ran out), so a message lost with a process is harmless. Whoever takes a message claims
 * the row (conditional UPDATE with a lease), sends, and records the outcome.
 *
 * Each delivery is a sequence of requests that are safe to repeat (a crash between any two, or after
 * the last before the row says `sent`, resends them all):
 *
 *   1. Patient: conditional create on the patient's identifier (`If-None-Exist`), or with
 *      PACS_FHIR_PUSH_CREATE_PATIENT=false a search, the EMR's patient being named by identifier otherwise;
 *   2. ImagingStudy: conditional update `PUT ImagingStudy?identifier=urn:dicom:uid|urn:oid:<StudyUID>`;
 *   3. DiagnosticReport (report rows): conditional update on the report id identifier, the version in
 *      force at the time of sending (an amendment updates the same resource, status `amended`).
 *
 * A failed attempt is retried after PACS_FHIR_PUSH_BACKOFF_SECONDS, doubled per attempt (±20 %) up to
 * PACS_FHIR_PUSH_BACKOFF_MAX_SECONDS; after PACS_FHIR_PUSH_MAX_ATTEMPTS the row is `failed`, logged as an
 * error (outbox id, kind, attempts, status; no patient data) and shown in `GET /admin/fhir-outbox`.
 * Deliveries and give-ups are audited (`fhir-push`, ATNA 110106 Export).
 */
import { createHash } from 'node:crypto';
import type { Identifier, Reference, Resource } from 'fhir/r4.js';
import type { Logger } from 'pino';
import type { AuditRecord } from '../audit/audit-record.js';
import type { FhirPushConfig } from '../config.js';
import type { JobQueue } from '../pathology/job-queue.js';
import { PushError, type FhirClient } from './fhir-client.js';
import { patientIdentifiers, studyUidIdentifier } from './fhir-resources.js';
import type { BaseUrls, FhirService } from './fhir-service.js';
import type { FhirStore, OutboxEntry } from './fhir-store.js';

export type PushMessage = { kind: 'fhir-push'; jobId: string };

export interface PushAudit {
  record(record: AuditRecord): void;
}

export interface FhirPushOptions {
  config: FhirPushConfig;
  publicBaseUrl: string;
  dicomwebPrefix: string;
  reportIdSystem: string;
}

/** Outbox ids: opaque (no UID in the log lines that name them), stable per study / report. */
export function studyEntryId(studyInstanceUid: string): string {
  return `s-${createHash('sha256').update(studyInstanceUid).digest('hex').slice(0, 32)}`;
}

export function reportEntryId(reportId: string): string {
  return `r-${createHash('sha256').update(reportId).digest('hex').slice(0, 32)}`;
}

/** A delivery that cannot succeed by trying again (the study left the index, the report has no signed version). */
class Undeliverable extends Error {}

/** The resource as sent: no logical id or meta of ours (the EMR assigns its own). */
function forSending<T extends Resource>(resource: T): T {
  const { id: _id, meta: _meta, ...rest } = resource;
  return rest as T;
}

export class FhirPush {
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private readonly leaseMs: number;
  /** Studies asked for lately (study UID → ms): an upload of many instances writes the outbox row once a few seconds, not per instance. */
  private readonly recentStudies = new Map<string, number>();

  constructor(
    private readonly store: FhirStore,
    private readonly queue: JobQueue<PushMessage>,
    private readonly service: FhirService,
    private readonly client: FhirClient,
    private readonly log: Logger,
    private readonly audit: PushAudit | undefined,
    private readonly options: FhirPushOptions,
  ) {
    // Long enough for every request of one delivery (token, patient, study, report) to time out.
    this.leaseMs = (options.config.timeoutSeconds * 4 + 5) * 1000;
  }

  /** Takes queue messages in this process and polls the outbox for due rows. */
  async start(): Promise<void> {
    await this.queue.startWorkers(this.handle, this.options.config.concurrency);
    this.timer = setInterval(() => void this.poll(), this.options.config.pollSeconds * 1000);
    this.timer.unref();
    void this.poll();
  }

  /** A study gained an instance: push its ImagingStudy once it has been quiet for the settle delay. */
  studyStored(studyInstanceUid: string): void {
    if (this.closed || !this.options.config.onStudy) return;
    const now = Date.now();
    const delayMs = this.options.config.studyDelaySeconds * 1000;
    // Within half the settle delay (at most 5 s) of the last request, the row's due time is close enough:
    // the ImagingStudy is built from the index when it is sent, so it holds the instances stored since.
    const last = this.recentStudies.get(studyInstanceUid);
    if (last !== undefined && now - last < Math.min(delayMs / 2, 5000)) return;
    if (this.recentStudies.size >= 10_000) this.recentStudies.clear();
    this.recentStudies.set(studyInstanceUid, now);
    const dueAt = now + delayMs;
    this.store.enqueue({ id: studyEntryId(studyInstanceUid), kind: 'study', subject: studyInstanceUid, studyInstanceUid }, dueAt).catch((err: unknown) => {
      this.log.error({ err: { type: (err as Error).name, code: (err as { code?: string }).code } }, 'FHIR outbox: a stored study could not be queued for the EMR');
    });
  }

  /** A report version was signed: push its DiagnosticReport (with ImagingStudy and Patient) now. */
  async reportSigned(reportId: string, studyInstanceUid: string): Promise<void> {
    if (this.closed) return;
    const id = reportEntryId(reportId);
    await this.store.enqueue({ id, kind: 'report', subject: reportId, studyInstanceUid }, Date.now());
    // The poller would find it too; this saves the wait. A queue that is down (Redis) leaves it to the poller.
    await this.queue.add([{ kind: 'fhir-push', jobId: id }]).catch(() => undefined);
  }

  /** Puts the due rows on the queue (one poll at a time). */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.polling ??= (async () => {
      try {
        const ids = await this.store.due(Date.now(), 200);
        if (ids.length > 0) await this.queue.add(ids.map((jobId) => ({ kind: 'fhir-push' as const, jobId })));
      } catch (err) {
        this.log.warn({ err: { type: (err as Error).name, code: (err as { code?: string }).code } }, 'FHIR outbox: polling for due entries failed');
      }
    })().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  private backoffMs(attempts: number): number {
    const { backoffSeconds, backoffMaxSeconds } = this.options.config;
    const seconds = Math.min(backoffSeconds * 2 ** Math.max(0, attempts - 1), backoffMaxSeconds);
    return Math.round(seconds * 1000 * (0.8 + Math.random() * 0.4));
  }

  /** The queue's handler: one attempt at one outbox row. Never throws (failures are recorded in the row). */
  handle = async (message: PushMessage): Promise<void> => {
    if (this.closed) return;
    let entry: OutboxEntry | undefined;
    try {
      entry = await this.store.claim(message.jobId, Date.now(), this.leaseMs);
    } catch (err) {
      this.log.warn({ err: { type: (err as Error).name, code: (err as { code?: string }).code }, outboxId: message.jobId }, 'FHIR outbox: claiming an entry failed');
      return;
    }
    if (entry === undefined) return;
    let delivered: { result: Record<string, string>; patient: string | undefined } | undefined;
    try {
      delivered = await this.deliver(entry);
    } catch (err) {
      await this.failed(entry, err);
      return;
    }
    try {
      const final = await this.store.markSent(entry, delivered.result);
      this.log.info({ outboxId: entry.id, kind: entry.kind, attempts: entry.attempts, again: !final }, 'FHIR push delivered');
      this.recordAudit(entry, 0, 200, delivered.patient, { ...delivered.result });
    } catch (err) {
      // Delivered but not recorded: the lease runs out and the idempotent delivery is repeated.
      this.log.warn({ err: { type: (err as Error).name, code: (err as { code?: string }).code }, outboxId: entry.id }, 'FHIR outbox: a delivery could not be recorded');
    }
  };

  private async failed(entry: OutboxEntry, err: unknown): Promise<void> {
    const permanent = err instanceof Undeliverable;
    const message = err instanceof PushError || permanent ? (err as Error).message : `unexpected ${(err as Error).name ?? 'error'}`;
    const status = err instanceof PushError ? err.status : null;
    const giveUp = permanent || entry.attempts >= this.options.config.maxAttempts;
    const retryAt = giveUp ? null : Date.now() + this.backoffMs(entry.attempts);
    try {
      await this.store.markAttemptFailed(entry, message, status, retryAt);
    } catch {
      // The lease runs out and the row is tried again.
    }
    const fields = { outboxId: entry.id, kind: entry.kind, attempts: entry.attempts, status, error: message };
    if (giveUp) {
      this.log.error(fields, 'FHIR push failed for good: the entry is shown as failed to administrators (GET /admin/fhir-outbox)');
      this.recordAudit(entry, 8, status ?? 0, undefined, { error: message.slice(0, 200) });
    } else {
      this.log.warn({ ...fields, retryInSeconds: Math.round((retryAt! - Date.now()) / 1000) }, 'FHIR push attempt failed; it will be retried');
    }
  }

  private recordAudit(entry: OutboxEntry, outcome: 0 | 8, status: number, patient: string | undefined, detail: Record<string, string>): void {
    if (this.audit === undefined) return;
    let host = '';
    try {
      host = new URL(this.client.baseUrl).hostname;
    } catch {
      host = '';
    }
    this.audit.record({
      time: Date.now(),
      action: 'fhir-push',
      outcome,
      status,
      who: { subject: `FHIR:${this.client.baseUrl}`, kind: 'system' },
      clientAddress: host,
      interface: 'fhir',
      route: entry.kind === 'report' ? 'PUSH DiagnosticReport' : 'PUSH ImagingStudy',
      objects: [{ study: entry.studyInstanceUid }, ...(patient === undefined ? [] : [{ patient }])],
      detail: { outboxId: entry.id, attempts: entry.attempts, ...detail },
    });
  }

  /** One delivery: Patient, ImagingStudy and (report rows) DiagnosticReport, each idempotent at the EMR. */
  private async deliver(entry: OutboxEntry): Promise<{ result: Record<string, string>; patient: string | undefined }> {
    const urls: BaseUrls = { base: this.options.publicBaseUrl, dicomweb: `${this.options.publicBaseUrl}${this.options.dicomwebPrefix}` };
    const result: Record<string, string> = {};
    let report: Awaited<ReturnType<FhirService['reportForPush']>>;
    let studyUid = entry.studyInstanceUid;
    if (entry.kind === 'report') {
      report = await this.service.reportForPush(entry.subject, urls);
      if (report === undefined) throw new Undeliverable('the report has no signed version, or its study is no longer in the index');
      studyUid = report.studyInstanceUid;
    }
    const study = await this.service.studyForPush(studyUid, urls);
    if (study === undefined) throw new Undeliverable('the study is no longer in the index');

    // 1. The patient at the EMR.
    const identifiers = patientIdentifiers(study.identity, this.service.systems).filter((i): i is Identifier & { system: string; value: string } => i.system !== undefined && i.value !== undefined);
    const key = identifiers[0];
    if (key === undefined) throw new Undeliverable('the patient has no identifier with a system the EMR could match');
    let subject: Reference;
    if (this.options.config.createPatient) {
      const created = await this.client.conditionalCreate(forSending(study.patient), { system: key.system, value: key.value });
      subject = { reference: created.reference };
      result['Patient'] = created.reference;
    } else {
      const found = await this.client.search('Patient', { system: key.system, value: key.value });
      subject = found.length === 1 ? { reference: found[0]! } : { type: 'Patient', identifier: { system: key.system, value: key.value } };
      if (found.length === 1) result['Patient'] = found[0]!;
    }
    const patientCx = `${study.identity.patientId}^^^${study.identity.issuer}`;

    // 2. The ImagingStudy, keyed on its Study Instance UID.
    const uidIdentifier = studyUidIdentifier(studyUid) as { system: string; value: string };
    const imaging = await this.client.conditionalUpdate({ ...forSending(study.imagingStudy), subject }, uidIdentifier);
    result['ImagingStudy'] = imaging.reference;

    // 3. The DiagnosticReport, keyed on the report id; it names the EMR's patient and ImagingStudy.
    if (report !== undefined) {
      const diagnostic = await this.client.conditionalUpdate(
        { ...forSending(report.diagnosticReport), subject, imagingStudy: [{ reference: imaging.reference }] },
        { system: this.options.reportIdSystem, value: entry.subject },
      );
      result['DiagnosticReport'] = diagnostic.reference;
      result['version'] = String(report.version);
    }
    return { result, patient: patientCx };
  }

  /** Stops polling and taking messages; running deliveries finish (their rows stay leased otherwise). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.polling;
    await this.queue.close();
  }
}
