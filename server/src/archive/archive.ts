/**
 * The archive's use cases (Orthanc's ServerContext): store a streamed Part-10 file, list instances,
 * search. Depends only on the BlobStore and Catalog interfaces; the DICOMweb and DIMSE front ends call
 * this and never touch storage or the index themselves.
 *
 * Ordering rule that makes a crash harmless: the blob is written completely (and atomically) first, the
 * index row last, in one transaction. A crash in between leaves an unreferenced blob, never an index
 * row pointing at a missing or half-written file.
 */
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { once } from 'node:events';
import type { Logger } from 'pino';
import type { BlobStore } from '../storage/blob-store.js';
import { studiesOf, type Change, type ChangeFeed, type InstancesChange } from '../changes/change-feed.js';
import type {
  AppliedRejection,
  Catalog,
  InstanceScope,
  InstanceWithAttributes,
  ListOptions,
  MoveOutcome,
  MoveRequest,
  QidoResult,
  RejectedEntry,
  RejectedFilter,
  RejectionToApply,
  RemovedInstance,
  RestoreOutcome,
  StoredInstance,
} from '../catalog/catalog.js';
import type { QidoQuery } from '../catalog/qido-query.js';
import type { InstanceHeader } from '../dicom/instance-header.js';
import { firstString } from '../dicom/dicom-json.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { withChangesJson } from '../dicom/identity-rewrite.js';
import { rejectionNoteOf } from '../dicom/rejection-note.js';
import type { StudyIdentity } from '../dicom/study-identity.js';
import { correctedInstance, readChangesOf, readsAsStored } from './identity-on-read.js';
import { deleteQueuedBlobs } from './blob-deletes.js';
import type { OrderReconciliation } from './order-reconciliation.js';
import { scanPart10 } from '../dicom/part10-scanner.js';
import { AppError, InvalidDicomError, NotFoundError } from '../errors.js';
import { FailureReason, type FailedItem, type StoredItem } from './stow-outcome.js';
import { findInstances, instancesWithBytes, READ_AHEAD, readFrames, type Framing } from './retrieve.js';
import type { PartBuffers } from './part-buffers.js';
import { bulkDataValue, decodedBulkData, readBulkData, type BulkDataValue } from './bulkdata.js';
import { decodeFrames, readWholeInstance } from './decode-frames.js';
import { encodeFrames, type FrameEncoding } from './encode-frames.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { MAX_TRANSCODE_BYTES, transcodeToExplicitLittleEndian, type PixelAttributes } from './transcode.js';
import { DEFAULT_RENDER_MAX_PIXELS, renderFrame, renderFramePixels, representativeFrame, type DisplayPixels, representativeInstance, type RenderedImage, type RenderOptions } from './render.js';

export type StoreResult = { ok: true; item: StoredItem } | { ok: false; failure: FailedItem };

export interface ScannedPart {
  /** Resolves once the blob is durable and the index row written (or the failure is known). */
  completion: Promise<StoreResult>;
}

/**
 * What the caller already knows about the instance (STOW-RS: the study in the path; DIMSE C-STORE: the
 * SOP class and instance of the command). A data set that disagrees is refused before it is indexed.
 */
export interface StoreExpectations {
  studyInstanceUid?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
}

function sopMismatch(header: InstanceHeader, expected: StoreExpectations): string | undefined {
  if (expected.sopClassUid !== undefined && header.sopClassUid !== expected.sopClassUid) {
    return 'SOP Class UID of the data set differs from the request';
  }
  if (expected.sopInstanceUid !== undefined && header.sopInstanceUid !== expected.sopInstanceUid) {
    return 'SOP Instance UID of the data set differs from the request';
  }
  return undefined;
}

export interface ArchiveOptions {
  maxHeaderBytes: number;
  /** Deepest sequence nesting accepted at ingest (PACS_DICOM_MAX_NESTING; default DEFAULT_MAX_NESTING). */
  maxNesting?: number;
  /** Decoded pixel bytes one request may hold (PACS_DECODE_MAX_BYTES; default MAX_TRANSCODE_BYTES). */
  decodeMaxBytes?: number;
  /** Largest frame rendered, Rows × Columns (PACS_RENDER_MAX_PIXELS; default DEFAULT_RENDER_MAX_PIXELS). */
  renderMaxPixels?: number;
  /**
   * The hospital link's orders (his/): an instance stored with an Accession Number its order knows is
   * indexed under the order's patient (coercion at ingest; the blob is untouched), and its series is
   * linked to the order. Absent: instances are indexed as they are.
   */
  orderReconciliation?: OrderReconciliation;
  /**
   * Told after each new instance is indexed (not for duplicates), e.g. so the FHIR push can send the
   * study's ImagingStudy once it has settled (fhir/fhir-push.ts). Must not throw or block.
   */
  instanceStored?: (item: StoredItem) => void;
  /**
   * How long instances rejected by an IOCM rejection note stay (hidden, restorable) before the purge
   * removes them for good (PACS_REJECTION_PURGE_DAYS; default 30 days). Notes titled 113039 "Data
   * Retention Policy Expired" are purged at the next sweep whatever this says.
   */
  rejectionPurgeDelayMs?: number;
  /** Told after a rejection note was indexed and applied (STOW-RS, C-STORE, or one the server wrote). Must not throw or block. */
  rejectionApplied?: (event: { note: StoredItem; rejection: AppliedRejection }) => void;
  /**
   * The change feed of the processes sharing the index (changes/): what this archive changes is
   * announced on it, and what any process announces drops the cached lookups (and open read handles)
   * concerned. Absent: this process's caches only (a test's lone archive).
   */
  changes?: ChangeFeed;
}

