/**
 * How the HTTP server is reached: HTTPS certificate and key (PACS_TLS_*) and the reverse proxies whose
 * X-Forwarded-For is believed (PACS_TRUSTED_PROXIES).
 */
import { isIP } from 'node:net';
import path from 'node:path';
import type { EnvReader } from './env-reader.js';

/** PEM files of the HTTPS listener, and whether it offers HTTP/2 (with HTTP/1.1 on the same port). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** PACS_HTTP2 (default true): HTTP/2 by ALPN beside HTTP/1.1 (http/tls-server.ts); false: HTTP/1.1 only. */
  http2: boolean;
}

/** PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE, both or neither; null: plain HTTP. PACS_HTTP2 with TLS. */
export function readTlsConfig(read: EnvReader, cwd: string): TlsConfig | null {
  const certFile = read.string('PACS_TLS_CERT_FILE', '');
  const keyFile = read.string('PACS_TLS_KEY_FILE', '');
  if (certFile === '' && keyFile === '') return null;
  if (certFile === '' || keyFile === '') {
    read.problems.push('PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE must be set together (PEM certificate chain and its private key)');
    return null;
  }
  return { certFile: path.resolve(cwd, certFile), keyFile: path.resolve(cwd, keyFile), http2: read.boolean('PACS_HTTP2', true) };
}

/** PACS_TRUSTED_PROXIES: `127.0.0.1,10.0.0.0/8`: IPv4/IPv6 addresses or CIDR ranges. */
export function readTrustedProxies(read: EnvReader): string[] {
  const entries = read.list('PACS_TRUSTED_PROXIES', []);
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const ip = isIP(address ?? '');
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (ip === 6 ? 128 : 32));
    if (ip === 0 || !prefixOk || extra !== undefined) read.problems.push(`PACS_TRUSTED_PROXIES must list IP addresses or CIDR ranges such as 127.0.0.1,10.0.0.0/8, got "${entry}"`);
  }
  return entries;
}
