/**
 * The HL7 v2.5.1 listener over MLLP: a `net.Server` bound to the configured address only, one framer
 * per connection (mllp-framer.ts), messages of a connection handled one at a time in the order they
 * arrived (hl7-handler.ts), each answered with its acknowledgement before the next is read.
 *
 * What the peer does wrong never ends the connection, except:
 * - a frame beyond PACS_HL7_MAX_MESSAGE_BYTES: answered AR (MSH-10 echoed when its start holds an MSH),
 *   then the connection is closed: the rest of the frame is read and discarded (no reset that could
 *   lose the AR), and the listener cannot know where the next frame would start;
 * - a frame that stops arriving for `frameTimeoutMs` (a sender that died mid-message): dropped, closed.
 * A connection closed inside a frame (a truncated message) applies nothing. Between frames a connection
 * may stay open and idle as long as the sender likes (MLLP connections are long-lived).
 *
 * The listener is given the `HisLink` (the composition root builds it); it builds nothing itself.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Hl7Config } from '../config.js';
import type { HisLink } from '../his/his-model.js';
import { buildAck } from './hl7-ack.js';
import { handleMessage, type Hl7HandlerOptions } from './hl7-handler.js';
import { readHeader, type Hl7Header } from './hl7-message.js';
import { CR, FS, MllpFramer, VT } from './mllp-framer.js';

export interface Hl7ListenerOptions {
  config: Pick<Hl7Config, 'host' | 'port' | 'allowedSenders' | 'maxMessageBytes' | 'patientIdIssuer' | 'nationalIdIssuer'>;
  /** The hospital link every command goes to. */
  link: HisLink;
  logger: Logger;
  /** Issuers the hospital link accepts (PACS_HIS_PATIENT_ID_ISSUERS); other identifiers of other authorities are left out. */
  acceptedIssuers?: readonly string[];
  /** A started frame whose bytes stop arriving this long is dropped and the connection closed (default 60 s). */
  frameTimeoutMs?: number;
  /** Connections open at once; a connection beyond it is closed as soon as it is accepted (default 64). */
  maxConnections?: number;
}

export interface Hl7Listener {
  /** Where it listens (the port is the real one when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Connections open now. */
  connections(): number;
  /** Stops listening, lets each connection finish the message it is applying, then closes them. */
  close(): Promise<void>;
}

type Work = { kind: 'message'; bytes: Buffer } | { kind: 'oversize'; head: Buffer };

/** How long a closing connection may take to finish the message it is applying, and a closed-after-AR peer to go. */
const DRAIN_MS = 10_000;

