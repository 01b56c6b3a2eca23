/**
 * Behind a reverse proxy (docs/security.md): the client's address comes from X-Forwarded-For only when
 * the proxy is listed in PACS_TRUSTED_PROXIES; otherwise a client could name any address it likes.
 * The audit trail records the resulting address.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { buildTestApp } from '../test-support/build-test-app.js';

async function recordedAddress(env: Record<string, string>): Promise<string> {
  const t = await buildTestApp(env);
  try {
    const search = await t.app.inject({ url: '/dicomweb/studies', headers: { 'x-forwarded-for': '10.1.2.3' }, remoteAddress: '127.0.0.1' });
    expect(search.statusCode).toBe(200);
    const audit = await t.app.inject({ url: '/admin/audit?action=query' });
    const [record] = audit.json().records as Array<{ clientAddress: string }>;
    return record!.clientAddress;
  } finally {
    await t.close();
  }
}

describe('the client address behind a reverse proxy', () => {
  it('is the forwarded address when the proxy is trusted', async () => {
    expect(await recordedAddress({ PACS_TRUSTED_PROXIES: '127.0.0.1' })).toBe('10.1.2.3');
  });

  it('is the socket address when no proxy is trusted (a forged X-Forwarded-For is ignored)', async () => {
    expect(await recordedAddress({})).toBe('127.0.0.1');
  });

  it('accepts addresses and CIDR ranges, and refuses anything else', () => {
    expect(loadConfig({ PACS_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1' }).trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8', '::1']);
    expect(() => loadConfig({ PACS_TRUSTED_PROXIES: 'proxy.local,10.0.0.0/33' })).toThrow(/PACS_TRUSTED_PROXIES must list IP addresses or CIDR ranges[\s\S]*"proxy.local"[\s\S]*"10.0.0.0\/33"/);
  });
});
