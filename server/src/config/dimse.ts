/**
 * DICOM network service section (PACS_DIMSE_*): where the SCP listens, its AE title, which calling AEs
 * may associate and what each may do, and the C-MOVE destinations.
 */
import type { Permission } from '../auth/permissions.js';
import { isValidAeTitle, type EnvReader } from './env-reader.js';

/** DICOM network service (DIMSE, PS3.7/PS3.8): off by default; when on, loopback unless told otherwise. */
export interface DimseConfig {
  enabled: boolean;
  /** Address the SCP listens on (only that one). */
  host: string;
  port: number;
  /** Our AE title (Called AE title peers use; Calling AE title of our C-MOVE sub-associations). */
  aeTitle: string;
  /** Calling AE titles allowed to associate; empty: any. */
  allowedCallingAeTitles: readonly string[];
  /**
   * What each calling AE may do (`store` for C-STORE, `read` for C-FIND/C-MOVE/C-GET); empty: every
   * allowed AE may do everything. An AE missing here is refused at association when this is set.
   */
  aePermissions: Readonly<Record<string, readonly Permission[]>>;
  /** C-MOVE destinations: AE title → where its Storage SCP listens. */
  destinations: Readonly<Record<string, { host: string; port: number }>>;
}

export function readDimseConfig(read: EnvReader): DimseConfig {
  return {
    enabled: read.boolean('PACS_DIMSE_ENABLED', false),
    host: read.string('PACS_DIMSE_HOST', '127.0.0.1'),
    port: read.integer('PACS_DIMSE_PORT', 11112, 0, 65535),
    aeTitle: read.aeTitle('PACS_DIMSE_AE_TITLE', 'FILMLESS'),
    allowedCallingAeTitles: read.aeTitles('PACS_DIMSE_ALLOWED_CALLING_AES'),
    aePermissions: readAePermissions(read),
    destinations: read.destinations('PACS_DIMSE_DESTINATIONS'),
  };
}

/** PACS_DIMSE_AE_PERMISSIONS: `MODALITY1=store;WORKSTATION=read;PEERPACS=read,store`. */
function readAePermissions(read: EnvReader): Record<string, Permission[]> {
  const table = read.rolePermissions('PACS_DIMSE_AE_PERMISSIONS', {});
  for (const ae of Object.keys(table)) {
    if (!isValidAeTitle(ae)) read.problems.push(`PACS_DIMSE_AE_PERMISSIONS must name AE titles of 1 to 16 characters, got "${ae}"`);
    const unsupported = table[ae]!.filter((permission) => permission !== 'read' && permission !== 'store');
    if (unsupported.length > 0) read.problems.push(`PACS_DIMSE_AE_PERMISSIONS: DIMSE knows only read and store, got "${unsupported.join(',')}" for ${ae}`);
  }
  return table;
}
