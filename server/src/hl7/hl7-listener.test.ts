/**
 * The HL7 listener as a hospital's interface engine sees it: Debian's python3-hl7 `mllp_send` (a real
 * third-party MLLP client) sends ORM, OMI and ADT messages and prints our acknowledgements; raw sockets
 * send what no well-behaved client would (a truncated frame, 10 MB). Behind the listener a recording
 * HisLink stands in for the hospital link (hl7-his-link.test.ts runs the real one).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import type { HisApplyResult, HisCommand, HisCommandContext, HisLink } from '../his/his-model.js';
import { testLogger } from '../test-support/log-capture.js';
import { PATIENT, a40, adt, message, msh, omi, orm, pid, segment } from '../test-support/hl7-messages.js';
import { startHl7Listener, type Hl7Listener } from './hl7-listener.js';

const run = promisify(execFile);
const MLLP_SEND = '/usr/bin/mllp_send';

/** Records every command; a control ID seen before is a duplicate (as the hospital link answers it). */
class RecordingLink implements HisLink {
  readonly applied: Array<{ command: HisCommand; context: HisCommandContext }> = [];
  readonly calls: string[] = [];
  private readonly seen = new Set<string>();
  failure: Error | undefined;
  delayMs = 0;

  async apply(command: HisCommand, context: HisCommandContext): Promise<HisApplyResult> {
    this.calls.push(context.messageControlId ?? '');
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.failure !== undefined) throw this.failure;
    const key = `${context.sendingApplication}|${context.messageControlId}`;
    if (this.seen.has(key)) return { status: 'duplicate', orders: [], studiesUpdated: [] };
    this.seen.add(key);
    this.applied.push({ command, context });
    return { status: 'applied', orders: [], studiesUpdated: [] };
  }
}

let dir: string;
let link: RecordingLink;
let listener: Hl7Listener;
const MAX_MESSAGE_BYTES = 1024 * 1024;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'hl7-listener-'));
  link = new RecordingLink();
  listener = await startHl7Listener({
    config: { host: '127.0.0.1', port: 0, allowedSenders: [], maxMessageBytes: MAX_MESSAGE_BYTES, patientIdIssuer: 'BVBM', nationalIdIssuer: 'VNM-CCCD' },
    link,
    logger: testLogger(),
  });
});

afterAll(async () => {
  await listener?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  link.applied.length = 0;
  link.calls.length = 0;
  link.failure = undefined;
  link.delayMs = 0;
});

let fileCount = 0;

/** Sends the messages with mllp_send over one connection, one after the other; returns the acknowledgements it printed. */
async function mllpSend(port: number, messages: Array<string | Buffer>, options: { loose?: boolean } = {}): Promise<string[]> {
  const file = path.join(dir, `messages-${++fileCount}.hl7`);
  // mllp_send's file format: messages separated by <FS> (it frames each as <VT>…<FS><CR>). Its reader
  // of that format is quadratic in the message size (minutes for 10 MB); --loose reads the file at once
  // and splits it at each "MSH|^~\&|".
  const separator = Buffer.from(options.loose ? '\r' : '\x1c\r');
  await writeFile(file, Buffer.concat(messages.flatMap((m) => [typeof m === 'string' ? Buffer.from(m, 'utf8') : m, separator])));
  const args = ['-p', String(port), '-f', file, ...(options.loose ? ['--loose'] : []), '127.0.0.1'];
  const { stdout } = await run(MLLP_SEND, args, { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
  return acks(stdout as unknown as Buffer);
}

/** The acknowledgements in bytes received: the text of each <VT>…<FS> frame. */
function acks(bytes: Buffer): string[] {
  return [...bytes.toString('utf8').matchAll(/\x0b([^\x1c]*)\x1c/g)].map((match) => match[1]!);
}

/** MSA-1 and MSA-2 of an acknowledgement, and its ERR-3 codes. */
function summary(ack: string): { code: string; controlId: string; errors: string[] } {
  const segments = ack.split('\r');
  const msa = segments.find((s) => s.startsWith('MSA|'))?.split('|') ?? [];
  const errors = segments.filter((s) => s.startsWith('ERR|')).map((s) => s.split('|')[3]?.split('^')[0] ?? '');
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', errors };
}

/** Writes raw bytes on a fresh connection; resolves with what came back and whether the server closed. */
function rawExchange(port: number, data: Buffer | Buffer[], options: { endAfterMs?: number; destroyAfterWrite?: boolean } = {}): Promise<{ received: Buffer; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let closedByServer = false;
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', () => {
      closedByServer = true;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), closedByServer }));
    socket.on('connect', async () => {
      for (const part of Array.isArray(data) ? data : [data]) {
        if (!socket.write(part)) await new Promise((r) => socket.once('drain', r));
      }
      if (options.destroyAfterWrite) setTimeout(() => socket.destroy(), 50);
      else setTimeout(() => socket.end(), options.endAfterMs ?? 500);
    });
  });
}

