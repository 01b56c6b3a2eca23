/**
 * Original-mode acknowledgements (HL7 v2.5.1 §2.9.2, message structure ACK): MSH, MSA (MSA-1 the code,
 * MSA-2 the received MSH-10) and one ERR per problem (ERR-2 location, ERR-3 table 0357 code, ERR-4
 * severity, ERR-8 a message for a person). Written with the standard delimiters, in UTF-8.
 */
import { escapeHl7, type Hl7Header } from './hl7-message.js';
import { HL7_ERROR_CODES, type Hl7Location, type Hl7Problem } from './hl7-problem.js';

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckInput {
  /** The received message's header, as far as it could be read (null: nothing usable, e.g. no MSH). */
  header: Hl7Header | null;
  code: AckCode;
  problems: readonly Hl7Problem[];
  /** MSH-10 of the acknowledgement itself. */
  controlId: string;
  now?: Date;
}

/** Our application in MSH-3 of an acknowledgement when the message named no receiving application. */
export const OUR_APPLICATION = 'FILMLESS';

const hd = (components: readonly string[]) => components.map(escapeHl7).join('^').replace(/\^+$/, '');

/** The acknowledgement's text, segments ended by <CR>. */
export function buildAck(input: AckInput): string {
  const { header, code } = input;
  const ourApplication = header !== null && hd(header.receivingApplication) !== '' ? hd(header.receivingApplication) : OUR_APPLICATION;
  const utf8Declared = header?.characterSets.includes('UNICODE UTF-8') ?? false;
  const msh = [
    'MSH',
    '^~\\&',
    ourApplication,
    header === null ? '' : hd(header.receivingFacility),
    header === null ? '' : hd(header.sendingApplication),
    header === null ? '' : hd(header.sendingFacility),
    hl7DateTime(input.now ?? new Date()),
    '',
    `ACK^${escapeHl7(header?.triggerEvent ?? '')}^ACK`,
    escapeHl7(input.controlId),
    escapeHl7(header?.processingId || 'P'),
    '2.5.1',
    '',
    '',
    '',
    '',
    '',
    utf8Declared ? 'UNICODE UTF-8' : '',
  ];
  const firstError = input.problems.find((problem) => (problem.severity ?? 'E') === 'E');
  // MSA-3 (text message) is kept for v2.3 senders, which read no ERR-3/ERR-8.
  const msa = ['MSA', code, escapeHl7(header?.controlId ?? ''), ...(firstError === undefined ? [] : [escapeHl7(firstError.message.slice(0, 80))])];
  const segments = [trimFields(msh), trimFields(msa), ...input.problems.map(err)];
  return `${segments.join('\r')}\r`;
}

function err(problem: Hl7Problem): string {
  return trimFields(['ERR', '', problem.location === undefined ? '' : location(problem.location), `${problem.code}^${HL7_ERROR_CODES[problem.code]}^HL70357`, problem.severity ?? 'E', '', '', '', escapeHl7(problem.message)]);
}

/** ERL: segment ID^sequence^field position^field repetition^component number. */
function location(at: Hl7Location): string {
  const parts = [at.segment, at.sequence === undefined ? '' : String(at.sequence), at.field === undefined ? '' : String(at.field), at.field === undefined ? '' : String(at.repetition ?? 1), at.component === undefined ? '' : String(at.component)];
  return parts.join('^').replace(/\^+$/, '');
}

function trimFields(fields: string[]): string {
  return fields.join('|').replace(/\|+$/, '');
}

/** DTM with the local offset: YYYYMMDDHHMMSS+ZZZZ. */
export function hl7DateTime(date: Date): string {
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return (
    `${pad(date.getFullYear(), 4)}${pad(date.getMonth() + 1)}${pad(date.getDate())}` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`
  );
}
