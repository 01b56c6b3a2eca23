/**
 * One received HL7 v2 message: its bytes decoded (UTF-8, checked), its MSH read and checked, and its
 * segments parsed into fields, repetitions, components and subcomponents.
 *
 * The structural parse is @medplum/core's `Hl7Message` (a maintained, dependency-free parser of the
 * Medplum platform, used by its HL7 agent in production): it takes the delimiters from MSH-1/MSH-2 and
 * splits segments, fields, repetitions, components and subcomponents without changing the text.
 * Chosen over node-hl7-client (its subcomponent access throws a ReferenceError, repetitions index from
 * 0 where paths index from 1, and \X..\ decodes bytes as Latin-1) and hl7v2 (its latest release cannot
 * be installed, its peer dictionary was never published; the one before truncates the seconds of
 * TQ1-7 timestamps). @medplum/core 4.x is the line whose engines include Node.js 20 (5.x reads the
 * global WebSocket at load and fails on Node.js 20); it runs unchanged on 22 and 24.
 *
 * What the library leaves to us: it does not check the delimiters (any five characters after "MSH"
 * are taken), does not decode escape sequences, and indexes subcomponents from 0 and repetitions from
 * 0. This module checks MSH-1/MSH-2, decodes HL7 escapes (v2.5.1 §2.7) and offers 1-based access that
 * never throws on a missing segment, field or repetition.
 */
import { Hl7Message, type Hl7Field, type Hl7Segment } from '@medplum/core';
import { Hl7Rejection, fieldName, type Hl7Location, type Hl7Problem } from './hl7-problem.js';

export interface Hl7Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

export const STANDARD_DELIMITERS: Hl7Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/** What the acknowledgement needs from MSH, read as far as the message allows (even a refused one). */
export interface Hl7Header {
  delimiters: Hl7Delimiters;
  /** MSH-3 and MSH-4 (HD: namespace ID^universal ID^type; unescaped components). */
  sendingApplication: string[];
  sendingFacility: string[];
  /** MSH-5 and MSH-6. */
  receivingApplication: string[];
  receivingFacility: string[];
  /** MSH-9.1 / MSH-9.2 / MSH-9.3 (message code, trigger event, message structure). */
  messageCode: string;
  triggerEvent: string;
  messageStructure: string;
  /** MSH-10 Message Control ID. */
  controlId: string;
  /** MSH-11.1 Processing ID (P, T, D). */
  processingId: string;
  /** MSH-12.1 Version ID. */
  version: string;
  /** MSH-18 Character Set repetitions. */
  characterSets: string[];
}

/** The versions whose fields this listener reads (the fields it reads sit at the same positions in each). */
export const ACCEPTED_VERSIONS = ['2.3', '2.3.1', '2.4', '2.5', '2.5.1'] as const;
/** MSH-11 values (HL7 table 0103); all are accepted. */
const PROCESSING_IDS = ['P', 'T', 'D'];

/** MSH-18 values read as UTF-8: UNICODE UTF-8, and ASCII or none, whose bytes are read as UTF-8 when valid (a superset of ASCII). */
const UTF8_CHARSETS = ['', 'UNICODE UTF-8', 'ASCII'];

const MSH = 'MSH';

/** The location of a field of MSH. */
const msh = (field: number, component?: number): Hl7Location => ({ segment: MSH, sequence: 1, field, ...(component === undefined ? {} : { component }) });

/**
 * The bytes of one MLLP frame as a parsed message. Throws `Hl7Rejection` (AR: the message cannot be
 * processed) when it does not start with a usable MSH, is not valid UTF-8, or declares a character set,
 * version or processing ID this listener does not take; the rejection carries the header as far as it
 * could be read (`headerOf` gives it) so that the AR still echoes MSH-10.
 */
export function parseHl7(bytes: Buffer): ParsedHl7 {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const loose = bytes.toString('utf8');
    throw rejection(readHeaderOrNull(loose), {
      code: 102,
      location: msh(18),
      message: 'The message is not valid UTF-8 (this listener reads UNICODE UTF-8; ASCII is read as UTF-8)',
    });
  }
  const header = readHeader(text);
  const charsets = header.characterSets.filter((value) => value !== '');
  if (charsets.length > 1 || !UTF8_CHARSETS.includes(charsets[0] ?? '')) {
    throw rejection(header, { code: 103, location: msh(18), message: 'MSH-18 names a character set this listener does not read: send UNICODE UTF-8' });
  }
  if (header.messageCode === '') throw rejection(header, { code: 101, location: msh(9, 1), message: 'MSH-9 (message type) is missing' });
  if (header.controlId === '') throw rejection(header, { code: 101, location: msh(10), message: 'MSH-10 (message control ID) is missing' });
  if (header.version === '') throw rejection(header, { code: 101, location: msh(12), message: 'MSH-12 (version ID) is missing' });
  if (!(ACCEPTED_VERSIONS as readonly string[]).includes(header.version)) {
    throw rejection(header, { code: 203, location: msh(12), message: `MSH-12: version not supported (accepted: ${ACCEPTED_VERSIONS.join(', ')})` });
  }
  if (!PROCESSING_IDS.includes(header.processingId)) {
    throw rejection(header, { code: 202, location: msh(11), message: 'MSH-11 (processing ID) must be P, T or D' });
  }
  const message = Hl7Message.parse(text);
  return new ParsedHl7(header, message);
}

