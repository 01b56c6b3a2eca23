/**
 * The viewer's DICOM readers without a browser: SR detections (TID 1500 as our server writes it),
 * pyramid layout (TILED_FULL and TILED_SPARSE metadata), bulk annotations, multipart frames.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { describe, expect, it } from 'vitest';
import { buildDetectionReport } from '../../server/src/inference/detection-report.js';
import { sharedDataDir } from '../../server/src/test-support/shared-data.js';
import type { DicomJson } from './dicomweb/dicom-json.js';
import { parseMultipart } from './dicomweb/multipart.js';
import { parseSrDetections } from './overlays/sr-detections.js';
import { parseAnnotations } from './wsi/annotations.js';
import { buildPyramid, levelFor, niceLength } from './wsi/pyramid.js';

dcmjs.log.setLevel('silent');

/** A Part-10 file's data set as DICOM JSON (dcmjs's dict has that shape), without pixel data. */
function toJson(bytes: Buffer): DicomJson {
  const parsed = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer, { untilTag: '7FE00010' });
  return { ...parsed.dict, '00020010': parsed.meta['00020010'] } as unknown as DicomJson;
}

const shared = (p: string) => readFile(path.join(sharedDataDir, p));

describe('SR detections', () => {
  it('reads the boxes, labels, scores, image and frame of a report written by buildDetectionReport', () => {
    const source = { studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', sopInstanceUid: '1.2.3.4.5', sopClassUid: '1.2.840.10008.5.1.4.1.1.77.1.1' };
    const { part10, uids } = buildDetectionReport({
      model: { id: 'polyp-detector', version: '2.0.0', sha256: 'ab'.repeat(32) },
      source,
      // Frames 3 and 7 of a multi-frame image: references name the frame.
      multiFrame: true,
      patientStudy: { PatientName: 'DOE^JANE', StudyInstanceUID: '1.2.3' },
      frames: [
        {
          frame: 3,
          detections: [
            { label: 'polyp', score: 0.91, box: { x: 10, y: 20, width: 30, height: 40 } },
            { label: 'polyp', score: 0.55, box: { x: 100, y: 5, width: 8, height: 9 } },
          ],
        },
        { frame: 7, detections: [{ label: 'polyp', score: 0.7, box: { x: 1, y: 2, width: 3, height: 4 } }] },
      ],
      minScore: 0.5,
    });
    const result = parseSrDetections(toJson(part10));
    expect(result).toMatchObject({ sop: uids.sopInstanceUid, series: uids.seriesInstanceUid, title: 'polyp-detector' });
    expect(result!.detections).toHaveLength(3);
    expect(result!.detections[2]).toMatchObject({ frame: 7, points: [1, 2, 4, 2, 4, 6, 1, 6, 1, 2] });
    expect(result!.detections[0]).toEqual({ sop: '1.2.3.4.5', frame: 3, graphicType: 'POLYLINE', points: [10, 20, 40, 20, 40, 60, 10, 60, 10, 20], label: 'Polyp of colon', score: 0.91 });
    expect(result!.detections[1]!.score).toBe(0.55);
  });

  it('reads the SCOORDs of a third-party TID 1500 report (highdicom sample)', async () => {
    const result = parseSrDetections(toJson(await shared('dicom-highdicom/sr_document.dcm')));
    expect(result).toBeDefined();
    for (const d of result!.detections) {
      expect(d.sop).toMatch(/^[0-9.]+$/);
      expect(d.points.length % 2).toBe(0);
    }
  });
});

describe('SR results shown as AI', () => {
  it('leaves out a clinical report (TID 2000) of the same study: it is not an AI result', () => {
    const code = (value: string, scheme: string, meaning: string) => ({ '00080100': { vr: 'SH', Value: [value] }, '00080102': { vr: 'SH', Value: [scheme] }, '00080104': { vr: 'LO', Value: [meaning] } });
    const report = {
      '0020000D': { vr: 'UI', Value: ['1.2.3'] },
      '0020000E': { vr: 'UI', Value: ['1.2.3.9'] },
      '00080018': { vr: 'UI', Value: ['1.2.3.9.1'] },
      '0040A040': { vr: 'CS', Value: ['CONTAINER'] },
      '0040A043': { vr: 'SQ', Value: [code('18746-8', 'LN', 'Colonoscopy study')] },
      '0040A504': { vr: 'SQ', Value: [{ '0040DB00': { vr: 'CS', Value: ['2000'] } }] },
      '0040A730': { vr: 'SQ', Value: [{ '0040A010': { vr: 'CS', Value: ['CONTAINS'] }, '0040A040': { vr: 'CS', Value: ['TEXT'] }, '0040A043': { vr: 'SQ', Value: [code('121071', 'DCM', 'Finding')] }, '0040A160': { vr: 'UT', Value: ['Polyp'] } }] },
    } as unknown as DicomJson;
    expect(parseSrDetections(report)).toBeUndefined();
  });
});

describe('whole-slide pyramid', () => {
  it('lays out the TILED_FULL pyramid: 12 levels, row-major frames', async () => {
    const dir = 'wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm';
    const names = ['level-0-frames-0-30.dcm', 'level-1-frames-0-9.dcm', 'level-11-frames-0-1.dcm'];
    const levels = buildPyramid(await Promise.all(names.map(async (n) => toJson(await shared(`${dir}/${n}`)))));
    expect(levels.map((l) => [l.width, l.height])).toEqual([[2220, 2967], [1110, 1483], [1, 1]]);
    const base = levels[0]!;
    expect([base.tilesAcross, base.tilesDown, base.tiles.size]).toEqual([5, 6, 30]);
    expect(base.tiles.get('1,2')!.frame).toBe(2 * 5 + 1 + 1);
    expect(base.pixelSpacing![0]).toBeGreaterThan(0.0001);
    expect(levels[1]!.downsample).toBeCloseTo(2, 1);
    expect(levelFor(levels, 1)).toBe(0);
    expect(levelFor(levels, 0.5)).toBe(1);
  });

  it('places TILED_SPARSE frames by their Plane Position (Slide)', async () => {
    const json = toJson(await shared('wsi-cmu1-small-region/tiled-sparse-orthanc-wsi/cmu1-level-00.dcm'));
    const [level] = buildPyramid([json]);
    expect(level!.tileWidth).toBe(256);
    expect(level!.tiles.size).toBe(108);
    // Every frame sits at its own tile and frame numbers are 1..108.
    expect(new Set([...level!.tiles.values()].map((t) => t.frame)).size).toBe(108);
    expect(level!.tiles.get('0,0')).toBeDefined();
  });

  it('picks 1/2/5 scale-bar lengths', () => {
    expect(niceLength(740)).toBe(500);
    expect(niceLength(230)).toBe(200);
    expect(niceLength(1999)).toBe(1000);
  });
});

describe('bulk annotations', () => {
  it('decodes the highdicom Microscopy Bulk Simple Annotations sample', async () => {
    const ann = parseAnnotations(new Uint8Array(await shared('dicom-highdicom/sm_annotations.dcm')));
    expect(ann.coordinateType).toBe('2D');
    expect(ann.referencedSeries).toHaveLength(1);
    expect(ann.groups).toHaveLength(1);
    const [group] = ann.groups;
    expect(group!.graphicType).toBe('POINT');
    expect(group!.label).toBe('nuclei');
    expect(group!.count).toBe(2);
    expect(Array.from(group!.coordinates).map((v) => Math.round(v * 10) / 10)).toEqual([34.6, 18.4, 28.7, 34.9]);
  });
});

describe('multipart/related', () => {
  it('splits parts and keeps binary bodies exact', () => {
    const enc = new TextEncoder();
    const body = new Uint8Array([...enc.encode('--b1\r\nContent-Type: image/jpeg\r\n\r\n'), 0xff, 0xd8, 0x0d, 0x0a, 0xff, 0xd9, ...enc.encode('\r\n--b1\r\nContent-Type: image/jpeg\r\n\r\nxy\r\n--b1--\r\n')]);
    const parts = parseMultipart(body, 'multipart/related; type="image/jpeg"; boundary=b1');
    expect(parts).toHaveLength(2);
    expect(Array.from(parts[0]!.body)).toEqual([0xff, 0xd8, 0x0d, 0x0a, 0xff, 0xd9]);
    expect(parts[0]!.headers['content-type']).toBe('image/jpeg');
    expect(new TextDecoder().decode(parts[1]!.body)).toBe('xy');
  });
});
