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
   * or `auto` (default) = the cores this process may use (`os.availableParallelism()`). 1: no cluster,
   * the server runs in the process started, as before.
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

export function readClusterConfig(read: EnvReader): ClusterConfig {
  const raw = read.string('PACS_WORKERS', 'auto').trim().toLowerCase();
  let workers = 1;
  const workersAuto = raw === 'auto';
  if (workersAuto) {
    workers = Math.max(1, Math.min(64, os.availableParallelism()));
  } else if (/^\d+$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 64) {
    workers = Number(raw);
  } else {
    read.problems.push(`PACS_WORKERS must be a number of processes from 1 to 64, or auto (one per core), got "${raw}"`);
  }
  return {
    workers,
    workersAuto,
    backgroundDuties: read.boolean('PACS_BACKGROUND_DUTIES', true),
    shutdownGraceSeconds: read.integer('PACS_SHUTDOWN_GRACE_SECONDS', 30, 1, 3600),
  };
}