/** The header a rejection carries (for the acknowledgement), when one could be read. */
export function headerOf(error: unknown): Hl7Header | null {
  return error instanceof HeaderRejection ? error.header : null;
}

class HeaderRejection extends Hl7Rejection {
  constructor(
    readonly header: Hl7Header | null,
    problem: Hl7Problem,
  ) {
    super('AR', [problem]);
  }
}

function rejection(header: Hl7Header | null, problem: Hl7Problem): HeaderRejection {
  return new HeaderRejection(header, problem);
}

function readHeaderOrNull(text: string): Hl7Header | null {
  try {
    return readHeader(text);
  } catch {
    return null;
  }
}

/**
 * Reads MSH from the message text. MSH-1 and MSH-2 must declare five distinct delimiters, none a
 * letter, digit, space or line break (HL7 recommends |^~\&); a message that does not start with MSH,
 * or whose delimiters are unusable, is refused (AR) with no header.
 */
export function readHeader(text: string): Hl7Header {
  if (!text.startsWith(MSH)) {
    throw rejection(null, { code: 100, location: { segment: MSH }, message: 'The message does not start with an MSH segment' });
  }
  const end = text.search(/[\r\n]/);
  const line = end === -1 ? text : text.slice(0, end);
  const field = line.charAt(3);
  const next = line.indexOf(field, 4);
  const encoding = next === -1 ? line.slice(4) : line.slice(4, next);
  const chars = [field, ...encoding.slice(0, 4)];
  // v2.7 adds a fifth encoding character (truncation, #); it is not used here.
  const usable =
    (encoding.length === 4 || encoding.length === 5) &&
    new Set(chars).size === 5 &&
    chars.every((char) => /^[\x21-\x7e]$/.test(char) && !/^[A-Za-z0-9]$/.test(char));
  if (!usable) {
    throw rejection(null, {
      code: 102,
      location: msh(2),
      message: 'MSH-1 and MSH-2 must declare five distinct delimiter characters (|^~\\&), none a letter, digit or space',
    });
  }
  const delimiters: Hl7Delimiters = { field, component: encoding[0]!, repetition: encoding[1]!, escape: encoding[2]!, subcomponent: encoding[3]! };
  // MSH-1 is the field separator itself: fields[n] of the split line is MSH-(n+1).
  const fields = line.split(field);
  const raw = (n: number) => fields[n - 1] ?? '';
  const components = (n: number) => raw(n).split(delimiters.repetition)[0]!.split(delimiters.component).map((value) => unescapeLoosely(value, delimiters));
  const first = (n: number) => components(n)[0] ?? '';
  return {
    delimiters,
    sendingApplication: components(3),
    sendingFacility: components(4),
    receivingApplication: components(5),
    receivingFacility: components(6),
    messageCode: first(9).trim().toUpperCase(),
    triggerEvent: (components(9)[1] ?? '').trim().toUpperCase(),
    messageStructure: (components(9)[2] ?? '').trim().toUpperCase(),
    controlId: unescapeLoosely(raw(10), delimiters).trim(),
    processingId: first(11).trim().toUpperCase(),
    version: first(12).trim(),
    characterSets: raw(18).split(delimiters.repetition).map((value) => unescapeLoosely(value, delimiters).trim().toUpperCase()),
  };
}

/** A bad escape sequence (v2.5.1 §2.7): not terminated, unknown, or \X..\ that is not UTF-8. */
class EscapeError extends Error {}

/**
 * Decodes the escape sequences of a value (v2.5.1 §2.7): \F\ \S\ \T\ \R\ \E\ become the delimiters,
 * \Xhh…\ the UTF-8 bytes it spells, \H\ and \N\ (highlighting) and the formatting commands of FT
 * (\.br\, \.sp\ …) are dropped. Character-set switches (\C…\, \M…\) and locally defined escapes (\Z…\)
 * have no meaning in UTF-8 and are refused, as is an escape character without its closing one.
 */
export function unescapeHl7(value: string, delimiters: Hl7Delimiters): string {
  const esc = delimiters.escape;
  if (!value.includes(esc)) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const start = value.indexOf(esc, i);
    if (start === -1) {
      out += value.slice(i);
      break;
    }
    out += value.slice(i, start);
    const end = value.indexOf(esc, start + 1);
    if (end === -1) throw new EscapeError('an escape character without its closing one');
    const sequence = value.slice(start + 1, end);
    out += decodeEscape(sequence, delimiters);
    i = end + 1;
  }
  return out;
}

