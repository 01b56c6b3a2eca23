/** The in-process job queue, and the PACS_JOBS_* settings. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { InProcessQueue, messageId, type QueueMessage } from './job-queue.js';

describe('the in-process job queue', () => {
  it('runs messages in order, at most `concurrency` at once, keeps one copy of a message queued twice, and drops a cancelled job', async () => {
    const queue = new InProcessQueue();
    const seen: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const release: Array<() => void> = [];
    await queue.add([
      { kind: 'plan', jobId: 'a' },
      { kind: 'unit', jobId: 'a', unit: 0 },
      { kind: 'unit', jobId: 'a', unit: 0 },
      { kind: 'unit', jobId: 'b', unit: 0 },
      { kind: 'unit', jobId: 'a', unit: 1 },
    ]);
    await queue.discard('b');
    await queue.startWorkers(async (m: QueueMessage) => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      seen.push(messageId(m));
      await new Promise<void>((resolve) => release.push(resolve));
      running -= 1;
    }, 2);
    for (let i = 0; i < 10 && seen.length < 3; i += 1) {
      release.splice(0).forEach((r) => r());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    release.splice(0).forEach((r) => r());
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(seen).toEqual(['a_plan', 'a_u0', 'a_u1']);
    expect(maxRunning).toBe(2);
    await queue.close();
  });

  it('close() waits for the running message and takes no more', async () => {
    const queue = new InProcessQueue();
    let finished = false;
    const handled: string[] = [];
    await queue.startWorkers(async (m) => {
      handled.push(messageId(m));
      await new Promise((resolve) => setTimeout(resolve, 50));
      finished = true;
    }, 1);
    await queue.add([{ kind: 'plan', jobId: 'x' }, { kind: 'finalize', jobId: 'x' }]);
    await queue.close();
    expect(finished).toBe(true);
    expect(handled).toEqual(['x_plan']);
    await queue.add([{ kind: 'plan', jobId: 'y' }]);
    expect(handled).toEqual(['x_plan']);
  });
});

describe('PACS_JOBS_* settings', () => {
  it('defaults to the embedded in-process queue with workers in the server', () => {
    expect(loadConfig({}, '/srv').jobs).toEqual({
      queue: 'inprocess',
      redisUrl: 'redis://127.0.0.1:6379',
      redisPrefix: 'filmless',
      workersInProcess: true,
      concurrency: 1,
      windowsPerUnit: 16,
      stalledSeconds: 30,
    });
  });

  it('reads BullMQ settings and reports bad values with the others', () => {
    const jobs = loadConfig({ PACS_JOBS_QUEUE: 'bullmq', PACS_REDIS_URL: 'redis://redis:6379/2', PACS_JOBS_WORKERS_IN_PROCESS: 'false', PACS_JOBS_WINDOWS_PER_UNIT: '4' }, '/srv').jobs;
    expect(jobs).toMatchObject({ queue: 'bullmq', redisUrl: 'redis://redis:6379/2', workersInProcess: false, windowsPerUnit: 4 });
    expect(() => loadConfig({ PACS_JOBS_QUEUE: 'kafka', PACS_JOBS_WINDOWS_PER_UNIT: '0' }, '/srv')).toThrow(/PACS_JOBS_QUEUE must be one of inprocess, bullmq[\s\S]*PACS_JOBS_WINDOWS_PER_UNIT must be between 1 and 4096/);
  });
});
