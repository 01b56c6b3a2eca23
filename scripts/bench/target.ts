/**
 * The server under test, as the benchmark sees it: a child process with a DICOMweb root URL.
 * orthanc.ts and our-server.ts each build one of these.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { log, sleep } from './util.js';

export interface TargetServer {
  /** Short label used in tables: 'ours' or 'orthanc'. */
  readonly name: string;
  /** DICOMweb root without trailing slash, e.g. http://127.0.0.1:1234/dicom-web */
  readonly dicomwebRoot: string;
  /** PID of the process whose memory is measured. */
  readonly pid: number;
  /** Human-readable version / settings lines for the report. */
  readonly describe: string[];
  /** Is the process still running? */
  alive(): boolean;
  /** Last lines of the process's stdout/stderr (for error reports). */
  logTail(): string;
  stop(): Promise<void>;
}

/** Spawns a process with its output captured into a log file and a short in-memory tail. */
export function spawnLogged(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string },
): { child: ChildProcess; alive: () => boolean; logTail: () => string; stop: () => Promise<void> } {
  const out = fs.createWriteStream(options.logFile);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exited = false;
  let tail = '';
  const onData = (chunk: Buffer): void => {
    out.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exitPromise = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exited = true;
      tail += `\n[process exited: code=${code} signal=${signal}]`;
      resolve();
    });
    child.on('error', (err) => {
      exited = true;
      tail += `\n[spawn error: ${err.message}]`;
      resolve();
    });
  });
  return {
    child,
    alive: () => !exited,
    logTail: () => tail,
    stop: async () => {
      if (!exited && child.pid !== undefined) {
        child.kill('SIGTERM');
        const done = await Promise.race([exitPromise.then(() => true), sleep(15_000, { unref: true }).then(() => false)]);
        if (!done) {
          log(`${command} (pid ${child.pid}) did not stop after SIGTERM; sending SIGKILL`);
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
      out.end();
    },
  };
}
