/**
 * A PostgreSQL cluster of the benchmark's own, with the engine's default settings (autovacuum on), on a
 * loopback port: the shared test server of this machine runs with autovacuum off (its CI configuration),
 * which is not how a hospital's PostgreSQL runs and makes the index bloat as it grows
 * (docs/benchmarks.md, "Index growth"). Uses Debian's PostgreSQL binaries (`pg_config --bindir`); as
 * root, the cluster runs as the `postgres` user. Its folder survives a crash, so `--resume` restarts it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface PrivatePostgres {
  url: string;
  dataDir: string;
  stop(): void;
}

function binDir(): string {
  return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
}

/** Runs a PostgreSQL binary, as the `postgres` user when we are root (PostgreSQL refuses to run as root). */
function runPg(tool: string, args: string[]): void {
  const bin = path.join(binDir(), tool);
  if (process.getuid?.() === 0) execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { stdio: 'pipe' });
  else execFileSync(bin, args, { stdio: 'pipe' });
}

/** Starts (creating when new) the cluster in `dir` on `port`; database `postgres`, trust on loopback. */
export function startPrivatePostgres(dir: string, port: number): PrivatePostgres {
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dir, { recursive: true });
  if (process.getuid?.() === 0) {
    execFileSync('chown', ['postgres:', dir]);
    // The postgres user must be able to pass through the (mkdtemp, 0700) folder above.
    const parent = path.dirname(dir);
    fs.chmodSync(parent, fs.statSync(parent).mode | 0o011);
  }
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    runPg('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale', 'C.UTF-8']);
  }
  runPg('pg_ctl', ['-D', dataDir, '-l', path.join(dir, 'postgres.log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    stop() {
      try {
        runPg('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
      } catch {
        // already stopped
      }
    },
  };
}
