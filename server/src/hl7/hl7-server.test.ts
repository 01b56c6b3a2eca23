/**
 * The server as deployed: `main.ts` with PACS_HL7_ENABLED starts the listener on the hospital link it
 * built, a HIS (Debian's mllp_send) gets its acknowledgements, and SIGTERM stops it cleanly.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adt, orm } from '../test-support/hl7-messages.js';
import { freePort, spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';

const run = promisify(execFile);

let dir: string;
let server: SpawnedServer | undefined;
let hl7Port: number;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'hl7-server-'));
  hl7Port = await freePort();
  server = await spawnServer({
    PACS_DATA_DIR: dir,
    PACS_AI_ENABLED: 'false',
    PACS_HL7_ENABLED: 'true',
    PACS_HL7_PORT: String(hl7Port),
    PACS_HL7_ALLOWED_SENDERS: 'HIS^BVBM',
    PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
    PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
    PACS_HIS_PATIENT_ID_ISSUERS: 'BVBM,VNM-CCCD',
  });
  // The HTTP health check answers first; the listener starts right after.
  for (let tries = 0; tries < 100 && !server.output().includes('HL7 listener ready'); tries++) await new Promise((resolve) => setTimeout(resolve, 100));
});

afterAll(async () => {
  await server?.kill('SIGKILL').catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('the server with its HL7 listener', () => {
  it('acknowledges a patient and an order from the HIS, then shuts down on SIGTERM', async () => {
    const file = path.join(dir, 'messages.hl7');
    await writeFile(file, `${adt('A01', 'SRV-A01')}\x1c\r${orm('NW', 'SRV-ORM')}\x1c\r`, 'utf8');
    const { stdout } = await run('/usr/bin/mllp_send', ['-p', String(hl7Port), '-f', file, '127.0.0.1'], { timeout: 30_000 });
    expect([...stdout.matchAll(/MSA\|(\w+)\|([^\r|]*)/g)].map(([, code, id]) => `${code} ${id}`)).toEqual(['AA SRV-A01', 'AA SRV-ORM']);
    await server!.kill('SIGTERM');
    expect(server!.output()).toMatch(/shutting down/);
    // The server's log names the message by its control ID and acknowledgement, never the patient.
    expect(server!.output()).toMatch(/"messageControlId":"SRV-ORM","ack":"AA"/);
    server = undefined;
  });
});