/** 30 days: how long rejected instances stay restorable by default (PACS_REJECTION_PURGE_DAYS). */
export const DEFAULT_REJECTION_PURGE_DELAY_MS = 30 * 24 * 3600 * 1000;

/** DCM 113039 Data Retention Policy Expired: nothing to keep, purged at the next sweep. */
const RETENTION_EXPIRED = '113039';

/** Errors that concern the whole request, not one part: they abort the request. */
function isRequestLevelError(err: unknown): boolean {
  return err instanceof AppError && (err.code === 'MALFORMED_MULTIPART' || err.code === 'PAYLOAD_TOO_LARGE');
}

export class Archive {
  /**
   * Instance-level lookups (every frame, tile, bulk data and rendered request starts with one): an
   * index query and the JSON parse of the frame offsets cost more than the ranged read itself.
   * An indexed instance's row never changes (a second store of its UID is a duplicate or is refused);
   * its patient's identity can (hospital link): the entries of the studies a correction or merge
   * changes are dropped when this process applies it (applyPatientIdentity, mergePatients, coercion at
   * ingest). Only found instances are kept, so one that arrives later is seen at once. What another
   * process sharing the index changes reaches here through the change feed (`options.changes`), which
   * drops the entries concerned; while the feed's subscription is lost the cache is neither read nor
   * filled. The TTL is a last resort only (for a change nobody announced).
   */
  /** Keys of new blobs (ingest): a shard run of 256 where prefixes are folders (BlobStore.prefixFolders), else 1. */
  private readonly blobKeys: BlobKeys;
  private readonly instanceLookups = new LRUCache<string, StoredInstance>({ max: 4096, ttl: 60_000 });
  /** Bumped by every invalidation: a lookup that read the index before one is not kept (it may be stale). */
  private lookupEpoch = 0;
  /**
   * Instance lists of a study or series (every study / series retrieve and metadata request starts with
   * one): for a 500-instance series the list query with its patient and study columns cost ~10–20 ms, its
   * check (Catalog.instanceListVersion: count and highest row id) well under 1 ms. A list is used again
   * only while its check matches, so an instance stored by any process is seen at once; what changes
   * instances in place is dropped as for instanceLookups (forgetStudies, the change feed, the TTL as a
   * last resort). Bounded by instances held (~0.5 KB each).
   */
  private readonly instanceLists = new LRUCache<string, { version: string; instances: StoredInstance[] }>({
    maxSize: 20_000,
    sizeCalculation: (entry) => Math.max(1, entry.instances.length),
    ttl: 60_000,
  });

  constructor(
    private readonly blobs: BlobStore,
    private readonly catalog: Catalog,
    private readonly log: Logger,
    private readonly options: ArchiveOptions,
  ) {
    this.blobKeys = new BlobKeys(blobs.prefixFolders === true ? 256 : 1);
    options.changes?.subscribe((change) => this.heard(change));
  }

