/**
 * One endoscopy room's stream on one WebSocket: frames in, detections out, recording kept.
 *
 * - Intake (sequential, cheap): parse, check size, append to the recording (every received frame is
 *   recorded, in order), then offer the frame to the latest-frame slot, unless it is stale: read more than
 *   `maxWaitMs` late, judged from its capture time (arrival-clock.ts), while a newer frame was read too.
 * - Analysis: the slot runs at most one frame at a time through the shared inference engine (whose FIFO
 *   queue, with one frame per stream, serves several rooms in turn: fair by construction) and keeps at
 *   most one waiting, newest wins. Each analysed frame goes through the stream's tracker (tracker.ts)
 *   and is answered with its detections, the tracks to show, and timings.
 * - Stop or disconnect: the slot is drained, then the recording (Video Endoscopic Image) and one TID 1500
 *   SR with one finding per shown track (its box on each frame it was seen on) are stored through the archive.
 *
 * A session may start from a worklist item (`{"orderId"}`): the recording and its SR take the order's
 * patient, accession number, study and request (order-attributes.ts), and the order's step is moved
 * through the hospital link's port (live-orders.ts): IN PROGRESS at start, COMPLETED with the stored
 * series at the end, DISCONTINUED when nothing was stored.
 *
 * Memory per session is bounded: two frames in the slot, a few in intake (the socket is paused beyond
 * that, so a fast sender is held back by TCP), frame offsets of the recording (24 bytes per frame), at
 * most 32 live tracks, and one box per frame a shown track was seen on (for its SR finding).
 */
import sharp from 'sharp';
import dcmjs from 'dcmjs';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import { dicomDate, dicomTime } from '../dicom/dicom-datetime.js';
import { patientStudyAttributes } from '../dicom/patient-study-attributes.js';
import { isAppError } from '../errors.js';
import { aiSeriesUid, buildDetectionReport } from '../inference/detection-report.js';
import type { InferenceEngine } from '../inference/inference-engine.js';
import type { RawImage } from '../inference/letterbox.js';
import { DeadlineExpiredError } from '../inference/model-queue.js';
import { LatestFrameSlot } from './latest-frame-slot.js';
import { ArrivalClock } from './arrival-clock.js';
import { DEFAULT_TRACKING, DetectionTracker, trackThresholds, type TrackingConfig, type TrackRecord, type TrackThresholds } from './tracker.js';
import { parseControl, parseFrame, ProtocolError, type FrameMessage } from './live-protocol.js';
import type { LiveNewStudy, LiveOrderRef, LiveServerMessage, LiveStart, LiveStats, LiveStoppedMessage, LiveStoredRecording } from '../contracts/live.js';
import type { LiveOrderActor, LiveOrderEnd, LiveOrders, LiveOrderStart } from './live-orders.js';
import { orderAttributes } from './order-attributes.js';
import { Recording, VIDEO_ENDOSCOPIC } from './recording.js';
import { ANONYMOUS, type Principal } from '../auth/principal.js';
import type { LiveAuditEvent } from '../http/route-access.js';

const { DicomMetaDictionary } = dcmjs.data;

export interface LiveDeps {
  engine: InferenceEngine;
  archive: Archive;
  log: Logger;
  tmpDir: string;
  maxFrameBytes: number;
  /**
   * Latency bound: a frame older than this (counted from when it would have been read without a stall:
   * `lateMs`, arrival-clock.ts) is dropped when a newer frame of its stream is already read.
   */
  maxWaitMs: number;
  /** Steady live alerts (tracker.ts); default DEFAULT_TRACKING. */
  tracking?: TrackingConfig;
  /** The hospital link's worklist (sessions from an order); absent: `{"orderId"}` starts are refused. */
  orders?: LiveOrders;
}

/** What the session needs from the socket (a `ws` WebSocket satisfies it). */
export interface LiveSocket {
  send(text: string): void;
  pause(): void;
  resume(): void;
  readonly readyState: number;
}

interface PendingFrame {
  seq: number;
  capturedAt: number;
  receivedAt: number;
  /** performance.now() at receipt: a frame not at the model within maxWaitMs is dropped if a newer one waits. */
  receivedAtPerf: number;
  /** How much later than the stream's quickest frame it was read (arrival-clock.ts). */
  lateMs: number;
  frameNumber: number | undefined;
  image: Buffer | RawImage;
}

