/**
 * One received message, from its bytes to its acknowledgement (HL7 v2.5.1 §2.9.2.1, original mode):
 *
 * 1. MSH: parsed, character set, version and processing ID checked → AR when unusable;
 * 2. the sending application (MSH-3, with MSH-4) must be allowed → AR otherwise;
 * 3. message type and event supported → AR otherwise; the content mapped to ONE command → AE with
 *    every problem when it cannot be;
 * 4. `HisLink.apply(command, context)`: AA when applied, and AA again for a repeated message control ID
 *    (the hospital link applies nothing twice); AE when the hospital link refuses the command (its
 *    validation, an unknown patient or order, a conflicting order); AR when it failed for reasons that
 *    have nothing to do with the message (its store unreachable): the sender should send it again.
 *
 * Nothing is applied before the whole message has been read and mapped. Logs name the sending
 * application, message type, control ID, acknowledgement code and counts, never patient data.
 */
import type { Logger } from 'pino';
import type { Hl7Sender } from '../config.js';
import { isAppError } from '../errors.js';
import type { HisLink } from '../his/his-model.js';
import { buildAck, type AckCode } from './hl7-ack.js';
import { mapMessage, type Hl7MappingOptions } from './hl7-mapping.js';
import { headerOf, parseHl7, type Hl7Header } from './hl7-message.js';
import { Hl7Rejection, type Hl7Problem } from './hl7-problem.js';

export interface Hl7HandlerOptions extends Hl7MappingOptions {
  link: HisLink;
  /** Allowed senders (PACS_HL7_ALLOWED_SENDERS); empty: any. */
  allowedSenders: readonly Hl7Sender[];
  logger: Logger;
}

export interface HandledMessage {
  /** The acknowledgement's text. */
  ack: string;
  code: AckCode;
}

let ackCounter = 0;

/** A control ID for our acknowledgement (MSH-10, at most 20 characters), unique within this process. */
function ackControlId(): string {
  ackCounter = (ackCounter + 1) % 1_000_000;
  return `FL${Date.now().toString(36).toUpperCase()}${ackCounter.toString(36).toUpperCase()}`.slice(0, 20);
}

/** The HL7 name of a message type for logs: `ORM^O01`. */
function typeOf(header: Hl7Header | null): string | undefined {
  return header === null || header.messageCode === '' ? undefined : `${header.messageCode}${header.triggerEvent === '' ? '' : `^${header.triggerEvent}`}`;
}

const sendingApplicationOf = (header: Hl7Header) => [header.sendingApplication[0] ?? '', header.sendingFacility[0] ?? ''].filter((part) => part !== '').join('^');

export async function handleMessage(bytes: Buffer, clientAddress: string, options: Hl7HandlerOptions): Promise<HandledMessage> {
  const log = options.logger;
  let header: Hl7Header | null = null;
  const answer = (code: AckCode, problems: readonly Hl7Problem[], extra: Record<string, unknown> = {}): HandledMessage => {
    const fields = {
      sendingApplication: header === null ? undefined : sendingApplicationOf(header),
      messageType: typeOf(header),
      messageControlId: header?.controlId || undefined,
      ack: code,
      ...(problems.length === 0 ? {} : { errors: problems.map((problem) => problem.code) }),
      bytes: bytes.length,
      ...extra,
    };
    if (code === 'AA') log.info(fields, 'HL7 message acknowledged');
    else log.warn(fields, `HL7 message refused: ${problems.map((problem) => problem.message).join('; ')}`);
    return { ack: buildAck({ header, code, problems, controlId: ackControlId() }), code };
  };

  let command;
  try {
    const message = parseHl7(bytes);
    header = message.header;
    if (!senderAllowed(header, options.allowedSenders)) {
      return answer('AR', [{ code: 207, location: { segment: 'MSH', sequence: 1, field: 3 }, message: 'MSH-3/MSH-4: this sending application is not allowed to send to this archive (PACS_HL7_ALLOWED_SENDERS)' }]);
    }
    command = mapMessage(message, options);
  } catch (err) {
    if (err instanceof Hl7Rejection) {
      header ??= headerOf(err);
      return answer(err.ackCode, err.problems);
    }
    log.error({ type: (err as Error).name }, 'HL7 message could not be read');
    return answer('AR', [{ code: 207, message: 'The message could not be read (internal error)' }]);
  }

  const h = header!;
  try {
    const result = await options.link.apply(command, {
      via: 'hl7',
      messageControlId: h.controlId,
      sendingApplication: sendingApplicationOf(h),
      subject: `HL7:${sendingApplicationOf(h)}`,
      clientAddress,
    });
    const duplicate = result.status === 'duplicate';
    const info: Hl7Problem[] = duplicate ? [{ code: 0, severity: 'I', message: 'This message control ID was received before: acknowledged again, not applied twice' }] : [];
    return answer('AA', info, { command: command.kind, duplicate, orders: result.orders.length, studiesUpdated: result.studiesUpdated.length });
  } catch (err) {
    const [code, problems] = refusal(err);
    if (code === 'AR') log.error({ type: (err as Error).name, code: isAppError(err) ? err.code : undefined }, 'HL7 message could not be applied');
    return answer(code, problems, { command: command.kind });
  }
}

/** The hospital link's refusal as an acknowledgement (its messages name fields, never values). */
function refusal(err: unknown): [AckCode, Hl7Problem[]] {
  if (isAppError(err)) {
    switch (err.code) {
      case 'HIS_INVALID':
        return ['AE', [{ code: 102, message: err.message }]];
      case 'HIS_UNKNOWN_PATIENT':
      case 'HIS_UNKNOWN_ORDER':
        return ['AE', [{ code: 204, message: err.message }]];
      case 'HIS_CONFLICT':
        return ['AE', [{ code: 205, message: err.message }]];
    }
  }
  // The store unreachable or any other failure: nothing was applied, the sender should send it again.
  return ['AR', [{ code: 207, message: 'The archive could not apply the message now (internal error); nothing was applied, send it again later' }]];
}

function senderAllowed(header: Hl7Header, allowed: readonly Hl7Sender[]): boolean {
  if (allowed.length === 0) return true;
  const application = (header.sendingApplication[0] ?? '').trim();
  const facility = (header.sendingFacility[0] ?? '').trim();
  return allowed.some((sender) => sender.application === application && (sender.facility === null || sender.facility === facility));
}
