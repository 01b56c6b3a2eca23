/**
 * The live endpoint end to end over a real WebSocket, with the hand-wired bright-spot test model
 * (marks bright regions): frames are black JPEGs with a white square whose position is known.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import dcmjs from 'dcmjs';
import WebSocket from 'ws';
import { LiveClient, type LiveMessage } from '../../../scripts/live/live-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid, multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import type { BatchRunner } from '../inference/model-queue.js';
import type { MaskOutput } from '../inference/inference-engine.js';
import { readDetectionReport } from '../inference/detection-report.js';

dcmjs.log.setLevel('silent');

/** 160×120 black frame with a white 40×40 square at (x, 40). */
async function squareJpeg(x: number): Promise<Buffer> {
  const pixels = Buffer.alloc(160 * 120 * 3);
  for (let y = 40; y < 80; y += 1) for (let c = x; c < x + 40; c += 1) pixels.fill(255, (y * 160 + c) * 3, (y * 160 + c) * 3 + 3);
  return sharp(pixels, { raw: { width: 160, height: 120, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

type Message = LiveMessage;

let t: TestApp;
let url: string;
beforeAll(async () => {
  // No latency budget here: these tests check the slot and the protocol, not the drop-by-age policy
  // (latest-frame-slot.test.ts, model-queue.test.ts).
  t = await buildTestApp({ PACS_LIVE_MAX_FRAME_BYTES: '100000', PACS_LIVE_MAX_WAIT_MS: '60000' });
  const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
  url = `${address.replace('http', 'ws')}/live`;
});
afterAll(async () => t.close());

const newPatient = { patientName: 'ROOM^ONE', patientId: 'LIVE-1' };

async function readStored(study: string, series: string): Promise<Buffer> {
  const [instance] = await t.services.catalog.listInstances({ studyInstanceUid: study, seriesInstanceUid: series });
  const chunks: Buffer[] = [];
  for await (const c of await t.services.blobStore.get(instance!.blobKey)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('live endoscopy stream', () => {
  it('answers each frame with its detections, records the session as DICOM and an SR that replays the same boxes', async () => {
    const client = await LiveClient.connect(url);
    client.sendJson({ type: 'start', model: 'bright-spot', fps: 25, study: newPatient });
    const started = await client.next((m) => m.type === 'started');
    expect(started.model).toEqual({ id: 'bright-spot', version: '1.0.0' });
    const frames = await Promise.all([10, 30, 50, 70, 90, 110].map(squareJpeg));
    const live: Message[] = [];
    for (let seq = 0; seq < frames.length; seq += 1) {
      client.sendJpeg(seq, frames[seq]!);
      live.push(await client.next((m) => m.type === 'detections' && m.seq === seq)); // one at a time: none dropped
    }
    live.forEach((m, i) => {
      expect(m.frame).toBe(i + 1);
      expect(m.capturedAt).toBe(i * 40);
      expect(m.detections).toHaveLength(1);
      const box = m.detections[0].box;
      expect(Math.abs(box.x - (10 + 20 * i))).toBeLessThanOrEqual(3);
      expect(Math.abs(box.y - 40)).toBeLessThanOrEqual(3);
      expect(m.timings.serverMs).toBeGreaterThanOrEqual(0);
      expect(m.stats).toEqual({ received: i + 1, processed: i + 1, dropped: 0, stale: 0 });
      // Score 1.0: shown at once, and followed as one track.
      expect(m.tracks).toMatchObject([{ id: 1, isNew: i === 0, missed: 0 }]);
      expect(m.detections[0].trackId).toBe(1);
    });

    client.sendJson({ type: 'stop' });
    const stopped = await client.next((m) => m.type === 'stopped');
    expect(stopped.stats).toEqual({ received: 6, processed: 6, dropped: 0, stale: 0 });
    const { studyInstanceUid, video, report } = stopped.recording;
    expect(studyInstanceUid).toBe(started.studyInstanceUid);
    expect(video.frames).toBe(6);
    expect(report).toMatchObject({ tracks: 1, framesWithDetections: 6, detections: 6 });

    // The recording: a Video Endoscopic Image whose frames are the JPEGs exactly as sent.
    for (const frame of [1, 4, 6]) {
      const res = await t.app.inject({
        url: `/dicomweb/studies/${studyInstanceUid}/series/${video.seriesInstanceUid}/instances/${video.sopInstanceUid}/frames/${frame}`,
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.includes(frames[frame - 1]!)).toBe(true);
    }
    const videoBytes = await readStored(studyInstanceUid, video.seriesInstanceUid);
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(videoBytes.buffer.slice(videoBytes.byteOffset, videoBytes.byteOffset + videoBytes.length) as ArrayBuffer).dict);
    expect(ds).toMatchObject({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.77.1.1.1', Modality: 'ES', NumberOfFrames: 6, Rows: 120, Columns: 160, PatientID: 'LIVE-1' });
    expect(ds.FrameTimeVector).toEqual([0, 40, 40, 40, 40, 40]);
    expect(ds.FrameIncrementPointer).toBe(0x00181065);
    // A third-party toolkit (dcmtk) reads the recording and decompresses every frame.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'live-rec-'));
    try {
      await writeFile(path.join(dir, 'video.dcm'), videoBytes);
      expect(execFileSync('dcmdump', [path.join(dir, 'video.dcm')], { encoding: 'utf8' })).toMatch(/\(0028,0009\) AT \(0018,1065\)/);
      execFileSync('dcmdjpeg', [path.join(dir, 'video.dcm'), path.join(dir, 'raw.dcm')]);
      expect(execFileSync('dcmdump', [path.join(dir, 'raw.dcm')], { encoding: 'utf8' })).toMatch(/\(7fe0,0010\) O[BW] .*# 345600,/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // The SR: one finding for the one track, with the box shown live on each frame it was seen on.
    const sr = readDetectionReport(await readStored(studyInstanceUid, report.seriesInstanceUid));
    expect(sr.source.sopInstanceUid).toBe(video.sopInstanceUid);
    expect(sr.tracks).toMatchObject([{ id: 1, firstFrame: 1, lastFrame: 6, frames: 6 }]);
    expect(sr.frames.map((f) => f.frame)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(sr.frames[0]!.timeOffsetMs).toBe(0);
    sr.frames.forEach((f, i) => expect(f.detections.map((d) => d.box)).toEqual([live[i]!.tracks[0].box]));
    client.ws.close();
  });

  it('answers malformed, early, oversized and resized frames with an error and keeps the connection', async () => {
    const client = await LiveClient.connect(url);
    client.sendJpeg(0, await squareJpeg(10));
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'NOT_STARTED' });
    client.ws.send('not json');
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'MALFORMED_MESSAGE' });
    client.sendJson({ type: 'start', model: 'nope', study: newPatient });
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'BAD_START', message: expect.stringMatching(/Unknown model/) });
    client.sendJson({ type: 'start', model: 'dark-tissue', study: newPatient });
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'BAD_START', message: expect.stringMatching(/classification model; live sessions need a detection model/) });
    client.sendJson({ type: 'start', model: 'bright-spot', study: { studyInstanceUid: newUid() } });
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'BAD_START', message: expect.stringMatching(/Unknown study/) });
    client.sendJson({ type: 'start', model: 'bright-spot', record: false, study: newPatient });
    await client.next((m) => m.type === 'started');
    client.ws.send(Buffer.from([0, 0]));
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'MALFORMED_MESSAGE' });
    client.sendJpeg(1, Buffer.alloc(150_000, 1));
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'FRAME_TOO_LARGE' });
    client.sendJpeg(2, Buffer.from('not a jpeg at all'));
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'UNDECODABLE_FRAME', seq: 2 });
    client.sendJpeg(3, await squareJpeg(10));
    expect(await client.next((m) => m.type === 'detections')).toMatchObject({ seq: 3, frame: null });
    const small = await sharp({ create: { width: 80, height: 60, channels: 3, background: '#000' } }).jpeg().toBuffer();
    client.sendJpeg(4, small);
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'FRAME_SIZE_CHANGED', seq: 4 });
    client.sendJson({ type: 'start', model: 'bright-spot', study: newPatient });
    expect(await client.next((m) => m.type === 'error')).toMatchObject({ code: 'ALREADY_STARTED' });
    client.sendJson({ type: 'stop' });
    expect(await client.next((m) => m.type === 'stopped')).toMatchObject({ recording: null });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    client.ws.close();
  });

  it('drops frames that were still in flight when the client stopped, and answers the stop with the recording', async () => {
    const client = await LiveClient.connect(url);
    client.sendJson({ type: 'start', model: 'bright-spot', fps: 25, study: newPatient });
    await client.next((m) => m.type === 'started');
    const frame = await squareJpeg(30);
    client.sendJpeg(0, frame);
    await client.next((m) => m.type === 'detections' && m.seq === 0);
    // What a browser does when a capture was being encoded as Stop was clicked: frames right behind the stop.
    client.sendJson({ type: 'stop' });
    client.sendJpeg(1, frame);
    client.sendJpeg(2, frame);
    const stopped = await client.next((m) => m.type === 'stopped');
    expect(stopped.recording).toMatchObject({ video: { frames: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(client.messages.filter((m) => m.type === 'error')).toEqual([]);
    client.ws.close();
  });

  it('drops frames, never queues them, when a client sends faster than the model: the newest frame is analysed', async () => {
    const engine = t.services.inference!;
    engine.wrapRunner('bright-spot', (runner): BatchRunner<Buffer, MaskOutput> => ({ run: async (inputs) => { await new Promise((r) => setTimeout(r, 60)); return runner.run(inputs); } }), { maxBatch: 4, queueDepth: 16 });
    try {
      const client = await LiveClient.connect(url);
      client.sendJson({ type: 'start', model: 'bright-spot', record: false, study: newPatient });
      await client.next((m) => m.type === 'started');
      const jpeg = await squareJpeg(60);
      const rssBefore = process.memoryUsage().rss;
      for (let seq = 0; seq < 200; seq += 1) client.sendJpeg(seq, jpeg, seq);
      const last = await client.next((m) => m.type === 'detections' && m.seq === 199);
      expect(last.stats.received).toBe(200);
      expect(last.stats.processed).toBeLessThan(60);
      expect(last.stats.dropped).toBe(200 - last.stats.processed);
      // Latency stays about two model runs (one in flight + one waiting), not 200 queued frames.
      expect(last.timings.waitMs).toBeLessThan(1000);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
      client.sendJson({ type: 'stop' });
      expect((await client.next((m) => m.type === 'stopped')).stats).toMatchObject({ received: 200 });
      client.ws.close();
    } finally {
      engine.wrapRunner('bright-spot', (runner) => runner, { maxBatch: 4, queueDepth: 16 });
    }
  });

  it('stores what was received when the client disconnects mid-session, in an existing study with its patient', async () => {
    const study = newUid();
    const stow = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      headers: { 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: study, patientName: 'KEPT^PATIENT', patientId: 'KEEP-9', modality: 'ES' }) }]),
    });
    expect(stow.statusCode).toBe(200);
    const client = await LiveClient.connect(url);
    client.sendJson({ type: 'start', model: 'bright-spot', study: { studyInstanceUid: study } });
    expect((await client.next((m) => m.type === 'started')).studyInstanceUid).toBe(study);
    const jpeg = await squareJpeg(20);
    for (let seq = 0; seq < 5; seq += 1) client.sendJpeg(seq, jpeg);
    await client.next((m) => m.type === 'detections' && m.seq === 4);
    client.ws.terminate();
    // The recording arrives in the study shortly after the connection drops.
    let series: Array<Record<string, any>> = [];
    for (let i = 0; i < 100 && series.length < 3; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      series = (await t.app.inject({ url: `/dicomweb/studies/${study}/series` })).json();
    }
    expect(series.map((s) => s['00080060'].Value[0]).sort()).toEqual(['ES', 'ES', 'SR']);
    const instances = (await t.app.inject({ url: `/dicomweb/studies/${study}/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.77.1.1.1&includefield=NumberOfFrames&includefield=PatientID` })).json();
    expect(instances).toHaveLength(1);
    expect(instances[0]['00280008'].Value[0]).toBe(5);
    expect(instances[0]['00100020'].Value[0]).toBe('KEEP-9');
    expect(t.logLines.join('')).not.toMatch(/KEEP-9|KEPT|LIVE-1|ROOM\^ONE/);
    // Nothing of the session is left behind: its temporary frame file is removed right after the SR is
    // indexed (which is what made the series visible above), so give it a moment under load.
    let left = await readdir(path.join(t.dataDir, 'live-tmp'));
    for (let i = 0; i < 50 && left.length > 0; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      left = await readdir(path.join(t.dataDir, 'live-tmp'));
    }
    expect(left).toEqual([]);
  });

  it('serves several rooms in turn: two streams flooding a slow model get about the same share', async () => {
    const engine = t.services.inference!;
    engine.wrapRunner('bright-spot', (runner): BatchRunner<Buffer, MaskOutput> => ({ run: async (inputs) => { await new Promise((r) => setTimeout(r, 20)); return runner.run(inputs); } }), { maxBatch: 1, queueDepth: 16 });
    try {
      const rooms = await Promise.all([LiveClient.connect(url), LiveClient.connect(url)]);
      for (const room of rooms) {
        room.sendJson({ type: 'start', model: 'bright-spot', record: false, study: newPatient });
        await room.next((m) => m.type === 'started');
      }
      const jpeg = await squareJpeg(30);
      // Both rooms send 40 frames each at 100 fps, faster than the model's 20 ms per frame can serve both.
      for (let seq = 0; seq < 40; seq += 1) {
        for (const room of rooms) room.sendJpeg(seq, jpeg, seq * 10);
        await new Promise((r) => setTimeout(r, 10));
      }
      const stopped = [];
      for (const room of rooms) {
        await room.drained(39);
        room.sendJson({ type: 'stop' });
        stopped.push((await room.next((m) => m.type === 'stopped')).stats);
        room.close();
      }
      const [a, b] = stopped.map((s) => s.processed as number);
      expect(a).toBeGreaterThan(2);
      expect(b).toBeGreaterThan(2);
      expect(Math.abs(a! - b!)).toBeLessThanOrEqual(Math.max(3, Math.ceil(0.5 * Math.max(a!, b!))));
    } finally {
      engine.wrapRunner('bright-spot', (runner) => runner, { maxBatch: 4, queueDepth: 16 });
    }
  });
});