  /**
   * Streams one Part-10 file into blob storage while its header is parsed. Resolves when the source has
   * been consumed (so the caller can read the next multipart part) with a `completion` that finishes the
   * blob and the index row. Rejects only for request-level errors (malformed multipart, body too large);
   * everything else about this one file becomes a failed StoreResult.
   */
  async scanAndStore(source: AsyncIterable<Buffer>, expected?: string | StoreExpectations): Promise<ScannedPart> {
    const expectation: StoreExpectations = typeof expected === 'string' ? { studyInstanceUid: expected } : (expected ?? {});
    const expectedStudyUid = expectation.studyInstanceUid;
    const blobKey = this.blobKeys.next();
    const upload = startUpload(this.blobs, blobKey);
    let header: InstanceHeader;
    try {
      header = await scanPart10(source, upload.write, { maxHeaderBytes: this.options.maxHeaderBytes, maxNesting: this.options.maxNesting });
    } catch (err) {
      await upload.abort(err);
      if (isRequestLevelError(err)) throw err;
      return { completion: Promise.resolve({ ok: false, failure: this.failureOf(err) }) };
    }
    if (expectedStudyUid !== undefined && header.studyInstanceUid !== expectedStudyUid) {
      await upload.abort(new Error('study mismatch'));
      return {
        completion: Promise.resolve({
          ok: false,
          failure: {
            sopClassUid: header.sopClassUid,
            sopInstanceUid: header.sopInstanceUid,
            failureReason: FailureReason.DataSetMismatch,
            message: `Study Instance UID ${header.studyInstanceUid} does not match the study in the request path (${expectedStudyUid})`,
          },
        }),
      };
    }
    const mismatch = sopMismatch(header, expectation);
    if (mismatch !== undefined) {
      await upload.abort(new Error('SOP mismatch'));
      return {
        completion: Promise.resolve({
          ok: false,
          failure: { sopClassUid: header.sopClassUid, sopInstanceUid: header.sopInstanceUid, failureReason: FailureReason.DataSetMismatch, message: mismatch },
        }),
      };
    }
    // The order lookup runs while the blob is finished.
    const accessionNumber = firstString(header.dataset, ACCESSION_NUMBER)?.trim() ?? '';
    const coercion = this.orderIdentity(accessionNumber);
    return { completion: this.finishStore(header, blobKey, upload.finish(), accessionNumber, coercion) };
  }

  /**
   * The identity an instance with this accession number is indexed under (its order's patient), when
   * the hospital link knows the order. A failing lookup stores the instance as it is (images are never
   * refused because the order store is unavailable) and is logged.
   */
  private async orderIdentity(accessionNumber: string): Promise<PatientIdentity | undefined> {
    const reconciliation = this.options.orderReconciliation;
    if (reconciliation === undefined || accessionNumber === '') return undefined;
    try {
      return await reconciliation.identityFor(accessionNumber);
    } catch (err) {
      this.log.warn({ err: errorSummary(err) }, 'the order of a stored instance could not be looked up: indexed as received');
      return undefined;
    }
  }

  /** Decoded pixel bytes one request may hold in memory (transcoding, decoded frames and bulk data): 406 beyond. */
  get decodeMaxBytes(): number {
    return this.options.decodeMaxBytes ?? MAX_TRANSCODE_BYTES;
  }

  /** A study's or series' instances (findInstances), from instanceLists while its check matches; a copy the caller may change. */
  private async findInstanceList(scope: InstanceScope): Promise<StoredInstance[]> {
    const feed = this.options.changes;
    const usable = feed === undefined || feed.live;
    if (!usable) return findInstances(this.catalog, scope);
    const key = `${scope.studyInstanceUid}/${scope.seriesInstanceUid ?? ''}`;
    const epoch = this.lookupEpoch;
    // Checked before the list is read: an instance stored in between leaves the entry one check behind, never ahead.
    const version = await this.catalog.instanceListVersion(scope);
    const cached = this.instanceLists.get(key);
    if (cached !== undefined && cached.version === version) return cached.instances.slice();
    const found = await findInstances(this.catalog, scope);
    if (epoch === this.lookupEpoch) this.instanceLists.set(key, { version, instances: found.slice() });
    return found;
  }

  /** The instances in scope (none: an empty list); rejected ones only with `includeRejected` (curation). */
  listInstances(scope: InstanceScope, options?: ListOptions): Promise<StoredInstance[]> {
    return this.catalog.listInstances(scope, options);
  }

  search(query: QidoQuery): Promise<QidoResult> {
    return this.catalog.search(query);
  }

  /** Instances of a study / series / single instance; none is a NotFoundError naming the level (retrieve.ts). */
  async findInstances(scope: InstanceScope): Promise<StoredInstance[]> {
    if (scope.sopInstanceUid === undefined) return this.findInstanceList(scope);
    if (scope.seriesInstanceUid === undefined) return findInstances(this.catalog, scope);
    const key = `${scope.studyInstanceUid}/${scope.seriesInstanceUid}/${scope.sopInstanceUid}`;
    const feed = this.options.changes;
    if (feed === undefined || feed.live) {
      const cached = this.instanceLookups.get(key);
      if (cached !== undefined) return [cached];
    }
    const epoch = this.lookupEpoch;
    const found = await findInstances(this.catalog, scope);
    if ((feed === undefined || feed.live) && epoch === this.lookupEpoch) this.instanceLookups.set(key, found[0]!);
    return found;
  }

