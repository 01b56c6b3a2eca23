/**
 * Who this process is in a cluster (cluster-primary.ts forks it): its slot, 0 to PACS_WORKERS − 1,
 * handed down in the environment, and whether it runs the background duties (worker 0 only, unless
 * PACS_BACKGROUND_DUTIES=false). Outside a cluster: undefined.
 */
import cluster from 'node:cluster';
import type { Config } from '../config.js';

/** Set by the primary for each worker it forks; not a setting. */
export const SLOT_VARIABLE = 'PACS_CLUSTER_SLOT';

export interface WorkerIdentity {
  /** 0 … PACS_WORKERS − 1; a replacement keeps the slot of the worker it replaces. */
  readonly slot: number;
  /** Worker 0 runs the duties only one process on the index may run (services.ts `backgroundDuties`). */
  readonly duties: boolean;
}

export function clusterWorkerIdentity(config: Pick<Readonly<Config>, 'cluster'>, env: NodeJS.ProcessEnv = process.env): WorkerIdentity | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(env[SLOT_VARIABLE] ?? Number.NaN);
  if (!Number.isInteger(slot) || slot < 0) throw new Error(`a cluster worker started without ${SLOT_VARIABLE}`);
  return { slot, duties: config.cluster.backgroundDuties && slot === 0 };
}
