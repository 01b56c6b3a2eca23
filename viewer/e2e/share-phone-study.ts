/**
 * The study a patient opens on the phone from a result slip, shared by share-phone.e2e.test.ts and
 * scripts/bench-viewer.ts (`--only phone`): an endoscopy series of colour stills (960×768 RGB, tissue-like
 * texture and noise so the rendered JPEGs weigh what real ones do) and a CT-like series (512×512, 16 bit),
 * with instance numbers out of storage order, a Vietnamese patient name, and a signed radiology report
 * (its SR and PDF series are then in the study, as in a real one).
 */
import dcmjs from 'dcmjs';
import { writePart10 } from '../../server/src/dicom/write-part10.js';

const { DicomMetaDictionary } = dcmjs.data;

export const PHONE_PATIENT = 'NGUYỄN^THỊ MAI';
export const PHONE_PATIENT_SHOWN = 'NGUYỄN THỊ MAI';
export const PHONE_STUDY_DATE = '20260105';
export const PHONE_STUDY_DESCRIPTION = 'Nội soi dạ dày';

export interface PhoneStudy {
  studyInstanceUid: string;
  endoscopy: { seriesInstanceUid: string; sopInstanceUids: string[] };
  ct: { seriesInstanceUid: string; sopInstanceUids: string[] };
  files: Buffer[];
}

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

const uid = (): string => DicomMetaDictionary.uid() as string;

function common(study: string, series: string, sop: string, modality: string, seriesNumber: number, instanceNumber: number, description: string) {
  return {
    SOPInstanceUID: sop,
    StudyInstanceUID: study,
    SeriesInstanceUID: series,
    SpecificCharacterSet: 'ISO_IR 192',
    PatientName: PHONE_PATIENT,
    PatientID: 'PHONE-0001',
    PatientBirthDate: '19800101',
    PatientSex: 'F',
    StudyDate: PHONE_STUDY_DATE,
    StudyTime: '101500',
    StudyDescription: PHONE_STUDY_DESCRIPTION,
    AccessionNumber: 'PHONE-ACC-1',
    Modality: modality,
    SeriesNumber: String(seriesNumber),
    SeriesDescription: description,
    InstanceNumber: String(instanceNumber),
  };
}

/** A colour still: a pink-red lumen with folds, a darker centre, a vignette and sensor noise. */
function endoscopyStill(study: string, series: string, sop: string, instanceNumber: number): Buffer {
  const width = 960;
  const height = 768;
  const pixels = new Uint8Array(width * height * 3);
  const random = lcg(instanceNumber * 7919);
  const cx = width / 2 + 60 * Math.sin(instanceNumber);
  const cy = height / 2 + 40 * Math.cos(instanceNumber);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const d = Math.hypot(x - cx, y - cy) / (width / 2);
      const fold = Math.sin(Math.atan2(y - cy, x - cx) * (6 + instanceNumber) + d * 14) * 0.5 + 0.5;
      const light = Math.max(0, 1 - Math.abs(d - 0.55) * 1.4) * (d < 1.25 ? 1 : 0.2);
      const noise = (random() - 0.5) * 18;
      const i = (y * width + x) * 3;
      pixels[i] = Math.max(0, Math.min(255, 70 + 170 * light + 25 * fold + noise));
      pixels[i + 1] = Math.max(0, Math.min(255, 25 + 80 * light + 30 * fold * light + noise));
      pixels[i + 2] = Math.max(0, Math.min(255, 30 + 70 * light + 15 * fold + noise));
    }
  }
  return writePart10({
    ...common(study, series, sop, 'ES', 1, instanceNumber, 'Dạ dày'),
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.77.1.1',
    SamplesPerPixel: 3,
    PhotometricInterpretation: 'RGB',
    PlanarConfiguration: 0,
    Rows: height,
    Columns: width,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OB' },
  });
}