  /**
   * The instance as a Part-10 stream: the stored file byte for byte, or, when its patient's identity
   * was corrected since it was stored (`instance.patient.differs`) or curation moved it to another
   * study or series (`instance.placement`), a copy whose header carries the identity and study of
   * record, its pixel data streamed unchanged from the stored file (identity-on-read.ts).
   */
  async openInstance(instance: StoredInstance): Promise<Readable> {
    const changes = readChangesOf(instance);
    if (changes === undefined) return this.blobs.get(instance.blobKey);
    return (await correctedInstance(this.blobs, instance, changes, this.decodeMaxBytes)).stream;
  }

  /**
   * The instances in order with the stored bytes of the small ones, read ahead within a bounded
   * window (retrieve.ts); large ones, those `skip` names and those read with an identity or study of
   * record applied (openInstance) come without bytes, for the caller to stream.
   */
  readInstancesAhead(
    instances: readonly StoredInstance[],
    skip: (instance: StoredInstance) => boolean,
    framing?: (instance: StoredInstance) => Framing,
    buffers?: PartBuffers,
  ) {
    return instancesWithBytes(this.blobs, instances, (instance) => !readsAsStored(instance) || skip(instance), READ_AHEAD, framing, buffers);
  }

  /**
   * The hospital link corrected a patient (his/, StoredPatients): the index's patient row takes the
   * identity, the stored files stay as they are, and every read applies the row from now on. Returns
   * the Study Instance UIDs changed; what this process cached about them is dropped.
   */
  async applyPatientIdentity(identity: PatientIdentity): Promise<string[]> {
    const studies = await this.catalog.applyPatientIdentity(identity);
    await this.changed({ kind: 'patient-changed', studies });
    return studies;
  }

  /** The hospital link merged `prior` into the surviving patient (Catalog.mergePatients); caches as above. */
  async mergePatients(prior: PatientKey, surviving: PatientIdentity): Promise<string[]> {
    const studies = await this.catalog.mergePatients(prior, surviving);
    await this.changed({ kind: 'patient-changed', studies });
    return studies;
  }

  /**
   * Announces a committed change of stored instances to every process sharing the index (this one
   * first, synchronously): the cached lookups of `studies` are dropped everywhere, and open read
   * handles of `blobKeys` (a blob rewritten in place or removed). For changes made outside the archive's
   * own methods, e.g. storage lifecycle swapping an instance's blob: call it right after the commit.
   */
  async announceChange(change: InstancesChange): Promise<void> {
    await this.changed(change);
  }

  private async changed(change: InstancesChange): Promise<void> {
    if (change.studies.length === 0 && (change.blobKeys ?? []).length === 0) return;
    if (this.options.changes === undefined) this.heard(change);
    else await this.options.changes.publish(change);
  }

  /** A change announced by this process or another: what it concerns is dropped. */
  private heard(change: Change): void {
    const studies = studiesOf(change);
    if (studies === 'all') {
      this.lookupEpoch += 1;
      this.instanceLookups.clear();
      this.instanceLists.clear();
      this.blobs.forgetCached?.();
      return;
    }
    this.forgetStudies(studies);
    if (change.kind !== 'link-revoked' && change.kind !== 'flush') {
      for (const key of change.blobKeys ?? []) this.blobs.forgetCached?.(key);
    }
  }

  /**
   * Drops this process's cached instance lookups of these studies (their patient identity, their
   * instances or where their instances are changed). Other processes hear of changes through
   * `announceChange` (the change feed).
   */
  forgetStudies(studyInstanceUids: readonly string[]): void {
    if (studyInstanceUids.length === 0) return;
    this.lookupEpoch += 1;
    const prefixes = studyInstanceUids.map((uid) => `${uid}/`);
    for (const key of [...this.instanceLookups.keys()]) {
      if (prefixes.some((prefix) => key.startsWith(prefix))) this.instanceLookups.delete(key);
    }
    for (const key of [...this.instanceLists.keys()]) {
      if (prefixes.some((prefix) => key.startsWith(prefix))) this.instanceLists.delete(key);
    }
  }

  /**
   * Bytes of the given 1-based frames in request order, by ranged reads (retrieve.ts); with `take`, each
   * frame in a buffer from it (an answer's reused memory, answer-buffers.ts).
   */
  readFrames(instance: StoredInstance, frameNumbers: readonly number[], take?: (size: number) => Buffer): Promise<Buffer[]> {
    return readFrames(this.blobs, instance, frameNumbers, take);
  }

  /**
   * The instance rewritten as Explicit VR Little Endian (transcode.ts): the stored file is read whole
   * into memory (refused with a 406 over MAX_TRANSCODE_BYTES) and decoded synchronously.
   */
  async transcodeInstance(instance: StoredInstance): Promise<Buffer> {
    const maxBytes = this.decodeMaxBytes;
    return transcodeToExplicitLittleEndian(instance, await readWholeInstance(this.blobs, instance, maxBytes), maxBytes, readChangesOf(instance));
  }

