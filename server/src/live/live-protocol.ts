/**
 * The live endoscopy stream's wire format (docs/api.md "Live endoscopy"), over one WebSocket:
 *
 * - control messages are JSON text: `start` (which study, which model, record or not), `stop`;
 * - each video frame is ONE binary message: a 4-byte big-endian length N, N bytes of UTF-8 JSON
 *   `{"seq":…, "capturedAt":…, "format":"jpeg"|"rgb"|"rgba", "width":…, "height":…}` (width/height for
 *   raw formats only), then the frame bytes. One message per frame keeps header and pixels together
 *   (no state between messages to get out of step) and costs no base64.
 *
 * The messages are typed once in contracts/live.ts (shared with the viewer). Parsing is pure and total:
 * anything malformed becomes a ProtocolError with a message for the client.
 */

import type { LiveControl, LiveFrameHeader, LiveNewStudy, LiveProtocolErrorCode } from '../contracts/live.js';
import { AppError } from '../errors.js';

/** A refused live message: its code is one of the stable codes (errors.ts), answered as an `error` message. */
export class ProtocolError extends AppError {
  declare readonly code: LiveProtocolErrorCode;
  constructor(code: LiveProtocolErrorCode, message: string) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

/** A parsed frame: the header (contracts/live.ts) and its image bytes. */
export interface FrameMessage extends LiveFrameHeader {
  payload: Buffer;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const DATE = /^\d{8}$/;
/** The archive's order ids (UUIDs today): letters, digits, `-`, `_`, `.`, at most 64. */
const ORDER_ID = /^[A-Za-z0-9._-]{1,64}$/;

function object(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function text(o: Record<string, unknown>, key: string, max: number, required: boolean): string | undefined {
  const value = o[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > max || /[\\\u0000-\u001f]/.test(value)) {
    throw new ProtocolError('BAD_START', `"${key}" must be a non-empty text of at most ${max} characters without backslashes or control characters`);
  }
  return value;
}

export function parseControl(raw: string): LiveControl {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ProtocolError('MALFORMED_MESSAGE', 'A text message must be JSON: {"type":"start",…} or {"type":"stop"}');
  }
  const o = object(json);
  if (o?.['type'] === 'stop') return { type: 'stop' };
  if (o?.['type'] !== 'start') throw new ProtocolError('MALFORMED_MESSAGE', 'Unknown message type: expected "start" or "stop"');
  const model = o['model'];
  if (typeof model !== 'string' || model === '') throw new ProtocolError('BAD_START', '"model" must name a model from GET /ai/models');
  const fps = o['fps'] ?? 25;
  if (typeof fps !== 'number' || !(fps > 0 && fps <= 240)) throw new ProtocolError('BAD_START', '"fps" must be a number between 0 and 240');
  const record = o['record'] ?? true;
  if (typeof record !== 'boolean') throw new ProtocolError('BAD_START', '"record" must be true or false');
  const study = object(o['study']);
  if (study === undefined) throw new ProtocolError('BAD_START', '"study" must be {"studyInstanceUid":…}, a worklist item {"orderId":…} or the new patient and study ({"patientName","patientId",…})');
  if (study['orderId'] !== undefined) {
    const orderId = study['orderId'];
    if (typeof orderId !== 'string' || !ORDER_ID.test(orderId)) throw new ProtocolError('BAD_START', '"orderId" must be the id of a worklist item (GET /his/worklist)');
    if (Object.keys(study).length > 1) throw new ProtocolError('BAD_START', 'A session started from a worklist item takes its patient and study from the order: "study" must be {"orderId":…} alone');
    return { type: 'start', model, record, fps, study: { orderId } };
  }
  if (study['studyInstanceUid'] !== undefined) {
    const uid = study['studyInstanceUid'];
    if (typeof uid !== 'string' || uid.length > 64 || !UID.test(uid)) throw new ProtocolError('BAD_START', '"studyInstanceUid" is not a valid UID');
    return { type: 'start', model, record, fps, study: { studyInstanceUid: uid } };
  }
  const birthDate = text(study, 'patientBirthDate', 8, false);
  if (birthDate !== undefined && !DATE.test(birthDate)) throw new ProtocolError('BAD_START', '"patientBirthDate" must be YYYYMMDD');
  const sex = study['patientSex'];
  if (sex !== undefined && sex !== 'M' && sex !== 'F' && sex !== 'O') throw new ProtocolError('BAD_START', '"patientSex" must be M, F or O');
  const newStudy: LiveNewStudy = {
    patientName: text(study, 'patientName', 64, true)!,
    patientId: text(study, 'patientId', 64, true)!,
    ...(birthDate === undefined ? {} : { patientBirthDate: birthDate }),
    ...(sex === undefined ? {} : { patientSex: sex }),
  };
  const accession = text(study, 'accessionNumber', 16, false);
  const description = text(study, 'studyDescription', 64, false);
  if (accession !== undefined) newStudy.accessionNumber = accession;
  if (description !== undefined) newStudy.studyDescription = description;
  return { type: 'start', model, record, fps, study: newStudy };
}

const MAX_HEADER_BYTES = 4096;
const MAX_SIDE = 8192;

export function parseFrame(data: Buffer, maxFrameBytes: number): FrameMessage {
  if (data.length < 4) throw new ProtocolError('MALFORMED_MESSAGE', 'A binary message must start with a 4-byte header length');
  const headerLength = data.readUInt32BE(0);
  if (headerLength === 0 || headerLength > MAX_HEADER_BYTES || 4 + headerLength > data.length) {
    throw new ProtocolError('MALFORMED_MESSAGE', `The frame header length (${headerLength}) is not between 1 and ${MAX_HEADER_BYTES} or runs past the message`);
  }
  const payload = data.subarray(4 + headerLength);
  if (payload.length > maxFrameBytes) throw new ProtocolError('FRAME_TOO_LARGE', `The frame is ${payload.length} bytes; at most ${maxFrameBytes} are accepted`);
  if (payload.length === 0) throw new ProtocolError('MALFORMED_MESSAGE', 'The frame has no image bytes after its header');
  let header: Record<string, unknown> | undefined;
  try {
    header = object(JSON.parse(data.subarray(4, 4 + headerLength).toString('utf8')));
  } catch {
    header = undefined;
  }
  if (header === undefined) throw new ProtocolError('MALFORMED_MESSAGE', 'The frame header is not a JSON object');
  const { seq, capturedAt, format, width, height } = header;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new ProtocolError('MALFORMED_MESSAGE', '"seq" must be a whole number ≥ 0');
  if (typeof capturedAt !== 'number' || !Number.isFinite(capturedAt)) throw new ProtocolError('MALFORMED_MESSAGE', '"capturedAt" must be a number (ms)');
  if (format !== 'jpeg' && format !== 'rgb' && format !== 'rgba') throw new ProtocolError('MALFORMED_MESSAGE', '"format" must be "jpeg", "rgb" or "rgba"');
  if (format === 'jpeg') return { seq, capturedAt, format, payload };
  const valid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= MAX_SIDE;
  if (!valid(width) || !valid(height)) throw new ProtocolError('MALFORMED_MESSAGE', `Raw frames need "width" and "height" (1…${MAX_SIDE})`);
  const expected = width * height * (format === 'rgb' ? 3 : 4);
  if (payload.length !== expected) throw new ProtocolError('MALFORMED_MESSAGE', `A ${width}×${height} ${format} frame is ${expected} bytes, got ${payload.length}`);
  return { seq, capturedAt, format, width, height, payload };
}

/** Builds a frame message (clients and tests). */
export function encodeFrame(header: LiveFrameHeader, payload: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(json.length, 0);
  return Buffer.concat([prefix, json, payload]);
}