interface Active {
  start: LiveStart;
  model: { id: string; version: string; sha256: string; operatingThreshold: number };
  studyInstanceUid: string;
  studyAttributes: Record<string, unknown>;
  /** The SR's patient, study and document attributes (the study's plus, from an order, the request). */
  reportAttributes: Record<string, unknown>;
  recording: Recording | undefined;
  /** The order the session performs. */
  order: SessionOrder | undefined;
  slot: LatestFrameSlot<PendingFrame>;
  /** Steady alerts: this stream's tracks, and the records of the shown ones that ended (the SR's findings). */
  tracker: DetectionTracker;
  thresholds: TrackThresholds;
  trackRecords: TrackRecord[];
  /** Recorded frames with boxes, and boxes (at or above the operating threshold) sent. */
  framesWithDetections: number;
  detectionCount: number;
  /** Frames dropped at intake because they were read too late while a newer one was read too. */
  stale: number;
  dimensions: { width: number; height: number } | undefined;
  /** Frames that reached the model's queue but were not analysed (deadline passed, model busy). */
  notAnalysed: number;
}

interface SessionOrder {
  id: string;
  accessionNumber: string;
  /** Whether this session's start moved the step to IN PROGRESS. */
  startedBySession: boolean;
}

/** What a session's study resolves to: the instances' attributes, and the order when started from one. */
interface ResolvedStudy {
  studyInstanceUid: string;
  /** Patient and study attributes of both instances. */
  studyAttributes: Record<string, unknown>;
  /** Added to the recording only (its General Series request attributes). */
  recordingAttributes: Record<string, unknown>;
  /** Added to the SR only (its Referenced Request Sequence). */
  reportAttributes: Record<string, unknown>;
  order?: SessionOrder & { ref: LiveOrderRef };
}

function refusalOf(result: Exclude<LiveOrderStart, { ok: true }>): string {
  switch (result.reason) {
    case 'unknown':
      return 'Unknown order: no worklist item has this id';
    case 'ended':
      return `The order has ended (${result.status}): it cannot be performed again`;
    case 'modality':
      return `The order is for modality ${result.modality.slice(0, 16)}; the live room performs endoscopy (ES) steps`;
  }
}

/** The counts a client sees: `extra` frames analysed but not yet counted by the slot. */
function statsOf(active: Active, extra: number): LiveStats {
  const slot = active.slot.stats();
  return {
    received: slot.received + active.stale,
    processed: slot.processed + extra - active.notAnalysed,
    dropped: slot.dropped + active.notAnalysed + active.stale,
    stale: active.stale,
  };
}

const OPEN = 1;
/** Frames parsed but not yet recorded/offered before the socket is paused. */
const MAX_INTAKE = 4;

export class LiveSession {
  private active: Active | undefined;
  private intake: Promise<void> = Promise.resolve();
  private intakeDepth = 0;
  private paused = false;
  private finishing: Promise<void> = Promise.resolve();
  /**
   * Frames sent before the client saw its own stop arrive after it (they were in flight, or being
   * encoded): they are dropped quietly. Answering them with an error made the client take that error
   * as the answer to its stop.
   */
  private stoppedOnce = false;
  /** Judges each frame's lateness from its capture time, not from when it was read. */
  private readonly arrivals = new ArrivalClock();

  constructor(
    private readonly deps: LiveDeps,
    private readonly socket: LiveSocket,
    /** Who opened the socket (checked at the upgrade for the `ai` permission). */
    private readonly principal: Principal = ANONYMOUS,
    /** Audit trail: one event when a session starts (or its start is refused), one when it ends. */
    private readonly audit?: (event: LiveAuditEvent) => void,
    /** The client's address (audit records of the order changes). */
    private readonly clientAddress = '',
  ) {}

  private get actor(): LiveOrderActor {
    return { principal: this.principal, clientAddress: this.clientAddress };
  }

