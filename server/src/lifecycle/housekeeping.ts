/**
 * Housekeeping of the storage lifecycle (docs/architecture.md, "Storage lifecycle"): the rules of
 * PACS_LIFECYCLE_* (every one off by default) run as resumable jobs through the job queue interface
 * (pathology/job-queue.ts: in-process, or BullMQ under its own queue name), one unit of
 * PACS_LIFECYCLE_BATCH instances at a time:
 *
 * - **Recompression** (`compress` units, and `compress-instance` for an instance just stored when the
 *   rule applies at ingest): one instance at a time, a pause (PACS_LIFECYCLE_PAUSE_MS) after each, so
 *   reads go first. Per instance: the converted blob's key is journalled (`blob_conversions`), the blob
 *   written under that new key (recompress.ts builds and verifies it), then one index transaction swaps
 *   the row to it and queues the old blob in `pending_blob_deletes`; the old blob is deleted after a
 *   grace period (PACS_LIFECYCLE_DELETE_GRACE_SECONDS, default 120 s: longer than the 60 s other
 *   processes may keep an instance lookup) through archive/blob-deletes.ts. A kill at any instant leaves
 *   the row on the old blob (journal entry + unreferenced new blob: removed by the next run and by fsck)
 *   or on the new one (old blob queued: deleted by the next start, fsck --repair or the grace timer);
 *   never a row without its file, never a half file (the blob store's put is atomic).
 * - **Lossy policy** (`lossy` units, PACS_LIFECYCLE_LOSSY, off by default; lossy.ts): a lossy copy stored as a
 *   new instance through the archive's ingest, then the originals rejected with 113039 (see lossyUnit).
 * - **Retention** (`retention` units): instances of studies older than PACS_LIFECYCLE_RETENTION_YEARS
 *   (by modality, SOP class) are rejected, study by study, with a Key Object Selection rejection note
 *   titled 113039 "Data Retention Policy Expired" written exactly as the REST rejection writes it
 *   (curation/, through the `RetentionRejecter` port); the purge removes them at its next sweep.
 *
 * Progress is the index itself: a recompressed instance no longer matches its rule, an expired one is
 * rejected, so a run after a restart (the server starts one at start when a rule is on) goes on where
 * the last one stopped. Units carry their cursor (the last instance row id seen), so a unit delivered
 * twice is harmless.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import type { Archive } from '../archive/archive.js';
import { deleteQueuedBlobs } from '../archive/blob-deletes.js';
import type { AuditRecord } from '../audit/audit-record.js';
import type { Catalog, LifecycleCandidate, LifecycleFilter, StoredInstance } from '../catalog/catalog.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { LifecycleConfig } from '../config.js';
import type { HousekeepingStatusJson } from '../contracts/storage.js';
import { HTJ2K_LOSSLESS, JPEG_BASELINE_8BIT, JPEG_LS_LOSSLESS, VIDEO_TRANSFER_SYNTAXES } from '../dicom/transfer-syntax.js';
import type { StoreResult } from '../archive/archive.js';
import type { JobQueue } from '../pathology/job-queue.js';
import type { BlobStore } from '../storage/blob-store.js';
import { derivedUid, lossyCompressInstance, lossyEligibility } from './lossy.js';
import { FFMPEG_UNAVAILABLE, findFfmpeg, isVideoCandidate, reencodeVideo, removeStaleTemp, VIDEO_SOP_CLASSES, videoEligibility, videoFileChunks, type FfmpegTools, type VideoFile } from './lossy-video.js';
import { losslessTargets, recompressInstance, recompressionEligibility, UNCOMPRESSED_SYNTAXES, type LosslessSyntax } from './recompress.js';

/** Key Object Selection Document Storage: the rejection notes retention writes are never expired themselves. */
const KEY_OBJECT_SELECTION = '1.2.840.10008.5.1.4.1.1.88.59';
const RETENTION_EXPIRED = '113039';

export type HousekeepingMessage =
  | { kind: 'compress'; jobId: string; runId: string; after: number }
  | { kind: 'retention'; jobId: string; runId: string; after: number }
  | { kind: 'lossy'; jobId: string; runId: string; after: number }
  | { kind: 'compress-instance'; jobId: string; studyInstanceUid: string; seriesInstanceUid: string };

/** Rejects instances of a study with a rejection note (curation/'s CurationService.reject). */
export interface RetentionRejecter {
  reject(request: { studyInstanceUid: string; sopInstanceUids: readonly string[]; reason: string; description?: string }): Promise<unknown>;
}

