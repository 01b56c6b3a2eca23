/**
 * The backup as administrators see it (docs/operations.md, "Backup and restore"): the blob replication
 * (blob-replicator.ts) and the index backups (index-backups.ts) on one backup store, their state for
 * `GET /api/backup/status` (the replication lag: pending copies and the age of the oldest; the last
 * index backup, its size and errors), a verification of the copies, and the index backup on request.
 * Built by services.ts in the server when PACS_BACKUP_STORE is set.
 */
import type { AuditRecord } from '../audit/audit-record.js';
import type { BackupConfig } from '../config.js';
import type { BackupStatusJson, IndexGenerationJson } from '../contracts/backup.js';
import type { IndexGeneration } from './backup-layout.js';
import type { BackupStore } from './backup-store.js';
import type { BlobReplicator, ReplicaVerification } from './blob-replicator.js';
import type { BackupAudit, IndexBackups } from './index-backups.js';

/** Where the service's own audit records go (audit/audit-trail.ts's AuditTrail). */
export interface BackupAuditSink {
  record(record: AuditRecord): void;
}

const SYSTEM = { subject: 'filmless-pacs', kind: 'system' as const };

/** The backup store named for administrators, without credentials. */
export function describeBackupStore(store: NonNullable<BackupConfig['store']>): string {
  return store.kind === 'fs' ? `fs:${store.root}` : `s3:${store.useSSL ? 'https' : 'http'}://${store.endPoint}:${store.port}/${store.bucket}${store.prefix === '' ? '' : `/${store.prefix}`}`;
}

/** Scheduled index backups audited as the system's (one on request is audited by its route). */
export function backupAudit(sink: BackupAuditSink | undefined): BackupAudit {
  return {
    indexBackedUp(generation, outcome) {
      sink?.record({
        time: Date.now(),
        action: 'backup',
        outcome,
        status: outcome === 0 ? 200 : 500,
        who: SYSTEM,
        clientAddress: '',
        interface: 'admin',
        route: 'scheduled index backup',
        objects: [],
        detail: generation === undefined ? { failed: true } : { backup: generation.id, bytes: generation.bytes, ...(generation.instances === undefined ? {} : { instances: generation.instances }) },
      });
    },
  };
}

export function generationJson(generation: IndexGeneration): IndexGenerationJson {
  return { ...generation, instances: generation.instances ?? null };
}

export class BackupService {
  constructor(
    readonly store: BackupStore,
    readonly replicator: BlobReplicator,
    readonly indexBackups: IndexBackups,
    private readonly options: { description: string; keepDeletedDays: number },
  ) {}

  /** Starts the replication (a first pass over the whole index now) and the index backup schedule. */
  async start(): Promise<void> {
    await this.replicator.start();
    this.indexBackups.start();
  }

  /** The archive's `instanceStored` hook: copy the new blob soon. */
  instanceStored(): void {
    this.replicator.nudge();
  }

  async status(now = Date.now()): Promise<BackupStatusJson> {
    const [counts, runs, generations] = await Promise.all([this.store.counts(), this.store.indexRuns(20), this.indexBackups.generations().catch(() => undefined)]);
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const lastRun = runs[0];
    const lastDone = runs.find((run) => run.state === 'done');
    const interval = this.indexBackups.intervalMinutes;
    const newest = generations?.[0];
    return {
      enabled: true,
      store: this.options.description,
      copies: {
        pending: counts.pending,
        failing: counts.failing,
        copied: counts.copied,
        deletedKept: counts.removedKept,
        bytesCopied: counts.bytesCopied,
        oldestPendingAt: iso(counts.oldestPendingAt),
        lagSeconds: counts.oldestPendingAt === undefined ? 0 : Math.max(0, Math.round((now - counts.oldestPendingAt) / 1000)),
        lastCopiedAt: iso(counts.lastCopiedAt),
        lastError: counts.lastError ?? null,
        passError: this.replicator.passError ?? null,
        keepDeletedDays: this.options.keepDeletedDays,
      },
      indexBackups: {
        intervalMinutes: interval,
        generationsKept: this.indexBackups.generationsKept,
        inProgress: this.indexBackups.inProgress,
        last: newest === undefined ? null : generationJson(newest),
        lastAttemptAt: iso(lastRun?.startedAt),
        lastError: lastRun?.state === 'failed' ? (lastRun.error ?? 'failed') : generations === undefined ? 'the backup store could not be read' : null,
        nextDueAt: interval <= 0 ? null : iso((lastDone?.startedAt ?? now) + interval * 60_000),
        generations: generations?.length ?? 0,
      },
    };
  }

  verify(checksums: boolean): Promise<ReplicaVerification> {
    return this.replicator.verify(checksums);
  }

  async runIndexBackup(): Promise<IndexGenerationJson> {
    return generationJson(await this.indexBackups.runNow());
  }

  /** Stops the schedule (a backup in progress finishes) and the replication (copies in progress finish). */
  async close(): Promise<void> {
    await this.indexBackups.close();
    await this.replicator.close();
    await this.store.close();
  }
}

/** The status when no backup store is configured. */
export const BACKUP_OFF: BackupStatusJson = { enabled: false, store: null, copies: null, indexBackups: null };
