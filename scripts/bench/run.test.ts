/**
 * A benchmark interrupted by Ctrl-C stops everything it started (servers, a private PostgreSQL) before
 * the process exits, although the signal arrives twice (from the terminal and relayed by tsx) and the
 * benchmark's own cleanup may run at the same time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BenchRun } from './run.js';

const signals = ['SIGINT', 'SIGTERM'] as const;
const before = new Map(signals.map((s) => [s, process.listeners(s)]));

afterEach(() => {
  vi.restoreAllMocks();
  for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.removeListener(s, l);
});

function slowServer(name: string, events: string[]) {
  return {
    name,
    stop: vi.fn(async () => {
      events.push(`${name} stopping`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      events.push(`${name} stopped`);
    }),
  };
}

describe('stopping what a benchmark started', () => {
  it('a second cleanup waits until the first has stopped everything, and stops nothing twice', async () => {
    const events: string[] = [];
    const run = new BenchRun();
    const server = slowServer('server', events);
    const database = slowServer('database', events);
    run.running.push(server, database);
    const first = run.cleanup(false).then(() => events.push('first done'));
    const second = run.cleanup(false).then(() => events.push('second done'));
    await Promise.all([first, second]);
    expect(events).toEqual(['server stopping', 'server stopped', 'database stopping', 'database stopped', 'first done', 'second done']);
    expect(server.stop).toHaveBeenCalledTimes(1);
    expect(database.stop).toHaveBeenCalledTimes(1);
  });

  it('Ctrl-C twice: the process exits once, after every server has stopped', async () => {
    const events: string[] = [];
    const exited = new Promise<number>((resolve) => {
      vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
        events.push(`exit ${code}`);
        resolve(code);
      }) as never);
    });
    const run = new BenchRun();
    run.running.push(slowServer('server', events), slowServer('database', events));
    const listening = process.listenerCount('SIGINT');
    process.emit('SIGINT');
    // Still listening: a real second signal with no listener would take Node's default action and kill
    // the process in the middle of the cleanup.
    expect(process.listenerCount('SIGINT')).toBe(listening);
    process.emit('SIGINT');
    expect(await exited).toBe(130);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual(['server stopping', 'server stopped', 'database stopping', 'database stopped', 'exit 130']);
  });
});
