/**
 * Reading environment variables for the configuration: one `EnvReader` per load, whose typed readers
 * (strings, whole numbers, booleans, lists, origins, AE titles, addresses, permission tables) never
 * throw but collect every problem in `problems`, so that `loadConfig` reports them all at once.
 */
import { PERMISSIONS, type Permission } from '../auth/permissions.js';

export type Env = Record<string, string | undefined>;

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** Typed readers over one environment: a bad value is recorded in `problems` and the fallback returned. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string): string {
    const value = this.env[name];
    return value === undefined || value === '' ? fallback : value;
  }

  required(name: string, when: string): string {
    const value = this.env[name];
    if (value === undefined || value === '') {
      this.problems.push(`${name} is required when ${when}`);
      return '';
    }
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw.trim())) {
      this.problems.push(`${name} must be a whole number, got "${raw}"`);
      return fallback;
    }
    const value = Number(raw);
    if (value < min || value > max) {
      this.problems.push(`${name} must be between ${min} and ${max}, got ${value}`);
      return fallback;
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    this.problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  }

  /**
   * A comma-separated list of web origins (`scheme://host[:port]`, http or https, no path); a trailing
   * slash is dropped and the host lower-cased as browsers send it. `*` is refused: patient data.
   */
  origins(name: string): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [];
    const origins: string[] = [];
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      let url: URL | undefined;
      try {
        url = new URL(item);
      } catch {
        url = undefined;
      }
      const valid =
        url !== undefined &&
        (url.protocol === 'http:' || url.protocol === 'https:') &&
        url.username === '' &&
        url.password === '' &&
        url.pathname === '/' &&
        url.search === '' &&
        url.hash === '' &&
        /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+\/?$/i.test(item);
      if (!valid) {
        this.problems.push(`${name} must list http(s) origins such as https://viewer.example.org (no path, no "*"), got "${item}"`);
        continue;
      }
      if (!origins.includes(url!.origin)) origins.push(url!.origin);
    }
    return origins;
  }

  /** An AE title (PS3.5 AE: 1–16 characters, no backslash, no control characters; blanks trimmed). */
  aeTitle(name: string, fallback: string): string {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const value = raw.trim();
    if (!isValidAeTitle(value)) {
      this.problems.push(`${name} must be an AE title of 1 to 16 characters without backslash or control characters, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  /** A comma-separated list of AE titles; empty: none. */
  aeTitles(name: string): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [];
    const titles: string[] = [];
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      if (!isValidAeTitle(item)) {
        this.problems.push(`${name} must list AE titles of 1 to 16 characters without backslash or control characters, got "${item}"`);
        continue;
      }
      if (!titles.includes(item)) titles.push(item);
    }
    return titles;
  }

  /** `AE=host:port,AE2=host:port`: C-MOVE destinations by AE title. */
  destinations(name: string): Record<string, { host: string; port: number }> {
    const raw = this.env[name];
    const destinations: Record<string, { host: string; port: number }> = {};
    if (raw === undefined || raw.trim() === '') return destinations;
    for (const item of raw.split(',').map((entry) => entry.trim())) {
      if (item === '') continue;
      const match = /^([^=]+)=(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(item);
      const ae = match?.[1]?.trim() ?? '';
      const port = match ? Number(match[3]) : NaN;
      if (!match || !isValidAeTitle(ae) || !(port >= 1 && port <= 65535)) {
        this.problems.push(`${name} must list AE=host:port entries such as ORTHANC=127.0.0.1:4242 (AE title of 1 to 16 characters, port 1-65535), got "${item}"`);
        continue;
      }
      if (Object.hasOwn(destinations, ae)) {
        this.problems.push(`${name} lists the AE title "${ae}" twice`);
        continue;
      }
      destinations[ae] = { host: match[2]!.replace(/^\[|\]$/g, ''), port };
    }
    return destinations;
  }

  /** A comma-separated list of plain words; empty or unset: the fallback. */
  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return [...fallback];
    return [...new Set(raw.split(',').map((item) => item.trim()).filter((item) => item !== ''))];
  }

  /**
   * `name=perm,perm;name2=perm`: what each role (or, for DIMSE, each AE title) may do. Permissions are
   * read, store, ai, admin, his.
   */
  rolePermissions(name: string, fallback: Readonly<Record<string, readonly Permission[]>>): Record<string, Permission[]> {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return Object.fromEntries(Object.entries(fallback).map(([key, value]) => [key, [...value]]));
    const table: Record<string, Permission[]> = {};
    for (const entry of raw.split(';').map((item) => item.trim())) {
      if (entry === '') continue;
      const match = /^([^=]+)=(.*)$/.exec(entry);
      const key = match?.[1]?.trim() ?? '';
      const permissions = (match?.[2] ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '');
      const unknown = permissions.filter((item) => !(PERMISSIONS as readonly string[]).includes(item));
      if (!match || key === '' || permissions.length === 0 || unknown.length > 0) {
        this.problems.push(`${name} must list name=permission,permission entries separated by ";" (permissions: ${PERMISSIONS.join(', ')}), got "${entry}"`);
        continue;
      }
      table[key] = [...new Set(permissions as Permission[])];
    }
    return table;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
    return fallback;
  }
}

/** PS3.5 Table 6.2-1, AE: at most 16 characters of the default repertoire, no backslash, no control characters. */
export function isValidAeTitle(value: string): boolean {
  return value.length >= 1 && value.length <= 16 && /^[\x20-\x7E]+$/.test(value) && !value.includes('\\') && value.trim() !== '';
}

/** Loopback addresses: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}