export interface HousekeepingAuditSink {
  record(record: AuditRecord): void;
}

export interface HousekeepingOptions {
  config: LifecycleConfig;
  /** Largest instance recompressed in memory (PACS_DECODE_MAX_BYTES). */
  maxBytes: number;
  /** PACS_STOW_MAX_HEADER_BYTES: the scanner's bound when the new file is checked. */
  maxHeaderBytes: number;
  /** How long an old blob stays after its row moved to the recompressed one (PACS_LIFECYCLE_DELETE_GRACE_SECONDS). */
  deleteGraceMs: number;
  /** Journal entries older than this at start are interrupted recompressions (default 10 min). */
  staleConversionMs?: number;
  retention?: RetentionRejecter;
  audit?: HousekeepingAuditSink;
  /** Where the lossy policy's video re-encoding keeps its temporary files (default: the OS's). */
  tmpDir?: string;
  now?: () => Date;
}

export type RunState = NonNullable<HousekeepingStatusJson['run']>;

export type RecompressOutcome = { status: 'recompressed'; before: number; after: number; syntax: string } | { status: 'skipped'; reason: string } | { status: 'failed'; reason: string };

const SYSTEM = { subject: 'filmless-pacs', kind: 'system' as const };

export class Housekeeping {
  private run: RunState | undefined;
  private readonly pendingUnits = new Set<string>();
  /**
   * Blobs whose lossy copy came out no smaller: not tried again by later runs of this process (a video is
   * minutes of ffmpeg). Kept in memory only: after a restart each is tried once more.
   */
  private readonly noGain = new LRUCache<string, true>({ max: 100_000 });
  private timer: NodeJS.Timeout | undefined;
  private first: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Old blobs of swapped rows, deleted once their grace period is over. */
  private readonly superseded: Array<{ key: string; at: number }> = [];
  private closed = false;
  private readonly target: LosslessSyntax | undefined;
  /** ffmpeg and ffprobe as found when the last run started (null: not looked for yet, undefined: missing). */
  private ffmpeg: FfmpegTools | undefined | null = null;
  /** Stops a running ffmpeg at close. */
  private readonly abort = new AbortController();

  constructor(
    private readonly blobs: BlobStore,
    private readonly catalog: Catalog,
    private readonly archive: Archive,
    private readonly queue: JobQueue<HousekeepingMessage>,
    private readonly log: Logger,
    private readonly options: HousekeepingOptions,
  ) {
    const compression = options.config.compression;
    this.target = compression === null ? undefined : compression.target === 'htj2k' ? HTJ2K_LOSSLESS : JPEG_LS_LOSSLESS;
  }

  /** Whether any rule is on (otherwise nothing is ever queued and every blob stays as received). */
  get enabled(): boolean {
    return this.options.config.compression !== null || this.options.config.retention !== null || this.options.config.lossy !== null;
  }

  /**
   * In the server: takes units from the queue (one at a time), gives up the recompressions a crash
   * interrupted, and, when a rule is on, starts a run soon after start and every interval.
   * `scheduled` false (a cluster worker other than the one running the background duties, cluster/):
   * only takes the units this process queues (instances it stored, runs asked of it); no crash
   * recovery, no timed runs.
   */
  async start(takeUnits = true, scheduled = true): Promise<void> {
    if (takeUnits) await this.queue.startWorkers(this.handle, 1);
    if (!this.enabled || !scheduled) return;
    await this.abandonStaleConversions(this.options.staleConversionMs ?? 10 * 60_000);
    if (this.options.config.lossy !== null) {
      // Temporary folders of video re-encodings a kill interrupted (nothing was stored from them).
      await removeStaleTemp(this.tmpDir, this.options.staleConversionMs ?? 10 * 60_000).catch(() => 0);
      await this.findVideoTools();
    }
    const interval = this.options.config.intervalSeconds * 1000;
    if (interval <= 0) return;
    const tick = () => {
      if (this.closed || this.run?.state === 'running') return;
      this.runNow().catch((err: unknown) => this.log.warn({ err: errorSummary(err) }, 'a housekeeping run could not be started; it is tried again at the next interval'));
    };
    this.first = setTimeout(tick, Math.min(10_000, interval));
    this.first.unref();
    this.timer = setInterval(tick, interval);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    for (const t of [this.first, this.graceTimer]) if (t !== undefined) clearTimeout(t);
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.queue.close();
    // Old blobs past their grace period go now; younger ones stay queued (the next start deletes them).
    await this.deleteSuperseded(false).catch(() => undefined);
  }