const frame = (text: string | Buffer) => Buffer.concat([Buffer.from([0x0b]), typeof text === 'string' ? Buffer.from(text, 'utf8') : text, Buffer.from([0x1c, 0x0d])]);

describe('messages from the HIS over MLLP (mllp_send)', () => {
  it('ORM, OMI and ADT A01, A08, A40 become one command each and are acknowledged AA with their control IDs', async () => {
    const answers = await mllpSend(listener.port, [orm('NW', 'MSG-ORM-1'), omi('NW', 'MSG-OMI-1'), adt('A01', 'MSG-A01-1'), adt('A08', 'MSG-A08-1'), a40('MSG-A40-1')]);
    expect(answers.map(summary)).toEqual([
      { code: 'AA', controlId: 'MSG-ORM-1', errors: [] },
      { code: 'AA', controlId: 'MSG-OMI-1', errors: [] },
      { code: 'AA', controlId: 'MSG-A01-1', errors: [] },
      { code: 'AA', controlId: 'MSG-A08-1', errors: [] },
      { code: 'AA', controlId: 'MSG-A40-1', errors: [] },
    ]);
    expect(link.applied.map(({ command }) => command.kind)).toEqual(['order-new', 'order-new', 'patient-upsert', 'patient-upsert', 'patient-merge']);
    expect(link.applied[0]!.command).toMatchObject({ order: { accessionNumber: 'ACC26120101', modality: 'ES', scheduledStart: '20261202090000' } });
    expect(link.applied[1]!.command).toMatchObject({ order: { accessionNumber: 'ACC26120102', scheduledStationAeTitle: 'CT_PHONG2' } });
    expect(link.applied[0]!.context).toEqual({ via: 'hl7', messageControlId: 'MSG-ORM-1', sendingApplication: 'HIS^BVBM', subject: 'HL7:HIS^BVBM', clientAddress: '127.0.0.1' });
    // The acknowledgement answers the sender: MSH-5/6 are the HIS, MSH-9 ACK^<event>^ACK.
    expect(answers[0]!.split('\r')[0]).toMatch(/^MSH\|\^~\\&\|FILMLESS\|RAD\|HIS\|BVBM\|\d{14}[+-]\d{4}\|\|ACK\^O01\^ACK\|FL\w+\|P\|2\.5\.1/);
  });

  it('a Vietnamese name arrives byte for byte', async () => {
    // Registered with the log check of `npm test` (patientName literal): it must not appear in any log line.
    const received = { patientName: 'ĐỖ^THỊ HƯƠNG^^BÀ' };
    const name = received.patientName;
    await mllpSend(listener.port, [adt('A08', 'MSG-VI-1', { 5: 'ĐỖ^THỊ HƯƠNG^^^BÀ' })]);
    const command = link.applied[0]!.command;
    expect(command.kind).toBe('patient-upsert');
    expect(Buffer.from(command.kind === 'patient-upsert' ? command.identity.name! : '', 'utf8').equals(Buffer.from(name, 'utf8'))).toBe(true);
    await mllpSend(listener.port, [orm('NW', 'MSG-VI-2')]);
    const order = link.applied[1]!.command;
    expect(order.kind === 'order-new' && order.patient.name).toBe(`${PATIENT.patientName}^^ÔNG`);
    expect(order.kind === 'order-new' && order.order.requestedProcedureDescription).toBe('Nội soi đại tràng & sinh thiết');
  });

  it('a message sent again with the same control ID is acknowledged AA again and applied once', async () => {
    const answers = await mllpSend(listener.port, [adt('A08', 'MSG-DUP-1'), adt('A08', 'MSG-DUP-1')]);
    expect(answers.map(summary)).toEqual([
      { code: 'AA', controlId: 'MSG-DUP-1', errors: [] },
      // ERR-3 0 with severity I: "received before, not applied twice".
      { code: 'AA', controlId: 'MSG-DUP-1', errors: ['0'] },
    ]);
    expect(link.applied).toHaveLength(1);
  });
});

