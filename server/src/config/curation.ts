/**
 * Curation section (PACS_REJECTION_*): how long instances rejected by an IOCM rejection note stay
 * restorable before they are purged for good, and how often the server looks for due purges
 * (server/src/curation, docs/architecture.md "Curation").
 */
import type { EnvReader } from './env-reader.js';

export interface CurationConfig {
  /**
   * PACS_REJECTION_PURGE_DAYS: days a rejected instance stays (hidden, restorable) before the purge
   * removes it; decimals allowed (0.5 = 12 hours), 0 = at the next sweep. Default 30. Rejections titled
   * 113039 "Data Retention Policy Expired" are purged at the next sweep whatever this says.
   */
  rejectionPurgeDays: number;
  /**
   * PACS_REJECTION_PURGE_INTERVAL_SECONDS: how often the server sweeps for due purges (default 3600; the
   * first sweep 5 s after start). 0: no automatic sweep (`POST /curation/purge` only).
   */
  purgeIntervalSeconds: number;
}

export function readCurationConfig(read: EnvReader): CurationConfig {
  const raw = read.string('PACS_REJECTION_PURGE_DAYS', '30').trim();
  let rejectionPurgeDays = 30;
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) > 36500) {
    read.problems.push(`PACS_REJECTION_PURGE_DAYS must be a number of days from 0 to 36500 (decimals allowed), got "${raw}"`);
  } else {
    rejectionPurgeDays = Number(raw);
  }
  return {
    rejectionPurgeDays,
    purgeIntervalSeconds: read.integer('PACS_REJECTION_PURGE_INTERVAL_SECONDS', 3600, 0, 7 * 24 * 3600),
  };
}
