/**
 * Every log line the test suite's servers write, in one folder per run (PACS_TEST_LOG_DIR, made by the
 * global setup in log-phi-global.ts), so that the run's end can check them all for patient names and
 * IDs. In-process apps write through `testLogDestination()`; spawned servers' output is appended by
 * `appendCapturedLog()`.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';

export const TEST_LOG_DIR_ENV = 'PACS_TEST_LOG_DIR';

function captureFile(kind: string): string | undefined {
  const dir = process.env[TEST_LOG_DIR_ENV];
  return dir === undefined || dir === '' ? undefined : path.join(dir, `${kind}-${process.pid}.log`);
}

/** Where an in-process logger of this test worker appends (synchronously: a worker may exit any time). */
export function testLogDestination(): DestinationStream | undefined {
  const file = captureFile('worker');
  return file === undefined ? undefined : pino.destination({ dest: file, append: true, sync: true, mkdir: true });
}

/**
 * A logger for tests that build services by hand: it logs at info like a real server (a silent logger
 * would hide patient data written to logs) into the run's capture, and nowhere when not capturing.
 */
export function testLogger(): Logger {
  const destination = testLogDestination();
  return destination === undefined ? pino({ level: 'silent' }) : pino({ level: 'info' }, destination);
}

/** Output of a server process the test spawned (main.ts, worker.ts), added to the capture. */
export function appendCapturedLog(kind: string, output: string): void {
  const file = captureFile(kind);
  if (file !== undefined && output !== '') appendFileSync(file, output.endsWith('\n') ? output : `${output}\n`);
}