describe('malformed messages are answered and the connection keeps serving', () => {
  it('missing MSH, wrong delimiters, wrong field separators, an unknown message type and missing fields: AR/AE each, then the next message is applied', async () => {
    const badDelimiters = orm('NW', 'MSG-BAD-2').replace('MSH|^~\\&|', 'MSH|^^^^|');
    const wrongSeparators = orm('NW', 'MSG-BAD-3').replace(/\r(PID|ORC|OBR)\|([^\r]*)/g, (_m, name: string, rest: string) => `\r${name};${rest.replaceAll('|', ';')}`);
    const unknownType = message(msh({ type: 'SIU^S12^SIU_S12', controlId: 'MSG-BAD-4' }), pid());
    const missingAccession = orm('NW', 'MSG-BAD-5', { obr: { 18: '' } });
    const answers = await mllpSend(listener.port, [
      message(pid(), segment('ORC', { 1: 'NW' })),
      badDelimiters,
      wrongSeparators,
      unknownType,
      missingAccession,
      orm('NW', 'MSG-GOOD-6'),
    ]);
    expect(answers.map(summary)).toEqual([
      { code: 'AR', controlId: '', errors: ['100'] },
      { code: 'AR', controlId: '', errors: ['102'] },
      { code: 'AE', controlId: 'MSG-BAD-3', errors: ['100', '100', '100'] },
      { code: 'AR', controlId: 'MSG-BAD-4', errors: ['200'] },
      { code: 'AE', controlId: 'MSG-BAD-5', errors: ['101'] },
      { code: 'AA', controlId: 'MSG-GOOD-6', errors: [] },
    ]);
    // ERR-8 says what was wrong, naming the field, never its value.
    expect(answers[4]).toContain('ERR||OBR^1^18^1|101^Required field missing^HL70357|E||||OBR-18 (accession number) is missing');
    expect(link.calls).toEqual(['MSG-GOOD-6']);
  });

  it('a sender not on the allow-list is refused (AR) without anything applied', async () => {
    const guarded = await startHl7Listener({
      config: { host: '127.0.0.1', port: 0, allowedSenders: [{ application: 'HIS', facility: 'BVBM' }], maxMessageBytes: MAX_MESSAGE_BYTES, patientIdIssuer: 'BVBM', nationalIdIssuer: 'VNM-CCCD' },
      link,
      logger: testLogger(),
    });
    try {
      const stranger = orm('NW', 'MSG-STRANGER').replace('MSH|^~\\&|HIS|BVBM|', 'MSH|^~\\&|LIS|BVBM|');
      const answers = await mllpSend(guarded.port, [stranger, orm('NW', 'MSG-ALLOWED')]);
      expect(answers.map(summary)).toEqual([
        { code: 'AR', controlId: 'MSG-STRANGER', errors: ['207'] },
        { code: 'AA', controlId: 'MSG-ALLOWED', errors: [] },
      ]);
      expect(link.calls).toEqual(['MSG-ALLOWED']);
    } finally {
      await guarded.close();
    }
  });

  it("the hospital link's refusals become AE (204 unknown order, 205 conflict, 102 invalid) and its failures AR 207", async () => {
    const answerWith = async (failure: Error, controlId: string) => {
      link.failure = failure;
      return summary((await mllpSend(listener.port, [orm('CA', controlId)]))[0]!);
    };
    expect(await answerWith(new AppError('HIS_UNKNOWN_ORDER', 'Order cancel refused: no order with this id, placer order number or accession number'), 'MSG-REF-1')).toEqual({ code: 'AE', controlId: 'MSG-REF-1', errors: ['204'] });
    expect(await answerWith(new AppError('HIS_CONFLICT', 'Order cancel refused: the order has ended (COMPLETED)'), 'MSG-REF-2')).toEqual({ code: 'AE', controlId: 'MSG-REF-2', errors: ['205'] });
    expect(await answerWith(new AppError('HIS_INVALID', 'Order cancel refused: patient.patientId must be at most 64 characters'), 'MSG-REF-3')).toEqual({ code: 'AE', controlId: 'MSG-REF-3', errors: ['102'] });
    expect(await answerWith(new AppError('INDEX_FAILURE', 'The hospital link store could not be written; nothing was applied'), 'MSG-REF-4')).toEqual({ code: 'AR', controlId: 'MSG-REF-4', errors: ['207'] });
  });

  it('a truncated MLLP frame (the peer closes before <FS><CR>) applies nothing, while another connection is served', async () => {
    const whole = Buffer.from(orm('NW', 'MSG-TRUNC-1'), 'utf8');
    const truncated = rawExchange(listener.port, Buffer.concat([Buffer.from([0x0b]), whole.subarray(0, whole.length - 40)]), { destroyAfterWrite: true });
    const [other] = await Promise.all([mllpSend(listener.port, [adt('A08', 'MSG-TRUNC-OTHER')]), truncated]);
    expect(summary(other![0]!)).toEqual({ code: 'AA', controlId: 'MSG-TRUNC-OTHER', errors: [] });
    expect((await truncated).received.length).toBe(0);
    expect(link.calls).toEqual(['MSG-TRUNC-OTHER']);
  });

  it('bytes outside a frame and a frame restarted by a new <VT> are ignored; the complete frame after them is answered', async () => {
    const whole = Buffer.from(adt('A08', 'MSG-RESTART-2'), 'utf8');
    const { received } = await rawExchange(listener.port, Buffer.concat([Buffer.from('noise\r\n'), Buffer.from([0x0b]), Buffer.from(adt('A08', 'MSG-RESTART-1').slice(0, 60)), frame(whole)]));
    expect(acks(received).map(summary)).toEqual([{ code: 'AA', controlId: 'MSG-RESTART-2', errors: [] }]);
    expect(link.calls).toEqual(['MSG-RESTART-2']);
  });

  it('a 10 MB message is refused with AR and its connection closed; the listener serves other connections meanwhile', async () => {
    // A real-looking ORM whose OBR-13 (relevant clinical information) is padded to 10 MB.
    const huge = orm('NW', 'MSG-HUGE-1', { obr: { 13: 'x'.repeat(10 * 1024 * 1024) } });
    const bytes = frame(huge);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 65536) }, (_, i) => bytes.subarray(i * 65536, (i + 1) * 65536));
    const big = rawExchange(listener.port, chunks, { endAfterMs: 2000 });
    const [others] = await Promise.all([mllpSend(listener.port, [adt('A08', 'MSG-HUGE-OTHER')]), big]);
    expect(summary(others![0]!)).toEqual({ code: 'AA', controlId: 'MSG-HUGE-OTHER', errors: [] });
    const { received, closedByServer } = await big;
    const [answer] = acks(received);
    expect(summary(answer!)).toEqual({ code: 'AR', controlId: 'MSG-HUGE-1', errors: ['207'] });
    expect(answer).toContain(`larger than this archive accepts (${MAX_MESSAGE_BYTES} bytes)`);
    expect(closedByServer).toBe(true);
    expect(link.calls).toEqual(['MSG-HUGE-OTHER']);
    // And the listener still takes new connections.
    expect((await mllpSend(listener.port, [adt('A08', 'MSG-HUGE-AFTER')])).map(summary)[0]!.code).toBe('AA');
  });

  it('the 10 MB message from mllp_send itself gets the AR too', async () => {
    const huge = orm('NW', 'MSG-HUGE-2', { obr: { 13: 'y'.repeat(10 * 1024 * 1024) } });
    const answers = await mllpSend(listener.port, [huge], { loose: true });
    expect(answers.map(summary)).toEqual([{ code: 'AR', controlId: 'MSG-HUGE-2', errors: ['207'] }]);
    expect(link.calls).toEqual([]);
  });
});