  /**
   * The given 1-based frames as raw little-endian pixels (decode-frames.ts): each frame's fragments are
   * read by range as for readFrames, then decoded (compressed) or byte-swapped (big endian).
   */
  readDecodedFrames(instance: StoredInstance, attributes: PixelAttributes, frameNumbers: readonly number[]): Promise<Buffer[]> {
    return decodeFrames(this.blobs, instance, attributes, frameNumbers, this.decodeMaxBytes);
  }

  /**
   * The given 1-based frames encoded to JPEG Baseline, JPEG-LS or HTJ2K lossless (encode-frames.ts),
   * from any stored syntax the archive decodes; `dataset` is the instance's indexed header JSON.
   */
  encodeFrames(instance: StoredInstance, dataset: DicomJsonDataset, attributes: PixelAttributes, frameNumbers: readonly number[], encoding: FrameEncoding): Promise<Buffer[]> {
    return encodeFrames(this.blobs, instance, dataset, attributes, frameNumbers, encoding, {
      maxBytes: this.decodeMaxBytes,
      renderMaxPixels: this.options.renderMaxPixels ?? DEFAULT_RENDER_MAX_PIXELS,
      log: this.log,
    });
  }

  /**
   * Instances in scope with their indexed header JSON, for WADO-RS metadata: one index query, no blob
   * reads. None is a NotFoundError naming the level, as for findInstances.
   */
  async findInstancesWithAttributes(scope: InstanceScope): Promise<InstanceWithAttributes[]> {
    const found = await this.catalog.listInstancesWithAttributes(scope);
    if (found.length === 0) {
      if (scope.sopInstanceUid !== undefined) throw new NotFoundError('Instance not found');
      if (scope.seriesInstanceUid !== undefined) throw new NotFoundError('Series not found');
      throw new NotFoundError('Study not found');
    }
    return found.map(asRead);
  }

  /** Where the bulk data value of `tag` lies in the stored file (bulkdata.ts: pixel data only). */
  bulkData(instance: StoredInstance, tag: string): BulkDataValue {
    return bulkDataValue(instance, tag);
  }

  /** Bytes `start..end` (inclusive) of a bulk data value, streamed by bounded ranged reads. */
  readBulkData(instance: StoredInstance, value: BulkDataValue, start: number, end: number): AsyncGenerator<Buffer> {
    return readBulkData(this.blobs, instance.blobKey, value.spans, start, end);
  }

  /**
   * Encapsulated pixel data decoded (bulkdata.ts): every frame's raw little-endian pixels, in frame
   * order, one buffer per frame; a 406 when the decoded value exceeds MAX_TRANSCODE_BYTES.
   */
  readDecodedBulkData(instance: StoredInstance, attributes: PixelAttributes): Promise<Buffer[]> {
    return decodedBulkData(this.blobs, instance, attributes, this.decodeMaxBytes);
  }

  /** One frame of an instance as a JPEG/PNG (render.ts): reads the whole stored file, bounded. */
  renderFrame(instance: StoredInstance, options: RenderOptions): Promise<RenderedImage> {
    return renderFrame(this.blobs, instance, options, this.log, this.options.renderMaxPixels ?? DEFAULT_RENDER_MAX_PIXELS);
  }

  /** One frame through the display pipeline as raw RGBA (render.ts), e.g. for a detection model. */
  renderFramePixels(instance: StoredInstance, frame: number): Promise<DisplayPixels> {
    return renderFramePixels(this.blobs, instance, frame, this.log, this.options.renderMaxPixels ?? DEFAULT_RENDER_MAX_PIXELS);
  }

  /**
   * The instance and frame a study / series thumbnail shows (render.ts: middle instance of the first
   * series with pixel data, middle frame). Unknown scope is a NotFoundError; no pixel data anywhere is
   * a 400, as for an instance without pixel data.
   */
  async thumbnailSource(scope: InstanceScope): Promise<{ instance: StoredInstance; frame: number }> {
    const instances = await this.findInstances(scope);
    const instance = representativeInstance(instances);
    if (instance === undefined) {
      if (scope.sopInstanceUid !== undefined) {
        throw new AppError('BAD_REQUEST', 'The instance has no pixel data (e.g. a structured report): it cannot be rendered');
      }
      const level = scope.seriesInstanceUid !== undefined ? 'series' : 'study';
      throw new AppError('BAD_REQUEST', `No instance of this ${level} has pixel data: there is nothing to render`);
    }
    return { instance, frame: representativeFrame(instance) };
  }

