/**
 * A large instance by C-STORE streams into storage as its P-DATA fragments arrive: memory stays bounded
 * (dcmjs-dimse would otherwise buffer the whole data set), and the stored file is complete.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLargeInstanceHeader, newUid } from '../test-support/make-dicom.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';

requireDcmtk();

describe('C-STORE of a large instance', () => {
  let dimse: TestDimse;
  let dir: string;
  beforeAll(async () => {
    dimse = await startTestDimse();
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-dimse-large-'));
  });
  afterAll(async () => {
    await dimse?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores a 400 MB multi-frame instance with bounded memory', async () => {
    const studyInstanceUid = newUid();
    const { header, pixelBytes } = makeLargeInstanceHeader({ studyInstanceUid, rows: 1024, columns: 1024, numberOfFrames: 400 });
    const file = path.join(dir, 'large.dcm');
    const out = createWriteStream(file);
    out.write(header);
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    for (let written = 0; written < pixelBytes; written += chunk.length) {
      if (!out.write(chunk.subarray(0, Math.min(chunk.length, pixelBytes - written)))) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');

    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const result = await runTool('storescu', ['-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port), file], 240_000);
    clearInterval(sampler);
    expect(result.code, result.stdout + result.stderr).toBe(0);

    const [instance] = await dimse.archive.findInstances({ studyInstanceUid });
    expect(instance!.numberOfFrames).toBe(400);
    expect(instance!.blobSize).toBeGreaterThan(pixelBytes);
    expect((await stat(file)).size).toBeGreaterThan(pixelBytes);
    // The 400 MB data set never sits in memory: growth stays far below its size (measured: ~82 MiB).
    expect(peak - before).toBeLessThan(160 * 1024 * 1024);
  }, 300_000);
});
