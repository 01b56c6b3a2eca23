/** What an administrator gets from PACS_WORKERS, PACS_BACKGROUND_DUTIES and PACS_SHUTDOWN_GRACE_SECONDS. */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { autoWorkers } from '../config/cluster.js';

describe('cluster settings', () => {
  it('uses every core by default: one worker per core this process may use, worker 0 with the duties', () => {
    const { cluster } = loadConfig({}, '/srv/pacs');
    expect(cluster).toEqual({ workers: autoWorkers(os.availableParallelism()), workersAuto: true, backgroundDuties: true, shutdownGraceSeconds: 30 });
  });

  it('runs one process on a machine of one or two cores, where a second worker measured slower, and one per core above', () => {
    expect([1, 2, 3, 4, 16, 200].map(autoWorkers)).toEqual([1, 1, 3, 4, 16, 64]);
  });

  it('takes a number of workers, 1 meaning no cluster', () => {
    expect(loadConfig({ PACS_WORKERS: '3' }, '/srv/pacs').cluster.workers).toBe(3);
    expect(loadConfig({ PACS_WORKERS: '1' }, '/srv/pacs').cluster).toMatchObject({ workers: 1, workersAuto: false });
    expect(loadConfig({ PACS_WORKERS: 'AUTO', PACS_BACKGROUND_DUTIES: 'false', PACS_SHUTDOWN_GRACE_SECONDS: '5' }, '/srv/pacs').cluster).toMatchObject({ workersAuto: true, backgroundDuties: false, shutdownGraceSeconds: 5 });
  });

  it('refuses a worker count that is not 1 to 64 or auto, naming the variable', () => {
    for (const bad of ['0', '65', 'two', '-1', '1.5']) {
      expect(() => loadConfig({ PACS_WORKERS: bad }, '/srv/pacs')).toThrow(/PACS_WORKERS must be a number of processes from 1 to 64, or auto/);
    }
  });

  it('keeps one process with the in-process change feed (its caches would go stale in the others)', () => {
    expect(loadConfig({ PACS_CHANGE_FEED: 'memory' }, '/srv/pacs').cluster.workers).toBe(1);
    expect(() => loadConfig({ PACS_CHANGE_FEED: 'memory', PACS_WORKERS: '2' }, '/srv/pacs')).toThrow(/PACS_CHANGE_FEED=memory keeps the caches of one process only/);
  });
});