  /**
   * An IOCM rejection note (dicom/rejection-note.ts) is applied in the transaction that indexes it:
   * when it was applied, and when what it rejects may be purged.
   */
  private rejectionOf(header: InstanceHeader): RejectionToApply | undefined {
    const note = rejectionNoteOf(header.sopClassUid, header.dataset);
    if (note === undefined) return undefined;
    const now = Date.now();
    const delay = note.code === RETENTION_EXPIRED ? 0 : (this.options.rejectionPurgeDelayMs ?? DEFAULT_REJECTION_PURGE_DELAY_MS);
    return { code: note.code, references: note.references, rejectedAt: new Date(now).toISOString(), purgeAfter: new Date(now + delay).toISOString() };
  }

  private tellRejected(note: StoredItem, rejection: AppliedRejection): void {
    try {
      this.options.rejectionApplied?.({ note, rejection });
    } catch (err) {
      this.log.warn({ err: errorSummary(err) }, 'a listener of rejection notes failed');
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Curation (docs/architecture.md, "Curation"): the index changes in one transaction, then this
  // process's cached lookups of the studies concerned are dropped; blobs go after their rows.

  /** The study's identity of record and its patient's (what a rejection note written into it carries). */
  studyOf(studyInstanceUid: string): Promise<{ study: StudyIdentity; patient: PatientIdentity } | undefined> {
    return this.catalog.studyOf(studyInstanceUid);
  }

  /** Rejected instances (and voided notes), newest first. */
  listRejected(filter: RejectedFilter): Promise<RejectedEntry[]> {
    return this.catalog.listRejected(filter);
  }

  /** Lifts the rejection of these instances; a note left rejecting nothing is voided (hidden, purged later). */
  async restoreRejected(sopInstanceUids: readonly string[]): Promise<RestoreOutcome> {
    const now = Date.now();
    const purgeAfter = new Date(now + (this.options.rejectionPurgeDelayMs ?? DEFAULT_REJECTION_PURGE_DELAY_MS)).toISOString();
    const outcome = await this.catalog.restoreRejected(sopInstanceUids, new Date(now).toISOString(), purgeAfter);
    await this.changed({ kind: 'instances-changed', studies: outcome.studies });
    return outcome;
  }

  /**
   * Removes for good the rejected instances whose purge time has come, at most `limit`: each row in its
   * own transaction (its blob queued there), then the blobs. Returns the rejections purged.
   */
  async purgeDue(limit = 500, now: Date = new Date()): Promise<Array<{ entry: RejectedEntry; removed?: RemovedInstance }>> {
    const due = await this.catalog.duePurges(now.toISOString(), limit);
    const purged: Array<{ entry: RejectedEntry; removed?: RemovedInstance }> = [];
    const studies = new Set<string>();
    for (const entry of due) {
      const outcome = await this.catalog.purgeRejected(entry.sopInstanceUid, now.toISOString());
      if (outcome === undefined) continue;
      this.forgetStudies(outcome.studies);
      for (const study of outcome.studies) studies.add(study);
      purged.push({ entry: outcome.entry, ...(outcome.removed === undefined ? {} : { removed: outcome.removed }) });
    }
    const blobKeys = purged.flatMap((p) => (p.removed === undefined ? [] : [p.removed.blobKey]));
    await this.changed({ kind: 'instances-removed', studies: [...studies], blobKeys });
    await this.deleteBlobs(blobKeys);
    return purged;
  }

  /**
   * DELETE of a study, series or instance: the index rows first (one transaction, rejected instances
   * included), then the blobs; a crash in between leaves them queued (fsck and the startup recovery
   * finish). None in scope is a NotFoundError naming the level.
   */
  async deleteInstances(scope: InstanceScope): Promise<RemovedInstance[]> {
    const outcome = await this.catalog.deleteInstances(scope, new Date().toISOString());
    if (outcome.removed.length === 0) {
      if (scope.sopInstanceUid !== undefined) throw new NotFoundError('Instance not found');
      if (scope.seriesInstanceUid !== undefined) throw new NotFoundError('Series not found');
      throw new NotFoundError('Study not found');
    }
    const blobKeys = outcome.removed.map((r) => r.blobKey);
    await this.changed({ kind: 'instances-removed', studies: outcome.studies, blobKeys });
    await this.deleteBlobs(blobKeys);
    return outcome.removed;
  }

  /** Move, split, merge, another patient (Catalog.moveInstances): index rows only; reads apply the new place. */
  async moveInstances(request: MoveRequest): Promise<MoveOutcome> {
    const outcome = await this.catalog.moveInstances(request, new Date().toISOString());
    await this.changed({ kind: 'instances-changed', studies: outcome.studies });
    return outcome;
  }

  /** Deletes blobs queued for deletion (also those a crash left queued); failures stay queued and are logged. */
  async finishBlobDeletes(): Promise<number> {
    let done = 0;
    for (;;) {
      const keys = await this.catalog.pendingBlobDeletes(500);
      if (keys.length === 0) return done;
      const { deleted, failed } = await this.deleteBlobs(keys);
      done += deleted;
      if (failed > 0) return done;
    }
  }

  private async deleteBlobs(blobKeys: readonly string[]): Promise<{ deleted: number; failed: number }> {
    if (blobKeys.length === 0) return { deleted: 0, failed: 0 };
    const result = await deleteQueuedBlobs(this.blobs, this.catalog, blobKeys);
    if (result.failed > 0) this.log.warn({ failed: result.failed }, 'blobs of removed instances could not be deleted yet: they stay queued (npm run fsck -- --repair, or the next start, finishes them)');
    return result;
  }

  private async finishStore(
    header: InstanceHeader,
    blobKey: string,
    put: Promise<WrittenBlob>,
    accessionNumber: string,
    coercion: Promise<PatientIdentity | undefined>,
  ): Promise<StoreResult> {
    const item: StoredItem = {
      sopClassUid: header.sopClassUid,
      sopInstanceUid: header.sopInstanceUid,
      studyInstanceUid: header.studyInstanceUid,
      seriesInstanceUid: header.seriesInstanceUid,
    };
    // The index rows are built while the blob's fsync runs in the thread pool (~0.2 ms less per instance).
    this.catalog.prepareInstance?.(header);
    let blob: WrittenBlob;
    try {
      blob = await put;
    } catch (err) {
      return { ok: false, failure: { ...itemRef(item), ...this.failureOf(err) } };
    }
    try {
      const identity = await coercion;
      const rejection = this.rejectionOf(header);
      const outcome = await this.catalog.storeInstance({
        header,
        blobKey,
        blobSize: blob.size,
        checksum: blob.checksum,
        ...(identity === undefined ? {} : { identity }),
        ...(rejection === undefined ? {} : { rejection }),
      });
      if (outcome.status === 'stored') {
        // A plain new instance is not announced: no cache holds what it changes (lookups keep found
        // instances only; QIDO and series metadata read the index). Coercion and rejection are.
        if ((outcome.identityChangedStudies ?? []).length > 0) await this.changed({ kind: 'patient-changed', studies: outcome.identityChangedStudies! });
        if ((outcome.rejection?.studies ?? []).length > 0) await this.changed({ kind: 'instances-removed', studies: outcome.rejection!.studies });
        this.linkToOrder(accessionNumber, item);
        this.tellStored(item);
        if (outcome.rejection !== undefined) this.tellRejected(item, outcome.rejection);
        return { ok: true, item };
      }
      await this.deleteQuietly(blobKey);
      if (outcome.status === 'duplicate') return { ok: true, item };
      return {
        ok: false,
        failure: { ...itemRef(item), failureReason: FailureReason.DuplicateSopInstance, message: outcome.reason },
      };
    } catch (err) {
      await this.deleteQuietly(blobKey);
      this.log.error({ err: errorSummary(err) }, 'indexing an instance failed');
      return {
        ok: false,
        failure: { ...itemRef(item), failureReason: FailureReason.OutOfResources, message: 'The index is unavailable' },
      };
    }
  }

  private tellStored(item: StoredItem): void {
    try {
      this.options.instanceStored?.(item);
    } catch (err) {
      this.log.warn({ err: errorSummary(err) }, 'a listener of stored instances failed');
    }
  }

  /** Tells the hospital link an instance with an accession number was indexed (its series joins the order). */
  private linkToOrder(accessionNumber: string, item: StoredItem): void {
    const reconciliation = this.options.orderReconciliation;
    if (reconciliation === undefined || accessionNumber === '') return;
    try {
      reconciliation.stored(accessionNumber, item.studyInstanceUid, item.seriesInstanceUid);
    } catch (err) {
      this.log.warn({ err: errorSummary(err) }, 'a stored series could not be linked to its order');
    }
  }

  private failureOf(err: unknown): FailedItem {
    if (err instanceof InvalidDicomError) {
      return { failureReason: FailureReason.CannotUnderstand, message: err.message };
    }
    if (err instanceof AppError && err.code === 'STORAGE_FAILURE') {
      this.log.error({ err: errorSummary(err) }, 'blob storage failed while storing an instance');
      return { failureReason: FailureReason.OutOfResources, message: 'Blob storage is unavailable' };
    }
    this.log.error({ err: errorSummary(err) }, 'unexpected failure while storing an instance');
    return { failureReason: FailureReason.ProcessingFailure, message: 'The instance could not be processed' };
  }

  private async deleteQuietly(blobKey: string): Promise<void> {
    try {
      await this.blobs.delete(blobKey);
    } catch (err) {
      // An orphan blob is harmless (nothing references it); log and go on.
      this.log.warn({ err: errorSummary(err), blobKey }, 'could not delete an unreferenced blob');
    }
  }
}

/**
 * An entry as it is read: its header with the patient's identity of record and a moved instance's
 * study of record applied (what metadata answers, and what objects derived from it copy), parsed
 * lazily; the indexed JSON text is dropped then, so nobody splices the stored one.
 */
function asRead(entry: InstanceWithAttributes): InstanceWithAttributes {
  const changes = readChangesOf(entry.instance);
  if (changes === undefined) return entry;
  let applied: DicomJsonDataset | undefined;
  return {
    instance: entry.instance,
    ...(entry.bitsAllocated === undefined ? {} : { bitsAllocated: entry.bitsAllocated }),
    get attributes(): DicomJsonDataset {
      applied ??= withChangesJson(entry.attributes, changes);
      return applied;
    },
  };
}

function itemRef(item: StoredItem): Pick<FailedItem, 'sopClassUid' | 'sopInstanceUid'> {
  return { sopClassUid: item.sopClassUid, sopInstanceUid: item.sopInstanceUid };
}

/** Only type, code and message: stack traces of parser errors can quote dataset values. */
function errorSummary(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: unknown }).code, message: err.message };
  return { type: typeof err };
}

