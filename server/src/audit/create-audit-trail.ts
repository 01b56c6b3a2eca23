/** Builds the audit trail from the configuration: the store in the index database, the syslog export. */
import os from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { AuditSource } from './atna-xml.js';
import { KyselyAuditStore } from './audit-store.js';
import { AuditTrail } from './audit-trail.js';
import { SyslogExporter } from './syslog-sink.js';

export function auditSourceOf(config: Pick<Readonly<Config>, 'dimse'>): AuditSource {
  return { sourceId: 'filmless-pacs', hostname: os.hostname(), ...(config.dimse.enabled ? { aeTitle: config.dimse.aeTitle } : {}) };
}

export async function createAuditTrail(config: Pick<Readonly<Config>, 'index' | 'audit' | 'dimse'>, log: Logger): Promise<AuditTrail> {
  const store = await KyselyAuditStore.open(config.index);
  const exporters = config.audit.syslog === null ? [] : [new SyslogExporter(config.audit.syslog, auditSourceOf(config), log)];
  return new AuditTrail(store, log, { failClosed: config.audit.failClosed, exporters });
}
