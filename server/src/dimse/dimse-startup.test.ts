/** The server process starts the DIMSE service when configured, on the configured address, and stops it on SIGTERM. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTool, waitForPort } from '../test-support/dimse-peer.js';
import { freePort, spawnServer } from '../test-support/spawn-server.js';

describe('server start-up with DIMSE enabled', () => {
  it('answers echoscu on the configured host, port and AE title, and closes on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-dimse-main-'));
    const port = await freePort();
    const server = await spawnServer({
      PACS_DATA_DIR: dataDir,
      PACS_DIMSE_ENABLED: 'true',
      PACS_DIMSE_HOST: '127.0.0.1',
      PACS_DIMSE_PORT: String(port),
      PACS_DIMSE_AE_TITLE: 'MAINTEST',
      PACS_DIMSE_ALLOWED_CALLING_AES: 'ECHOSCU',
      PACS_AI_ENABLED: 'false',
    });
    try {
      await waitForPort(port);
      const echo = await runTool('echoscu', ['-v', '-aet', 'ECHOSCU', '-aec', 'MAINTEST', '127.0.0.1', String(port)]);
      expect(echo.code, echo.stdout + echo.stderr + server.output()).toBe(0);
      const stranger = await runTool('echoscu', ['-aet', 'STRANGER', '-aec', 'MAINTEST', '127.0.0.1', String(port)]);
      expect(stranger.code).not.toBe(0);
    } finally {
      await server.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    }
    await expect(waitForPort(port, '127.0.0.1', 500)).rejects.toThrow(/nothing listens/);
  }, 60_000);
});
