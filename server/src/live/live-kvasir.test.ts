/**
 * The live stream with the trained polyp detector on the Kvasir endoscopy video (decoded by Debian's
 * ffmpeg, as a camera would send it): the detections sent back overlap the ground truth, and the
 * recording's SR holds the same boxes on the same frames.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR } from '../config.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { videoGroundTruth, type VideoTruth } from '../../../scripts/live/ground-truth.js';
import { LiveClient } from '../../../scripts/live/live-client.js';
import { videoMetrics } from '../../../scripts/live/video-metrics.js';
import { videoToJpegFrames } from '../../../scripts/live/video-frames.js';
import { readDetectionReport } from '../inference/detection-report.js';

let t: TestApp;
let url: string;
let truth: VideoTruth;
let frames: Buffer[];

beforeAll(async () => {
  truth = await videoGroundTruth();
  frames = await videoToJpegFrames(truth.mp4);
  t = await buildTestApp({ PACS_MODELS_DIR: BUNDLED_MODELS_DIR });
  url = `${(await t.app.listen({ host: '127.0.0.1', port: 0 })).replace('http', 'ws')}/live`;
});
afterAll(async () => t.close());

describe('live polyp detection on the Kvasir endoscopy video', () => {
  it('answers the streamed frames with boxes on the polyps, and records them for replay', async () => {
    expect(frames).toHaveLength(200);
    // Two frames of each polyp appearance, sent one after the other's answer.
    const sent = truth.segments.flatMap((s) => [s.firstFrame + 2, s.firstFrame + 12]);
    const client = await LiveClient.connect(url);
    client.sendJson({ type: 'start', model: 'polyp-detector', fps: 25, study: { patientName: 'VIDEO^TEST', patientId: 'VID-1' } });
    await client.next((m) => m['type'] === 'started');
    for (const [seq, frame] of sent.entries()) {
      client.sendJpeg(seq, frames[frame]!, frame * 40);
      await client.drained(seq);
    }
    const live = client.detections.map(({ message }) => message);
    expect(live.map((m) => m['seq'])).toEqual(sent.map((_, i) => i));
    const metrics = videoMetrics(live.map((m) => ({ frame: sent[m['seq'] as number]!, boxes: m['detections'].map((d: any) => d.box) })), truth);
    expect(metrics.sensitivity).toBeGreaterThanOrEqual(0.6);

    client.sendJson({ type: 'stop' });
    const stopped = await client.next((m) => m['type'] === 'stopped');
    client.close();
    const { studyInstanceUid, report } = stopped['recording'];
    const [instance] = await t.services.catalog.listInstances({ studyInstanceUid, seriesInstanceUid: report.seriesInstanceUid });
    const chunks: Buffer[] = [];
    for await (const c of await t.services.blobStore.get(instance!.blobKey)) chunks.push(c as Buffer);
    const sr = readDetectionReport(Buffer.concat(chunks));
    // One finding per shown track, each region on a frame where that track was seen (steady alerts:
    // a box that never became a shown track is not in it).
    const shownIds = new Set(live.flatMap((m) => m['tracks'].map((tr: any) => tr.id)));
    expect(sr.tracks.map((tr) => tr.id)).toEqual([...shownIds].sort((a, b) => a - b));
    const trackedFrames = new Set(live.filter((m) => m['detections'].length > 0 || m['tracks'].some((tr: any) => tr.missed === 0)).map((m) => m['frame']));
    sr.frames.forEach((f) => expect(trackedFrames.has(f.frame)).toBe(true));
  }, 120_000);
});
