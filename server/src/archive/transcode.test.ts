/**
 * transcode.ts on its own: which syntaxes are decodable, byte swapping, the pixel attributes read from
 * indexed DICOM JSON, and that a bad bitstream or a too-large request is a 406 that says why.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { describe, expect, it } from 'vitest';
import { sharedDataDir } from '../test-support/shared-data.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { AppError } from '../errors.js';
import { negotiateInstances } from '../dicomweb/wado-accept.js';
import {
  canDecodeFrames,
  canTranscodeToExplicitLittleEndian,
  decodeFrame,
  decodedFrameLength,
  initializeCodecs,
  MAX_TRANSCODE_BYTES,
  pixelAttributesFromJson,
  swapToLittleEndian,
  type PixelAttributes,
} from './transcode.js';

const MONO16: PixelAttributes = {
  rows: 4,
  columns: 4,
  bitsAllocated: 16,
  bitsStored: 16,
  highBit: 15,
  pixelRepresentation: 0,
  samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2',
  planarConfiguration: 0,
};

describe('transcode: capabilities', () => {
  it('decodes the JPEG family, JPEG-LS, JPEG 2000, HTJ2K and RLE; rewrites the native syntaxes', () => {
    for (const uid of ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.203', '1.2.840.10008.1.2.5']) {
      expect(canDecodeFrames(uid), uid).toBe(true);
      expect(canTranscodeToExplicitLittleEndian(uid), uid).toBe(true);
    }
    for (const uid of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']) {
      expect(canDecodeFrames(uid), uid).toBe(false);
      expect(canTranscodeToExplicitLittleEndian(uid), uid).toBe(true);
    }
    // Video, JPEG 2000 Part 2, JPEG XL, JPIP: not decodable.
    for (const uid of ['1.2.840.10008.1.2.4.102', '1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.112', '1.2.840.10008.1.2.4.94']) {
      expect(canTranscodeToExplicitLittleEndian(uid), uid).toBe(false);
    }
  });

  it('swaps 16-bit big-endian words and leaves 8-bit samples alone, without touching the input', () => {
    const be = Buffer.from([0x12, 0x34, 0xab, 0xcd]);
    expect(swapToLittleEndian(be, 16)).toEqual(Buffer.from([0x34, 0x12, 0xcd, 0xab]));
    expect(be).toEqual(Buffer.from([0x12, 0x34, 0xab, 0xcd]));
    expect(swapToLittleEndian(be, 8)).toBe(be);
  });

  it('reads the image pixel module from indexed DICOM JSON, with defaults, and refuses what it cannot decode', () => {
    const json = {
      '00280010': { vr: 'US', Value: [480] },
      '00280011': { vr: 'US', Value: [640] },
      '00280100': { vr: 'US', Value: [8] },
      '00280002': { vr: 'US', Value: [3] },
      '00280004': { vr: 'CS', Value: ['YBR_FULL_422'] },
    };
    const attributes = pixelAttributesFromJson(json);
    expect(attributes).toMatchObject({ rows: 480, columns: 640, bitsAllocated: 8, bitsStored: 8, highBit: 7, pixelRepresentation: 0, planarConfiguration: 0 });
    expect(decodedFrameLength(attributes)).toBe(480 * 640 * 3);
    expect(() => pixelAttributesFromJson({ ...json, '00280100': { vr: 'US', Value: [32] } })).toThrow(/BitsAllocated 8 and 16/);
    expect(() => pixelAttributesFromJson({ '00280011': { vr: 'US', Value: [4] } })).toThrow(/rows/);
  });
});

describe('transcode: failures are 406 with a reason', () => {
  it('a corrupt bitstream is a 406 naming the frame and the syntax', async () => {
    await initializeCodecs();
    for (const uid of ['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.5']) {
      let error: unknown;
      try {
        decodeFrame(uid, MONO16, Buffer.from('not a bitstream!'), 3);
      } catch (err) {
        error = err;
      }
      expect(error, uid).toBeInstanceOf(AppError);
      expect((error as AppError).code).toBe('NOT_ACCEPTABLE');
      expect((error as AppError).message).toContain(`Frame 3 (stored as ${uid})`);
    }
    // The WebAssembly module stays usable after a decoder error: a good RLE frame still decodes.
    const file = await readFile(path.join(sharedDataDir, 'dicom-pydicom/pydicom-data/emri_small_RLE.dcm'));
    const parsed = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer);
    const rle = Buffer.from(parsed.dict['7FE00010']!.Value![0] as ArrayBuffer);
    const decoded = decodeFrame('1.2.840.10008.1.2.5', { ...MONO16, rows: 64, columns: 64 }, rle);
    expect(decoded.pixels).toHaveLength(64 * 64 * 2);
    expect(decoded.pixels.some((b) => b !== 0)).toBe(true);
  });

  it('an instance too large to transcode in memory is refused at negotiation, naming the limit', () => {
    const instance: StoredInstance = {
      studyInstanceUid: '1.2.3',
      seriesInstanceUid: '1.2.3.4',
      sopInstanceUid: '1.2.3.4.5',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
      transferSyntaxUid: '1.2.840.10008.1.2.4.90',
      blobKey: 'x',
      blobSize: MAX_TRANSCODE_BYTES + 1,
      numberOfFrames: 1,
      rows: 512,
      columns: 512,
      pixelData: undefined,
    };
    expect(() => negotiateInstances(undefined, [instance])).toThrow(new RegExp(`over the ${MAX_TRANSCODE_BYTES}-byte limit`));
    expect(negotiateInstances(undefined, [{ ...instance, blobSize: 1000 }])).toEqual(new Set([instance.sopInstanceUid]));
    expect(negotiateInstances('multipart/related; type="application/dicom"; transfer-syntax=*', [instance]).size).toBe(0);
  });
});
