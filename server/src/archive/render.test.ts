/** Pure parts of render.ts: which instance and frame a thumbnail shows, and what is refused before reading. */
import { describe, expect, it } from 'vitest';
import type { StoredInstance } from '../catalog/catalog.js';
import { AppError } from '../errors.js';
import { checkRenderable, MAX_RENDER_BYTES, representativeFrame, representativeInstance } from './render.js';

const image = (series: string, sop: string, extra: Partial<StoredInstance> = {}): StoredInstance => ({
  studyInstanceUid: '1.2',
  seriesInstanceUid: series,
  sopInstanceUid: sop,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  blobKey: sop,
  blobSize: 1000,
  numberOfFrames: 1,
  rows: 4,
  columns: 4,
  pixelData: { tag: '7FE00010', valueOffset: 500, valueLength: 16, encapsulated: false, frames: [[[500, 16]]], isVideo: false },
  ...extra,
});
const sr = (series: string, sop: string) => image(series, sop, { pixelData: undefined, rows: undefined, columns: undefined });
const video = (series: string, sop: string) =>
  image(series, sop, { transferSyntaxUid: '1.2.840.10008.1.2.4.102', numberOfFrames: 200, pixelData: { ...image('', '').pixelData!, isVideo: true } });

const statusOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof AppError ? err.code : 'other';
  }
};

describe('representativeInstance', () => {
  it('takes the middle instance of the first series with pixel data, skipping reports', () => {
    const chosen = representativeInstance([sr('1.1', '9'), image('1.2', '1'), image('1.2', '2'), image('1.2', '3'), image('1.3', '4')]);
    expect(chosen?.sopInstanceUid).toBe('2');
    expect(representativeInstance([image('1.2', '1'), image('1.2', '2')])?.sopInstanceUid).toBe('1');
  });

  it('prefers still images to video, uses video only when nothing else has pixel data, and gives none for reports only', () => {
    expect(representativeInstance([video('1.1', 'v'), image('1.2', 'i')])?.sopInstanceUid).toBe('i');
    expect(representativeInstance([sr('1.1', 's'), video('1.2', 'v')])?.sopInstanceUid).toBe('v');
    expect(representativeInstance([sr('1.1', 's')])).toBeUndefined();
  });

  it('shows the middle frame', () => {
    expect(representativeFrame(image('1', '1'))).toBe(1);
    expect(representativeFrame(image('1', '1', { numberOfFrames: 30 }))).toBe(15);
    expect(representativeFrame(image('1', '1', { numberOfFrames: 3 }))).toBe(2);
  });
});

describe('checkRenderable', () => {
  it('refuses what cannot be rendered before any read', () => {
    expect(statusOf(() => checkRenderable(image('1', '1'), 1))).toBeUndefined();
    expect(statusOf(() => checkRenderable(sr('1', '1'), 1))).toBe('BAD_REQUEST');
    expect(statusOf(() => checkRenderable(video('1', '1'), 1))).toBe('NOT_ACCEPTABLE');
    expect(statusOf(() => checkRenderable(image('1', '1'), 2))).toBe('NOT_FOUND');
    expect(statusOf(() => checkRenderable(image('1', '1', { blobSize: MAX_RENDER_BYTES + 1 }), 1))).toBe('NOT_ACCEPTABLE');
    expect(statusOf(() => checkRenderable(image('1', '1', { pixelData: { ...image('', '').pixelData!, tag: '7FE00008' } }), 1))).toBe('NOT_ACCEPTABLE');
  });
});
