/**
 * Share links and consults section (PACS_SHARE_*, PACS_HOSPITAL_*): how long links live by purpose, the
 * PIN attempt limit, and the hospital's name and logo printed on result slips and shown on the patient
 * page (server/src/sharing, docs/security.md "Share links").
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { EnvReader } from './env-reader.js';

export interface SharingConfig {
  /** PACS_SHARE_PATIENT_DAYS: default life of a patient link (the result slip), in days. */
  patientDays: number;
  /** PACS_SHARE_CONSULT_DAYS: default life of a consult link, in days. */
  consultDays: number;
  /** PACS_SHARE_MAX_DAYS: the longest life a link may be given. */
  maxDays: number;
  /** PACS_SHARE_PIN_MAX_ATTEMPTS: wrong PINs in a row before the link locks. */
  pinMaxAttempts: number;
  /** PACS_SHARE_PIN_LOCK_MINUTES: how long a link stays locked after too many wrong PINs. */
  pinLockMinutes: number;
  /** PACS_SHARE_SESSION_HOURS: life of the session a link's PIN check gives (never beyond the link's expiry). */
  sessionHours: number;
  /** PACS_SHARE_CONSULT_MAX_INSTANCES: instances one consult's de-identified copy may hold. */
  consultMaxInstances: number;
  /** PACS_HOSPITAL_NAME: printed on slips and shown on the patient page. */
  hospitalName: string;
  /** PACS_HOSPITAL_LOGO_FILE: a PNG or JPEG logo (absolute path); empty: none. */
  hospitalLogoFile: string;
}

export function readSharingConfig(read: EnvReader, cwd: string): SharingConfig {
  const maxDays = read.integer('PACS_SHARE_MAX_DAYS', 730, 1, 3650);
  const logo = read.string('PACS_HOSPITAL_LOGO_FILE', '');
  const hospitalLogoFile = logo === '' ? '' : path.resolve(cwd, logo);
  if (hospitalLogoFile !== '' && (!/\.(png|jpe?g)$/i.test(hospitalLogoFile) || !existsSync(hospitalLogoFile))) {
    read.problems.push(`PACS_HOSPITAL_LOGO_FILE must name an existing .png or .jpg file, got "${logo}"`);
  }
  const config: SharingConfig = {
    patientDays: read.integer('PACS_SHARE_PATIENT_DAYS', 180, 1, 3650),
    consultDays: read.integer('PACS_SHARE_CONSULT_DAYS', 14, 1, 3650),
    maxDays,
    pinMaxAttempts: read.integer('PACS_SHARE_PIN_MAX_ATTEMPTS', 5, 1, 100),
    pinLockMinutes: read.integer('PACS_SHARE_PIN_LOCK_MINUTES', 15, 1, 24 * 60),
    sessionHours: read.integer('PACS_SHARE_SESSION_HOURS', 12, 1, 24 * 30),
    consultMaxInstances: read.integer('PACS_SHARE_CONSULT_MAX_INSTANCES', 5000, 1, 1_000_000),
    hospitalName: read.string('PACS_HOSPITAL_NAME', ''),
    hospitalLogoFile,
  };
  for (const [name, days] of [['PACS_SHARE_PATIENT_DAYS', config.patientDays], ['PACS_SHARE_CONSULT_DAYS', config.consultDays]] as const) {
    if (days > maxDays) read.problems.push(`${name} (${days}) is beyond PACS_SHARE_MAX_DAYS (${maxDays})`);
  }
  return config;
}
