/**
 * What is wrong with a received HL7 message, in the terms of its acknowledgement (HL7 v2.5.1 chapter 2,
 * original mode): the acknowledgement code (AE: the content is wrong; AR: the message cannot be
 * processed at all), and per problem an HL7 error code of table 0357 (ERR-3), where it is (ERR-2) and a
 * message for a person (ERR-8). Messages name segments and fields, never their values: acknowledgements
 * and logs carry no patient data.
 */

/** HL7 table 0357, Message error condition codes (v2.5.1). */
export const HL7_ERROR_CODES = {
  0: 'Message accepted',
  100: 'Segment sequence error',
  101: 'Required field missing',
  102: 'Data type error',
  103: 'Table value not found',
  200: 'Unsupported message type',
  201: 'Unsupported event code',
  202: 'Unsupported processing id',
  203: 'Unsupported version id',
  204: 'Unknown key identifier',
  205: 'Duplicate key identifier',
  206: 'Application record locked',
  207: 'Application internal error',
} as const;

export type Hl7ErrorCode = keyof typeof HL7_ERROR_CODES;

/** ERR-2 Error Location (ERL): segment, its sequence among segments of that name (from 1), field, repetition (from 1), component. */
export interface Hl7Location {
  segment: string;
  sequence?: number;
  field?: number;
  repetition?: number;
  component?: number;
}

export interface Hl7Problem {
  code: Hl7ErrorCode;
  location?: Hl7Location;
  /** For a person (ERR-8): what is wrong, naming the field, never quoting its value. */
  message: string;
  /** ERR-4: E (error, the default) or I (information, e.g. on the AA of a repeated message). */
  severity?: 'E' | 'I';
}

/** A message refused whole: nothing of it was applied. */
export class Hl7Rejection extends Error {
  constructor(
    readonly ackCode: 'AE' | 'AR',
    readonly problems: readonly Hl7Problem[],
  ) {
    super(problems.map((problem) => problem.message).join('; '));
    this.name = 'Hl7Rejection';
  }
}

/** `PID-3`, `OBR-4.2`: how documents and messages name a field. */
export function fieldName(location: Hl7Location): string {
  return `${location.segment}${location.field === undefined ? '' : `-${location.field}`}${location.component === undefined ? '' : `.${location.component}`}`;
}
