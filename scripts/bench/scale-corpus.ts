/**
 * Synthetic corpus of the index-growth benchmark (bench-scale.ts): a deterministic plan of patients,
 * studies, series and instances, each study a pure function of its index (so a restarted run knows what
 * was loaded and what every query must answer without keeping it), and a tiny Explicit VR Little Endian
 * Part-10 writer for CT-like instances with 8×8×16-bit pixel data (~1.3 KB each: the index grows, the
 * disk barely does). No dcmjs on the hot path: a million instances are encoded by the client on the same
 * cores as the server, so the encoder must cost next to nothing.
 */
import crypto from 'node:crypto';

export interface ScaleShape {
  /** Distinct patients; study k belongs to patient k mod patients (several studies per patient). */
  patients: number;
  seriesPerStudy: number;
  instancesPerSeries: number;
}

export interface ScaleSeries {
  seriesInstanceUid: string;
  modality: string;
  seriesNumber: number;
  description: string;
}

export interface ScaleStudy {
  index: number;
  studyInstanceUid: string;
  patientIndex: number;
  patientId: string;
  /** DICOM PN, e.g. GARCIA^MARY. */
  patientName: string;
  birthDate: string;
  sex: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  description: string;
  /** Distinct modalities of the study's series (ModalitiesInStudy). */
  modalities: string[];
  series: ScaleSeries[];
}

const FAMILY = [
  'SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS', 'RODRIGUEZ', 'MARTINEZ',
  'HERNANDEZ', 'LOPEZ', 'GONZALEZ', 'WILSON', 'ANDERSON', 'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON', 'MARTIN',
  'NGUYEN', 'TRAN', 'LE', 'PHAM', 'HOANG', 'VU', 'VO', 'DANG', 'BUI', 'DO',
  'WALKER', 'YOUNG', 'ALLEN', 'KING', 'WRIGHT', 'SCOTT', 'TORRES', 'HILL', 'FLORES', 'GREEN',
];
const GIVEN = [
  'JAMES', 'MARY', 'JOHN', 'PATRICIA', 'ROBERT', 'JENNIFER', 'MICHAEL', 'LINDA', 'DAVID', 'ELIZABETH',
  'WILLIAM', 'BARBARA', 'RICHARD', 'SUSAN', 'JOSEPH', 'JESSICA', 'THOMAS', 'SARAH', 'CHARLES', 'KAREN',
];
/** Series modalities of study k, by k mod 10: mostly CT, some MR, PET/CT, CR, US. */
const STUDY_MODALITIES: string[][] = [['CT'], ['CT'], ['CT'], ['CT'], ['MR'], ['MR'], ['CT', 'PT'], ['CR'], ['US'], ['MR', 'CT']];
export const QUERY_MODALITIES = ['CT', 'MR', 'PT', 'CR', 'US'];
const DESCRIPTIONS: Record<string, string> = { CT: 'CT CHEST WITH CONTRAST', MR: 'MR BRAIN', PT: 'PET/CT WHOLE BODY', CR: 'CHEST PA', US: 'US ABDOMEN' };
const SOP_CLASS: Record<string, string> = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
  PT: '1.2.840.10008.5.1.4.1.1.128',
  CR: '1.2.840.10008.5.1.4.1.1.1',
  US: '1.2.840.10008.5.1.4.1.1.6.1',
};
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const IMPLEMENTATION_CLASS_UID = '2.25.250021720117004617374318240937466389171';
/** Days over which study dates spread: 2015-01-01 plus up to ten years. */
const DATE_SPAN_DAYS = 3650;
const DATE_BASE_MS = Date.UTC(2015, 0, 1);
export const PIXEL_SIZE = 8;

/** A run's UID root: 2.25 (PS3.5 §B.2, UUID-derived) and one random UUID; everything below it is ours. */
export function newUidRoot(): string {
  return `2.25.${BigInt(`0x${crypto.randomUUID().replace(/-/g, '')}`).toString()}`;
}