  /** The rules in force and what the last (or current) run did. */
  status(): HousekeepingStatusJson {
    const { compression, retention, lossy, intervalSeconds } = this.options.config;
    return {
      rules: {
        compression: compression === null ? null : { target: compression.target, modalities: compression.modalities, sopClasses: compression.sopClasses, minAgeDays: compression.minAgeDays },
        retention: retention === null ? null : { years: retention.years, modalities: retention.modalities, sopClasses: retention.sopClasses },
        lossy:
          lossy === null
            ? null
            : {
                jpegQuality: lossy.jpegQuality,
                j2kRatio: lossy.j2kRatio,
                minPsnr: lossy.minPsnr,
                modalities: lossy.modalities,
                sopClasses: lossy.sopClasses,
                minAgeDays: lossy.minAgeDays,
                video: { crf: lossy.video.crf, preset: lossy.video.preset, maxKbps: lossy.video.maxKbps, ffmpeg: this.ffmpeg === null ? 'not checked' : this.ffmpeg === undefined ? FFMPEG_UNAVAILABLE : 'available' },
              },
        intervalSeconds,
      },
      run: this.run === undefined ? null : { ...this.run, skipReasons: { ...this.run.skipReasons } },
    };
  }

  /** Starts a run of every rule that is on (a run in progress is answered as it is). */
  async runNow(): Promise<RunState | undefined> {
    if (!this.enabled) return undefined;
    if (this.run?.state === 'running') return this.run;
    const id = `${this.now().toISOString()}-${randomUUID().slice(0, 8)}`;
    this.run = { id, state: 'running', startedAt: this.now().toISOString(), finishedAt: null, recompressed: 0, skipped: 0, failed: 0, bytesBefore: 0, bytesAfter: 0, expired: 0, lossy: 0, skipReasons: {} };
    const units: HousekeepingMessage[] = [];
    if (this.options.config.lossy !== null) await this.findVideoTools();
    if (this.options.config.compression !== null) units.push({ kind: 'compress', jobId: `${id}:compress:0`, runId: id, after: 0 });
    if (this.options.config.lossy !== null && this.options.retention !== undefined) units.push({ kind: 'lossy', jobId: `${id}:lossy:0`, runId: id, after: 0 });
    if (this.options.config.retention !== null && this.options.retention !== undefined) units.push({ kind: 'retention', jobId: `${id}:retention:0`, runId: id, after: 0 });
    for (const unit of units) this.pendingUnits.add(unit.jobId);
    this.log.info({ run: id, rules: units.map((u) => u.kind).join(',') }, 'housekeeping run started');
    await this.queue.add(units);
    if (units.length === 0) this.finishRun();
    return this.run;
  }