describe('the listener as a process part', () => {
  it('answers two frames sent back to back in one write, in order, and a message split into single bytes', async () => {
    const both = Buffer.concat([frame(adt('A08', 'MSG-PIPE-1')), frame(adt('A08', 'MSG-PIPE-2'))]);
    const first = await rawExchange(listener.port, both);
    expect(acks(first.received).map((ack) => summary(ack).controlId)).toEqual(['MSG-PIPE-1', 'MSG-PIPE-2']);
    const bytes = frame(adt('A08', 'MSG-BYTES-1'));
    const second = await rawExchange(listener.port, Array.from(bytes, (byte) => Buffer.from([byte])));
    expect(acks(second.received).map(summary)).toEqual([{ code: 'AA', controlId: 'MSG-BYTES-1', errors: [] }]);
  });

  it('close() lets the message being applied finish and be answered', async () => {
    const own = await startHl7Listener({
      config: { host: '127.0.0.1', port: 0, allowedSenders: [], maxMessageBytes: MAX_MESSAGE_BYTES, patientIdIssuer: 'BVBM', nationalIdIssuer: 'VNM-CCCD' },
      link,
      logger: testLogger(),
    });
    link.delayMs = 300;
    const exchange = rawExchange(own.port, frame(adt('A08', 'MSG-CLOSE-1')), { endAfterMs: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await own.close();
    const { received } = await exchange;
    expect(acks(received).map(summary)).toEqual([{ code: 'AA', controlId: 'MSG-CLOSE-1', errors: [] }]);
    expect(link.applied.map(({ context }) => context.messageControlId)).toEqual(['MSG-CLOSE-1']);
  });
});