function dayString(offsetDays: number): string {
  return new Date(DATE_BASE_MS + offsetDays * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
}

/** StudyDate of study k: spread over ten years, neighbours far apart (37 is prime to the span). */
export function studyDateOf(index: number): string {
  return dayString((index * 37) % DATE_SPAN_DAYS);
}

export function dateRangeAround(index: number, days: number): [string, string] {
  const from = (index * 37) % DATE_SPAN_DAYS;
  return [dayString(from), dayString(from + days - 1)];
}

export function patientOf(patientIndex: number): { patientId: string; patientName: string; birthDate: string; sex: string } {
  return {
    patientId: `SCALE-P${String(patientIndex).padStart(7, '0')}`,
    patientName: `${FAMILY[patientIndex % FAMILY.length]}^${GIVEN[Math.floor(patientIndex / FAMILY.length) % GIVEN.length]}`,
    birthDate: dayString(-((patientIndex * 7919) % 30_000) - 3650),
    sex: patientIndex % 2 === 0 ? 'F' : 'M',
  };
}

/** Study k of a run: a pure function of (root, shape, k). */
export function studyPlan(root: string, shape: ScaleShape, index: number): ScaleStudy {
  const patientIndex = index % shape.patients;
  const modalities = STUDY_MODALITIES[index % STUDY_MODALITIES.length]!;
  const series: ScaleSeries[] = Array.from({ length: shape.seriesPerStudy }, (_, s) => {
    const modality = modalities[s % modalities.length]!;
    return { seriesInstanceUid: `${root}.${index}.${s + 1}`, modality, seriesNumber: s + 1, description: `${modality} SERIES ${s + 1}` };
  });
  const seconds = (index * 7907) % 36_000;
  return {
    index,
    studyInstanceUid: `${root}.${index}`,
    patientIndex,
    ...patientOf(patientIndex),
    studyDate: studyDateOf(index),
    studyTime: `${String(7 + Math.floor(seconds / 3600)).padStart(2, '0')}${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}${String(seconds % 60).padStart(2, '0')}`,
    accessionNumber: `ACC${String(index + 1).padStart(9, '0')}`,
    description: DESCRIPTIONS[modalities[0]!]!,
    modalities: [...new Set(series.map((s) => s.modality))],
    series,
  };
}

export function sopInstanceUidOf(series: ScaleSeries, instance: number): string {
  return `${series.seriesInstanceUid}.${instance + 1}`;
}

// ---------------------------------------------------------------------------------------------------
// Explicit VR Little Endian writer (PS3.5 §7.1.2), just what these instances need.

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
type Value = string | number[] | Buffer;

function element(tag: number, vr: string, value: Value): Buffer {
  let body: Buffer;
  if (Buffer.isBuffer(value)) body = value;
  else if (Array.isArray(value)) {
    body = Buffer.alloc(value.length * (vr === 'UL' ? 4 : 2));
    value.forEach((v, i) => (vr === 'UL' ? body.writeUInt32LE(v, i * 4) : body.writeUInt16LE(v, i * 2)));
  } else body = Buffer.from(value, 'latin1');
  if (body.length % 2 === 1) body = Buffer.concat([body, Buffer.from(vr === 'UI' || vr === 'OB' ? [0] : [0x20])]);
  const long = LONG_LENGTH_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(body.length, 8);
  else head.writeUInt16LE(body.length, 6);
  return Buffer.concat([head, body]);
}

const PIXELS = (() => {
  const pixels = Buffer.alloc(PIXEL_SIZE * PIXEL_SIZE * 2);
  for (let i = 0; i < PIXEL_SIZE * PIXEL_SIZE; i++) pixels.writeUInt16LE((i * 37) % 4096, i * 2);
  return pixels;
})();

/** One CT-like Part-10 instance of `series` in `study` (instance numbers from 1). */
export function encodeInstance(study: ScaleStudy, series: ScaleSeries, instance: number): Buffer {
  const sopClass = SOP_CLASS[series.modality]!;
  const sop = sopInstanceUidOf(series, instance);
  const z = (instance * 1.25).toFixed(2);
  const dataset = [
    element(0x00080005, 'CS', 'ISO_IR 100'),
    element(0x00080008, 'CS', 'ORIGINAL\\PRIMARY\\AXIAL'),
    element(0x00080016, 'UI', sopClass),
    element(0x00080018, 'UI', sop),
    element(0x00080020, 'DA', study.studyDate),
    element(0x00080021, 'DA', study.studyDate),
    element(0x00080030, 'TM', study.studyTime),
    element(0x00080050, 'SH', study.accessionNumber),
    element(0x00080060, 'CS', series.modality),
    element(0x00080070, 'LO', 'BENCH SCANNER'),
    element(0x00080090, 'PN', 'REFERRING^DOCTOR'),
    element(0x00081030, 'LO', study.description),
    element(0x0008103e, 'LO', series.description),
    element(0x00100010, 'PN', study.patientName),
    element(0x00100020, 'LO', study.patientId),
    element(0x00100030, 'DA', study.birthDate),
    element(0x00100040, 'CS', study.sex),
    element(0x00180050, 'DS', '1.25'),
    element(0x0020000d, 'UI', study.studyInstanceUid),
    element(0x0020000e, 'UI', series.seriesInstanceUid),
    element(0x00200010, 'SH', String(study.index + 1)),
    element(0x00200011, 'IS', String(series.seriesNumber)),
    element(0x00200013, 'IS', String(instance + 1)),
    element(0x00200032, 'DS', `-100\\-100\\${z}`),
    element(0x00200037, 'DS', '1\\0\\0\\0\\1\\0'),
    element(0x00200052, 'UI', `${series.seriesInstanceUid}.0`),
    element(0x00201041, 'DS', z),
    element(0x00280002, 'US', [1]),
    element(0x00280004, 'CS', 'MONOCHROME2'),
    element(0x00280010, 'US', [PIXEL_SIZE]),
    element(0x00280011, 'US', [PIXEL_SIZE]),
    element(0x00280030, 'DS', '0.7\\0.7'),
    element(0x00280100, 'US', [16]),
    element(0x00280101, 'US', [12]),
    element(0x00280102, 'US', [11]),
    element(0x00280103, 'US', [0]),
    element(0x00281050, 'DS', '40'),
    element(0x00281051, 'DS', '400'),
    element(0x00281052, 'DS', '-1024'),
    element(0x00281053, 'DS', '1'),
    element(0x7fe00010, 'OW', PIXELS),
  ];
  const meta = Buffer.concat([
    element(0x00020001, 'OB', Buffer.from([0, 1])),
    element(0x00020002, 'UI', sopClass),
    element(0x00020003, 'UI', sop),
    element(0x00020010, 'UI', EXPLICIT_VR_LE),
    element(0x00020012, 'UI', IMPLEMENTATION_CLASS_UID),
    element(0x00020013, 'SH', 'PACS_BENCH'),
  ]);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  return Buffer.concat([preamble, element(0x00020000, 'UL', groupLength), meta, ...dataset]);
}