  /** The archive's `instanceStored` hook: with compression at ingest (age 0), the new instance is queued. */
  instanceStored(item: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string; sopClassUid: string }): void {
    const rule = this.options.config.compression;
    if (this.closed || rule === null || rule.minAgeDays > 0) return;
    if (rule.sopClasses.length > 0 && !rule.sopClasses.includes(item.sopClassUid)) return;
    this.queue
      .add([{ kind: 'compress-instance', jobId: item.sopInstanceUid, studyInstanceUid: item.studyInstanceUid, seriesInstanceUid: item.seriesInstanceUid }])
      .catch((err: unknown) => this.log.warn({ err: errorSummary(err) }, 'an instance could not be queued for recompression; the next housekeeping run takes it'));
  }

  /** The queue's handler: one unit. Failures are logged and counted, never thrown at the queue. */
  readonly handle = async (message: HousekeepingMessage): Promise<void> => {
    try {
      if (message.kind === 'compress-instance') await this.compressStored(message);
      else if (message.kind === 'compress') await this.compressUnit(message);
      else if (message.kind === 'lossy') await this.lossyUnit(message);
      else await this.retentionUnit(message);
    } catch (err) {
      this.log.warn({ err: errorSummary(err), unit: message.kind }, 'a housekeeping unit failed; the next run takes up its instances');
      if (message.kind !== 'compress-instance') this.unitDone(message.jobId);
    }
    await this.deleteSuperseded(false);
  };

  private get tmpDir(): string {
    return this.options.tmpDir ?? path.join(os.tmpdir(), 'filmless-pacs-lifecycle');
  }

  /** Looks for ffmpeg (PACS_LIFECYCLE_LOSSY_FFMPEG, on PATH) at each run: installed or removed meanwhile is noticed. */
  private async findVideoTools(): Promise<void> {
    const lossy = this.options.config.lossy;
    if (lossy === null) return;
    const had = this.ffmpeg;
    this.ffmpeg = await findFfmpeg(lossy.video.ffmpeg);
    if (this.ffmpeg === undefined && had !== undefined) this.log.warn('ffmpeg not available: the lossy policy skips video (install Debian\'s ffmpeg, or set PACS_LIFECYCLE_LOSSY_FFMPEG)');
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  private compressionFilter(): LifecycleFilter | undefined {
    const rule = this.options.config.compression;
    if (rule === null) return undefined;
    return {
      transferSyntaxes: UNCOMPRESSED_SYNTAXES,
      modalities: rule.modalities,
      sopClasses: rule.sopClasses,
      asReceived: true,
      ...(rule.minAgeDays > 0 ? { olderThan: dayBefore(this.now(), rule.minAgeDays) } : {}),
    };
  }

  private async compressUnit(message: Extract<HousekeepingMessage, { kind: 'compress' }>): Promise<void> {
    const filter = this.compressionFilter();
    if (filter === undefined || this.closed) return this.unitDone(message.jobId);
    const batch = await this.catalog.lifecycleCandidates(filter, message.after, this.options.config.batchSize);
    for (const candidate of batch) {
      if (this.closed) return;
      this.count(await this.recompress(candidate));
      await pause(this.options.config.pauseMs);
    }
    if (batch.length === this.options.config.batchSize && !this.closed) {
      const after = batch[batch.length - 1]!.cursor;
      const next = { kind: 'compress' as const, jobId: `${message.runId}:compress:${after}`, runId: message.runId, after };
      this.pendingUnits.add(next.jobId);
      await this.queue.add([next]);
    }
    this.unitDone(message.jobId);
  }

  private async compressStored(message: Extract<HousekeepingMessage, { kind: 'compress-instance' }>): Promise<void> {
    const rule = this.options.config.compression;
    if (rule === null || this.closed) return;
    const scope = { studyInstanceUid: message.studyInstanceUid, seriesInstanceUid: message.seriesInstanceUid, sopInstanceUid: message.jobId };
    const [entry] = await this.catalog.listInstancesWithAttributes(scope);
    if (entry === undefined) return;
    const instance = entry.instance;
    const modality = String((entry.attributes['00080060'] as { Value?: unknown[] } | undefined)?.Value?.[0] ?? '').trim();
    if (rule.modalities.length > 0 && !rule.modalities.includes(modality)) return;
    if (rule.sopClasses.length > 0 && !rule.sopClasses.includes(instance.sopClassUid)) return;
    const outcome = await this.recompress({ cursor: 0, ...scope, sopClassUid: instance.sopClassUid, modality, transferSyntaxUid: instance.transferSyntaxUid, blobKey: instance.blobKey, blobSize: instance.blobSize });
    if (outcome.status === 'failed') this.log.warn({ reason: outcome.reason }, 'an instance could not be recompressed at ingest; it stays as received');
    if (outcome.status === 'recompressed') this.scheduleGraceDeletes();
    await pause(this.options.config.pauseMs);
  }

  /**
   * Recompresses one instance (see the module comment for the order that makes it crash-safe). Skipped:
   * not eligible, or nothing saved; failed: an error (the instance stays as received).
   */
  async recompress(candidate: LifecycleCandidate): Promise<RecompressOutcome> {
    const target = this.target;
    if (target === undefined) return { status: 'skipped', reason: 'compression is off' };
    const scope = { studyInstanceUid: candidate.studyInstanceUid, seriesInstanceUid: candidate.seriesInstanceUid, sopInstanceUid: candidate.sopInstanceUid };
    const [entry] = await this.catalog.listInstancesWithAttributes(scope);
    if (entry === undefined || entry.instance.blobKey !== candidate.blobKey) return { status: 'skipped', reason: 'changed meanwhile' };
    const instance = entry.instance;
    const eligibility = recompressionEligibility(instance, entry.attributes, this.options.maxBytes);
    if (!eligibility.ok) return { status: 'skipped', reason: eligibility.reason };
    let file;
    try {
      file = await recompressInstance(this.blobs, instance, eligibility.attributes, losslessTargets(target, eligibility.attributes), { maxBytes: this.options.maxBytes, maxHeaderBytes: this.options.maxHeaderBytes });
    } catch (err) {
      return { status: 'failed', reason: errorMessage(err) };
    }
    if (file.size >= instance.blobSize) return { status: 'skipped', reason: 'no space saved' };
    const key = newBlobKey();
    await this.catalog.beginConversion({ blobKey: key, sopInstanceUid: instance.sopInstanceUid, sourceBlobKey: instance.blobKey, transferSyntaxUid: file.syntax, startedAt: this.now().toISOString() });
    try {
      const written = await this.blobs.put(key, Readable.from(file.chunks));
      if (written.size !== file.size) throw new Error('the blob store reported another size than written');
    } catch (err) {
      await this.catalog.abandonConversions([key], this.now().toISOString());
      await deleteQueuedBlobs(this.blobs, this.catalog, [key]);
      return { status: 'failed', reason: errorMessage(err) };
    }
    let attributes: string | undefined;
    if (file.planarChanged) attributes = JSON.stringify({ ...entry.attributes, '00280006': { vr: 'US', Value: [0] } });
    const swap = await this.catalog.swapConvertedBlob({
      sopInstanceUid: instance.sopInstanceUid,
      sourceBlobKey: instance.blobKey,
      blobKey: key,
      blobSize: file.size,
      checksum: file.checksum,
      transferSyntaxUid: file.syntax,
      pixelData: file.pixelData,
      ...(attributes === undefined ? {} : { attributes }),
    });
    if (!swap.swapped) {
      await deleteQueuedBlobs(this.blobs, this.catalog, [key]);
      return { status: 'skipped', reason: 'changed meanwhile' };
    }
    // Every process sharing the index drops what it cached of the instance (its row changed).
    await this.archive.announceChange({
      kind: 'instances-changed',
      studies: [instance.studyInstanceUid],
      instances: [{ studyInstanceUid: instance.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, sopInstanceUid: instance.sopInstanceUid }],
    });
    this.superseded.push({ key: instance.blobKey, at: Date.now() });
    this.options.audit?.record({
      time: Date.now(),
      action: 'recompress',
      outcome: 0,
      status: 200,
      who: SYSTEM,
      clientAddress: '',
      interface: 'storage',
      route: 'storage lifecycle: lossless recompression',
      objects: [{ study: instance.studyInstanceUid, series: instance.seriesInstanceUid, instance: instance.sopInstanceUid, sopClass: instance.sopClassUid }],
      detail: { from: instance.transferSyntaxUid, to: file.syntax, bytesBefore: instance.blobSize, bytesAfter: file.size },
    });
    return { status: 'recompressed', before: instance.blobSize, after: file.size, syntax: file.syntax };
  }

  /**
   * A unit of the lossy policy: each selected instance gets its lossy copy stored as a new instance
   * (through the archive's own ingest), then the originals of the unit are rejected study by study with
   * a 113039 note (curation, like retention) and purged. A kill between the two leaves both instances,
   * each whole; the next run finds the copy (its UID is derived from the original's) and only rejects.
   */
  private async lossyUnit(message: Extract<HousekeepingMessage, { kind: 'lossy' }>): Promise<void> {
    const rule = this.options.config.lossy;
    const rejecter = this.options.retention;
    if (rule === null || rejecter === undefined || this.closed) return this.unitDone(message.jobId);
    const filter: LifecycleFilter = {
      // JPEG Baseline for video recorded as JPEG frames (live/recording.ts) only; MPEG-2 / H.264 / HEVC video.
      transferSyntaxes: [...UNCOMPRESSED_SYNTAXES, JPEG_LS_LOSSLESS, HTJ2K_LOSSLESS, JPEG_BASELINE_8BIT, ...VIDEO_TRANSFER_SYNTAXES],
      modalities: rule.modalities,
      excludeSopClasses: [KEY_OBJECT_SELECTION],
      sopClasses: rule.sopClasses,
      ...(rule.minAgeDays > 0 ? { olderThan: dayBefore(this.now(), rule.minAgeDays) } : {}),
    };
    const batch = await this.catalog.lifecycleCandidates(filter, message.after, this.options.config.batchSize);
    const replaced = new Map<string, Array<{ original: string; copy: string; series: string; sopClass: string }>>();
    for (const candidate of batch) {
      if (this.closed) return;
      // A JPEG still is already lossy: only video stored as JPEG frames is taken (not counted otherwise).
      if (candidate.transferSyntaxUid === JPEG_BASELINE_8BIT && !VIDEO_SOP_CLASSES.includes(candidate.sopClassUid)) continue;
      const outcome = await this.lossyCopy(candidate);
      if (outcome.status === 'converted') {
        const list = replaced.get(candidate.studyInstanceUid) ?? [];
        list.push({ original: candidate.sopInstanceUid, copy: outcome.sopInstanceUid, series: candidate.seriesInstanceUid, sopClass: candidate.sopClassUid });
        replaced.set(candidate.studyInstanceUid, list);
        if (this.run !== undefined) {
          this.run.bytesBefore += outcome.before;
          this.run.bytesAfter += outcome.after;
        }
      } else {
        this.count(outcome);
      }
      await pause(this.options.config.pauseMs);
    }
    for (const [studyInstanceUid, list] of replaced) {
      try {
        await rejecter.reject({
          studyInstanceUid,
          sopInstanceUids: list.map((r) => r.original),
          reason: RETENTION_EXPIRED,
          description: 'Replaced by a lossy compressed copy (new SOP Instance UID; Source Image Sequence names the original)',
        });
        if (this.run !== undefined) this.run.lossy = (this.run.lossy ?? 0) + list.length;
        this.options.audit?.record({
          time: Date.now(),
          action: 'recompress',
          outcome: 0,
          status: 200,
          who: SYSTEM,
          clientAddress: '',
          interface: 'storage',
          route: 'storage lifecycle: lossy compression',
          objects: list.flatMap((r) => [
            { study: studyInstanceUid, series: r.series, instance: r.original, sopClass: r.sopClass },
            { study: studyInstanceUid, series: r.series, instance: r.copy, sopClass: r.sopClass },
          ]),
          detail: { reason: RETENTION_EXPIRED, replaced: list.length },
        });
      } catch (err) {
        if (this.run !== undefined) this.run.failed += list.length;
        this.log.warn({ err: errorSummary(err) }, 'originals of lossy copies could not be rejected; the next run tries again (both stay readable meanwhile)');
      }
    }
    if (batch.length === this.options.config.batchSize && !this.closed) {
      const after = batch[batch.length - 1]!.cursor;
      const next = { kind: 'lossy' as const, jobId: `${message.runId}:lossy:${after}`, runId: message.runId, after };
      this.pendingUnits.add(next.jobId);
      await this.queue.add([next]);
    }
    this.unitDone(message.jobId);
  }

  /** The lossy copy of one instance, stored as a new instance (or found stored by an interrupted run). */
  async lossyCopy(candidate: LifecycleCandidate): Promise<{ status: 'converted'; sopInstanceUid: string; before: number; after: number } | Exclude<RecompressOutcome, { status: 'recompressed' }>> {
    const rule = this.options.config.lossy;
    if (rule === null) return { status: 'skipped', reason: 'lossy policy is off' };
    const scope = { studyInstanceUid: candidate.studyInstanceUid, seriesInstanceUid: candidate.seriesInstanceUid, sopInstanceUid: candidate.sopInstanceUid };
    const [entry] = await this.catalog.listInstancesWithAttributes(scope);
    if (entry === undefined || entry.instance.blobKey !== candidate.blobKey) return { status: 'skipped', reason: 'changed meanwhile' };
    const instance = entry.instance;
    if (isOwnLossyCopy(instance.sopInstanceUid, entry.attributes)) return { status: 'skipped', reason: 'already a lossy copy made by this policy' };
    if (this.noGain.has(instance.blobKey)) return { status: 'skipped', reason: 'no space saved' };
    const copyUid = derivedUid(instance.sopInstanceUid);
    const [existing] = await this.catalog.listInstancesWithAttributes({ ...scope, sopInstanceUid: copyUid });
    if (existing !== undefined) return { status: 'converted', sopInstanceUid: copyUid, before: instance.blobSize, after: existing.instance.blobSize };
    if (isVideoCandidate(instance.sopClassUid, instance.transferSyntaxUid)) return this.videoCopy(instance, entry.attributes);
    const eligibility = lossyEligibility(instance, entry.attributes, this.options.maxBytes);
    if (!eligibility.ok) return { status: 'skipped', reason: eligibility.reason };
    let file;
    try {
      file = await lossyCompressInstance(this.blobs, instance, entry.attributes, eligibility, { ...rule, maxBytes: this.options.maxBytes, maxHeaderBytes: this.options.maxHeaderBytes });
    } catch (err) {
      return { status: 'failed', reason: errorMessage(err) };
    }
    if (file.size >= instance.blobSize) {
      this.noGain.set(instance.blobKey, true);
      return { status: 'skipped', reason: 'no space saved' };
    }
    // The archive's own ingest: blob written atomically, then the index row; every cache told.
    let result: StoreResult;
    try {
      const part = await this.archive.scanAndStore(
        (async function* () {
          yield* file.chunks;
        })(),
        { studyInstanceUid: instance.studyInstanceUid },
      );
      result = await part.completion;
    } catch (err) {
      return { status: 'failed', reason: errorMessage(err) };
    }
    if (!result.ok) return { status: 'failed', reason: result.failure.message ?? 'the lossy copy was not stored' };
    return { status: 'converted', sopInstanceUid: file.sopInstanceUid, before: instance.blobSize, after: file.size };
  }

  /**
   * The H.264 copy of a video (lossy-video.ts), stored as a new instance through the archive's ingest,
   * streamed from ffmpeg's output file; only when it is smaller than the stored file.
   */
  private async videoCopy(instance: StoredInstance, attributes: DicomJsonDataset): Promise<{ status: 'converted'; sopInstanceUid: string; before: number; after: number } | Exclude<RecompressOutcome, { status: 'recompressed' }>> {
    const rule = this.options.config.lossy!;
    const tools = this.ffmpeg;
    if (tools === undefined || tools === null) return { status: 'skipped', reason: FFMPEG_UNAVAILABLE };
    const eligibility = videoEligibility(instance, attributes);
    if (!eligibility.ok) return { status: 'skipped', reason: eligibility.reason };
    let file: VideoFile;
    try {
      file = await reencodeVideo(this.blobs, tools, instance, attributes, eligibility, { ...rule.video, tmpDir: this.tmpDir }, this.abort.signal);
    } catch (err) {
      return { status: 'failed', reason: errorMessage(err) };
    }
    try {
      if (file.size >= instance.blobSize) {
        this.noGain.set(instance.blobKey, true);
        return { status: 'skipped', reason: 'no space saved' };
      }
      if (this.closed) return { status: 'skipped', reason: 'stopped' };
      let result: StoreResult;
      try {
        const part = await this.archive.scanAndStore(videoFileChunks(file), { studyInstanceUid: instance.studyInstanceUid });
        result = await part.completion;
      } catch (err) {
        return { status: 'failed', reason: errorMessage(err) };
      }
      if (!result.ok) return { status: 'failed', reason: result.failure.message ?? 'the lossy copy was not stored' };
      return { status: 'converted', sopInstanceUid: file.sopInstanceUid, before: instance.blobSize, after: file.size };
    } finally {
      await file.dispose();
    }
  }

  private async retentionUnit(message: Extract<HousekeepingMessage, { kind: 'retention' }>): Promise<void> {
    const rule = this.options.config.retention;
    const rejecter = this.options.retention;
    if (rule === null || rejecter === undefined || this.closed) return this.unitDone(message.jobId);
    const filter: LifecycleFilter = { modalities: rule.modalities, sopClasses: rule.sopClasses, excludeSopClasses: [KEY_OBJECT_SELECTION], olderThan: dayBefore(this.now(), rule.minAgeDays) };
    const batch = await this.catalog.lifecycleCandidates(filter, message.after, this.options.config.batchSize);
    // One note per study naming every instance of it the rule expires (not one per unit of the study).
    for (const studyInstanceUid of new Set(batch.map((c) => c.studyInstanceUid))) {
      if (this.closed) return;
      const sopInstanceUids: string[] = [];
      for (let after: number | undefined; ; ) {
        const page = await this.catalog.lifecycleCandidates({ ...filter, studyInstanceUid }, after, 10_000);
        sopInstanceUids.push(...page.map((c) => c.sopInstanceUid));
        if (page.length < 10_000) break;
        after = page[page.length - 1]!.cursor;
      }
      if (sopInstanceUids.length === 0) continue;
      try {
        await rejecter.reject({ studyInstanceUid, sopInstanceUids, reason: RETENTION_EXPIRED, description: `Data retention policy expired: studies older than ${rule.years} years` });
        if (this.run !== undefined) this.run.expired += sopInstanceUids.length;
        this.options.audit?.record({
          time: Date.now(),
          action: 'reject',
          outcome: 0,
          status: 200,
          who: SYSTEM,
          clientAddress: '',
          interface: 'storage',
          route: 'storage lifecycle: retention expiry',
          objects: [{ study: studyInstanceUid }],
          detail: { reason: RETENTION_EXPIRED, rejected: sopInstanceUids.length, years: rule.years },
        });
      } catch (err) {
        if (this.run !== undefined) this.run.failed += sopInstanceUids.length;
        this.log.warn({ err: errorSummary(err) }, 'instances whose retention expired could not be rejected; the next run tries again');
      }
    }
    if (batch.length === this.options.config.batchSize && !this.closed) {
      const after = batch[batch.length - 1]!.cursor;
      const next = { kind: 'retention' as const, jobId: `${message.runId}:retention:${after}`, runId: message.runId, after };
      this.pendingUnits.add(next.jobId);
      await this.queue.add([next]);
    }
    this.unitDone(message.jobId);
  }

  private count(outcome: RecompressOutcome): void {
    const run = this.run;
    if (run === undefined) return;
    if (outcome.status === 'recompressed') {
      run.recompressed += 1;
      run.bytesBefore += outcome.before;
      run.bytesAfter += outcome.after;
    } else if (outcome.status === 'skipped') {
      run.skipped += 1;
      run.skipReasons[outcome.reason] = (run.skipReasons[outcome.reason] ?? 0) + 1;
    } else {
      run.failed += 1;
      run.skipReasons[`failed: ${outcome.reason}`] = (run.skipReasons[`failed: ${outcome.reason}`] ?? 0) + 1;
    }
  }

  private unitDone(jobId: string): void {
    this.pendingUnits.delete(jobId);
    if (this.pendingUnits.size === 0 && this.run?.state === 'running') this.finishRun();
  }

  private finishRun(): void {
    const run = this.run;
    if (run === undefined) return;
    run.state = 'finished';
    run.finishedAt = this.now().toISOString();
    this.log.info({ run: run.id, recompressed: run.recompressed, skipped: run.skipped, failed: run.failed, bytesSaved: run.bytesBefore - run.bytesAfter, expired: run.expired }, 'housekeeping run finished');
    // The old blobs of this run go once their grace period is over.
    this.scheduleGraceDeletes();
  }

  private scheduleGraceDeletes(): void {
    if (this.superseded.length === 0 || this.graceTimer !== undefined || this.closed) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      this.deleteSuperseded(true).catch(() => undefined);
    }, this.options.deleteGraceMs + 50);
    this.graceTimer.unref();
  }

  /** Deletes the old blobs whose grace period is over (they stay queued in the index until then). */
  private async deleteSuperseded(reschedule: boolean): Promise<void> {
    const due = Date.now() - this.options.deleteGraceMs;
    const ready = this.superseded.filter((s) => s.at <= due);
    if (ready.length > 0) {
      this.superseded.splice(0, this.superseded.length, ...this.superseded.filter((s) => s.at > due));
      const { failed } = await deleteQueuedBlobs(this.blobs, this.catalog, ready.map((s) => s.key));
      if (failed > 0) this.log.warn({ failed }, 'old blobs of recompressed instances could not be deleted yet: they stay queued (fsck --repair or the next start finishes them)');
    }
    if (reschedule) this.scheduleGraceDeletes();
  }

  /** Wait until the old blobs of this process's recompressions are deleted (tests, benchmark). */
  async settle(): Promise<void> {
    while (this.superseded.length > 0) {
      await pause(Math.min(1000, this.options.deleteGraceMs + 10));
      await this.deleteSuperseded(false);
    }
  }

  /**
   * Recompressions a crash interrupted (journal entries older than `olderThanMs`): their blob, written
   * or not, is queued for deletion unless a row took it, and deleted.
   */
  async abandonStaleConversions(olderThanMs: number): Promise<number> {
    const cutoff = this.now().getTime() - olderThanMs;
    const stale = (await this.catalog.listConversions(10_000)).filter((e) => Date.parse(e.startedAt) <= cutoff).map((e) => e.blobKey);
    if (stale.length === 0) return 0;
    await this.catalog.abandonConversions(stale, this.now().toISOString());
    await deleteQueuedBlobs(this.blobs, this.catalog, stale);
    this.log.warn({ interrupted: stale.length }, 'interrupted recompressions abandoned (their instances stay as they were)');
    return stale.length;
  }
}

/**
 * Whether the instance is a copy this policy made: its Source Image Sequence names one instance whose
 * derived UID is its own (a lossy copy is never compressed again).
 */
function isOwnLossyCopy(sopInstanceUid: string, attributes: DicomJsonDataset): boolean {
  const items = (attributes['00082112'] as { Value?: unknown[] } | undefined)?.Value ?? [];
  return items.some((item) => {
    const source = ((item as Record<string, { Value?: unknown[] }>)['00081155']?.Value ?? [])[0];
    return typeof source === 'string' && derivedUid(source) === sopInstanceUid;
  });
}

/** YYYYMMDD of `days` days before `now` (UTC). */
export function dayBefore(now: Date, days: number): string {
  return new Date(now.getTime() - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Same layout as the archive's keys: random, sharded two levels deep. */
function newBlobKey(): string {
  const id = randomUUID();
  return `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}.dcm`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 200) : 'unknown error';
}

/** Type and code only: messages of parser errors can quote data set values. */
function errorSummary(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: unknown }).code };
  return { type: typeof err };
}
