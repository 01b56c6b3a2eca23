/**
 * Entry point of the restore (`npm run restore`, and `node server/dist/restore.js` in the production
 * image; docs/operations.md, "Restore"), with the server stopped and the same environment as the
 * server (PACS_BACKUP_STORE naming the backup store):
 *
 *   1. the newest index backup (or `--backup ID`) is put in place (backup/restore-procedure.ts);
 *   2. the restored index is opened (and migrated); blob copies it does not reference are re-indexed
 *      through the archive's ingest (instances stored after the backup), blobs it references and the
 *      primary store lacks are copied back, sha256 checked;
 *   3. fsck (archive/fsck.ts) runs on the result; both reports are printed (and written as JSON with
 *      `--report FILE`); the restore is recorded in the restored audit trail.
 *
 * Exit status: 0 when everything indexed is back and fsck is clean, 1 when the report names a gap (lost
 * or corrupt blobs, copies that failed to re-index, fsck problems), 2 when the command line, the
 * configuration or the restore itself failed.
 */
import { writeFile } from 'node:fs/promises';
import pino, { type Logger } from 'pino';
import { Archive } from './archive/archive.js';
import { formatFsckReport, runFsck, unresolvedProblems } from './archive/fsck.js';
import { createAuditTrail } from './audit/create-audit-trail.js';
import { BackupStore } from './backup/backup-store.js';
import { chooseGeneration, emptyRestoreReport, formatRestoreReport, restoreBlobs, restoreComplete, restoreIndex, type Reindex } from './backup/restore-procedure.js';
import { loadConfig, type Config } from './config.js';
import { isAppError } from './errors.js';
import { openStorage } from './services.js';
import { createBlobStore } from './storage/create-blob-store.js';

const USAGE = 'usage: npm run restore -- [--backup ID] [--force] [--skip-index] [--report FILE]';

interface RestoreArgs {
  backup?: string;
  force: boolean;
  skipIndex: boolean;
  reportFile?: string;
}

function parseArgs(argv: readonly string[]): RestoreArgs {
  const parsed: RestoreArgs = { force: false, skipIndex: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--force') parsed.force = true;
    else if (arg === '--skip-index') parsed.skipIndex = true;
    else if (arg === '--backup' && /^[A-Za-z0-9-]+$/.test(argv[i + 1] ?? '')) parsed.backup = argv[++i]!;
    else if (arg === '--report' && (argv[i + 1] ?? '') !== '') parsed.reportFile = argv[++i]!;
    else throw new Error(`unknown or incomplete option "${arg}"\n${USAGE}`);
  }
  return parsed;
}

function messageOf(err: unknown): string {
  if (isAppError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

async function restore(config: Readonly<Config>, args: RestoreArgs, write: (text: string) => void): Promise<number> {
  const backupConfig = config.backup.store!;
  const backupStore = await createBlobStore(backupConfig);
  try {
    const generation = args.skipIndex ? undefined : await chooseGeneration(backupStore, args.backup);
    const report = emptyRestoreReport(generation);
    if (generation !== undefined) {
      write(`restoring index backup ${generation.id} (taken ${generation.createdAt}) into ${config.index.kind}\n`);
      report.previousIndexMovedTo = await restoreIndex(backupStore, config.index, generation, args.force);
    }
    const storage = await openStorage(config);
    const backupTables = await BackupStore.open(config.index);
    const logger = pino({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
    try {
      const archive = new Archive(storage.blobStore, storage.catalog, logger, {
        maxHeaderBytes: config.stow.maxHeaderBytes,
        maxNesting: config.limits.dicomMaxNesting,
        decodeMaxBytes: config.limits.decodeMaxBytes,
      });
      const reindex: Reindex = async (blob) => {
        const result = await (await archive.scanAndStore(blob)).completion;
        return result.ok
          ? { ok: true, item: { studyInstanceUid: result.item.studyInstanceUid, seriesInstanceUid: result.item.seriesInstanceUid, sopInstanceUid: result.item.sopInstanceUid } }
          : { ok: false, reason: `failure 0x${result.failure.failureReason.toString(16).toUpperCase()}: ${result.failure.message}` };
      };
      write('copying blobs back and re-indexing those stored after the backup\n\n');
      await restoreBlobs({ catalog: storage.catalog, primary: storage.blobStore, backupStore, backupTables, reindex, report });
      write(formatRestoreReport(report));
      write('\nfsck of the restored archive\n\n');
      const fsck = await runFsck(storage.blobStore, storage.catalog, { repair: false, minAgeMs: config.orphanMinAgeSeconds * 1000 });
      write(formatFsckReport(fsck));
      const left = unresolvedProblems(fsck).length;
      const complete = restoreComplete(report) && left === 0;
      write(complete ? '\nrestore complete: index and blob store agree\n' : `\nrestore finished with gaps: ${left} fsck problem(s); see the lists above\n`);
      if (args.reportFile !== undefined) await writeFile(args.reportFile, JSON.stringify({ restore: report, fsck }, null, 2));
      await recordRestore(config, logger, report, complete);
      return complete ? 0 : 1;
    } finally {
      await backupTables.close();
      await storage.close();
    }
  } finally {
    await backupStore.close();
  }
}

/** The restore, in the restored audit trail (its own database is part of the index backup). */
async function recordRestore(config: Readonly<Config>, logger: Logger, report: ReturnType<typeof emptyRestoreReport>, complete: boolean): Promise<void> {
  const audit = await createAuditTrail(config, logger);
  try {
    audit.record({
      time: Date.now(),
      action: 'backup',
      outcome: complete ? 0 : 4,
      status: complete ? 200 : 206,
      who: { subject: 'filmless-pacs restore', kind: 'system' },
      clientAddress: '',
      interface: 'admin',
      route: 'npm run restore',
      objects: report.recovered.map((r) => ({ study: r.studyInstanceUid, series: r.seriesInstanceUid, instance: r.sopInstanceUid })).slice(0, 1000),
      detail: {
        restore: true,
        backup: report.backup?.id ?? 'none',
        copiedBack: report.copiedBack,
        recovered: report.recovered.length,
        lost: report.lost.length,
        corrupt: report.corrupt.length,
      },
    });
  } finally {
    await audit.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let args: RestoreArgs;
  let config: Readonly<Config>;
  try {
    args = parseArgs(argv);
    config = loadConfig();
    if (config.backup.store === null) throw new Error('No backup store is configured: set PACS_BACKUP_STORE (and PACS_BACKUP_DIR or PACS_BACKUP_S3_*) as for the server');
  } catch (err) {
    process.stderr.write(`${messageOf(err)}\n`);
    return 2;
  }
  try {
    return await restore(config, args, (text) => void process.stdout.write(text));
  } catch (err) {
    process.stderr.write(`restore failed: ${messageOf(err)}\n`);
    return 2;
  }
}

process.exit(await main(process.argv.slice(2)));