const ACCESSION_NUMBER = '00080050';

/**
 * Keys are random UUIDs in shard folders two levels deep (65,536), so no folder holds millions of files
 * (Orthanc's layout). Where prefixes are folders (the folder store), the shard folder is kept for `run`
 * consecutive keys, then drawn at random again: a young archive creates one folder per 256 instances
 * instead of one per instance (each new folder is a mkdir, ~150 µs of the event loop in a profile of
 * C-STORE, and an fsync of its parent before the instance is acknowledged), while over time the folders
 * still fill evenly. On S3 a prefix costs nothing, and a server that keeps objects as files may remove a
 * folder emptied by a delete while another put is about to write into it (the tests' s3rver does; a put
 * then fails): there every key draws its own shard (run 1).
 */
export class BlobKeys {
  private shard = '';
  private left = 0;

  constructor(private readonly run = 256) {}

  next(): string {
    if (this.left === 0) {
      const draw = randomUUID();
      this.shard = `${draw.slice(0, 2)}/${draw.slice(2, 4)}`;
      this.left = this.run;
    }
    this.left -= 1;
    return `${this.shard}/${randomUUID()}.dcm`;
  }
}

/** A blob the store holds durably, with the sha256 of the bytes we sent it (recorded for fsck). */
interface WrittenBlob {
  size: number;
  checksum: string;
}

