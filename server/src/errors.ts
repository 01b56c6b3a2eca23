/**
 * Typed application errors with stable codes. Callers branch on `code`, never on message text
 * (the undici pattern). The HTTP status of each code is decided once, in `httpStatusOf`.
 * Messages must never contain patient names or IDs: they reach logs and clients.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'BAD_QUERY'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'TOO_MANY_REQUESTS'
  | 'NOT_FOUND'
  | 'NOT_ACCEPTABLE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'MALFORMED_MULTIPART'
  | 'INVALID_DICOM'
  | 'CONFLICT'
  | 'STORAGE_FAILURE'
  | 'INDEX_FAILURE'
  | 'SERVICE_BUSY'
  | 'AUTH_UNAVAILABLE'
  | 'AUDIT_UNAVAILABLE'
  | 'CONFIG_INVALID'
  | 'INTERNAL'
  // The hospital link (his/his-service.ts): a command of the HIS (HL7 or the orders REST API) refused whole.
  | 'HIS_INVALID'
  | 'HIS_UNKNOWN_PATIENT'
  | 'HIS_UNKNOWN_ORDER'
  | 'HIS_CONFLICT'
  // The live endoscopy WebSocket's refusals (contracts/live.ts): sent in its `error` and `stopped`
  // messages, never as an HTTP response; the statuses below are what one would be (and keep the map total).
  | 'MALFORMED_MESSAGE'
  | 'FRAME_TOO_LARGE'
  | 'NOT_STARTED'
  | 'ALREADY_STARTED'
  | 'BAD_START'
  | 'FRAME_SIZE_CHANGED'
  | 'UNDECODABLE_FRAME'
  | 'RECORDING_NOT_STORED'
  // A live session asked to start from a worklist item (order) that is unknown, has ended or is not an endoscopy step.
  | 'ORDER_NOT_STARTABLE'
  // Share links (sharing/): a link past its expiry or revoked; a link that needs its PIN; a wrong PIN; too many wrong PINs.
  | 'LINK_GONE'
  | 'PIN_REQUIRED'
  | 'PIN_INVALID'
  | 'PIN_LOCKED'
  // A consult's de-identified copy could not be made (every instance refused: burned-in annotation, documents).
  | 'DEIDENTIFICATION_REFUSED';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  BAD_QUERY: 400,
  MALFORMED_MULTIPART: 400,
  INVALID_DICOM: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  TOO_MANY_REQUESTS: 429,
  NOT_FOUND: 404,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  STORAGE_FAILURE: 503,
  INDEX_FAILURE: 503,
  SERVICE_BUSY: 503,
  AUTH_UNAVAILABLE: 503,
  /** The audit trail cannot be written and PACS_AUDIT_FAIL_CLOSED is on (audit/audit-trail.ts). */
  AUDIT_UNAVAILABLE: 503,
  CONFIG_INVALID: 500,
  INTERNAL: 500,
  /** A field of the command is missing or malformed (the message names the field, never its value). */
  HIS_INVALID: 400,
  /** The patient the command refers to (a merge's prior patient) is not known to the hospital link. */
  HIS_UNKNOWN_PATIENT: 404,
  /** The order to change or cancel is not known (by id, placer order number or accession number). */
  HIS_UNKNOWN_ORDER: 404,
  /** The command contradicts what is stored: a new order whose accession or placer number exists, a change to an ended order. */
  HIS_CONFLICT: 409,
  MALFORMED_MESSAGE: 400,
  BAD_START: 400,
  FRAME_SIZE_CHANGED: 400,
  UNDECODABLE_FRAME: 400,
  NOT_STARTED: 409,
  ALREADY_STARTED: 409,
  FRAME_TOO_LARGE: 413,
  RECORDING_NOT_STORED: 503,
  /** The live `start` named an order that is unknown, ended (completed, discontinued, cancelled) or not for the live room (modality ES). */
  ORDER_NOT_STARTABLE: 409,
  /** A share link past its expiry or revoked: it will never work again (the message says which). */
  LINK_GONE: 410,
  /** The share link has a PIN: open it with `POST /share/{token}/session` and the PIN first. */
  PIN_REQUIRED: 401,
  /** The PIN sent does not match (the message says how many tries are left before the link locks). */
  PIN_INVALID: 401,
  /** Too many wrong PINs: the link is locked for a while (Retry-After says how long). */
  PIN_LOCKED: 429,
  DEIDENTIFICATION_REFUSED: 422,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
  }
}

export class BadQueryError extends AppError {
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super('BAD_QUERY', `Query parameter "${parameter}": ${message}`);
    this.name = 'BadQueryError';
    this.parameter = parameter;
  }
}

export class InvalidDicomError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_DICOM', message, options);
    this.name = 'InvalidDicomError';
  }
}

export class MalformedMultipartError extends AppError {
  constructor(message: string) {
    super('MALFORMED_MULTIPART', message);
    this.name = 'MalformedMultipartError';
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(message: string) {
    super('PAYLOAD_TOO_LARGE', message);
    this.name = 'PayloadTooLargeError';
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

/** A bounded queue is full: the caller should retry after `retryAfterSeconds` (503 + Retry-After). */
export class ServiceBusyError extends AppError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('SERVICE_BUSY', message);
    this.name = 'ServiceBusyError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export function httpStatusOf(code: ErrorCode): number {
  return STATUS_BY_CODE[code];
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
