/**
 * Memory stays bounded on a large pyramid: a generated 51,200 × 51,200 px TILED_FULL slide (10,000
 * reused JPEG tiles, written streamed into a temp folder by test-support/large-slide.ts, ≈ 220 MB) is
 * stored through STOW-RS on the real server (a child process, so its RSS is read from /proc), a
 * whole-level job is planned (tissue mask on the low-resolution level, glass skipped) and cancelled,
 * and a job over a 6k × 6k region runs to completion with the dark-spot test model. The server's peak
 * RSS must stay within 300 MB of its RSS after start-up, and the result annotation instance must be
 * in the archive.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { stowFiles, writeLargeSlide } from '../test-support/large-slide.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';

const MiB = 1024 * 1024;
let dir: string | undefined;
let server: SpawnedServer | undefined;

afterAll(async () => {
  await server?.kill();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function json(url: string, init?: RequestInit): Promise<any> {
  const response = await fetch(url, init);
  const body = await response.text();
  if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${response.status} ${body}`);
  return JSON.parse(body);
}

async function waitFor(url: string, done: (job: any) => boolean, timeoutMs: number): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await json(url);
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job still ${job.state}: ${JSON.stringify(job.progress)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a slide job on a 51,200 × 51,200 px generated pyramid', () => {
  it('stores it by STOW-RS and analyses it with the server\'s RSS growth under 300 MB', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-large-slide-'));
    const slide = await writeLargeSlide({ dir });
    expect(slide.width * slide.height).toBeGreaterThanOrEqual(50_000 * 50_000);
    expect(slide.tissueTiles).toBeGreaterThan(0);
    expect(slide.tissueTiles).toBeLessThan(slide.tilesAcross * slide.tilesDown);

    server = await spawnServer({ PACS_DATA_DIR: path.join(dir, 'data'), PACS_MODELS_DIR: TEST_MODELS_DIR, PACS_JOBS_WINDOWS_PER_UNIT: '16' });
    const baseline = await server.currentRssBytes();

    const stored = await stowFiles(server.url, slide.files);
    expect(stored.status, stored.body).toBe(200);
    const peakAfterStow = await server.peakRssBytes();

    const analyses = `${server.url}/ai/studies/${slide.studyInstanceUid}/series/${slide.seriesInstanceUid}/analyses`;
    // The whole level: planned over all 10,000 tiles' windows, glass skipped; cancelled once planned.
    const whole = await json(analyses, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'dark-spot' }) });
    const planned = await waitFor(`${server.url}/ai/analyses/${whole.id}`, (j) => j.state !== 'queued', 30_000);
    expect(planned.state).toMatch(/running|completed/);
    expect(planned.level).toMatchObject({ index: 0, windowSize: 512 });
    expect(planned.progress.tilesSkippedAsBackground).toBeGreaterThan(1000);
    expect(planned.progress.tilesTotal).toBeGreaterThan(1000);
    await json(`${server.url}/ai/analyses/${whole.id}`, { method: 'DELETE' });

    // A 6,144 × 6,144 region in the tissue: every window read through the frame index and run.
    const region = { x: 22_528, y: 22_528, width: 6144, height: 6144 };
    const created = await json(analyses, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'dark-spot', region }) });
    const job = await waitFor(`${server.url}/ai/analyses/${created.id}`, (j) => ['completed', 'failed', 'cancelled'].includes(j.state), 90_000);
    expect(job.state, job.reason).toBe('completed');
    expect(job.progress.tilesDone).toBe(job.progress.tilesTotal);
    expect(job.progress.tilesTotal).toBeGreaterThan(100);
    expect(job.progress.annotations).toBeGreaterThan(100);

    const peak = await server.peakRssBytes();
    console.info(
      `large slide: ${slide.width}×${slide.height} px, ${(slide.bytes / 1e6).toFixed(0)} MB; whole level ${planned.progress.tilesTotal} windows (${planned.progress.tilesSkippedAsBackground} skipped as glass); ` +
        `region job ${job.progress.tilesDone} windows in ${job.elapsedMs} ms; server RSS ${Math.round(baseline / MiB)} MiB after start, peak ${Math.round(peakAfterStow / MiB)} MiB after the STOW, ${Math.round(peak / MiB)} MiB at the end`,
    );
    expect(peak - baseline).toBeLessThan(300 * 1e6);

    // The result: one Microscopy Bulk Simple Annotations instance in the slide's study.
    const found = await json(`${server.url}/dicomweb/studies/${slide.studyInstanceUid}/instances?SOPInstanceUID=${job.result.sopInstanceUid}`);
    expect(found).toHaveLength(1);
    expect(found[0]['00080016'].Value[0]).toBe('1.2.840.10008.5.1.4.1.1.91.1');
  }, 120_000);
});
