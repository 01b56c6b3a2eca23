/**
 * Test data for the archive benchmark, generated from pydicom's CT_small.dcm (explicit VR LE):
 *
 *  - a corpus of small single-frame instances (studies x 5 series x 10 instances, 40-500 KB each) with
 *    varied patient names, IDs, study dates and modalities, written once to .bench/corpus-v1/ and
 *    reused by later runs (deterministic UIDs: every run stores the same data into fresh servers);
 *  - large native multi-frame instances (Multi-frame Grayscale Word SC, 512x512x16 bit frames) made of
 *    a dcmjs-written header and pixel data produced in chunks, never held in memory; every call gets
 *    fresh UIDs so repeated uploads are new instances, not duplicates.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { log, MiB } from './util.js';

// dcmjs ships no types; this is the part of its API used here (loaded with require, so no global
// `declare module` is needed that could clash with one elsewhere in the project).
export type DicomElement = { vr: string; Value: unknown[] };
type DicomDictLike = { meta: Record<string, DicomElement>; dict: Record<string, DicomElement>; write(): ArrayBuffer };
const dcmjsData = (
  createRequire(import.meta.url)('dcmjs') as {
    data: {
      DicomMessage: { readFile(buffer: ArrayBuffer): DicomDictLike };
      DicomDict: new (meta: Record<string, DicomElement>) => DicomDictLike;
    };
  }
).data;

const TEMPLATE_CANDIDATES = [
  '/work/shared/data/dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm',
];

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const SOP_CLASS: Record<string, string> = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
  PT: '1.2.840.10008.5.1.4.1.1.128',
  CR: '1.2.840.10008.5.1.4.1.1.1',
  DX: '1.2.840.10008.5.1.4.1.1.1.1',
  US: '1.2.840.10008.5.1.4.1.1.6.1',
};
const MULTIFRAME_GRAYSCALE_WORD_SC = '1.2.840.10008.5.1.4.1.1.7.3';

export const SERIES_PER_STUDY = 5;
export const INSTANCES_PER_SERIES = 10;

const FAMILY = [
  'SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS', 'RODRIGUEZ', 'MARTINEZ',
  'HERNANDEZ', 'LOPEZ', 'GONZALEZ', 'WILSON', 'ANDERSON', 'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON', 'MARTIN',
  'LEE', 'PEREZ', 'THOMPSON', 'WHITE', 'HARRIS', 'SANCHEZ', 'CLARK', 'RAMIREZ', 'LEWIS', 'ROBINSON',
  'WALKER', 'YOUNG', 'ALLEN', 'KING', 'WRIGHT', 'SCOTT', 'TORRES', 'NGUYEN', 'HILL', 'FLORES',
];
const GIVEN = [
  'JAMES', 'MARY', 'JOHN', 'PATRICIA', 'ROBERT', 'JENNIFER', 'MICHAEL', 'LINDA', 'DAVID', 'ELIZABETH',
  'WILLIAM', 'BARBARA', 'RICHARD', 'SUSAN', 'JOSEPH', 'JESSICA', 'THOMAS', 'SARAH', 'CHARLES', 'KAREN',
];
/** Modalities of the series of a study, by study index modulo 10. */
const STUDY_MODALITIES: string[][] = [
  ['CT'], ['CT'], ['CT'], ['CT'], ['MR'], ['MR'], ['CT', 'PT'], ['CR'], ['US'], ['MR', 'CT'],
];
/** Square image sizes and their weights: ~43 KB, ~133 KB and ~462 KB instances. */
const IMAGE_SIZES = [144, 144, 144, 144, 144, 144, 144, 144, 144, 144, 144, 144, 256, 256, 256, 256, 256, 480, 480, 480];

export interface InstancePlan {
  sopInstanceUid: string;
  file: string;
  bytes: number;
}
export interface SeriesPlan {
  seriesInstanceUid: string;
  modality: string;
  seriesNumber: number;
  instances: InstancePlan[];
}
export interface StudyPlan {
  index: number;
  studyInstanceUid: string;
  patientName: string;
  patientId: string;
  studyDate: string;
  accessionNumber: string;
  modalities: string[];
  series: SeriesPlan[];
}

/** A deterministic UID under the 2.25 (UUID-derived) root. */
export function uidFrom(seed: string): string {
  const hex = crypto.createHash('sha1').update(seed).digest('hex').slice(0, 30);
  return `2.25.${BigInt(`0x${hex}`).toString()}`;
}