  /** One WebSocket message. Never throws: problems are answered as `error` messages. */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.intake = this.intake.then(() => this.onControl(data.toString('utf8')));
      return;
    }
    let frame: FrameMessage;
    try {
      if (this.active === undefined) {
        if (this.stoppedOnce) return;
        throw new ProtocolError('NOT_STARTED', 'Send {"type":"start",…} before frames');
      }
      frame = parseFrame(data, this.deps.maxFrameBytes);
    } catch (err) {
      this.sendError(err, undefined);
      return;
    }
    const receivedAt = Date.now();
    const receivedAtPerf = performance.now();
    const lateMs = this.arrivals.lateMs(receivedAt, frame.capturedAt);
    this.intakeDepth += 1;
    if (this.intakeDepth >= MAX_INTAKE && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.intake = this.intake.then(async () => {
      try {
        await this.onFrame(frame, receivedAt, receivedAtPerf, lateMs);
      } catch (err) {
        this.sendError(err, frame.seq);
      } finally {
        this.intakeDepth -= 1;
        if (this.paused && this.intakeDepth < MAX_INTAKE / 2) {
          this.paused = false;
          this.socket.resume();
        }
      }
    });
  }

  /** The connection closed: keep what was received. */
  async onClose(): Promise<void> {
    await this.intake;
    await this.stop('disconnected');
  }

  private async onControl(raw: string): Promise<void> {
    try {
      const message = parseControl(raw);
      if (message.type === 'stop') {
        if (this.active === undefined) throw new ProtocolError('NOT_STARTED', 'No session to stop');
        await this.stop('stopped');
        return;
      }
      if (this.active !== undefined) throw new ProtocolError('ALREADY_STARTED', 'A session is already running on this connection; send {"type":"stop"} first');
      await this.begin(message).catch((err: unknown) => {
        const study = 'studyInstanceUid' in message.study ? [{ study: message.study.studyInstanceUid }] : [];
        const code = isAppError(err) ? err.code : 'INTERNAL';
        const order: Record<string, string> = 'orderId' in message.study ? { orderId: message.study.orderId } : {};
        this.audit?.({ phase: 'start', outcome: 4, status: code === 'FORBIDDEN' ? 403 : code === 'ORDER_NOT_STARTABLE' ? 409 : 400, objects: study, detail: { code, ...order } });
        throw err;
      });
    } catch (err) {
      this.sendError(err, undefined);
    }
  }

  private async begin(start: LiveStart): Promise<void> {
    // A recording is stored in the archive: that is the `store` permission on top of `ai`.
    if (start.record && !this.principal.permissions.has('store')) {
      throw new ProtocolError('FORBIDDEN', 'Recording needs the "store" permission, which your roles do not grant; start with "record": false');
    }
    let spec;
    try {
      spec = this.deps.engine.spec(start.model);
    } catch (err) {
      throw new ProtocolError('BAD_START', isAppError(err) ? err.message : 'Unknown model');
    }
    // Live boxes need a detector; a tile classifier (slide analysis) would fail on every frame.
    if (spec.task !== 'detection') throw new ProtocolError('BAD_START', `Model "${spec.id}" is a ${spec.task} model; live sessions need a detection model (GET /ai/models)`);
    const resolved = await this.resolveStudy(start.study);
    const { studyInstanceUid, studyAttributes } = resolved;
    let recording: Recording | undefined;
    try {
      recording = start.record
        ? await Recording.open(
            this.deps.tmpDir,
            { studyInstanceUid, seriesInstanceUid: DicomMetaDictionary.uid(), sopInstanceUid: DicomMetaDictionary.uid() },
            { ...studyAttributes, ...resolved.recordingAttributes },
            start.fps,
          )
        : undefined;
    } catch (err) {
      // The session never ran: the order's step goes back to where it was.
      if (resolved.order !== undefined) await this.endOrder(resolved.order, { kind: 'not-started' });
      throw err;
    }
    const tracking = this.deps.tracking ?? DEFAULT_TRACKING;
    const thresholds = trackThresholds(spec.operatingThreshold, tracking);
    const active: Active = {
      start,
      model: { id: spec.id, version: spec.version, sha256: spec.sha256, operatingThreshold: spec.operatingThreshold },
      studyInstanceUid,
      studyAttributes,
      reportAttributes: { ...studyAttributes, ...resolved.reportAttributes },
      recording,
      order: resolved.order === undefined ? undefined : { id: resolved.order.id, accessionNumber: resolved.order.accessionNumber, startedBySession: resolved.order.startedBySession },
      slot: new LatestFrameSlot<PendingFrame>((frame) => this.analyse(active, frame)),
      tracker: new DetectionTracker(tracking, thresholds),
      thresholds,
      trackRecords: [],
      framesWithDetections: 0,
      detectionCount: 0,
      stale: 0,
      dimensions: undefined,
      notAnalysed: 0,
    };
    this.active = active;
    this.deps.log.info({ model: spec.id, record: start.record, fromOrder: resolved.order !== undefined }, 'live session started');
    this.audit?.({
      phase: 'start',
      outcome: 0,
      status: 101,
      objects: [{ study: studyInstanceUid }],
      detail: { model: spec.id, record: start.record, ...(resolved.order === undefined ? {} : { orderId: resolved.order.id }) },
    });
    this.send({
      type: 'started',
      studyInstanceUid,
      ...(resolved.order === undefined ? {} : { order: resolved.order.ref }),
      model: { id: spec.id, version: spec.version },
      recording: recording === undefined ? null : { seriesInstanceUid: recording.identity.seriesInstanceUid, sopInstanceUid: recording.identity.sopInstanceUid },
      maxFrameBytes: this.deps.maxFrameBytes,
    });
  }

  private async resolveStudy(study: LiveStart['study']): Promise<ResolvedStudy> {
    if ('orderId' in study) return this.resolveOrder(study.orderId);
    if ('studyInstanceUid' in study) {
      const stored = await this.storedStudy(study.studyInstanceUid);
      if (stored === undefined) throw new ProtocolError('BAD_START', 'Unknown study: no instance of this StudyInstanceUID is stored');
      return { studyInstanceUid: study.studyInstanceUid, studyAttributes: stored, recordingAttributes: {}, reportAttributes: {} };
    }
    const now = new Date();
    const date = dicomDate(now);
    const time = dicomTime(now);
    const s: LiveNewStudy = study;
    const studyInstanceUid = DicomMetaDictionary.uid();
    return {
      studyInstanceUid,
      studyAttributes: {
        PatientName: s.patientName,
        PatientID: s.patientId,
        PatientBirthDate: s.patientBirthDate ?? '',
        PatientSex: s.patientSex ?? '',
        StudyInstanceUID: studyInstanceUid,
        StudyDate: date,
        StudyTime: time,
        ReferringPhysicianName: '',
        StudyID: '',
        AccessionNumber: s.accessionNumber ?? '',
        ...(s.studyDescription === undefined ? {} : { StudyDescription: s.studyDescription }),
      },
      recordingAttributes: {},
      reportAttributes: {},
    };
  }

  /** The patient/study attributes of a stored instance of the study; undefined when none is stored. */
  private async storedStudy(studyInstanceUid: string): Promise<Record<string, unknown> | undefined> {
    try {
      const found = await this.deps.archive.findInstancesWithAttributes({ studyInstanceUid });
      return patientStudyAttributes(found[0]!.attributes);
    } catch (err) {
      if (isAppError(err) && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** A worklist item: its step moved to IN PROGRESS, its patient, study and request copied. */
  private async resolveOrder(orderId: string): Promise<ResolvedStudy> {
    const orders = this.deps.orders;
    if (orders === undefined) throw new ProtocolError('ORDER_NOT_STARTABLE', 'This server has no worklist (hospital link): start with the patient or an existing study');
    const result = await orders.start(orderId, this.actor);
    if (!result.ok) throw new ProtocolError('ORDER_NOT_STARTABLE', refusalOf(result));
    const { order } = result;
    const session = { id: order.id, accessionNumber: order.accessionNumber, startedBySession: result.started, ref: { id: order.id, accessionNumber: order.accessionNumber, status: order.status } };
    try {
      const attributes = orderAttributes(order, new Date(), await this.storedStudy(order.studyInstanceUid));
      return { studyInstanceUid: order.studyInstanceUid, studyAttributes: attributes.study, recordingAttributes: attributes.recordingSeries, reportAttributes: attributes.reportDocument, order: session };
    } catch (err) {
      await this.endOrder(session, { kind: 'not-started' });
      throw err;
    }
  }

  /** Ends the order's step (never throws: a failure is logged, the session's answer goes out regardless). */
  private async endOrder(order: SessionOrder, end: LiveOrderEnd): Promise<LiveOrderRef | undefined> {
    try {
      return await this.deps.orders?.end(order.id, end, order.startedBySession, this.actor);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.deps.log.error({ code: typeof code === 'string' ? code : undefined, type: (err as Error)?.name, end: end.kind }, 'the order of a live session could not be updated');
      return undefined;
    }
  }

  private async onFrame(frame: FrameMessage, receivedAt: number, receivedAtPerf: number, lateMs: number): Promise<void> {
    const active = this.active;
    if (active === undefined) {
      // Queued behind the stop (see stoppedOnce).
      if (this.stoppedOnce) return;
      throw new ProtocolError('NOT_STARTED', 'Send {"type":"start",…} before frames');
    }
    let width: number;
    let height: number;
    let image: Buffer | RawImage;
    let jpeg: Buffer | undefined;
    if (frame.format === 'jpeg') {
      const meta = await sharp(frame.payload).metadata().catch(() => undefined);
      if (meta?.format !== 'jpeg' || meta.width === undefined || meta.height === undefined) throw new ProtocolError('UNDECODABLE_FRAME', 'The frame is not a decodable JPEG image');
      width = meta.width;
      height = meta.height;
      image = frame.payload;
      jpeg = frame.payload;
    } else {
      width = frame.width!;
      height = frame.height!;
      image = { pixels: frame.payload, width, height, channels: frame.format === 'rgb' ? 3 : 4 };
    }
    if (active.dimensions === undefined) active.dimensions = { width, height };
    else if (active.dimensions.width !== width || active.dimensions.height !== height) {
      throw new ProtocolError('FRAME_SIZE_CHANGED', `Frames of a session keep one size: ${active.dimensions.width}×${active.dimensions.height} expected, got ${width}×${height}`);
    }
    let frameNumber: number | undefined;
    if (active.recording !== undefined) {
      if (jpeg === undefined) {
        const raw = image as RawImage;
        jpeg = await sharp(raw.pixels, { raw: { width, height, channels: raw.channels } }).removeAlpha().jpeg({ quality: 90 }).toBuffer();
      }
      frameNumber = await active.recording.add(jpeg, width, height, frame.capturedAt);
    }
    // Stale: read past the wait budget (judged from its capture time: a frame that sat unread in the
    // socket during a stall is old however fresh it looks) while a newer frame has been read too. It is
    // recorded, not analysed; counted in `stats.dropped` and `stats.stale`.
    if (lateMs + (performance.now() - receivedAtPerf) > this.deps.maxWaitMs && this.intakeDepth > 1) {
      active.stale += 1;
      return;
    }
    active.slot.offer({ seq: frame.seq, capturedAt: frame.capturedAt, receivedAt, receivedAtPerf, lateMs, frameNumber, image });
  }

  private async analyse(active: Active, frame: PendingFrame): Promise<void> {
    const startedAt = Date.now();
    try {
      // Stale: past the wait budget (from its capture-judged arrival) while a newer frame of this stream
      // is already read (waiting in the slot, or still in intake).
      const isStale = () => frame.lateMs + performance.now() - frame.receivedAtPerf > this.deps.maxWaitMs && (active.slot.hasWaiting() || this.intakeDepth > 0);
      // Boxes down to the tracks' keep threshold (hysteresis); `detections` shows those at the operating threshold.
      const result = await this.deps.engine.detect(active.model.id, frame.image, active.thresholds.keep, isStale);
      const update = active.tracker.update(result.detections, frame.frameNumber);
      active.trackRecords.push(...update.ended);
      const detections = result.detections.flatMap((d, i) => {
        if (d.score < active.thresholds.show) return [];
        const trackId = update.trackIds[i];
        return [trackId === undefined ? d : { ...d, trackId }];
      });
      if (frame.frameNumber !== undefined && detections.length > 0) active.framesWithDetections += 1;
      active.detectionCount += detections.length;
      this.send({
        type: 'detections',
        seq: frame.seq,
        capturedAt: frame.capturedAt,
        frame: frame.frameNumber ?? null,
        model: result.model,
        width: result.width,
        height: result.height,
        detections,
        tracks: update.shown,
        timings: { ...result.timings, receivedAt: frame.receivedAt, waitMs: startedAt - frame.receivedAt, serverMs: Date.now() - frame.receivedAt, lateMs: Math.round(frame.lateMs) },
        // The slot counts this frame as processed only once this function returns: +1.
        stats: statsOf(active, 1),
      });
    } catch (err) {
      // Too late for the model (other rooms went first): dropped, like a replaced frame.
      if (err instanceof DeadlineExpiredError) {
        active.notAnalysed += 1;
        return;
      }
      // A busy model (503 over HTTP) or an undecodable frame costs this frame only.
      if (isAppError(err) && err.code === 'SERVICE_BUSY') active.notAnalysed += 1;
      this.sendError(err, frame.seq);
    }
  }

  private stop(reason: 'stopped' | 'disconnected'): Promise<void> {
    const active = this.active;
    if (active === undefined) return this.finishing;
    this.active = undefined;
    this.stoppedOnce = true;
    this.finishing = this.finishing.then(() => this.finish(active, reason));
    return this.finishing;
  }

  private async finish(active: Active, reason: 'stopped' | 'disconnected'): Promise<void> {
    await active.slot.close();
    active.trackRecords.push(...active.tracker.finish());
    const summary: LiveStoppedMessage = {
      type: 'stopped',
      reason,
      stats: statsOf(active, 0),
      recording: null,
    };
    const recording = active.recording;
    try {
      if (recording !== undefined && recording.frameCount > 0) summary.recording = await this.store(active, recording);
    } catch (err) {
      this.deps.log.error({ err: { message: (err as Error).message } }, 'storing a live recording failed');
      summary.error = { code: 'RECORDING_NOT_STORED', message: `The recording could not be stored: ${(err as Error).message}` };
    } finally {
      await recording?.discard();
    }
    if (active.order !== undefined) {
      const stored = summary.recording;
      const ref = await this.endOrder(
        active.order,
        stored === null
          ? { kind: 'discontinued' }
          : { kind: 'completed', studyInstanceUid: stored.studyInstanceUid, seriesInstanceUids: [stored.video.seriesInstanceUid, stored.report.seriesInstanceUid] },
      );
      if (ref !== undefined) summary.order = ref;
    }
    this.deps.log.info({ reason, frames: recording?.frameCount ?? 0, ...summary.stats }, 'live session ended');
    const stored = summary.recording;
    this.audit?.({
      phase: 'end',
      outcome: summary.error === undefined ? 0 : 8,
      status: summary.error === undefined ? 200 : 500,
      objects: stored === null
        ? [{ study: active.studyInstanceUid }]
        : [
            { study: active.studyInstanceUid, series: stored.video.seriesInstanceUid, instance: stored.video.sopInstanceUid, sopClass: VIDEO_ENDOSCOPIC },
            { study: active.studyInstanceUid, series: stored.report.seriesInstanceUid, instance: stored.report.sopInstanceUid },
          ],
      detail: { reason, model: active.model.id, frames: recording?.frameCount ?? 0 },
    });
    this.send(summary);
  }

  private async store(active: Active, recording: Recording): Promise<LiveStoredRecording> {
    const video = await (await this.deps.archive.scanAndStore(recording.part10())).completion;
    if (!video.ok) throw new Error(video.failure.message);
    const identity = recording.identity;
    const { part10, uids } = buildDetectionReport({
      model: active.model,
      source: { studyInstanceUid: identity.studyInstanceUid, seriesInstanceUid: identity.seriesInstanceUid, sopInstanceUid: identity.sopInstanceUid, sopClassUid: VIDEO_ENDOSCOPIC },
      multiFrame: true,
      frames: [],
      tracks: active.trackRecords.filter((t) => t.regions.length > 0).map((t) => ({ ...t, firstTimeOffsetMs: recording.timeOffsetMs(t.regions[0]!.frame) })),
      patientStudy: active.reportAttributes,
      minScore: active.model.operatingThreshold,
      uids: { seriesInstanceUid: aiSeriesUid(identity.studyInstanceUid, active.model.id), sopInstanceUid: DicomMetaDictionary.uid() },
      seriesDescription: `AI ${active.model.id}`,
    });
    const report = await (await this.deps.archive.scanAndStore((async function* () { yield part10; })())).completion;
    if (!report.ok) throw new Error(report.failure.message);
    return {
      studyInstanceUid: identity.studyInstanceUid,
      video: { seriesInstanceUid: identity.seriesInstanceUid, sopInstanceUid: identity.sopInstanceUid, frames: recording.frameCount },
      report: { seriesInstanceUid: uids.seriesInstanceUid, sopInstanceUid: uids.sopInstanceUid, tracks: active.trackRecords.filter((t) => t.regions.length > 0).length, framesWithDetections: active.framesWithDetections, detections: active.detectionCount },
    };
  }

  private send(message: LiveServerMessage): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  private sendError(err: unknown, seq: number | undefined): void {
    // A ProtocolError is an AppError: both carry a stable code and a message meant for the client.
    if (!isAppError(err)) this.deps.log.error({ err: { message: (err as Error)?.message } }, 'live frame failed');
    const code = isAppError(err) ? err.code : 'INTERNAL';
    const message = isAppError(err) ? err.message : 'The frame could not be processed';
    this.send({ type: 'error', code, message, ...(seq === undefined ? {} : { seq }) });
  }
}
