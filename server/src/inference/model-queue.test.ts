import { describe, expect, it } from 'vitest';
import { ServiceBusyError } from '../errors.js';
import { DeadlineExpiredError, ModelQueue, type BatchRunner } from './model-queue.js';

/** A runner whose batches finish only when the test says so. */
class HeldRunner implements BatchRunner<number, number> {
  readonly batches: number[][] = [];
  private releases: Array<() => void> = [];
  async run(inputs: number[]): Promise<number[]> {
    this.batches.push(inputs);
    await new Promise<void>((resolve) => this.releases.push(resolve));
    return inputs.map((i) => i * 10);
  }
  releaseOne(): void {
    this.releases.shift()?.();
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('the bounded queue in front of a model', () => {
  it('batches the requests that waited while the model was busy, and answers each with its own output', async () => {
    const runner = new HeldRunner();
    const queue = new ModelQueue('m', runner, 4, 10);
    const first = queue.submit(1);
    await tick();
    const rest = [queue.submit(2), queue.submit(3), queue.submit(4)];
    runner.releaseOne();
    await tick();
    runner.releaseOne();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
    expect(runner.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('refuses at once with SERVICE_BUSY and a retry delay when the waiting line is full, and recovers after', async () => {
    const runner = new HeldRunner();
    const queue = new ModelQueue('m', runner, 1, 2);
    const running = queue.submit(1);
    await tick();
    const waiting = [queue.submit(2), queue.submit(3)];
    const refused = queue.submit(4);
    await expect(refused).rejects.toBeInstanceOf(ServiceBusyError);
    await expect(refused).rejects.toMatchObject({ code: 'SERVICE_BUSY' });
    expect(((await refused.catch((e: unknown) => e)) as ServiceBusyError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(queue.stats()).toMatchObject({ waiting: 2, refused: 1 });
    for (let i = 0; i < 3; i += 1) {
      runner.releaseOne();
      await tick();
    }
    expect(await running).toBe(10);
    expect(await Promise.all(waiting)).toEqual([20, 30]);
    const after = queue.submit(5);
    await tick();
    runner.releaseOne();
    expect(await after).toBe(50);
  });

  it('fails every request of a batch whose run throws, and keeps serving the next ones', async () => {
    let calls = 0;
    const queue = new ModelQueue<number, number>('m', { run: async (inputs) => { calls += 1; if (calls === 1) throw new Error('boom'); return inputs; } }, 2, 10);
    await expect(queue.submit(1)).rejects.toThrow('boom');
    expect(await queue.submit(7)).toBe(7);
  });

  it('does not run requests that became stale while they waited', async () => {
    const runner = new HeldRunner();
    const queue = new ModelQueue('m', runner, 4, 10);
    const running = queue.submit(1);
    await tick();
    let late = false;
    const stale = queue.submit(2, () => late);
    const fresh = queue.submit(3, () => false);
    late = true;
    runner.releaseOne();
    await expect(stale).rejects.toBeInstanceOf(DeadlineExpiredError);
    await tick();
    runner.releaseOne();
    expect(await running).toBe(10);
    expect(await fresh).toBe(30);
    expect(runner.batches).toEqual([[1], [3]]);
  });
});
