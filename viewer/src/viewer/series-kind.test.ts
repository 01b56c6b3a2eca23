/** The study view shows each series the way its data can be shown (series-kind.ts). */
import { describe, expect, it } from 'vitest';
import type { DicomJson } from '../dicomweb/dicom-json.js';
import { kindOf } from './series-kind.js';

const VIDEO_ENDOSCOPIC = '1.2.840.10008.5.1.4.1.1.77.1.1.1';
const instance = (sopClass: string, transferSyntax?: string): DicomJson =>
  ({
    '00080016': { vr: 'UI', Value: [sopClass] },
    '00280010': { vr: 'US', Value: [576] },
    ...(transferSyntax === undefined ? {} : { '00020010': { vr: 'UI', Value: [transferSyntax] } }),
  }) as DicomJson;

describe('how a series is shown', () => {
  it('plays a Video Endoscopic Image whose frames are one MPEG-4 bitstream as video', () => {
    expect(kindOf([instance(VIDEO_ENDOSCOPIC, '1.2.840.10008.1.2.4.102')])).toBe('video');
  });

  it('shows a recording of JPEG frames (the live room writes these) as images with cine, not as an unplayable video', () => {
    expect(kindOf([instance(VIDEO_ENDOSCOPIC, '1.2.840.10008.1.2.4.50')])).toBe('image');
  });

  it('keeps a video SOP class of unknown transfer syntax as video', () => {
    expect(kindOf([instance(VIDEO_ENDOSCOPIC)])).toBe('video');
  });
});