/** A CT-like slice: a disc of soft tissue with noise and a bone ring. */
function ctSlice(study: string, series: string, sop: string, instanceNumber: number): Buffer {
  const size = 512;
  const pixels = new Int16Array(size * size);
  const random = lcg(instanceNumber + 1);
  const r0 = 200 + 30 * Math.sin(instanceNumber / 4);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const d = Math.hypot(x - 256, y - 256);
      const noise = Math.round((random() + random() + random() - 1.5) * 8);
      pixels[y * size + x] = d < r0 - 12 ? 1040 + ((x * 7 + y * 13 + instanceNumber) % 40) + noise : d < r0 ? 1900 + noise * 4 : Math.max(0, 10 + noise);
    }
  }
  return writePart10({
    ...common(study, series, sop, 'CT', 2, instanceNumber, 'Bụng'),
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    ImagePositionPatient: [-256, -256, instanceNumber * 5],
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
    PixelSpacing: [0.7, 0.7],
    FrameOfReferenceUID: `${study}.1`,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: size,
    Columns: size,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 1,
    RescaleIntercept: '-1024',
    RescaleSlope: '1',
    WindowCenter: '40',
    WindowWidth: '400',
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OW' },
  });
}

/** The study's files: `stills` endoscopy images and `slices` CT slices, stored in reverse instance order. */
export function phoneStudy(options: { stills?: number; slices?: number } = {}): PhoneStudy {
  const study = uid();
  const endoscopy = { seriesInstanceUid: uid(), sopInstanceUids: [] as string[] };
  const ct = { seriesInstanceUid: uid(), sopInstanceUids: [] as string[] };
  const files: Buffer[] = [];
  const stills = options.stills ?? 4;
  const slices = options.slices ?? 3;
  for (let n = 1; n <= stills; n += 1) endoscopy.sopInstanceUids.push(uid());
  for (let n = 1; n <= slices; n += 1) ct.sopInstanceUids.push(uid());
  // Stored last-first: the page must order by Instance Number, not by arrival.
  for (let n = stills; n >= 1; n -= 1) files.push(endoscopyStill(study, endoscopy.seriesInstanceUid, endoscopy.sopInstanceUids[n - 1]!, n));
  for (let n = slices; n >= 1; n -= 1) files.push(ctSlice(study, ct.seriesInstanceUid, ct.sopInstanceUids[n - 1]!, n));
  return { studyInstanceUid: study, endoscopy, ct, files };
}

/** How the helpers below reach the server: a fetch-like call on its URL (the e2e test) or Fastify's inject (the benchmark). */
export type Call = (method: string, url: string, body?: unknown) => Promise<{ status: number; json: unknown }>;

/** A signed radiology report on the study (its SR and PDF stored in the study). Returns its id. */
export async function signReport(call: Call, studyInstanceUid: string): Promise<string> {
  const created = await call('POST', '/reports', { studyInstanceUid, kind: 'radiology' });
  if (created.status !== 201) throw new Error(`POST /reports answered ${created.status}: ${JSON.stringify(created.json)}`);
  const report = created.json as { id: string; version: { revision: number } };
  const saved = await call('PUT', `/reports/${report.id}`, {
    content: { kind: 'radiology', findings: 'Niêm mạc dạ dày bình thường.', impression: 'Không thấy tổn thương.' },
    revision: report.version.revision,
  });
  if (saved.status !== 200) throw new Error(`PUT /reports answered ${saved.status}: ${JSON.stringify(saved.json)}`);
  const signed = await call('POST', `/reports/${report.id}/sign`, {});
  if (signed.status !== 200) throw new Error(`POST /reports/…/sign answered ${signed.status}: ${JSON.stringify(signed.json)}`);
  return report.id;
}

/** A share link for the study (`POST /share/links`): its token and PIN. */
export async function shareLink(call: Call, body: Record<string, unknown>): Promise<{ token: string; pin: string | null; linkId: string }> {
  const made = await call('POST', '/share/links', body);
  if (made.status !== 201) throw new Error(`POST /share/links answered ${made.status}: ${JSON.stringify(made.json)}`);
  const json = made.json as { token: string; pin: string | null; link: { id: string } };
  return { token: json.token, pin: json.pin, linkId: json.link.id };
}