export async function startHl7Listener(options: Hl7ListenerOptions): Promise<Hl7Listener> {
  const { config } = options;
  const log = options.logger.child({ component: 'hl7' });
  const frameTimeoutMs = options.frameTimeoutMs ?? 60_000;
  const handler: Hl7HandlerOptions = {
    link: options.link,
    allowedSenders: config.allowedSenders,
    patientIdIssuer: config.patientIdIssuer,
    nationalIdIssuer: config.nationalIdIssuer,
    ...(options.acceptedIssuers === undefined ? {} : { acceptedIssuers: options.acceptedIssuers }),
    logger: log,
  };
  const open = new Set<Connection>();

  class Connection {
    private readonly framer = new MllpFramer(config.maxMessageBytes);
    private readonly queue: Work[] = [];
    private working: Promise<void> | null = null;
    private peerEnded = false;
    private closing = false;
    private shuttingDown = false;
    private readonly remote: string;

    constructor(private readonly socket: net.Socket) {
      this.remote = socket.remoteAddress ?? '';
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.received(chunk));
      socket.on('end', () => {
        this.peerEnded = true;
        this.finishIfIdle();
      });
      socket.on('timeout', () => {
        if (this.framer.inside) {
          log.warn({ remote: this.remote, bytes: this.framer.pendingBytes }, 'HL7 frame not finished in time: dropped (nothing applied), connection closed');
          socket.destroy();
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => log.info({ remote: this.remote, code: err.code }, 'HL7 connection error'));
      socket.on('close', () => {
        if (this.framer.inside) log.warn({ remote: this.remote, bytes: this.framer.pendingBytes }, 'HL7 connection closed inside a frame: the truncated message was dropped, nothing applied');
        open.delete(this);
        log.info({ remote: this.remote, open: open.size }, 'HL7 connection closed');
      });
      log.info({ remote: this.remote, open: open.size + 1 }, 'HL7 connection opened');
    }

    private received(chunk: Buffer): void {
      if (this.closing) return; // after an oversized frame or at shutdown: read and discarded
      for (const event of this.framer.push(chunk)) {
        if (event.kind === 'message') this.queue.push({ kind: 'message', bytes: event.bytes });
        else if (event.kind === 'oversize') {
          this.queue.push({ kind: 'oversize', head: event.head });
          this.closing = true;
        } else log.warn({ remote: this.remote, bytes: event.droppedBytes }, 'HL7 frame restarted by the sender: the unfinished frame was dropped, nothing applied');
      }
      if (this.framer.junkBytes > 0) {
        log.warn({ remote: this.remote, bytes: this.framer.junkBytes }, 'HL7 bytes outside any MLLP frame ignored');
        this.framer.junkBytes = 0;
      }
      // Only a frame in progress has a deadline: between frames the connection may idle.
      this.socket.setTimeout(this.framer.inside ? frameTimeoutMs : 0);
      if (this.queue.length > 0) {
        // One message at a time: stop reading while messages wait (bounded memory whatever the peer sends).
        if (!this.closing) this.socket.pause();
        this.work();
      }
    }

    private work(): void {
      if (this.working !== null) return;
      this.working = (async () => {
        while (this.queue.length > 0 && !this.socket.destroyed) {
          const item = this.queue.shift()!;
          if (item.kind === 'oversize') {
            this.answerOversize(item.head);
            return;
          }
          let ack: string;
          try {
            ack = (await handleMessage(item.bytes, this.remote, handler)).ack;
          } catch (err) {
            log.error({ type: (err as Error).name }, 'HL7 message handling failed');
            ack = buildAck({ header: null, code: 'AR', problems: [{ code: 207, message: 'Internal error; nothing was applied' }], controlId: 'FLERR' });
          }
          this.write(ack);
          if (this.shuttingDown) break;
        }
      })().finally(() => {
        this.working = null;
        if (!this.closing && !this.socket.destroyed) this.socket.resume();
        this.finishIfIdle();
      });
    }

    private answerOversize(head: Buffer): void {
      let header: Hl7Header | null = null;
      try {
        header = readHeader(head.toString('utf8'));
      } catch {
        header = null;
      }
      log.warn(
        { remote: this.remote, messageControlId: header?.controlId || undefined, limit: config.maxMessageBytes },
        'HL7 frame larger than PACS_HL7_MAX_MESSAGE_BYTES: refused (AR), connection closed',
      );
      const ack = buildAck({
        header,
        code: 'AR',
        problems: [{ code: 207, message: `The message is larger than this archive accepts (${config.maxMessageBytes} bytes); nothing was applied and the connection is closed` }],
        controlId: `FL${Date.now().toString(36).toUpperCase()}`,
      });
      this.write(ack);
      this.closeAfterAnswer();
    }

    /** Sends our FIN and keeps reading (discarding) until the peer closes, so no reset can destroy the answer in flight. */
    private closeAfterAnswer(): void {
      this.closing = true;
      this.socket.end();
      this.socket.resume();
      setTimeout(() => this.socket.destroy(), DRAIN_MS).unref();
    }

    private write(ack: string): void {
      if (this.socket.destroyed || this.socket.writableEnded) return;
      const body = Buffer.from(ack, 'utf8');
      const frame = Buffer.allocUnsafe(body.length + 3);
      frame[0] = VT;
      body.copy(frame, 1);
      frame[body.length + 1] = FS;
      frame[body.length + 2] = CR;
      this.socket.write(frame);
    }

    /** The peer half-closed and every message it sent was answered: close our side too. */
    private finishIfIdle(): void {
      if (this.peerEnded && this.working === null && this.queue.length === 0 && !this.socket.writableEnded) this.socket.end();
    }

    /** Shutdown: read nothing more, finish the message being applied, then close. */
    async shutdown(): Promise<void> {
      this.closing = true;
      this.shuttingDown = true;
      this.queue.length = 0;
      const working = this.working;
      if (working !== null) await Promise.race([working, new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref())]);
      // Flush the last acknowledgement before the socket goes.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000).unref();
        if (this.socket.destroyed || this.socket.writableEnded) resolve();
        else
          this.socket.end(() => {
            clearTimeout(timer);
            resolve();
          });
      });
      this.socket.destroy();
    }
  }

  const server = net.createServer({ allowHalfOpen: true }, (socket) => open.add(new Connection(socket)));
  server.maxConnections = options.maxConnections ?? 64;
  server.on('error', (err: NodeJS.ErrnoException) => log.error({ code: err.code }, 'HL7 listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.host, port: config.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  log.info({ host: config.host, port: address.port, allowedSenders: config.allowedSenders.length }, 'HL7 listener ready (MLLP)');

  return {
    host: config.host,
    port: address.port,
    connections: () => open.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...open].map((connection) => connection.shutdown()));
      await closed;
    },
  };
}
