/**
 * Entry point of the consistency check (`npm run fsck`, and `node server/dist/fsck.js [--repair]` in the
 * production image): opens the configured blob store and index (services.ts) from the same environment
 * as the server, runs archive/fsck.ts and prints its report.
 *
 * Exit status: 0 when no problem is left (none found, or all repaired), 1 when problems remain,
 * 2 when the configuration or the command line is wrong.
 */
import pino from 'pino';
import { formatFsckReport, runFsck, unresolvedProblems } from './archive/fsck.js';
import { createChangeFeed } from './changes/create-change-feed.js';
import { loadConfig } from './config.js';
import { isAppError } from './errors.js';
import { openStorage } from './services.js';

const USAGE = 'usage: npm run fsck -- [--repair] [--min-age SECONDS] [--size-only]';

interface FsckArgs {
  repair: boolean;
  minAgeSeconds?: number;
  sizeOnly: boolean;
}

function parseArgs(argv: readonly string[]): FsckArgs {
  const parsed: FsckArgs = { repair: false, sizeOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--repair') parsed.repair = true;
    else if (arg === '--size-only') parsed.sizeOnly = true;
    else if (arg === '--min-age' && /^\d+$/.test(argv[i + 1] ?? '')) parsed.minAgeSeconds = Number(argv[++i]);
    else throw new Error(`unknown or incomplete option "${arg}"\n${USAGE}`);
  }
  return parsed;
}

function messageOf(err: unknown): string {
  if (isAppError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

async function runFsckCommand(argv: readonly string[], write: (text: string) => void = (t) => void process.stdout.write(t)): Promise<number> {
  let args: FsckArgs;
  let config;
  try {
    args = parseArgs(argv);
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${messageOf(err)}\n`);
    return 2;
  }
  try {
    const storage = await openStorage(config);
    try {
      const minAgeSeconds = args.minAgeSeconds ?? config.orphanMinAgeSeconds;
      write(`fsck of index ${config.index.kind} and blob store ${config.blobStore.kind}${args.repair ? ' (repair)' : ''}; orphans older than ${minAgeSeconds} s\n\n`);
      const report = await runFsck(storage.blobStore, storage.catalog, { repair: args.repair, minAgeMs: minAgeSeconds * 1000, verifyChecksums: !args.sizeOnly });
      write(formatFsckReport(report));
      // Rows a repair removed may be cached by running servers on the index: they flush (change feed).
      if (args.repair) {
        try {
          const feed = await createChangeFeed(config, pino({ level: 'warn' }));
          await feed.publish({ kind: 'flush', reason: 'announced' });
          await feed.close();
        } catch (err) {
          process.stderr.write(`the repair could not be announced to running servers (they may answer from their caches for up to 60 s): ${messageOf(err)}\n`);
        }
      }
      const left = unresolvedProblems(report).length;
      write(left === 0 ? '\nindex and blob store agree\n' : `\n${left} problem(s) left${args.repair ? '' : ': run with --repair to fix them'}\n`);
      return left === 0 ? 0 : 1;
    } finally {
      await storage.close();
    }
  } catch (err) {
    process.stderr.write(`fsck failed: ${messageOf(err)}\n`);
    return 2;
  }
}

process.exit(await runFsckCommand(process.argv.slice(2)));