export function randomUid(): string {
  return `2.25.${BigInt(`0x${crypto.randomUUID().replace(/-/g, '')}`).toString()}`;
}

export function el(vr: string, ...values: unknown[]): DicomElement {
  return { vr, Value: values };
}

function findTemplate(): string {
  const found = TEMPLATE_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no DICOM template found (looked for ${TEMPLATE_CANDIDATES.join(', ')})`);
  return found;
}

/** Header elements of CT_small without private tags, pixel data and trailing padding. */
export function loadTemplateDict(): Record<string, DicomElement> {
  const buf = fs.readFileSync(findTemplate());
  const parsed = dcmjsData.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const dict: Record<string, DicomElement> = {};
  for (const [tag, element] of Object.entries(parsed.dict)) {
    const group = parseInt(tag.slice(0, 4), 16);
    if (group % 2 === 1 || group >= 0x7fe0) continue; // private, pixel data, padding
    if (['00101002', '00280120'].includes(tag)) continue; // OtherPatientIDsSequence, PixelPaddingValue
    dict[tag] = { vr: element.vr, Value: element.Value };
  }
  return dict;
}

const CT_IMAGE_STORAGE_UID = '1.2.840.10008.5.1.4.1.1.2';
let ctTemplate: Record<string, DicomElement> | undefined;

/**
 * One Part-10 CT slice of `side`×`side` 16-bit (12 stored) pixels given as `pixels`, built on the
 * CT_small template with the UIDs and numbers given (bench:archive's one-instance-per-request and
 * bench:capacity's instances).
 */
export function ctSliceInstance(o: { side: number; pixels: Buffer; studyUid: string; seriesUid: string; sopInstanceUid: string; instanceNumber: number; patientId?: string }): Buffer {
  ctTemplate ??= loadTemplateDict();
  const dict = {
    ...ctTemplate,
    '00080016': el('UI', CT_IMAGE_STORAGE_UID),
    '00080018': el('UI', o.sopInstanceUid),
    '00080060': el('CS', 'CT'),
    ...(o.patientId === undefined ? {} : { '00100020': el('LO', o.patientId) }),
    '0020000D': el('UI', o.studyUid),
    '0020000E': el('UI', o.seriesUid),
    '00200013': el('IS', o.instanceNumber),
    '00280010': el('US', o.side),
    '00280011': el('US', o.side),
    '00280100': el('US', 16),
    '00280101': el('US', 12),
    '00280102': el('US', 11),
    '00280103': el('US', 0),
  };
  return Buffer.concat([writeHeader(dict, CT_IMAGE_STORAGE_UID, o.sopInstanceUid), pixelDataElementHeader(o.pixels.length), o.pixels]);
}

/** Encodes a dataset (no pixel data) as a Part-10 file prefix, explicit VR LE. */
export function writeHeader(dict: Record<string, DicomElement>, sopClassUid: string, sopInstanceUid: string): Buffer {
  const meta: Record<string, DicomElement> = {
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': el('UI', sopClassUid),
    '00020003': el('UI', sopInstanceUid),
    '00020010': el('UI', EXPLICIT_VR_LE),
    '00020012': el('UI', '1.2.826.0.1.3680043.10.1558.1'),
    '00020013': el('SH', 'PACS-BENCH'),
  };
  const dd = new dcmjsData.DicomDict(meta);
  dd.dict = dict;
  return Buffer.from(dd.write());
}

/** The (7FE0,0010) OW element header for `length` bytes of native pixel data. */
export function pixelDataElementHeader(length: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(0x7fe0, 0);
  b.writeUInt16LE(0x0010, 2);
  b.write('OW', 4, 'latin1');
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(length, 8);
  return b;
}

/** Deterministic pseudo-random 12-bit pixels (xorshift32), so nothing compresses trivially. */
export function pseudoRandomPixels(byteLength: number, seed: number): Buffer {
  const out = Buffer.alloc(byteLength);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 1 < byteLength; i += 2) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt16LE(x & 0x0fff, i);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Small-instance corpus

function planStudy(index: number): Omit<StudyPlan, 'series'> & { seriesShapes: { uid: string; modality: string; size: number }[] } {
  const patient = index % 120; // 120 patients, some with several studies
  const family = FAMILY[(patient * 7) % FAMILY.length]!;
  const given = GIVEN[(patient * 3) % GIVEN.length]!;
  const dayOffset = (index * 37) % 3650; // spread over ~10 years from 2015-01-01
  const date = new Date(Date.UTC(2015, 0, 1) + dayOffset * 86_400_000);
  const studyDate = date.toISOString().slice(0, 10).replace(/-/g, '');
  const modalities = STUDY_MODALITIES[index % STUDY_MODALITIES.length]!;
  const seriesShapes = Array.from({ length: SERIES_PER_STUDY }, (_, j) => ({
    uid: uidFrom(`bench-v1/study/${index}/series/${j}`),
    modality: modalities[j % modalities.length]!,
    size: IMAGE_SIZES[(index * SERIES_PER_STUDY + j) % IMAGE_SIZES.length]!,
  }));
  return {
    index,
    studyInstanceUid: uidFrom(`bench-v1/study/${index}`),
    patientName: `${family}^${given}`,
    patientId: `BENCH-P${String(patient).padStart(4, '0')}`,
    studyDate,
    accessionNumber: `ACC${String(index).padStart(6, '0')}`,
    modalities: [...new Set(modalities)],
    seriesShapes,
  };
}

/**
 * Makes sure studies 0..count-1 exist under `cacheDir` and returns their plans. A study directory is
 * complete once its study.json is written, so an interrupted run resumes where it stopped.
 */
export function ensureSmallCorpus(cacheDir: string, count: number): StudyPlan[] {
  const root = path.join(cacheDir, 'corpus-v1');
  fs.mkdirSync(root, { recursive: true });
  let template: Record<string, DicomElement> | undefined;
  const pixelCache = new Map<number, Buffer>();
  const plans: StudyPlan[] = [];
  let generated = 0;
  const started = Date.now();
  for (let index = 0; index < count; index++) {
    const dir = path.join(root, `study-${String(index).padStart(4, '0')}`);
    const manifest = path.join(dir, 'study.json');
    if (fs.existsSync(manifest)) {
      plans.push(JSON.parse(fs.readFileSync(manifest, 'utf8')) as StudyPlan);
      continue;
    }
    template ??= loadTemplateDict();
    fs.mkdirSync(dir, { recursive: true });
    const p = planStudy(index);
    const series: SeriesPlan[] = p.seriesShapes.map((shape, j) => {
      let pixels = pixelCache.get(shape.size);
      if (!pixels) {
        pixels = pseudoRandomPixels(shape.size * shape.size * 2, shape.size);
        pixelCache.set(shape.size, pixels);
      }
      const instances: InstancePlan[] = [];
      for (let k = 0; k < INSTANCES_PER_SERIES; k++) {
        const sopInstanceUid = uidFrom(`bench-v1/study/${index}/series/${j}/instance/${k}`);
        const sopClassUid = SOP_CLASS[shape.modality] ?? SOP_CLASS.CT!;
        const dict: Record<string, DicomElement> = {
          ...template,
          '00080016': el('UI', sopClassUid),
          '00080018': el('UI', sopInstanceUid),
          '00080020': el('DA', p.studyDate),
          '00080021': el('DA', p.studyDate),
          '00080030': el('TM', `${String(8 + (index % 10)).padStart(2, '0')}${String((index * 7) % 60).padStart(2, '0')}00`),
          '00080050': el('SH', p.accessionNumber),
          '00080060': el('CS', shape.modality),
          '00080090': el('PN', { Alphabetic: 'REFERRER^DOCTOR' }),
          '00081030': el('LO', `BENCH STUDY ${index} ${p.modalities.join('/')}`),
          '0008103E': el('LO', `BENCH SERIES ${j + 1} ${shape.modality}`),
          '00100010': el('PN', { Alphabetic: p.patientName }),
          '00100020': el('LO', p.patientId),
          '00100030': el('DA', `19${String(40 + (index % 60)).padStart(2, '0')}0101`),
          '00100040': el('CS', index % 2 === 0 ? 'F' : 'M'),
          '0020000D': el('UI', p.studyInstanceUid),
          '0020000E': el('UI', shape.uid),
          '00200010': el('SH', `S${index}`),
          '00200011': el('IS', j + 1),
          '00200013': el('IS', k + 1),
          '00200052': el('UI', uidFrom(`bench-v1/study/${index}/for`)),
          '00280010': el('US', shape.size),
          '00280011': el('US', shape.size),
          '00280100': el('US', 16),
          '00280101': el('US', 12),
          '00280102': el('US', 11),
          '00280103': el('US', 0),
        };
        const header = writeHeader(dict, sopClassUid, sopInstanceUid);
        const file = path.join(dir, `s${j}-i${k}.dcm`);
        const body = Buffer.concat([header, pixelDataElementHeader(pixels.length), pixels]);
        fs.writeFileSync(file, body);
        instances.push({ sopInstanceUid, file: path.relative(root, file), bytes: body.length });
      }
      return { seriesInstanceUid: shape.uid, modality: shape.modality, seriesNumber: j + 1, instances };
    });
    const { seriesShapes: _unused, ...rest } = p;
    const plan: StudyPlan = { ...rest, series };
    fs.writeFileSync(manifest, JSON.stringify(plan));
    plans.push(plan);
    generated++;
    if (generated % 20 === 0) log(`generated ${generated} studies (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  if (generated > 0) log(`generated ${generated} new studies in ${((Date.now() - started) / 1000).toFixed(1)} s under ${root}`);
  return plans;
}

export function corpusFile(cacheDir: string, relative: string): string {
  return path.join(cacheDir, 'corpus-v1', relative);
}

// ---------------------------------------------------------------------------------------------------
// Large multi-frame instances, streamed

const FRAME_SIDE = 512;
const FRAME_BYTES = FRAME_SIDE * FRAME_SIDE * 2;
let pixelBlock: Buffer | undefined;

export interface StreamedInstance {
  sopInstanceUid: string;
  studyInstanceUid: string;
  /** Exact size of the Part-10 file in bytes. */
  bytes: number;
  frames: number;
  /** Produces the file's bytes in chunks of at most 4 MiB. */
  chunks(): AsyncGenerator<Buffer>;
}

/** A native multi-frame instance of about `approxBytes` (rounded to whole 512 KiB frames). */
export function largeMultiframeInstance(approxBytes: number, label: string): StreamedInstance {
  const frames = Math.max(1, Math.round(approxBytes / FRAME_BYTES));
  const pixelBytes = frames * FRAME_BYTES;
  const studyInstanceUid = randomUid();
  const sopInstanceUid = randomUid();
  const dict: Record<string, DicomElement> = {
    '00080016': el('UI', MULTIFRAME_GRAYSCALE_WORD_SC),
    '00080018': el('UI', sopInstanceUid),
    '00080020': el('DA', '20240601'),
    '00080030': el('TM', '120000'),
    '00080050': el('SH', ''),
    '00080060': el('CS', 'OT'),
    '00080064': el('CS', 'WSD'),
    '00080090': el('PN'),
    '00081030': el('LO', `BENCH LARGE ${label}`),
    '00100010': el('PN', { Alphabetic: 'LARGE^MULTIFRAME' }),
    '00100020': el('LO', 'BENCH-LARGE'),
    '00100030': el('DA'),
    '00100040': el('CS'),
    '0020000D': el('UI', studyInstanceUid),
    '0020000E': el('UI', randomUid()),
    '00200010': el('SH', 'LARGE'),
    '00200011': el('IS', 1),
    '00200013': el('IS', 1),
    '00280002': el('US', 1),
    '00280004': el('CS', 'MONOCHROME2'),
    '00280008': el('IS', frames),
    '00280010': el('US', FRAME_SIDE),
    '00280011': el('US', FRAME_SIDE),
    '00280100': el('US', 16),
    '00280101': el('US', 12),
    '00280102': el('US', 11),
    '00280103': el('US', 0),
  };
  const header = Buffer.concat([
    writeHeader(dict, MULTIFRAME_GRAYSCALE_WORD_SC, sopInstanceUid),
    pixelDataElementHeader(pixelBytes),
  ]);
  pixelBlock ??= pseudoRandomPixels(4 * MiB, 0xbe4c);
  const block = pixelBlock;
  return {
    sopInstanceUid,
    studyInstanceUid,
    bytes: header.length + pixelBytes,
    frames,
    async *chunks() {
      yield header;
      let left = pixelBytes;
      while (left > 0) {
        const n = Math.min(left, block.length);
        yield n === block.length ? block : block.subarray(0, n);
        left -= n;
      }
    },
  };
}

/** Writes one streamed instance to a file (for inspecting the generator's output). */
export async function writeStreamedInstance(instance: StreamedInstance, file: string): Promise<void> {
  const out = fs.createWriteStream(file);
  for await (const chunk of instance.chunks()) {
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}