function decodeEscape(sequence: string, delimiters: Hl7Delimiters): string {
  switch (sequence) {
    case 'F':
      return delimiters.field;
    case 'S':
      return delimiters.component;
    case 'T':
      return delimiters.subcomponent;
    case 'R':
      return delimiters.repetition;
    case 'E':
      return delimiters.escape;
    case 'H':
    case 'N':
      return '';
  }
  if (sequence.startsWith('.')) return '';
  if (/^X([0-9A-Fa-f]{2})+$/.test(sequence)) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(sequence.slice(1), 'hex'));
    } catch {
      throw new EscapeError('a \\X..\\ escape whose bytes are not UTF-8');
    }
  }
  throw new EscapeError('an escape sequence this listener does not decode (character-set switches and local escapes are not used with UTF-8)');
}

/** For the header of a message that may be refused: a bad escape is kept as written. */
function unescapeLoosely(value: string, delimiters: Hl7Delimiters): string {
  try {
    return unescapeHl7(value, delimiters);
  } catch {
    return value;
  }
}

/** Writes a value with the standard delimiters escaped (for the acknowledgement). */
export function escapeHl7(value: string): string {
  return value.replace(/[\\|^~&\r\n]/g, (char) => {
    switch (char) {
      case '\\':
        return '\\E\\';
      case '|':
        return '\\F\\';
      case '^':
        return '\\S\\';
      case '~':
        return '\\R\\';
      case '&':
        return '\\T\\';
      default:
        return ' ';
    }
  });
}

/** A problem with a field's content, thrown by the accessors (the mapping collects them into an AE). */
export class FieldProblem extends Error {
  constructor(readonly problem: Hl7Problem) {
    super(problem.message);
  }
}

/** One segment of the message, with 1-based accessors returning unescaped text ('' when absent). */
export class SegmentView {
  constructor(
    private readonly segment: Hl7Segment,
    private readonly delimiters: Hl7Delimiters,
    readonly name: string,
    /** Its position among the segments of the same name, from 1 (ERR-2.2). */
    readonly sequence: number,
  ) {}

  location(field?: number, component?: number, repetition?: number): Hl7Location {
    return {
      segment: this.name,
      sequence: this.sequence,
      ...(field === undefined ? {} : { field }),
      ...(repetition === undefined ? {} : { repetition }),
      ...(component === undefined ? {} : { component }),
    };
  }

  private field(n: number): Hl7Field | undefined {
    return this.segment.getField(n);
  }

  /** How many repetitions field `n` has (0 when empty or absent). */
  repetitions(n: number): number {
    const field = this.field(n);
    if (field === undefined) return 0;
    return field.components.length === 1 && field.components[0]!.every((component) => component === '') ? 0 : field.components.length;
  }

  /** True when field `n` holds exactly `""` (HL7: the value is to be deleted). */
  isNull(n: number): boolean {
    const field = this.field(n);
    return field !== undefined && field.components.length === 1 && field.components[0]!.length === 1 && field.components[0]![0] === '""';
  }

  /**
   * The unescaped text of field `n`, component `component`, subcomponent `sub`, repetition `rep` (all
   * from 1); '' when any of them is absent. A bad escape sequence is a FieldProblem (102) at that place.
   */
  text(n: number, component = 1, sub = 1, rep = 1): string {
    const raw = this.field(n)?.components[rep - 1]?.[component - 1];
    if (raw === undefined || raw === '') return '';
    const value = raw.split(this.delimiters.subcomponent)[sub - 1] ?? '';
    try {
      return unescapeHl7(value, this.delimiters);
    } catch (err) {
      const location = this.location(n, component, rep);
      throw new FieldProblem({ code: 102, location, message: `${fieldName(location)} holds ${(err as Error).message}` });
    }
  }

  /** The components of one repetition (unescaped, first subcomponents), for composite types read whole. */
  components(n: number, rep = 1): string[] {
    const count = this.field(n)?.components[rep - 1]?.length ?? 0;
    return Array.from({ length: count }, (_, i) => this.text(n, i + 1, 1, rep));
  }
}

/** A parsed message: the checked header and the segments, in order. */
export class ParsedHl7 {
  readonly segments: SegmentView[];

  constructor(
    readonly header: Hl7Header,
    message: Hl7Message,
  ) {
    const seen = new Map<string, number>();
    this.segments = message.segments.map((segment) => {
      const name = segment.name.trim().toUpperCase();
      const sequence = (seen.get(name) ?? 0) + 1;
      seen.set(name, sequence);
      return new SegmentView(segment, header.delimiters, name, sequence);
    });
  }

  /** The first segment of that name. */
  segment(name: string): SegmentView | undefined {
    return this.segments.find((segment) => segment.name === name);
  }

  all(name: string): SegmentView[] {
    return this.segments.filter((segment) => segment.name === name);
  }
}
