/**
 * Optional HTTPS (PACS_TLS_CERT_FILE / PACS_TLS_KEY_FILE): a certificate made by openssl for the test,
 * the server answering DICOMweb over TLS with it, and no plain-HTTP answer on the same port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';

let dir: string;
let t: TestApp;
let port: number;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  t = await buildTestApp({ PACS_TLS_CERT_FILE: path.join(dir, 'cert.pem'), PACS_TLS_KEY_FILE: path.join(dir, 'key.pem') });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('HTTPS from configuration', () => {
  it('serves DICOMweb over TLS with the configured certificate', async () => {
    const ca = await readFile(path.join(dir, 'cert.pem'));
    const { status, body, peerCn } = await new Promise<{ status: number; body: string; peerCn: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/dicomweb/studies', ca, headers: { accept: 'application/dicom+json' } }, (res) => {
        let text = '';
        const peerCn = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN);
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, peerCn }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(JSON.parse(body)).toEqual([]);
    expect(peerCn).toBe('127.0.0.1');
  });

  it('does not answer plain HTTP on the TLS port', async () => {
    const outcome = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (response) => `status ${response.status}`,
      () => 'refused',
    );
    expect(outcome).not.toBe('status 200');
  });
});
