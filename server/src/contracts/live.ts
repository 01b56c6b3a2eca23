/**
 * The live endoscopy WebSocket's messages (`GET /live`, docs/api.md "Live endoscopy"), defined once:
 * the server parses and sends them (live/live-protocol.ts, live/live-session.ts) and the viewer imports
 * them as types (viewer/src/live/live-connection.ts).
 *
 * A leaf: types only, nothing at run time, no Node or DOM types (the viewer's compiler reads it too).
 * Error codes are the server's stable `ErrorCode`s (errors.ts): one vocabulary for HTTP and live.
 */
import type { ErrorCode } from '../errors.js';

/** Names a subset of `ErrorCode`; a code that is not one fails to compile. */
type CodesOf<Codes extends ErrorCode> = Codes;

/** The live protocol's own refusals (a `ProtocolError` on the server). */
export type LiveProtocolErrorCode = CodesOf<
  | 'MALFORMED_MESSAGE'
  | 'FRAME_TOO_LARGE'
  | 'NOT_STARTED'
  | 'ALREADY_STARTED'
  | 'BAD_START'
  | 'ORDER_NOT_STARTABLE'
  | 'FRAME_SIZE_CHANGED'
  | 'UNDECODABLE_FRAME'
  | 'FORBIDDEN'
>;

/**
 * The `code` of an `error` message: a protocol refusal, or the code of the application error that cost
 * the frame (`SERVICE_BUSY` when the model's queue is full, `INTERNAL`, …).
 */
export type LiveErrorCode = ErrorCode;

/** Why a session's recording is missing from its `stopped` message. */
export type LiveRecordingErrorCode = CodesOf<'RECORDING_NOT_STORED'>;

// ---------------------------------------------------------------------------------------------------
// Client → server: JSON text messages.

/** The study of the session when it is in the archive already (its patient and study are copied). */
export interface LiveExistingStudy {
  studyInstanceUid: string;
}

/** New patient/study for a procedure not yet in the archive (PS3.3 C.7.1.1, C.7.2.1). */
export interface LiveNewStudy {
  patientName: string;
  patientId: string;
  /** YYYYMMDD */
  patientBirthDate?: string;
  patientSex?: 'M' | 'F' | 'O';
  accessionNumber?: string;
  studyDescription?: string;
}

/**
 * A worklist item (`GET /his/worklist`, docs/api.md "Orders and worklist"): the session performs the
 * order's scheduled procedure step. The recording and its SR take the order's patient, accession number,
 * Study Instance UID, requested procedure and referring physician; the step is IN PROGRESS from the
 * start and COMPLETED at stop (DISCONTINUED when nothing was stored). An unknown or ended order, or one
 * for another modality than ES, is refused with `ORDER_NOT_STARTABLE`.
 */
export interface LiveOrderStudy {
  /** The archive's id of the order (`id` of a worklist item). */
  orderId: string;
}

/** `start`, as a client sends it. */
export interface LiveStartMessage {
  type: 'start';
  /** A detection model of `GET /ai/models`. */
  model: string;
  /** Record the session as DICOM when it stops (default true). */
  record?: boolean;
  /** Nominal frame rate, used for the recording when capture times are missing or equal (default 25). */
  fps?: number;
  study: LiveExistingStudy | LiveNewStudy | LiveOrderStudy;
}

/** `start` as the server holds it once parsed: the defaults filled in. */
export interface LiveStart extends LiveStartMessage {
  record: boolean;
  fps: number;
}

export interface LiveStopMessage {
  type: 'stop';
}

export type LiveClientMessage = LiveStartMessage | LiveStopMessage;

/** A control message as the server holds it once parsed. */
export type LiveControl = LiveStart | LiveStopMessage;

// Client → server: one binary message per frame: a 4-byte big-endian length N, N bytes of UTF-8 JSON
// (the header below), then the frame bytes.

export type LiveFrameFormat = 'jpeg' | 'rgb' | 'rgba';

export interface LiveFrameHeader {
  /** ≥ 0, echoed back in `detections` and `error`. */
  seq: number;
  /** Client clock (ms) when the frame was captured: echoed back, and used for the recording's frame times. */
  capturedAt: number;
  format: LiveFrameFormat;
  /** Raw formats (`rgb`, `rgba`) only. */
  width?: number;
  height?: number;
}

