/**
 * An endoscopy study as a live session leaves it, for report tests: a Video Endoscopic Image written by
 * the live recorder itself (live/recording.ts: camera JPEGs as frames, capture times in the Frame Time
 * Vector) and an AI detection SR of it (inference/detection-report.ts, TID 1500, frames with time
 * offsets), both stored through the archive's ordinary ingest, exactly as live-session.ts stores them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Archive } from '../archive/archive.js';
import type { Detection } from '../inference/inference-engine.js';
import { aiSeriesUid, buildDetectionReport, COMPREHENSIVE_3D_SR } from '../inference/detection-report.js';
import { Recording, VIDEO_ENDOSCOPIC } from '../live/recording.js';
import { makeInstance, newUid } from './make-dicom.js';

export interface EndoscopyStudy {
  studyInstanceUid: string;
  video: { seriesInstanceUid: string; sopInstanceUid: string; sopClassUid: string; frames: number };
  ai: { seriesInstanceUid: string; sopInstanceUid: string; sopClassUid: string };
  /** The detections of the SR: frame → boxes, in the order the SR lists them. */
  detections: Array<{ frame: number; index: number; detection: Detection }>;
}

export interface EndoscopyStudyOptions {
  patientName?: string;
  patientId?: string;
  studyDate?: string;
  /** Frames of the recording, one second apart on the capture clock (default 10). */
  frames?: number;
  /** Per frame, the detections the AI SR records (default: two on frame 2, one on frame 5). */
  detections?: Array<{ frame: number; detections: Detection[] }>;
}

async function store(archive: Archive, source: AsyncIterable<Buffer>): Promise<void> {
  const result = await (await archive.scanAndStore(source)).completion;
  if (!result.ok) throw new Error(result.failure.message);
}

/** Stores a recorded colonoscopy (video + AI SR) in a new study and says what it holds. */
export async function storeEndoscopyStudy(archive: Archive, options: EndoscopyStudyOptions = {}): Promise<EndoscopyStudy> {
  const studyInstanceUid = newUid();
  const identity = { studyInstanceUid, seriesInstanceUid: newUid(), sopInstanceUid: newUid() };
  const attributes = {
    PatientName: options.patientName ?? 'Nguyễn^Thị Hồng Nhung',
    PatientID: options.patientId ?? 'BN-2026-0042',
    PatientBirthDate: '19850312',
    PatientSex: 'F',
    StudyDate: options.studyDate ?? '20260105',
    StudyTime: '093000',
    StudyID: 'NS1',
    AccessionNumber: 'NS-0042',
    ReferringPhysicianName: '',
    StudyDescription: 'Nội soi đại tràng',
  };
  const frames = options.frames ?? 10;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'endoscopy-study-'));
  try {
    const recording = await Recording.open(tmp, identity, attributes, 25);
    for (let i = 0; i < frames; i += 1) {
      const jpeg = await sharp({ create: { width: 96, height: 72, channels: 3, background: { r: 180 + i, g: 90, b: 80 } } }).jpeg({ quality: 90 }).toBuffer();
      await recording.add(jpeg, 96, 72, i * 1000);
    }
    await store(archive, recording.part10());
    const perFrame = options.detections ?? [
      {
        frame: 2,
        detections: [
          { label: 'polyp', score: 0.91, box: { x: 10, y: 12, width: 20, height: 18 } },
          { label: 'polyp', score: 0.64, box: { x: 60, y: 30, width: 12, height: 10 } },
        ],
      },
      { frame: 5, detections: [{ label: 'polyp', score: 0.88, box: { x: 30, y: 20, width: 24, height: 22 } }] },
    ];
    const model = { id: 'bright-spot', version: '1.0.0', sha256: '0'.repeat(64) };
    const sopInstanceUid = newUid();
    const { part10 } = buildDetectionReport({
      model,
      source: { studyInstanceUid, seriesInstanceUid: identity.seriesInstanceUid, sopInstanceUid: identity.sopInstanceUid, sopClassUid: VIDEO_ENDOSCOPIC },
      multiFrame: true,
      frames: perFrame.map((f) => ({ frame: f.frame, timeOffsetMs: recording.timeOffsetMs(f.frame), detections: f.detections })),
      patientStudy: { ...attributes, StudyInstanceUID: studyInstanceUid },
      minScore: 0.5,
      uids: { seriesInstanceUid: aiSeriesUid(studyInstanceUid, model.id), sopInstanceUid },
      seriesDescription: `AI ${model.id}`,
    });
    await store(archive, (async function* () { yield part10; })());
    await recording.discard();
    return {
      studyInstanceUid,
      video: { seriesInstanceUid: identity.seriesInstanceUid, sopInstanceUid: identity.sopInstanceUid, sopClassUid: VIDEO_ENDOSCOPIC, frames },
      ai: { seriesInstanceUid: aiSeriesUid(studyInstanceUid, model.id), sopInstanceUid, sopClassUid: COMPREHENSIVE_3D_SR },
      detections: perFrame.flatMap((f) => f.detections.map((detection, i) => ({ frame: f.frame, index: i + 1, detection }))),
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A study with one small single-frame image (Secondary Capture), for reports that need no video. */
export async function storeImageStudy(archive: Archive, options: { patientName?: string; studyDate?: string; modality?: string } = {}): Promise<{ studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }> {
  const ids = { studyInstanceUid: newUid(), seriesInstanceUid: newUid(), sopInstanceUid: newUid() };
  const bytes = makeInstance({ ...ids, patientName: options.patientName ?? 'Trần^Văn Bình', studyDate: options.studyDate ?? '20260110', modality: options.modality ?? 'ES', rows: 32, columns: 32 });
  await store(archive, (async function* () { yield bytes; })());
  return ids;
}
