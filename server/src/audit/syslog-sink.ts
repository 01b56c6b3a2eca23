/**
 * Sends audit records to an ATNA audit repository as syslog messages (IHE ITI-20): RFC 5424 messages
 * whose MSG is the DICOM audit XML (atna-xml.ts), over UDP (RFC 5426: one datagram per message) or TCP
 * (RFC 6587 octet counting: "LENGTH SP MESSAGE", the framing RFC 5425 uses).
 *
 * Never blocks a request: records wait in a bounded queue (oldest dropped beyond it, and the drops
 * logged with their count: the audit store keeps every record regardless); TCP reconnects with back-off
 * (0.5 s doubling to 30 s) and resends the message it was sending. Header: PRI 85 (facility 10
 * security/authorization, severity 5 notice), version 1, the record's time, this host, app-name,
 * process id, MSGID `IHE+RFC-3881`, no structured data, then a UTF-8 BOM and the XML.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AuditRecord } from './audit-record.js';
import type { AuditExporter } from './audit-trail.js';
import { auditMessageXml, type AuditSource } from './atna-xml.js';

export const SYSLOG_PRI = 10 * 8 + 5;
export const SYSLOG_MSGID = 'IHE+RFC-3881';
const MAX_QUEUED = 10_000;
/** Largest UDP payload we send (IPv4 datagram limit 65507, less headroom). */
const MAX_UDP_BYTES = 60_000;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface SyslogTarget {
  protocol: 'udp' | 'tcp';
  host: string;
  port: number;
}

/** One RFC 5424 message (without transport framing). */
export function syslogMessage(record: AuditRecord, source: AuditSource, appName: string, maxBytes = Infinity): Buffer {
  const header = `<${SYSLOG_PRI}>1 ${new Date(record.time).toISOString()} ${headerField(source.hostname, 255)} ${headerField(appName, 48)} ${process.pid} ${SYSLOG_MSGID} - `;
  let message = Buffer.concat([Buffer.from(header, 'utf8'), BOM, Buffer.from(auditMessageXml(record, source), 'utf8')]);
  if (message.length > maxBytes) message = Buffer.concat([Buffer.from(header, 'utf8'), BOM, Buffer.from(auditMessageXml(record, source, { compact: true }), 'utf8')]);
  return message;
}

/** RFC 5424 header fields: printable US-ASCII without spaces, bounded length, "-" when empty. */
function headerField(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

export class SyslogExporter implements AuditExporter {
  private readonly queue: Buffer[] = [];
  private dropped = 0;
  private socket: net.Socket | undefined;
  private udp: dgram.Socket | undefined;
  private connecting = false;
  private pumping = false;
  private closed = false;
  private backoffMs = 500;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly target: SyslogTarget,
    private readonly source: AuditSource,
    private readonly log: Logger,
    private readonly appName = 'filmless-pacs',
  ) {}

  export(record: AuditRecord): void {
    if (this.closed) return;
    const message = syslogMessage(record, this.source, this.appName, this.target.protocol === 'udp' ? MAX_UDP_BYTES : Infinity);
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 1000 === 0) this.log.error({ dropped: this.dropped }, 'audit syslog queue full: oldest messages dropped (they remain in the audit store)');
    }
    this.queue.push(message);
    void this.pump();
  }

  /** Resolves once everything queued has been handed to the network (tests). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    // Give queued messages a moment to leave, then stop.
    await Promise.race([this.idle(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.socket?.destroy();
    this.udp?.close();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const message = this.queue[0]!;
        const sent = this.target.protocol === 'udp' ? await this.sendUdp(message) : await this.sendTcp(message);
        if (!sent) return; // TCP down: the retry timer pumps again after reconnecting
        this.queue.shift();
      }
    } finally {
      this.pumping = false;
      if (this.queue.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private sendUdp(message: Buffer): Promise<boolean> {
    if (this.udp === undefined) {
      this.udp = dgram.createSocket(net.isIPv6(this.target.host) ? 'udp6' : 'udp4');
      this.udp.on('error', () => undefined);
      this.udp.unref();
    }
    return new Promise((resolve) =>
      this.udp!.send(message, this.target.port, this.target.host, (err) => {
        // UDP is fire-and-forget (RFC 5426): an unreachable collector loses the datagram, never blocks us.
        if (err) this.log.warn({ code: (err as NodeJS.ErrnoException).code }, 'audit syslog datagram not sent');
        resolve(true);
      }),
    );
  }

  private async sendTcp(message: Buffer): Promise<boolean> {
    const socket = await this.connected();
    if (socket === undefined) return false;
    const frame = Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
    return new Promise((resolve) => {
      socket.write(frame, (err) => {
        if (err) {
          this.dropConnection();
          resolve(false);
        } else resolve(true);
      });
    });
  }

  private connected(): Promise<net.Socket | undefined> {
    if (this.socket !== undefined && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (this.connecting || this.retryTimer !== undefined) return Promise.resolve(undefined);
    this.connecting = true;
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.target.host, port: this.target.port });
      socket.setNoDelay(true);
      socket.unref();
      const fail = () => {
        this.connecting = false;
        socket.destroy();
        this.log.warn({ host: this.target.host, port: this.target.port, retryInMs: this.backoffMs }, 'audit syslog collector unreachable');
        this.scheduleRetry();
        resolve(undefined);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        this.connecting = false;
        this.backoffMs = 500;
        this.socket = socket;
        socket.on('error', () => this.dropConnection());
        socket.on('close', () => this.dropConnection());
        socket.on('data', () => undefined); // collectors do not answer; ignore anything they send
        resolve(socket);
      });
    });
  }

  private dropConnection(): void {
    if (this.socket === undefined) return;
    this.socket.destroy();
    this.socket = undefined;
    if (!this.closed && this.queue.length > 0) this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.pump();
    }, delay);
    this.retryTimer.unref();
  }
}
