/**
 * What every benchmark against Orthanc shares: the common command-line options (`--quick`,
 * `--servers`, `--rounds`, `--keep`, `--help`), and the lifecycle of the servers it starts — each is
 * stopped and its temp storage removed on success, error or Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ORTHANC, OURS } from './report.js';
import type { TargetServer } from './target.js';
import { log } from './util.js';

export interface CommonOptions {
  quick: boolean;
  servers: string[];
  rounds: number;
  keep: boolean;
  /**
   * `--workers N|auto`: our server's PACS_WORKERS (processes sharing its ports); absent: PACS_WORKERS of
   * this environment, else the server's default (auto = one per core).
   */
  workers: string | undefined;
  flag(name: string): boolean;
  /** `--name value` or `--name=value`. */
  value(name: string): string | undefined;
}

/** Parses the shared options; `--help` prints the script's header comment and exits. */
export function parseCommonOptions(argv: string[], scriptUrl: string, defaultRounds: (quick: boolean) => number): CommonOptions {
  const flag = (name: string): boolean => argv.includes(`--${name}`);
  const value = (name: string): string | undefined => {
    const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    const a = argv[i]!;
    return a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
  };
  if (flag('help') || flag('h')) {
    process.stdout.write(fs.readFileSync(fileURLToPath(scriptUrl), 'utf8').split('*/')[0]!.replace(/^\/\*\*?|^ \* ?/gm, '') + '\n');
    process.exit(0);
  }
  const quick = flag('quick');
  const servers = (value('servers') ?? `${OURS},${ORTHANC}`).split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of servers) if (![OURS, ORTHANC].includes(s)) throw new Error(`--servers: unknown server "${s}"`);
  const rounds = Number(value('rounds') ?? defaultRounds(quick));
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const workers = value('workers')?.trim().toLowerCase();
  if (workers !== undefined && workers !== 'auto' && !/^([1-9]|[1-5]\d|6[0-4])$/.test(workers)) throw new Error('--workers must be 1..64 or auto');
  return { quick, servers, rounds, keep: flag('keep'), workers, flag, value };
}

/** The servers a benchmark started and their temp storage; stopped and removed on exit or signal. */
export class BenchRun {
  /** Servers and helper processes (e.g. an S3 server), stopped in the order they were added. */
  readonly running: Pick<TargetServer, 'name' | 'stop'>[] = [];
  interrupted = false;
  workDir: string | undefined;
  /** Keep the temp storage and logs (`--keep`). */
  keep = false;

  constructor() {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      // `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx), and a
      // second signal with no listener would kill it before the cleanup has stopped what it started.
      process.on(signal, () => {
        if (this.interrupted) return;
        this.interrupted = true;
        log(`${signal}: stopping servers`);
        void this.cleanup().finally(() => process.exit(130));
      });
    }
  }

  makeWorkDir(prefix: string): string {
    this.workDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    return this.workDir;
  }

  private stopping: Promise<void> | undefined;

  private async stopAll(): Promise<void> {
    for (const s of this.running.splice(0)) {
      try {
        await s.stop();
      } catch (err) {
        log(`stopping ${s.name}: ${(err as Error).message}`);
      }
    }
  }

  /** Stops every server; removes the temp storage too unless `removeWorkDir` is false or `keep` is set. */
  async cleanup(removeWorkDir = true): Promise<void> {
    // A signal's cleanup and the benchmark's own may overlap: the second waits until the first has
    // stopped everything, so neither exits the process while a server (or database) is still running.
    while (this.stopping !== undefined) await this.stopping;
    if (this.running.length > 0) {
      this.stopping = this.stopAll();
      try {
        await this.stopping;
      } finally {
        this.stopping = undefined;
      }
    }
    if (!removeWorkDir || !this.workDir) return;
    if (this.keep) log(`kept server storage and logs in ${this.workDir}`);
    else fs.rmSync(this.workDir, { recursive: true, force: true });
    this.workDir = undefined;
  }
}

/** Round r runs the servers in alternating order so neither always goes first (warm caches, noise). */
export function ordered<T>(servers: T[], round: number): T[] {
  return round % 2 === 0 ? servers : [...servers].reverse();
}
