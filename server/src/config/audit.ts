/** Audit trail section (PACS_AUDIT_*): the ATNA syslog export and whether requests fail closed. */
import type { EnvReader } from './env-reader.js';

/** Audit trail (server/src/audit): where records are also sent, and whether requests wait for it. */
export interface AuditConfig {
  /** PACS_AUDIT_SYSLOG: the ATNA audit repository (RFC 5424 syslog over UDP or TCP); null: off. */
  syslog: { protocol: 'udp' | 'tcp'; host: string; port: number } | null;
  /** PACS_AUDIT_FAIL_CLOSED: refuse protected requests (503) while audit records cannot be written. */
  failClosed: boolean;
}

export function readAuditConfig(read: EnvReader): AuditConfig {
  return { syslog: readAuditSyslog(read), failClosed: read.boolean('PACS_AUDIT_FAIL_CLOSED', true) };
}

/** PACS_AUDIT_SYSLOG: `udp://host:514` or `tcp://host:6514`; empty: no syslog export. */
function readAuditSyslog(read: EnvReader): AuditConfig['syslog'] {
  const raw = read.string('PACS_AUDIT_SYSLOG', '').trim();
  if (raw === '') return null;
  const match = /^(udp|tcp):\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(raw);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) {
    read.problems.push(`PACS_AUDIT_SYSLOG must be udp://host:port or tcp://host:port (e.g. udp://audit.example.org:514), got "${raw}"`);
    return null;
  }
  return { protocol: match[1] as 'udp' | 'tcp', host: match[2]!.replace(/^\[|\]$/g, ''), port };
}
