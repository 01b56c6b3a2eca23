/**
 * Cluster section (PACS_WORKERS, PACS_BACKGROUND_DUTIES, PACS_SHUTDOWN_GRACE_SECONDS): how many server
 * processes one machine runs on the shared HTTP, DIMSE and HL7 ports (server/src/cluster,
 * docs/architecture.md "Every core: the cluster").
 */
import os from 'node:os';
import type { EnvReader } from './env-reader.js';

export interface ClusterConfig {
  /**
   * PACS_WORKERS: server processes (`node:cluster` workers sharing the ports), resolved: a number 1–64,
   * or `auto` (default, `autoWorkers`): one per core this process may use (`os.availableParallelism()`),
   * but one process on a machine of 1 or 2 cores. 1: no cluster, the server runs in the process started.
   */
  workers: number;
  /** Whether PACS_WORKERS was `auto` (for the start-up log). */
  workersAuto: boolean;
  /**
   * PACS_BACKGROUND_DUTIES: whether this server runs the duties only one process on the index may run
   * (purge sweep, housekeeping runs, backup replication and index backups, slide-job resumption,
   * orphan recovery); default true. In a cluster only worker 0 runs them. Several servers on one
   * PostgreSQL index: true on exactly one of them.
   */
  backgroundDuties: boolean;
  /** PACS_SHUTDOWN_GRACE_SECONDS: how long the primary lets its workers drain on SIGTERM/SIGINT before SIGKILL (default 30). */
  shutdownGraceSeconds: number;
}

/**
 * What `auto` means on a machine of `cores` cores. On 2 cores a second worker only shares the same two
 * cores with the clients, the database and the models, and costs memory: measured side by side on the
 * same idle 2-core machine (docs/benchmarks.md, "Every core"), one process stored one instance per request
 * with 4 clients at 399 instances/s and 2.7 CPU s per 1,000 against 315 and 4.5 with two workers, the same
 * or better everywhere else, at 371 MiB peak RSS against 952 MiB. Above 2 cores: one worker per core
 * (not measured here: no larger machine was available).
 */
export function autoWorkers(cores: number): number {
  return cores <= 2 ? 1 : Math.min(64, cores);
}

export function readClusterConfig(read: EnvReader): ClusterConfig {
  const raw = read.string('PACS_WORKERS', 'auto').trim().toLowerCase();
  let workers = 1;
  const workersAuto = raw === 'auto';
  if (workersAuto) {
    workers = autoWorkers(os.availableParallelism());
  } else if (/^\d+$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 64) {
    workers = Number(raw);
  } else {
    read.problems.push(`PACS_WORKERS must be a number of processes from 1 to 64, or auto (one per core; 1 on 2 cores or fewer), got "${raw}"`);
  }
  return {
    workers,
    workersAuto,
    backgroundDuties: read.boolean('PACS_BACKGROUND_DUTIES', true),
    shutdownGraceSeconds: read.integer('PACS_SHUTDOWN_GRACE_SECONDS', 30, 1, 3600),
  };
}
