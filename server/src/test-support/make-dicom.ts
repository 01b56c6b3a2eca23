/**
 * Generates small Part-10 test instances with dcmjs (Explicit VR Little Endian, native pixel data), and
 * the header of arbitrarily large ones whose pixel data the caller streams, so tests need no big fixtures.
 */
import dcmjs from 'dcmjs';
import { writePart10 } from '../dicom/write-part10.js';

const { DicomMetaDictionary } = dcmjs.data;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

export interface TestInstanceOptions {
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  sopClassUid?: string;
  patientName?: string;
  patientId?: string;
  studyDate?: string;
  modality?: string;
  accessionNumber?: string;
  rows?: number;
  columns?: number;
  numberOfFrames?: number;
  /** Pixel values to store instead of the default ramp (rows × columns × samples × frames bytes). */
  pixels?: Uint8Array;
  /** 3 with `pixels`: an RGB image (PhotometricInterpretation RGB, interleaved). */
  samplesPerPixel?: 1 | 3;
}

export function newUid(): string {
  return DicomMetaDictionary.uid() as string;
}

function naturalDataset(options: TestInstanceOptions, withPixels: boolean): Record<string, unknown> {
  const rows = options.rows ?? 4;
  const columns = options.columns ?? 4;
  const frames = options.numberOfFrames ?? 1;
  const dataset: Record<string, unknown> = {
    SOPClassUID: options.sopClassUid ?? SECONDARY_CAPTURE,
    SOPInstanceUID: options.sopInstanceUid ?? newUid(),
    StudyInstanceUID: options.studyInstanceUid ?? newUid(),
    SeriesInstanceUID: options.seriesInstanceUid ?? newUid(),
    PatientName: options.patientName ?? 'TEST^PATIENT',
    PatientID: options.patientId ?? 'TEST-ID',
    StudyDate: options.studyDate ?? '20240102',
    StudyTime: '101500',
    AccessionNumber: options.accessionNumber ?? 'ACC1',
    Modality: options.modality ?? 'OT',
    SeriesNumber: '1',
    InstanceNumber: '1',
    SamplesPerPixel: options.samplesPerPixel ?? 1,
    PhotometricInterpretation: options.samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2',
    ...(options.samplesPerPixel === 3 ? { PlanarConfiguration: 0 } : {}),
    Rows: rows,
    Columns: columns,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
  };
  if (frames > 1) dataset['NumberOfFrames'] = String(frames);
  if (withPixels) {
    let pixels = options.pixels;
    if (pixels === undefined) {
      pixels = new Uint8Array(rows * columns * frames);
      for (let i = 0; i < pixels.length; i += 1) pixels[i] = i % 251;
    }
    dataset['PixelData'] = pixels.buffer;
    dataset['_vrMap'] = { PixelData: 'OB' };
  }
  return dataset;
}

const toPart10 = (dataset: Record<string, unknown>): Buffer => writePart10(dataset, EXPLICIT_VR_LE);

/** A complete small instance with native 8-bit pixel data. */
export function makeInstance(options: TestInstanceOptions = {}): Buffer {
  return toPart10(naturalDataset(options, true));
}

/**
 * The bytes of a Part-10 file up to and including the Pixel Data element header (Explicit VR LE,
 * OB, defined length). The caller then streams exactly `pixelBytes` bytes of pixel data.
 */
export function makeLargeInstanceHeader(options: TestInstanceOptions): { header: Buffer; pixelBytes: number } {
  const rows = options.rows ?? 1024;
  const columns = options.columns ?? 1024;
  const frames = options.numberOfFrames ?? 1;
  const pixelBytes = rows * columns * frames;
  const withoutPixels = toPart10(naturalDataset({ ...options, rows, columns, numberOfFrames: frames }, false));
  const element = Buffer.alloc(12);
  element.writeUInt16LE(0x7fe0, 0);
  element.writeUInt16LE(0x0010, 2);
  element.write('OB', 4, 'latin1');
  element.writeUInt32LE(pixelBytes, 8);
  return { header: Buffer.concat([withoutPixels, element]), pixelBytes };
}

/** Builds a multipart/related body from parts. */
export function multipartBody(parts: Array<{ body: Buffer; contentType?: string }>, boundary = 'test-boundary-7f3a'): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${part.contentType ?? 'application/dicom'}\r\n\r\n`));
    chunks.push(part.body);
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

export const STOW_CONTENT_TYPE = (boundary = 'test-boundary-7f3a') =>
  `multipart/related; type="application/dicom"; boundary=${boundary}`;
