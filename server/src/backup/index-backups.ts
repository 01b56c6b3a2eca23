/**
 * Index backups on a schedule (PACS_BACKUP_INDEX_INTERVAL_MINUTES, daily by default once a backup
 * store is configured) or on request (`POST /api/backup/index-backups`): a consistent snapshot of the
 * index (index-snapshot.ts) streamed onto the backup store as `_backup/index/<id>.<ext>` with its sha256,
 * then listed in the catalogue (backup-layout.ts); generations beyond PACS_BACKUP_INDEX_GENERATIONS are
 * deleted, oldest first. One backup at a time per process. Every run is recorded (backup-store.ts) for
 * the status API, and audited (`backup`, ATNA 110106 Export: the whole index leaves for the backup store).
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { Logger } from 'pino';
import type { IndexConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { INDEX_PREFIX, readCatalogue, writeCatalogue, type IndexGeneration } from './backup-layout.js';
import type { BackupStore } from './backup-store.js';
import { snapshotIndex } from './index-snapshot.js';

export interface IndexBackupOptions {
  index: IndexConfig;
  intervalMinutes: number;
  generations: number;
}

/** What the audit trail is told (system records, like curation's purge). */
export interface BackupAudit {
  indexBackedUp(generation: IndexGeneration | undefined, outcome: 0 | 8): void;
}

/** `2026-12-06T09-54-10-123Z`: sortable, a valid key segment. */
function backupId(now: Date): string {
  return now.toISOString().replace(/[:.]/g, '-');
}

export class IndexBackups {
  private running: Promise<IndexGeneration> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly store: BackupStore,
    private readonly target: BlobStore,
    private readonly log: Logger,
    private readonly options: IndexBackupOptions,
    private readonly audit?: BackupAudit,
  ) {}

  /** Checks every minute (or each interval, if shorter) whether a backup is due; the first check soon after start. */
  start(): void {
    if (this.options.intervalMinutes <= 0) return;
    const check = () => void this.runIfDue().catch(() => undefined);
    this.timer = setInterval(check, Math.min(60_000, this.options.intervalMinutes * 60_000));
    this.timer.unref();
    setTimeout(check, 10_000).unref();
  }

  get intervalMinutes(): number {
    return this.options.intervalMinutes;
  }

  get generationsKept(): number {
    return this.options.generations;
  }

  /** Whether a backup is being taken now. */
  get inProgress(): boolean {
    return this.running !== undefined;
  }

  private async runIfDue(): Promise<void> {
    if (this.closed || this.running !== undefined) return;
    const [last] = (await this.store.indexRuns(10)).filter((run) => run.state === 'done');
    if (last !== undefined && Date.now() - last.startedAt < this.options.intervalMinutes * 60_000) return;
    await this.run(true);
  }

  /** Takes a backup now; CONFLICT (409) while another one is being taken by this process. */
  runNow(): Promise<IndexGeneration> {
    if (this.running !== undefined) return Promise.reject(new AppError('CONFLICT', 'An index backup is already being taken'));
    return this.run(false);
  }

  /** `scheduled` runs are audited here as the system's; one on request is audited by its route. */
  private run(scheduled: boolean): Promise<IndexGeneration> {
    this.running = this.take(scheduled).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async take(scheduled: boolean): Promise<IndexGeneration> {
    const started = new Date();
    const id = backupId(started);
    try {
      const snapshot = await snapshotIndex(this.options.index);
      const key = `${INDEX_PREFIX}${id}.${snapshot.extension}`;
      const hash = createHash('sha256');
      const hasher = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      snapshot.stream.on('error', (err) => hasher.destroy(err));
      let info;
      try {
        [info] = await Promise.all([this.target.put(key, snapshot.stream.pipe(hasher)), snapshot.done]);
      } catch (err) {
        snapshot.stream.destroy();
        await this.target.delete(key).catch(() => undefined);
        throw err;
      }
      const generation: IndexGeneration = {
        id,
        key,
        engine: this.options.index.kind,
        createdAt: started.toISOString(),
        bytes: info.size,
        sha256: hash.digest('hex'),
        instances: snapshot.instances,
        tables: snapshot.tables,
      };
      await this.addToCatalogue(generation);
      await this.store.finishIndexRun(id, { objectKey: key, bytes: info.size, instances: snapshot.instances }, Date.now(), started.getTime());
      this.log.info({ backup: id, bytes: info.size, instances: snapshot.instances, ms: Date.now() - started.getTime() }, 'backup: index backed up');
      if (scheduled) this.audit?.indexBackedUp(generation, 0);
      return generation;
    } catch (err) {
      const message = err instanceof AppError ? `${err.code}: ${err.message}` : err instanceof Error ? err.name : 'error';
      this.log.error({ backup: id, err: { type: (err as Error).name, code: (err as { code?: string }).code } }, 'backup: the index backup failed');
      await this.store.finishIndexRun(id, { error: message }, Date.now(), started.getTime()).catch(() => undefined);
      if (scheduled) this.audit?.indexBackedUp(undefined, 8);
      throw err instanceof AppError ? err : new AppError('STORAGE_FAILURE', 'The index backup could not be written to the backup store', { cause: err });
    }
  }

  /** Newest first; generations beyond the number kept are deleted after the catalogue no longer lists them. */
  private async addToCatalogue(generation: IndexGeneration): Promise<void> {
    const catalogue = await readCatalogue(this.target);
    const all = [generation, ...catalogue.generations.filter((g) => g.key !== generation.key)];
    const kept = all.slice(0, this.options.generations);
    await writeCatalogue(this.target, { generations: kept });
    for (const old of all.slice(this.options.generations)) await this.target.delete(old.key).catch(() => undefined);
  }

  /** The generations on the backup store, newest first. */
  async generations(): Promise<IndexGeneration[]> {
    return (await readCatalogue(this.target)).generations;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
