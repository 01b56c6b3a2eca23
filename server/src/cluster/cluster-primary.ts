/**
 * The cluster's primary process (PACS_WORKERS > 1): it builds no services and serves nothing itself.
 * It forks one `node:cluster` worker per slot (each a whole server: HTTP, DIMSE, HL7 on the shared
 * ports, every listening socket handed out by the primary), replaces a worker that dies, and on
 * SIGTERM/SIGINT lets every worker drain before it exits.
 *
 * - **Start**: worker 0 first, alone, until it listens: it migrates the index schema and creates the
 *   side tables, and runs the background duties (cluster-worker.ts); then the others, together, which
 *   find the schema made. Worker 0 failing to start fails the start (exit 1).
 * - **A worker dies** (crash, SIGKILL, out of memory): the connections it held are lost (clients
 *   retry; ingest is crash-safe and idempotent, docs/architecture.md "Crash safety"), the primary stops
 *   handing it connections and forks a replacement in the same slot (worker 0's replacement takes the
 *   duties over; they never run twice, as the old one is gone). One that died within 10 s of its start
 *   waits before the next try: 1 s, doubled per quick death, at most 30 s.
 * - **SIGTERM/SIGINT**: no more replacements; each worker gets SIGTERM and drains as a single server
 *   does (main.ts: HL7 message in hand, DIMSE associations, HTTP requests in flight, live recordings);
 *   past the grace time (PACS_SHUTDOWN_GRACE_SECONDS) what is left is killed. A worker whose primary
 *   disappears (SIGKILL) exits at once (node:cluster).
 *
 * Connections are spread by the primary round robin (Node's default on Linux, NODE_CLUSTER_SCHED_POLICY):
 * one TCP connection, hence one live WebSocket, one DIMSE association, one MLLP link, stays in one worker.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { SLOT_VARIABLE } from './cluster-worker.js';

export interface ClusterPrimaryOptions {
  workers: number;
  shutdownGraceMs: number;
  logger: Logger;
}

const QUICK_DEATH_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

interface Slot {
  worker: Worker | undefined;
  startedAt: number;
  quickDeaths: number;
  restart: NodeJS.Timeout | undefined;
}

/** Runs the primary until SIGTERM/SIGINT (then exits the process) or until worker 0 cannot start (exit 1). */
export async function runClusterPrimary(options: ClusterPrimaryOptions): Promise<void> {
  const { logger } = options;
  const slots: Slot[] = Array.from({ length: options.workers }, () => ({ worker: undefined, startedAt: 0, quickDeaths: 0, restart: undefined }));
  let stopping = false;

  /** Forks the worker of `slot`; resolves when it listens, rejects when it exits first. */
  const fork = (index: number): Promise<void> => {
    const slot = slots[index]!;
    slot.restart = undefined;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ [SLOT_VARIABLE]: String(index) });
    slot.worker = worker;
    const pid = worker.process.pid;
    logger.info({ slot: index, pid, duties: index === 0 }, 'cluster worker starting');
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      worker.once('listening', () => {
        listening = true;
        resolve();
      });
      worker.once('exit', (code, signal) => {
        if (slot.worker === worker) slot.worker = undefined;
        if (!listening) reject(new Error(`worker ${index} exited before it listened (code ${code}, signal ${signal})`));
        if (stopping) return;
        const lived = Date.now() - slot.startedAt;
        slot.quickDeaths = lived < QUICK_DEATH_MS ? slot.quickDeaths + 1 : 0;
        const delay = slot.quickDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (slot.quickDeaths - 1));
        logger.error({ slot: index, pid, code, signal, livedMs: lived, restartInMs: delay }, 'cluster worker died; a replacement is started');
        slot.restart = setTimeout(() => {
          if (!stopping) fork(index).catch((err: unknown) => logger.error({ slot: index, err: { message: (err as Error).message } }, 'a replacement worker did not start'));
        }, delay);
      });
    });
  };

  const allExited = () => slots.every((slot) => slot.worker === undefined);
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: slots.filter((s) => s.worker !== undefined).length }, 'stopping the cluster: workers drain');
    for (const slot of slots) if (slot.restart !== undefined) clearTimeout(slot.restart);
    for (const slot of slots) slot.worker?.process.kill('SIGTERM');
    const deadline = Date.now() + options.shutdownGraceMs;
    while (!allExited() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const [index, slot] of slots.entries()) {
      if (slot.worker === undefined) continue;
      logger.warn({ slot: index, pid: slot.worker.process.pid }, 'a worker did not drain within PACS_SHUTDOWN_GRACE_SECONDS: killed');
      slot.worker.process.kill('SIGKILL');
    }
    process.exit(0);
  };
  // `on`, not `once`: a second signal (Ctrl-C twice, SIGINT then SIGTERM) must not kill the primary mid-drain.
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  try {
    await fork(0);
    await Promise.all(slots.slice(1).map((_, i) => fork(i + 1)));
  } catch (err) {
    if (stopping) return;
    logger.fatal({ err: { message: (err as Error).message } }, 'the cluster could not start');
    stopping = true;
    for (const slot of slots) slot.worker?.process.kill('SIGTERM');
    process.exit(1);
  }
  logger.info({ workers: options.workers }, 'cluster ready: every worker listens');
}