interface Upload {
  /** Sink for the scanner: writes one chunk, waiting while the store is slower than the network. */
  write(chunk: Buffer): Promise<void>;
  /** Ends the body and resolves with the blob's size and checksum once the store has it durably. */
  finish(): Promise<WrittenBlob>;
  /** Abandons the upload: nothing is left under the key. */
  abort(reason: unknown): Promise<void>;
}

function startUpload(blobs: BlobStore, key: string): Upload {
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  // The key is new and nothing can find the blob before its index row: the store may write in place.
  const put = blobs.put(key, body, { fresh: true });
  // Hashed as the bytes pass, so the checksum costs no second read of a multi-gigabyte file.
  const hash = createHash('sha256');
  let hashed = 0;
  let putError: unknown;
  const putFailed = put.then(
    () => new Promise<never>(() => {}),
    (err: unknown) => {
      putError = err;
      throw err;
    },
  );
  putFailed.catch(() => {});
  return {
    async write(chunk) {
      if (putError !== undefined) throw putError;
      hash.update(chunk);
      hashed += chunk.length;
      if (!body.write(chunk)) await Promise.race([once(body, 'drain'), putFailed]);
    },
    async finish() {
      body.end();
      const { size } = await put;
      // The store must hold exactly what was hashed; anything else would record a wrong checksum.
      if (size !== hashed) {
        await blobs.delete(key).catch(() => {});
        throw new AppError('STORAGE_FAILURE', 'Blob store reported a size other than the bytes written');
      }
      return { size, checksum: hash.digest('hex') };
    },
    async abort(reason) {
      // The store may have stopped listening already; the error must not become an unhandled event.
      body.on('error', () => {});
      body.destroy(reason instanceof Error ? reason : new Error('upload aborted'));
      await put.catch(() => {});
      // A store that finished anyway (tiny body already flushed) must not keep the blob.
      await blobs.delete(key).catch(() => {});
    },
  };
}