// ---------------------------------------------------------------------------------------------------
// Server → client: JSON text messages.

export interface LiveModelRef {
  id: string;
  version: string;
}

export interface LiveInstanceRef {
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

export interface LiveStats {
  received: number;
  processed: number;
  /** Frames received but not analysed: replaced by a newer frame, too late for the model, or stale. */
  dropped: number;
  /** Of `dropped`: frames that were already older than the wait budget when read while a newer one was read too (`lateMs`). */
  stale: number;
}

/** The order a session performs, with its step's state. */
export interface LiveOrderRef {
  id: string;
  accessionNumber: string;
  /** The scheduled procedure step's state (`IN PROGRESS` after start; `COMPLETED` or `DISCONTINUED` after stop). */
  status: 'SCHEDULED' | 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED' | 'CANCELLED';
}

export interface LiveStartedMessage {
  type: 'started';
  studyInstanceUid: string;
  /** Present when the session started from an order. */
  order?: LiveOrderRef;
  model: LiveModelRef;
  /** Where the recording will be stored; null when not recording. */
  recording: LiveInstanceRef | null;
  maxFrameBytes: number;
}

/** One box, in the source image's pixels (as from `POST /ai/models/{id}/detect`). */
export interface LiveDetection {
  label: string;
  score: number;
  box: { x: number; y: number; width: number; height: number };
  /** The shown track this box belongs to (`tracks`); absent while its track is not shown. */
  trackId?: number;
}

/**
 * A shown track (server/src/live/tracker.ts): a finding followed across frames. Only tracks are meant to
 * be drawn: a box shows once it persisted (or at once on a high score), is kept through a short miss,
 * and is smoothed.
 */
export interface LiveTrack {
  /** 1, 2, 3, … per session, never reused; the SR's finding "polyp track 2" is track 2. */
  id: number;
  label: string;
  /** Score of its latest matching detection. */
  score: number;
  /** Smoothed box, in source-image pixels. */
  box: { x: number; y: number; width: number; height: number };
  /** First shown on this frame (a cue for a new finding). */
  isNew: boolean;
  /** Analysed frames since its last matching detection (0: seen on this frame). */
  missed: number;
}

export interface LiveTimings {
  preprocessMs: number;
  queueMs: number;
  modelMs: number;
  postprocessMs: number;
  /** Server clock (ms) when the frame arrived. */
  receivedAt: number;
  waitMs: number;
  serverMs: number;
  /**
   * How much later than the stream's quickest frame this one was read by the server (ms): time spent in
   * the sender's queue, the network and the server's socket (a stall). Measured on the client's
   * `capturedAt` clock against the lowest `receivedAt − capturedAt` of the last ~20 s, so clock offsets
   * cancel; `serverMs` starts only when the frame is read.
   */
  lateMs: number;
}

export interface LiveDetectionsMessage {
  type: 'detections';
  seq: number;
  capturedAt: number;
  /** The 1-based frame number in the recording; null when not recording. */
  frame: number | null;
  model: LiveModelRef;
  width: number;
  height: number;
  /** Boxes at or above the model's operating threshold, as the model found them on this frame. */
  detections: LiveDetection[];
  /** The tracks to show on this frame (steady alerts): what a viewer should draw. */
  tracks: LiveTrack[];
  timings: LiveTimings;
  stats: LiveStats;
}

/** A refused message; the connection stays up. `seq` names the frame it is about. */
export interface LiveErrorMessage {
  type: 'error';
  code: LiveErrorCode;
  message: string;
  seq?: number;
}

export interface LiveStoredRecording {
  studyInstanceUid: string;
  video: LiveInstanceRef & { frames: number };
  /** The SR: one finding per shown track (`tracks`), with the frames it was seen on. */
  report: LiveInstanceRef & { tracks: number; framesWithDetections: number; detections: number };
}

export interface LiveStoppedMessage {
  type: 'stopped';
  reason: 'stopped' | 'disconnected';
  stats: LiveStats;
  /** null when nothing was recorded (or storing failed: then `error`). */
  recording: LiveStoredRecording | null;
  error?: { code: LiveRecordingErrorCode; message: string };
  /** Present when the session started from an order: its state now (absent if it could not be read back). */
  order?: LiveOrderRef;
}

export type LiveServerMessage = LiveStartedMessage | LiveDetectionsMessage | LiveErrorMessage | LiveStoppedMessage;
